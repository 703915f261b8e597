"""`rflow dev` as a person runs it: the whole stack comes up, keeps its data, and stops without orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.binaries import temporal_cli_path
from core.config import PROJECT_ROOT

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

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.api_port, self.temporal_port, self.ui_port = _free_port(), _free_port(), _free_port()
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            _rflow_argv("dev", "--api-port", str(self.api_port), "--temporal-port", str(self.temporal_port),
                        "--ui-port", str(self.ui_port), "--data-dir", str(data_dir), "--timeout", "60"),
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DATABASE_URL"))}
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
        assert set(pids) >= {"rflow", "temporal", "worker", "api"}, pids
        assert all(_running(pid) for pid in pids.values() if pid)
        assert f"http://127.0.0.1:{first.ui_port}" in first.output  # the summary says where the UI is
        assert f"{first.api}/docs" in first.output
        health = httpx.get(f"{first.api}/healthz", timeout=10)
        assert health.status_code == 200 and health.json() == {"database": "ok", "temporal": "ok"}
        assert httpx.get(f"{first.api}/docs", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{first.ui_port}/", timeout=10).status_code == 200
        resp = httpx.post(f"{first.api}/api/v1/auth/register", timeout=10,
                          json={"email": email, "password": PASSWORD, "name": "CLI User"})
        assert resp.status_code == 201, resp.text
        started = _temporal(first, "workflow", "start", "--type", "EchoWorkflow", "--workflow-id", workflow_id,
                            "--task-queue", dev_env["TEMPORAL_TASK_QUEUE"])
        assert started.returncode == 0, started.stderr

        first.proc.send_signal(signal.SIGINT)
        assert first.wait_exit() == 0, first.output
    finally:
        first.kill()
    _assert_all_gone(pids, first.output)
    assert not (data_dir / "dev.pids").exists()

    second = DevProcess(data_dir, dev_env)
    try:
        pids = second.wait_ready()
        login = httpx.post(f"{second.api}/api/v1/auth/login/json", timeout=10,
                           json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text  # the user survived the restart
        # The workflow started in the first run survived too, and this run's worker serves it.
        echoed = _temporal(second, "workflow", "update", "execute", "--workflow-id", workflow_id,
                           "--name", "echo", "--input", '{"value": "still here"}')
        assert echoed.returncode == 0, echoed.stderr
        assert "still here" in echoed.stdout

        # A part that dies takes the stack down with a non-zero exit and says which part it was.
        os.kill(pids["worker"], signal.SIGKILL)
        assert second.wait_exit() == 1, second.output
        assert "worker" in second.output and "exited unexpectedly" in second.output
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
