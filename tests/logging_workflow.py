"""A workflow whose command and activity each log a line, in a module of its own so the sandbox can import it."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="obs_log_activity")
async def log_activity(word: str) -> str:
    """Logs through a plain module logger, as our activities do."""
    logging.getLogger("tests.logging_workflow").info("activity says %s", word)
    return word


@workflow.defn(name="ObsLoggingWorkflow")
class LoggingWorkflow:
    """Runs until its one command has run."""

    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        """Waits for the command."""
        await workflow.wait_condition(lambda: self._done)

    @workflow.update
    async def command(self, word: str) -> str:
        """Logs through the workflow logger, then runs the activity."""
        workflow.logger.info("command says %s", word)
        result: str = await workflow.execute_activity(log_activity, word, start_to_close_timeout=timedelta(seconds=30))
        self._done = True
        return result
