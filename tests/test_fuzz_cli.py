"""`rflow fuzz` builds a bounded schemathesis run and refuses clearly when there is no healthy API."""

from __future__ import annotations

import signal
import socket
import sys
import time

import pytest

from cli.fuzz import CHECKS, fuzz, run_bounded, schemathesis_argv
from cli.main import _parser


def test_the_schemathesis_command_is_bounded_authenticated_and_checks_5xx_and_schemas() -> None:
    args = _parser().parse_args(["fuzz", "--url", "http://127.0.0.1:8011/", "--max-examples", "7", "--seed", "3",
                                 "--", "--include-path-regex", "/l1/"])
    argv = schemathesis_argv(args, "tok")
    assert argv[:5] == [sys.executable, "-m", "schemathesis.cli", "run", "http://127.0.0.1:8011/openapi.json"]
    joined = " ".join(argv)
    assert f"--checks {CHECKS}" in joined and "not_a_server_error" in CHECKS and "response_schema" in CHECKS
    assert "--max-examples 7" in joined and "--seed 3" in joined
    assert "Authorization: Bearer tok" in argv
    assert argv[-2:] == ["--include-path-regex", "/l1/"]


def test_defaults_are_sane(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RFLOW_FUZZ_URL", raising=False)
    args = _parser().parse_args(["fuzz"])
    assert (args.url, args.max_examples, args.max_time) == ("http://127.0.0.1:8000", 30, 600.0)


def test_no_api_at_the_url_is_exit_2_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert fuzz(_parser().parse_args(["fuzz", "--url", f"http://127.0.0.1:{port}"])) == 2
    assert "run.py dev" in capsys.readouterr().err


def test_the_wall_clock_bound_interrupts_the_run() -> None:
    code = run_bounded([sys.executable, "-c", "import time; time.sleep(30)"], max_time=0.5)
    assert code != 0  # interrupted (KeyboardInterrupt in the child), not a silent success


def test_the_bound_interrupts_the_run_when_started_with_sigint_ignored() -> None:
    # A shell starts background jobs (`cmd &`, CI scripts) with SIGINT ignored; children inherit that.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        started = time.monotonic()
        code = run_bounded([sys.executable, "-c", "import time; time.sleep(30)"], max_time=0.5)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code != 0 and time.monotonic() - started < 20, "the child ignored the interrupt and slept on"
