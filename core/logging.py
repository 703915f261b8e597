"""One log format for every process."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    """Timestamped, named log lines on stderr; LOG_LEVEL overrides the default INFO."""
    logging.basicConfig(
        level=(level or os.environ.get("LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("temporalio.activity").setLevel(logging.WARNING)
