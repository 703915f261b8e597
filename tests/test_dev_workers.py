"""`rflow dev --workers N`: N worker processes, each its own restartable child that polls the task queue, one
serving the SDK's metrics; the option's bounds; compose's WORKER_REPLICAS."""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cli import dev_workers
from cli.dev import DevOptions, DevStack
from cli.dev_summary import summary
from cli.main import _parser
from cli.processes import task_queue_pollers
from core.config import Settings
from tests.compose.test_compose import COMPOSE, REQUIRED_FROM_HOST, _resolve
from tests.test_cli import (  # noqa: F401  (dev_env is a fixture)
    PASSWORD,
    DevProcess,
    _assert_all_gone,
    _restarted,
    _running,
    _temporal,
    _wait_for,
    dev_env,
)


@pytest.mark.parametrize("value", ["0", "-1", "33", "two", "1.5", ""])
def test_workers_out_of_bounds_is_an_argparse_error_naming_the_range(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["dev", "--workers", value])
    assert exited.value.code == 2
    assert f"argument --workers: a whole number from 1 to 32 (worker processes), not {value!r}" \
        in capsys.readouterr().err


def test_workers_defaults_to_one_and_takes_the_bounds() -> None:
    assert _parser().parse_args(["dev"]).workers == 1
    assert [_parser().parse_args(["dev", "--workers", n]).workers for n in ("1", "2", "32")] == [1, 2, 32]


def test_names_keep_worker_alone_and_only_the_first_serves_metrics() -> None:
    assert dev_workers.worker_names(1) == ["worker"]  # logs/worker.log and dev.pids' "worker" as before
    assert dev_workers.worker_names(3) == ["worker-1", "worker-2", "worker-3"]
    assert all(dev_workers.is_worker(n) for n in ["worker", "worker-1", "worker-12"])
    assert not any(dev_workers.is_worker(n) for n in ["api", "temporal", "mail", "cw-simulator"])
    address = "127.0.0.1:9464"
    assert [dev_workers.metrics_address(n, address) for n in ("worker", "worker-1", "worker-2", "worker-9")] == \
        [address, address, "", ""]


def test_every_worker_must_poll_not_just_as_many_pollers() -> None:
    host = socket.gethostname()
    last_run = {f"1@{host}", f"2@{host}"}  # the previous run's workers linger as pollers for minutes
    assert not dev_workers.all_polling([10, 11], last_run)
    assert not dev_workers.all_polling([10, 11], last_run | {f"10@{host}"})
    assert dev_workers.all_polling([10, 11], last_run | {f"10@{host}", f"11@{host}"})
    assert not dev_workers.all_polling([10], {"10@elsewhere"})
    assert task_queue_pollers("/nonexistent/temporal", "127.0.0.1:1", "default", "q") == set()


def _summary(tmp_path: Path, workers: int) -> dict[str, str]:
    stack = DevStack(Settings(dev_mode=True, _env_file=None), DevOptions(
        host="127.0.0.1", api_port=8000, temporal_port=7233, ui_port=8233, data_dir=tmp_path, timeout_s=1,
        cw_simulator=False, workers=workers))
    stack.worker_metrics_address, stack.temporal_metrics_port = "127.0.0.1:9464", 40123
    rows = [line.strip().split("  ", 1) for line in summary(stack, 1.0).splitlines() if "  " in line]
    return {label: value.strip() for label, value in rows}


def test_the_summary_says_how_many_workers_run_and_where_they_log(tmp_path: Path) -> None:
    one = _summary(tmp_path, 1)
    assert one["Workers"] == "1 process (more with --workers N), log in logs/worker.log"
    assert "logs/worker.log" in one["Data dir"] and "(worker)" in one["Metrics"]
    two = _summary(tmp_path, 2)
    assert two["Workers"] == ("2 processes (--workers), logs in logs/worker-1.log, logs/worker-2.log; "
                              "SDK metrics from worker-1 only")
    assert "logs/worker-<i>.log" in two["Data dir"] and "http://127.0.0.1:9464/metrics (worker-1)" in two["Metrics"]
    many = _summary(tmp_path, 12)
    assert many["Workers"].startswith("12 processes (--workers), logs in logs/worker-1.log, …, logs/worker-12.log;")


def _compose(env: dict[str, str]) -> dict[str, Any]:
    return dict(_resolve(yaml.safe_load(COMPOSE.read_text()), {**REQUIRED_FROM_HOST, **env}))


def test_compose_runs_worker_replicas_from_worker_replicas() -> None:
    assert _compose({})["services"]["worker"]["deploy"]["replicas"] == "1"
    assert _compose({"WORKER_REPLICAS": "3"})["services"]["worker"]["deploy"]["replicas"] == "3"


