"""`rflow dev`'s local SMTP sink: real messages sent with smtplib land as readable `.eml` files."""

from __future__ import annotations

import email
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from cli.mail_sink import MailDirHandler, file_stem
from core.config import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Sink:
    """A MailDirHandler served by aiosmtpd on a free port, and the lines it announced."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.lines: list[str] = []
        self.handler = MailDirHandler(directory, keep=keep, announce=self.lines.append)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=_free_port(),
                                     server_hostname="test-sink", enable_SMTPUTF8=True)
        self.port = self.controller.port

    def send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            smtp.send_message(msg)

    def send_raw(self, sender: str, rcpts: list[str], raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            smtp.sendmail(sender, rcpts, raw)

    def files(self) -> list[Path]:
        return sorted(self.handler.directory.glob("*.eml"))


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[Callable[..., Sink]]:
    started: list[Sink] = []

    def make(keep: int = 1000) -> Sink:
        sink = Sink(tmp_path / "mail", keep)
        sink.controller.start()
        started.append(sink)
        return sink

    yield make
    for sink in started:
        sink.controller.stop()


def _message(subject: str, body: str = "Hello from the worker.\n", to: str = "tech@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "resolutionflow@localhost"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def test_a_message_is_saved_as_eml_and_announced(make_sink: Callable[..., Sink]) -> None:
    sink = make_sink()
    sink.send(_message("Walk escalated: printer offline", body="Customer: ACME\nSteps tried: 3\n",
                       to="a@example.com, b@example.com"))

    [path] = sink.files()
    assert path.parent == sink.handler.directory
    assert path.name.endswith("-Walk-escalated-printer-offline.eml")
    assert path.stat().st_mode & 0o777 == 0o600
    parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert parsed["Subject"] == "Walk escalated: printer offline"
    assert parsed["X-Envelope-To"] == "<a@example.com>, <b@example.com>"
    assert parsed["X-Envelope-From"] == "<resolutionflow@localhost>"
    assert parsed.get_content() == "Customer: ACME\nSteps tried: 3\n"
    assert sink.lines == [f'mail: to=a@example.com,b@example.com subject="Walk escalated: printer offline" '
                          f"saved={path}"]
    assert not list(sink.handler.directory.glob(".*.tmp"))  # written atomically, nothing left behind


@pytest.mark.parametrize(("subject", "stem"), [
    ("Drucker défekt — 打印机 ✓", "Drucker-defekt"),
    ("../../etc/passwd", "etc-passwd"),
    ("C:\\Windows\\evil name", "C-Windows-evil-name"),
    ("", "no-subject"),
    ("日本語のみ", "no-subject"),
    ("x" * 5000, "x" * 60),
])
def test_odd_subjects_make_safe_file_names(make_sink: Callable[..., Sink], subject: str,
                                        stem: str) -> None:
    sink = make_sink()
    msg = EmailMessage()
    msg["From"] = "resolutionflow@localhost"
    msg["To"] = "tech@example.com"
    if subject:
        msg["Subject"] = subject
    msg.set_content("body\n")
    sink.send(msg)

    [path] = sink.files()
    assert path.parent == sink.handler.directory  # never a path outside the mail dir
    assert path.name.endswith(f"-{stem}.eml"), path.name
    assert len(path.name) < 100
    [line] = sink.lines
    assert line.startswith("mail: to=tech@example.com subject=") and line.endswith(f"saved={path}")
    assert len(line.split(" saved=")[0]) < 250  # a 5,000-character subject is cut in the log line too
    if subject and subject.isascii() and len(subject) < 100:
        assert f'subject="{subject.replace(chr(92), chr(92) * 2)}"' in line


def test_file_stem_never_escapes_the_directory() -> None:
    for subject in ("/", "..", ".", "a/../../b", "\\\\server\\share", "-.-", "\n\r\t", "nul\x00byte"):
        stem = file_stem(subject)
        assert stem and "/" not in stem and "\\" not in stem and stem not in (".", "..")


def test_non_utf8_bodies_and_headers_are_kept_byte_for_byte(make_sink: Callable[..., Sink]) -> None:
    sink = make_sink()
    raw = (b"From: resolutionflow@localhost\r\nTo: tech@example.com\r\n"
           b"Subject: Caf\xe9 \xff broken\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           b"Gr\xfc\xdfe aus K\xf6ln \xff\xfe\r\n")
    sink.send_raw("resolutionflow@localhost", ["tech@example.com"], raw)

    [path] = sink.files()
    stored = path.read_bytes()
    assert stored.endswith(raw.replace(b"\r\n", b"\n"))  # as received (with Unix line ends), after the envelope
    assert path.name.endswith("-Caf-broken.eml")
    [line] = sink.lines
    assert 'subject="Caf\ufffd \ufffd broken"' in line
    line.encode("utf-8")  # printable: no lone surrogates


def test_encoded_word_subjects_are_decoded(make_sink: Callable[..., Sink]) -> None:
    sink = make_sink()
    sink.send(_message("Ticket #42: Überprüfung fehlgeschlagen"))  # sent as an RFC 2047 encoded word

    [path] = sink.files()
    assert path.name.endswith("-Ticket-42-Uberprufung-fehlgeschlagen.eml")
    assert 'subject="Ticket #42: Überprüfung fehlgeschlagen"' in sink.lines[0]


def test_only_the_newest_messages_are_kept(make_sink: Callable[..., Sink], tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    (mail_dir / "notes.eml").write_text("not ours: never pruned\n")
    old = mail_dir / "20000101T000000000000Z-deadbeef-ancient.eml"
    old.write_text("from an earlier run\n")
    sink = make_sink(keep=3)
    for i in range(5):
        sink.send(_message(f"message {i}"))

    ours = [p.name for p in sink.files() if p.name != "notes.eml"]
    assert len(ours) == 3
    assert [name.rsplit("-", 2)[-2:] for name in ours] == [["message", "2.eml"], ["message", "3.eml"],
                                                           ["message", "4.eml"]]
    assert (mail_dir / "notes.eml").exists() and not old.exists()
    assert len(sink.lines) == 5


def test_the_module_runs_as_a_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    mail_dir = tmp_path / "mail"
    proc = subprocess.Popen([sys.executable, "-m", "cli.mail_sink", "--dir", str(mail_dir), "--port", str(port)],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"listening on 127.0.0.1:{port}" in first and str(mail_dir) in first, first
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(_message("From the child", to="l2@example.com"))
        line = proc.stdout.readline().rstrip("\n")
        [path] = mail_dir.glob("*.eml")
        assert line == f'mail: to=l2@example.com subject="From the child" saved={path}'

        # A second sink on the same port says why it cannot start.
        busy = subprocess.run([sys.executable, "-m", "cli.mail_sink", "--dir", str(mail_dir), "--port", str(port)],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=False)
        assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.05)
    else:
        pytest.fail("the sink still listens after SIGTERM")


# --- how `rflow dev` decides between the sink and a configured SMTP server -------------------------------------


class _Stack:
    """A DevStack whose children are only recorded, and what it said."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from cli import dev
        from core.config import Settings

        self.said: list[str] = []
        self.spawned: list[str] = []
        monkeypatch.setattr(dev, "say", self.said.append)
        self.stack = dev.DevStack(Settings(dev_mode=True), dev.DevOptions(
            host="127.0.0.1", api_port=1, temporal_port=2, ui_port=3, data_dir=tmp_path, timeout_s=1))
        monkeypatch.setattr(self.stack, "_spawn", self.spawned.append)


