"""Every workflow class the worker registers."""

from __future__ import annotations

from workflows.echo import EchoWorkflow

ALL_WORKFLOWS: list[type] = [EchoWorkflow]
