"""`rflow fuzz`: schemathesis over a running API's OpenAPI schema as a fresh user, bounded in examples and time."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "RFLOW_FUZZ_URL"
# A 5xx is a bug by the API contract ("never a 500 for bad input"; 503 only while a dependency is down, and the
# run refuses to start then); a documented status whose body does not match its schema is one too.
CHECKS = "not_a_server_error,response_schema_conformance"
STOP_GRACE_S = 30.0  # after the wall-clock bound, how long schemathesis may take to print its report

DESCRIPTION = """\
Register a throwaway user on a running API, log in, and run schemathesis over its /openapi.json with that
bearer token. Exits non-zero when any response is a 5xx or does not match its documented schema (schemathesis
prints each failure with a curl command that reproduces it). Start a stack first, e.g.:

  python3 run.py dev --data-dir /tmp/fuzzdata --api-port 8011 --temporal-port 7244 --ui-port 8244
  python3 run.py fuzz --url http://127.0.0.1:8011
"""


def add_parser(sub: Any) -> None:
    """Register the `fuzz` subcommand and its flags on `rflow`'s subparsers."""
    parser = sub.add_parser("fuzz", help="fuzz a running API with schemathesis (non-zero exit on a 5xx)",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get(URL_ENV, DEFAULT_URL),
                        help=f"base URL of the running API (default: {URL_ENV}, else {DEFAULT_URL})")
    parser.add_argument("--max-examples", type=int, default=30,
                        help="test cases per operation in each schemathesis phase (default: 30)")
    parser.add_argument("--max-time", type=float, default=600.0,
                        help="wall-clock bound of the run in seconds; schemathesis is stopped then (default: 600)")
    parser.add_argument("--workers", type=int, default=1, help="concurrent schemathesis workers (default: 1)")
    parser.add_argument("--seed", type=int, help="random seed, to replay a run")
    parser.add_argument("extra", nargs=argparse.REMAINDER,
                        help="after `--`: more `schemathesis run` options (e.g. -- --include-path-regex /l1/)")


class FuzzSetupError(Exception):
    """The API is not there, not healthy, or would not give us a user."""


def fresh_token(client: httpx.Client) -> tuple[str, str]:
    """Register a new account owner and log in: (email, bearer token)."""
    email = f"fuzz-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(18)
    resp = client.post("/api/v1/auth/register", json={"email": email, "password": password, "name": "Fuzz"})
    if resp.status_code != 201:
        raise FuzzSetupError(f"registering {email} failed: {resp.status_code} {resp.text[:300]}")
    resp = client.post("/api/v1/auth/login/json", json={"email": email, "password": password})
    if resp.status_code != 200:
        raise FuzzSetupError(f"logging in as {email} failed: {resp.status_code} {resp.text[:300]}")
    return email, str(resp.json()["access_token"])


def check_ready(client: httpx.Client, url: str) -> None:
    """Raise unless the API answers and its dependencies are up (503s would otherwise count as bugs)."""
    try:
        resp = client.get("/healthz")
    except httpx.HTTPError as exc:
        raise FuzzSetupError(f"no API at {url} ({exc}); start one with `python3 run.py dev`") from exc
    if resp.status_code != 200:
        raise FuzzSetupError(f"the API at {url} is not healthy ({resp.status_code} {resp.text[:200]}); "
                             "fuzzing now would only find its 503s")


def schemathesis_argv(args: argparse.Namespace, token: str) -> list[str]:
    """The `schemathesis run` command line for this run."""
    extra = list(args.extra)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    url = args.url.rstrip("/")
    argv = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--url", url,
        "--checks", CHECKS, "--max-examples", str(args.max_examples), "--workers", str(args.workers),
        "--header", f"Authorization: Bearer {token}",
        "--generation-database", "none",  # no .hypothesis/ directory left behind
        "--request-timeout", "30",
    ]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    return argv + extra


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_bounded(argv: list[str], max_time: float) -> int:
    """Run `argv`; at `max_time` interrupt it (it then reports what it found) and return its exit code."""
    # A shell starts background jobs with SIGINT ignored, and a child inherits that: restore the default so
    # the interrupt below reaches schemathesis (which then reports what it found) wherever rflow runs.
    proc = subprocess.Popen(argv, preexec_fn=_default_sigint if os.name == "posix" else None)
    try:
        return proc.wait(timeout=max_time)
    except subprocess.TimeoutExpired:
        print(f"rflow fuzz: wall-clock bound of {max_time:g} s reached; stopping schemathesis", file=sys.stderr)
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return 124
    except KeyboardInterrupt:  # Ctrl-C reached schemathesis too: let it print its report
        return proc.wait()


def fuzz(args: argparse.Namespace) -> int:
    """`rflow fuzz`: 0 when schemathesis found nothing, its non-zero exit code otherwise, 2 on setup failure."""
    url = args.url.rstrip("/")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            check_ready(client, url)
            email, token = fresh_token(client)
    except FuzzSetupError as exc:
        print(f"rflow fuzz: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"rflow fuzz: fuzzing {url} as {email} (checks: {CHECKS}; {args.max_examples} examples per operation, "
          f"at most {args.max_time:g} s)", flush=True)
    code = run_bounded(schemathesis_argv(args, token), args.max_time)
    verdict = "no failures" if code == 0 else f"failures found or run incomplete (schemathesis exit {code})"
    print(f"rflow fuzz: {verdict}", flush=True)
    return code
