"""How long `rflow dev` takes from launch to GET /healthz 200, cold (fresh data dir) and warm (existing).

    python3 run.py bench startup [--runs 3]

Cold includes initdb of the embedded PostgreSQL, creating Temporal's SQLite file and migrating an
empty database; warm reuses a data dir from an earlier run. Each run uses free ports, stops the stack
with SIGINT and checks it exited 0. Prints every run and the median of each kind.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RFLOW = Path(sys.executable).parent / "rflow"


def free_port() -> int:
    """A TCP port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    """True when GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def one_run(data_dir: Path, env: dict[str, str], timeout: float = 120) -> float:
    """Seconds from launching `rflow dev` to /healthz 200; the stack is stopped before returning."""
    api_port = free_port()
    argv = [str(RFLOW), "dev", "--data-dir", str(data_dir), "--api-port", str(api_port),
            "--temporal-port", str(free_port()), "--ui-port", str(free_port())]
    log = (data_dir.parent / f"{data_dir.name}.bench.log").open("ab")
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not healthy(f"http://127.0.0.1:{api_port}/healthz"):
            if proc.poll() is not None:
                raise RuntimeError(f"rflow dev exited with {proc.returncode}; see {log.name}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"not healthy after {timeout} s; see {log.name}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        proc.send_signal(signal.SIGINT)
        if proc.wait(timeout=60) != 0:
            raise RuntimeError(f"rflow dev exited with {proc.returncode} after SIGINT; see {log.name}")
        return elapsed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def machine() -> str:
    """Cores and memory of this machine, for the report."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} {platform.machine()}"


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind (default 3)")
    args = parser.parse_args()
    if not RFLOW.exists():
        sys.exit(f"{RFLOW} not found: run through `python3 run.py bench startup`")
    # The default path is measured: the embedded PostgreSQL, not whatever DATABASE_URL points at.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR")}
    print(f"rflow dev startup to /healthz 200 — {machine()}, Python {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rflow-bench-") as tmp:
        cold: list[float] = []
        for i in range(args.runs):
            cold.append(one_run(Path(tmp) / f"cold-{i}", env))
            print(f"  cold run {i + 1}: {cold[-1]:.2f} s", flush=True)
        warm_dir = Path(tmp) / "cold-0"  # already initialised by the first cold run
        warm: list[float] = []
        for i in range(args.runs):
            warm.append(one_run(warm_dir, env))
            print(f"  warm run {i + 1}: {warm[-1]:.2f} s", flush=True)
    print(f"median cold: {statistics.median(cold):.2f} s   median warm: {statistics.median(warm):.2f} s")


if __name__ == "__main__":
    main()
