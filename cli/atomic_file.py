"""Files that other processes read while we rewrite them: written whole to a temporary file, then renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Replace `path` with `content` (text as UTF-8): a reader sees the old file or the new one, never a part."""
    # mkstemp creates the file 0600 with a unique name (two writers never share a temporary file); the mode
    # is set before the rename, so a private file is never readable by others, even for a moment.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
