"""The worker's resident memory, sampled while a bench runs (shared by the parked-work benches).

Not a bench itself: `pending_fixes.py` and `idle_walks.py` import it (a script's own directory is on `sys.path`).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def find_worker(pid: int | None) -> psutil.Process | None:
    """The worker process: the given pid, else the one running this project's worker.py."""
    if pid:
        return psutil.Process(pid)
    target = str(PROJECT_ROOT / "worker.py")
    found = None
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if target in cmdline:
            return proc
        if found is None and any(arg.endswith("/worker.py") for arg in cmdline):
            found = proc  # a checkout elsewhere (a benched snapshot)
    return found


class PeakRss:
    """Samples a process's resident memory (children included) every half second until stopped; keeps the peak."""

    def __init__(self, proc: psutil.Process | None) -> None:
        self.proc = proc
        self.peak = 0
        self.last = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> PeakRss:
        """Begin sampling in the background."""
        self._task = asyncio.create_task(self._sample())
        return self

    async def stop(self) -> None:
        """Stop sampling (the peak stays readable)."""
        self._stop.set()
        if self._task is not None:
            await self._task

    def mb(self, value: int) -> str:
        """`value` bytes as whole MB ("n/a" when no worker was found)."""
        return f"{value / 2**20:.0f} MB" if self.proc is not None else "n/a (worker not found)"

    async def _sample(self) -> None:
        while self.proc is not None and not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(recursive=True))
            except psutil.Error:
                return
            self.last, self.peak = rss, max(self.peak, rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.5)
