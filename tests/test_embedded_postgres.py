"""The embedded PostgreSQL's first start (system user, initdb, start) runs under one machine-wide lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT
from db.embedded import SETUP_LOCK, setup_lock

START = ("import sys; from pathlib import Path; from db.embedded import start_embedded_postgres; "
         "handle, url = start_embedded_postgres(Path(sys.argv[1])); print(url, flush=True); handle.cleanup()")


def _blocked_on(lock: Path, pid: int) -> bool:
    """True when `pid` waits in the kernel for a lock on `lock` (Linux's /proc/locks marks waiters with ->)."""
    inode = f":{os.stat(lock).st_ino} "
    return any("->" in line and f" {pid} " in line and inode in line
               for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks to see a waiting process")
def test_a_start_waits_for_the_setup_lock_before_creating_anything(tmp_path: Path) -> None:
    # Two xdist workers starting the server on a machine without the `pgserver` user raced in useradd and
    # initdb; one lock around all of it makes the second find everything done.
    data_dir = tmp_path / "postgres"
    with setup_lock():
        proc = subprocess.Popen([sys.executable, "-c", START, str(data_dir)], cwd=PROJECT_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not _blocked_on(SETUP_LOCK, proc.pid):
                assert proc.poll() is None, f"started without waiting for the lock: {proc.communicate()}"
                assert time.monotonic() < deadline, "the start never reached the lock"
                time.sleep(0.05)
            assert not (data_dir / "PG_VERSION").exists()  # no initdb while another process holds the lock
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("postgresql://"), out
    assert (data_dir / "PG_VERSION").exists()