@pytest.fixture
def no_smtp_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env


def test_dev_starts_the_sink_when_no_smtp_server_is_configured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_smtp_env: None) -> None:
    from cli import dev

    monkeypatch.setattr(dev, "port_in_use", lambda host, port: False)
    s = _Stack(tmp_path, monkeypatch)
    s.stack._start_mail()
    assert s.spawned == ["mail"] and s.stack.mail_port == 1025
    assert s.said == [f"starting a local SMTP sink on 127.0.0.1:1025 (messages saved in {tmp_path / 'mail'})"]
    env = s.stack._child_env()
    assert (env["SMTP_HOST"], env["SMTP_PORT"], env["SMTP_USERNAME"], env["SMTP_PASSWORD"]) == \
        ("127.0.0.1", "1025", "", "")


def test_dev_picks_a_free_port_when_1025_is_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_smtp_env: None) -> None:
    from cli import dev

    monkeypatch.setattr(dev, "port_in_use", lambda host, port: port == 1025)
    s = _Stack(tmp_path, monkeypatch)
    s.stack._start_mail()
    assert s.spawned == ["mail"] and s.stack.mail_port not in (None, 1025)
    assert s.stack._child_env()["SMTP_PORT"] == str(s.stack.mail_port)


def test_dev_uses_a_configured_smtp_server_that_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_smtp_env: None,
        make_sink: Callable[..., Sink]) -> None:
    real = make_sink()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(real.port))
    monkeypatch.setenv("SMTP_USERNAME", "someone")
    s = _Stack(tmp_path, monkeypatch)
    s.stack._start_mail()
    assert s.spawned == [] and s.stack.mail_port is None
    assert s.said == [f"sending mail through the SMTP server 127.0.0.1:{real.port} (SMTP_HOST/SMTP_PORT); "
                      "no local mail sink"]
    env = s.stack._child_env()
    assert (env["SMTP_PORT"], env["SMTP_USERNAME"]) == (str(real.port), "someone")  # passed on untouched


def test_dev_falls_back_to_the_sink_when_the_configured_server_does_not_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_smtp_env: None) -> None:
    dead = _free_port()
    (tmp_path / ".env").write_text(f"SMTP_PORT={dead}\nSMTP_PASSWORD=secret\n")  # .env counts as configured
    s = _Stack(tmp_path, monkeypatch)
    s.stack._start_mail()
    assert s.said[0] == (f"nothing answers at localhost:{dead} (SMTP_HOST/SMTP_PORT): "
                         "mail goes to a local SMTP sink instead")
    assert s.spawned == ["mail"] and s.stack.mail_port is not None
    env = s.stack._child_env()
    assert (env["SMTP_HOST"], env["SMTP_PORT"], env["SMTP_PASSWORD"]) == ("127.0.0.1", str(s.stack.mail_port), "")
