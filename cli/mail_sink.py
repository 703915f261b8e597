"""A local SMTP sink for `rflow dev`: every message it receives becomes an `.eml` file you can open.

    python -m cli.mail_sink --dir .data/mail --port 1025

Each message is saved as `<dir>/<UTC timestamp>-<short id>-<subject>.eml` (the bytes as received, with Unix line
ends, after two `X-Envelope-*` lines naming the SMTP envelope, so Bcc recipients show too) and announced with one line,
`mail: to=<recipients> subject="<subject>" saved=<path>`. Only the newest `--keep` messages are kept. It
accepts anything and delivers nothing: a development stand-in for a real SMTP server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from cli.atomic_file import write_atomic

DEFAULT_KEEP = 1000
DEFAULT_HOST = "127.0.0.1"  # loopback only: the sink accepts mail from anyone who reaches it
DEFAULT_PORT = 1025
SUBJECT_IN_NAME = 60  # characters of the subject in a file name
SUBJECT_IN_LOG = 200  # characters of the subject in the log line
NAME_PATTERN = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}-.*\.eml$")  # only files we wrote are ever pruned
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_subject(raw: bytes) -> str:
    """The message's Subject, decoded (RFC 2047) and on one line; '' when it has none or it is unreadable."""
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(raw)
        subject = str(headers.get("Subject", "") or "")
    except Exception:  # a malformed header must not lose the message
        return ""
    # 8-bit bytes that are not UTF-8 arrive as lone surrogates: make them printable and encodable.
    subject = subject.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub(" ", subject).strip()


def file_stem(subject: str) -> str:
    """A subject as a safe file-name part: ASCII letters, digits, `_`, `-`; never a path, never empty."""
    ascii_subject = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("-", ascii_subject)[:SUBJECT_IN_NAME].strip("-")
    return stem or "no-subject"


class MailDirHandler:
    """aiosmtpd handler: saves each message under `directory`, announces it, keeps only the newest `keep`."""

    def __init__(self, directory: Path, *, keep: int = DEFAULT_KEEP,
                 announce: Callable[[str], None] | None = None) -> None:
        self.directory = directory.resolve()
        self.keep = max(1, keep)
        self.announce = announce or (lambda line: print(line, flush=True))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prune()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd hook: one message received."""
        content = envelope.original_content or b""
        try:
            path = self.save(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        except OSError as exc:
            self.announce(f"mail: could not save a message to {self.directory}: {exc}")
            return "451 Requested action aborted: could not store the message"
        return f"250 Message accepted: saved as {path.name}"

    def save(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        """Write one message (atomically: a reader never sees half a file); its path."""
        subject = clean_subject(content)
        now = datetime.now(UTC)
        name = f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}-{file_stem(subject)}.eml"
        path = self.directory / name
        envelope = (f"X-Envelope-From: <{_header_safe(mail_from)}>\n"
                    f"X-Envelope-To: {', '.join(f'<{_header_safe(r)}>' for r in rcpt_tos)}\n")
        # Unix line ends, as in a Maildir: `cat`, editors and mail clients all read that.
        write_atomic(path, envelope.encode("utf-8", "replace") + content.replace(b"\r\n", b"\n"), mode=0o600)
        self.prune()
        shown = subject if len(subject) <= SUBJECT_IN_LOG else subject[:SUBJECT_IN_LOG] + "…"
        to = ",".join(_header_safe(r) for r in rcpt_tos)
        self.announce(f"mail: to={to} subject={json.dumps(shown, ensure_ascii=False)} saved={path}")
        return path

    def prune(self) -> None:
        """Delete our oldest messages beyond `keep` (names start with the UTC time, so they sort by age)."""
        try:
            ours = sorted(entry.name for entry in os.scandir(self.directory)
                          if NAME_PATTERN.match(entry.name) and entry.is_file(follow_symlinks=False))
        except OSError:
            return
        for name in ours[:-self.keep]:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()


def _header_safe(value: str) -> str:
    return _CONTROL.sub(" ", value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


async def serve(handler: MailDirHandler, host: str, port: int) -> None:
    """Accept SMTP connections on host:port until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # hostname given: aiosmtpd's default (socket.getfqdn) can wait on DNS for seconds.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="rflow-dev-mail", enable_SMTPUTF8=True), host, port)
    handler.announce(f"mail: local SMTP sink listening on {host}:{port}; messages are saved in {handler.directory}")
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    """`python -m cli.mail_sink --dir DIR [--host H] [--port P] [--keep N]`."""
    parser = argparse.ArgumentParser(prog="python -m cli.mail_sink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="where to save the messages")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP,
                        help=f"how many of the newest messages to keep (default: {DEFAULT_KEEP})")
    args = parser.parse_args(argv)
    handler = MailDirHandler(args.dir, keep=args.keep)
    try:
        asyncio.run(serve(handler, args.host, args.port))
    except OSError as exc:  # typically the port is taken
        print(f"mail: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
