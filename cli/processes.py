"""Child processes and readiness probes for `rflow dev` (stdlib only, no threads)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it if `rflow dev` dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: children are still stopped on every normal exit path
        pass


class Child:
    """One supervised process, in its own session so a terminal's Ctrl-C reaches only `rflow dev`.

    `rflow dev` then stops the children itself, in dependency order. With `echo`, the child writes to its log
    file and `pump` copies new lines to the terminal: the log keeps a tail to report when the child dies, and a
    child never blocks on a full pipe (there is no thread to drain one).
    """

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str], cwd: Path,
                 log: Path | None = None, echo: bool = False) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.echo = echo and log is not None
        self._log_file: IO[bytes] | None = None
        self._echo_pos = 0
        self._partial = b""
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = log.open("ab")
            self._echo_pos = log.stat().st_size  # a restarted child echoes only its own output
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT if self._log_file else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.expected_exit = False

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.proc.pid

    def exited(self) -> int | None:
        """The exit code once the child has exited, else None."""
        return self.proc.poll()

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM); it is now expected to exit."""
        self.expected_exit = True
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the child's whole process group now."""
        self.expected_exit = True
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def close(self) -> None:
        """Release the log file once the child is gone."""
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def pump(self, *, final: bool = False) -> None:
        """Copy what the child logged since the last call to our stdout (whole lines; all of it when `final`)."""
        if not self.echo or self.log is None:
            return
        try:
            with self.log.open("rb") as fh:
                fh.seek(self._echo_pos)
                data = fh.read(1 << 20)
        except OSError:
            return
        self._echo_pos += len(data)
        data = self._partial + data
        cut = len(data) if final else data.rfind(b"\n") + 1
        self._partial = data[cut:]
        if cut:
            sys.stdout.write(data[:cut].decode("utf-8", "replace"))
            sys.stdout.flush()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log file ('' when it logs to the terminal)."""
        if self.log is None or not self.log.exists():
            return ""
        with self.log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_000))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


def stop_children(children: Sequence[Child], *, timeout: float, force: Callable[[], bool]) -> None:
    """SIGTERM every child, wait up to `timeout` (or until `force()`), then SIGKILL what is left."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not force():
        for child in children:
            child.pump()  # what they log while draining still reaches the terminal
        if all(child.exited() is not None for child in children):
            break
        time.sleep(0.05)
    for child in children:
        if child.exited() is None:
            print(f"rflow: {child.name} did not stop in {timeout:.0f} s; killing it", flush=True)
            child.kill()
            child.proc.wait()
        child.pump(final=True)
        child.close()


def describe_exit(code: int) -> str:
    """`code 3`, or `code -9 (SIGKILL)` for a child a signal ended (Popen reports those as negative codes)."""
    if code >= 0:
        return f"code {code}"
    try:
        return f"code {code} ({signal.Signals(-code).name})"
    except ValueError:
        return f"code {code}"


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user (the embedded Postgres runs as `pgserver`)
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): kill(0) succeeding is all we know
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when a TCP connection to host:port (a name or an IPv4/IPv6 address) succeeds within `timeout`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # refused, unreachable, timed out, or the name does not resolve
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def command_succeeds(argv: Sequence[str], timeout: float = 5.0) -> bool:
    """True when `argv` exits 0 within `timeout` (its output is discarded)."""
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout, check=False).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def task_queue_pollers(temporal_cli: str, address: str, namespace: str, task_queue: str) -> set[str]:
    """The identities of the workers that polled `task_queue`'s workflow tasks lately (empty when none or unknown)."""
    argv = [temporal_cli, "task-queue", "describe", "--task-queue", task_queue, "--namespace", namespace,
            "--address", address, "--output", "json"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False).stdout
        pollers = json.loads(out).get("pollers") or []
    except (subprocess.TimeoutExpired, OSError, ValueError, AttributeError):
        return set()  # not answering yet, or not JSON (an error message)
    return {p["identity"] for p in pollers if isinstance(p, dict) and p.get("identity")}
