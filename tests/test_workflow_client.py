"""How the one workflow client maps what Temporal's client raises (the server cases are in tests/l1)."""

from __future__ import annotations

import logging

import pytest
from temporalio.service import RPCError, RPCStatusCode

from core.errors import EngineUnavailable, NotFound
from services.workflow_client import _none_if_not_running, domain_error


def test_a_workflow_task_in_failed_state_is_a_loud_503(caplog: pytest.LogCaptureFixture) -> None:
    exc = RPCError("Workflow Task in failed state.", RPCStatusCode.FAILED_PRECONDITION, b"")
    with caplog.at_level(logging.ERROR):
        mapped = domain_error(exc, what="walk session")
    assert isinstance(mapped, EngineUnavailable) and "being repaired" in str(mapped.detail)
    assert any("failing workflow task" in r.getMessage() for r in caplog.records)


def test_an_unreachable_engine_says_so() -> None:
    mapped = domain_error(RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""), what="walk session")
    assert isinstance(mapped, EngineUnavailable) and "unreachable" in str(mapped.detail)
    assert "worker" not in str(mapped.detail)


def test_a_missing_workflow_is_404_and_other_preconditions_are_bugs() -> None:
    assert isinstance(domain_error(RPCError("gone", RPCStatusCode.NOT_FOUND, b""), what="x"), NotFound)
    assert domain_error(RPCError("odd", RPCStatusCode.FAILED_PRECONDITION, b""), what="x") is None


async def test_only_not_found_sends_a_command_on_to_update_with_start() -> None:
    async def refused(status: RPCStatusCode) -> str:
        raise RPCError("refused", status, b"")

    assert await _none_if_not_running(refused(RPCStatusCode.NOT_FOUND)) is None  # no run: start one
    for status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.FAILED_PRECONDITION):
        with pytest.raises(RPCError):
            await _none_if_not_running(refused(status))