def _walk(api: str) -> None:
    """Register, author a two-question flow, walk it over HTTP (intake, each step, resolve)."""
    with httpx.Client(base_url=api, timeout=30) as http:
        email = f"workers-{uuid.uuid4().hex[:10]}@example.com"
        assert http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD,
                                                        "name": "Workers"}).status_code == 201
        token = http.post("/api/v1/auth/login/json", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        tree = {"root": "n0", "nodes": {
            "n0": {"question": "Plugged in?", "options": [{"label": "yes", "next": "n1"}]},
            "n1": {"question": "Restarted?", "options": [{"label": "yes", "resolution": "Works again."}]}}}
        flow = http.post("/api/v1/l1/flows", headers=headers, json={
            "title": "workers flow", "category": "software", "keywords": ["workers"], "tree": tree})
        assert flow.status_code == 201, flow.text
        resp = http.post("/api/v1/l1/intake", headers=headers,
                         json={"problem_statement": "two workers", "flow_id": flow.json()["id"]})
        assert resp.status_code in (200, 201), resp.text
        sid, node = resp.json()["session_id"], resp.json()["pending_node"]
        steps = 0
        while node is not None and node["kind"] == "question":
            resp = http.post(f"/api/v1/l1/sessions/{sid}/step", headers=headers,
                             json={"node_id": node["id"], "answer": node["options"][0]})
            assert resp.status_code == 200, resp.text
            node, steps = resp.json()["next_node"], steps + 1
        assert steps == 2
        resolved = http.post(f"/api/v1/l1/sessions/{sid}/resolve", headers=headers, json={"helpful": True})
        assert resolved.status_code == 200, resolved.text


def _pollers(dev: DevProcess, queue: str) -> set[str]:
    described = _temporal(dev, "task-queue", "describe", "--task-queue", queue, "--output", "json")
    assert described.returncode == 0, described.stderr
    return {p["identity"] for p in json.loads(described.stdout)["pollers"] or []}


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_dev_with_two_workers_polls_twice_serves_a_walk_restarts_one_alone_and_stops_both(
        tmp_path: Path, dev_env: dict[str, str]) -> None:  # noqa: F811  (the fixture imported above)
    data_dir, queue, host = tmp_path / "data", dev_env["TEMPORAL_TASK_QUEUE"], socket.gethostname()
    dev = DevProcess(data_dir, dev_env, "--workers", "2", "--no-cw-simulator")
    pids: dict[str, int] = {}
    try:
        pids = dev.wait_ready()
        assert "worker" not in pids and {"worker-1", "worker-2"} <= set(pids), pids
        workers = [pids["worker-1"], pids["worker-2"]]
        assert len(set(workers)) == 2 and all(_running(pid) for pid in workers)
        # "ready" means both poll: two distinct pollers on the task queue, and they are these two processes.
        assert {f"{pid}@{host}" for pid in workers} <= _pollers(dev, queue)
        assert "starting the 2 workers and the API" in dev.output
        logs = data_dir / "logs"
        assert (logs / "worker-1.log").stat().st_size and (logs / "worker-2.log").stat().st_size
        assert not (logs / "worker.log").exists()
        # One metrics endpoint: two processes cannot bind one port.
        metrics = [_environ(pid)["WORKER_METRICS_ADDRESS"] for pid in workers]
        assert metrics[0] and metrics[1] == "", metrics
        assert httpx.get(f"http://{metrics[0]}/metrics", timeout=10).status_code == 200

        _walk(dev.api)

        # A crashed worker is restarted on its own, with today's backoff; the other one is left alone.
        os.kill(pids["worker-2"], signal.SIGKILL)
        restarted = _restarted(dev, "worker-2", pids["worker-2"])
        assert f"worker-2 (pid {pids['worker-2']}) exited unexpectedly with code -9 (SIGKILL); restarting it in 1 s" \
            in dev.output
        assert json.loads((data_dir / "dev.pids").read_text())["worker-1"] == pids["worker-1"]
        assert _environ(restarted)["WORKER_METRICS_ADDRESS"] == ""  # still not the one with the metrics port
        _wait_for("the restarted worker polling", lambda: f"{restarted}@{host}" in _pollers(dev, queue), dev)
        pids["worker-2"] = restarted
        _walk(dev.api)

        dev.proc.send_signal(signal.SIGINT)
        assert dev.wait_exit() == 0, dev.output
        assert "stopping the API and the 2 workers" in dev.output
        assert "did not stop in" not in dev.output  # both drained within the grace period
    finally:
        dev.kill()
    _assert_all_gone(pids, dev.output)
