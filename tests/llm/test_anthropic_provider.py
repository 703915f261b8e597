"""The Anthropic provider through the real SDK against a local stand-in of the Messages API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from integrations.llm.anthropic_provider import retry_after_seconds
from integrations.llm.base import LlmInvalidOutputError, LlmNonRetryableError, LlmRetryableError
from tests.llm.fake_anthropic import FakeAnthropic
from workflows.contracts.llm import (
    CategoryInfo,
    ChatReplyInput,
    ChatTurn,
    ClassifyIntakeInput,
    FlowSummary,
    LlmCallContext,
    NextWalkNodeInput,
    ProposedFix,
    SessionBundle,
    WalkedStep,
)

CTX = LlmCallContext(account_id="00000000-0000-0000-0000-000000000001", subject_id="s-1")
INTAKE = ClassifyIntakeInput(
    context=CTX, problem="Nobody on the second floor can print to the HP LaserJet",
    categories=[CategoryInfo(name="Printing"), CategoryInfo(name="Payroll", in_scope=False)],
    flows=[FlowSummary(id="flow-print", title="Printer offline", category="Printing", keywords=["printer"])],
)
CHAT = ChatReplyInput(context=CTX, transcript=[ChatTurn(role="user", content="Outlook keeps asking for a password")])
VALID_CHAT = {"reply": "Is the user signed in at outlook.office.com?", "confidence": 0.3}


@pytest.fixture
def fake() -> FakeAnthropic:
    return FakeAnthropic()


async def test_request_has_model_cached_system_prompt_and_tool_schema(fake: FakeAnthropic) -> None:
    fake.tool_call("record_intake_classification",
                   {"outcome": "match", "category": "printing", "flow_id": "flow-print", "reason": "Printer flow."})
    result = await fake.provider().classify_intake(INTAKE)

    [request] = fake.requests
    assert request["model"] == "claude-haiku-4-5"
    [system] = request["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert "triage a new L1 intake" in system["text"]
    [tool] = request["tools"]
    assert tool["name"] == "record_intake_classification"
    schema = tool["input_schema"]
    assert schema["type"] == "object"
    assert set(schema["required"]) == {"outcome", "category", "reason"}
    assert schema["properties"]["outcome"]["enum"] == ["match", "build", "out_of_scope"]
    assert "$defs" not in schema
    assert request["tool_choice"] == {"type": "tool", "name": "record_intake_classification"}
    assert "second floor can print" in request["messages"][0]["content"]
    assert fake.headers[0]["authorization"] == "Bearer sk-ant-test"

    assert result.output.outcome == "match"
    assert result.output.flow_id == "flow-print"
    assert result.output.category == "Printing"  # normalized to the given spelling
    assert result.output.provider == "anthropic"
    usage = result.usage
    assert (usage.provider, usage.model, usage.calls) == ("anthropic", "claude-haiku-4-5", 1)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (1200, 150, 900)
    assert usage.latency_ms >= 0


async def test_chat_model_follows_the_confidence_tier(fake: FakeAnthropic) -> None:
    provider = fake.provider(llm_model_chat_guided="claude-opus-4-6")
    for confidence in (0.1, 0.5, 0.9):
        fake.tool_call("record_chat_reply", {**VALID_CHAT, "confidence": 0.85,
                                             "proposed_fix": {"title": "Clear creds", "description": "Remove "
                                                              "MicrosoftOffice entries", "confidence_pct": 80}})
        reply = (await provider.chat_reply(CHAT.model_copy(update={"current_confidence": confidence}))).output
        assert reply.confidence_tier == "guided"
        assert reply.proposed_fix is not None and reply.proposed_fix.confidence_pct == 80
    assert [r["model"] for r in fake.requests] == ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"]


async def test_documents_use_the_strong_model_and_fixed_sections(fake: FakeAnthropic) -> None:
    bundle = SessionBundle(context=CTX, problem_summary="Outlook prompts for password",
                           fixes=[{"title": "Clear creds", "status": "applied_success"}])
    fake.tool_call("record_resolution_note", {"problem": "Outlook kept asking for a password.",
                                              "what_we_confirmed": ["Web sign-in works"],
                                              "root_cause": "Stale cached credentials.",
                                              "resolution": "Cleared cached credentials."})
    fake.tool_call("record_escalation_package", {"problem": "p", "what_we_confirmed": ["a"], "what_we_tried": ["b"],
                                                 "current_hypothesis": "h", "suggested_next_steps": ["x", "y"]})
    provider = fake.provider()
    note = (await provider.resolution_note(bundle)).output
    package = (await provider.escalation_package(bundle)).output

    assert [r["model"] for r in fake.requests] == ["claude-sonnet-4-6", "claude-sonnet-4-6"]
    assert note.model == "claude-sonnet-4-6" and note.provider == "anthropic"
    headings = [line for line in note.markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## Problem", "## What we confirmed", "## Root cause", "## Resolution"]
    assert "- Web sign-in works" in note.markdown
    headings = [line for line in package.markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## Problem", "## What we've confirmed", "## What we've tried", "## Current hypothesis",
                        "## Suggested next steps"]
    assert "1. x\n2. y" in package.markdown


FIXES: list[dict[str, str | int | None]] = [
    {"title": "Reset credential cache", "description": "Remove the MicrosoftOffice entries", "status": "applied_failed",
     "confidence_pct": 70, "applied_at": "2025-03-04T10:00:00+00:00", "verified_at": "2025-03-04T10:20:00+00:00",
     "failure_reason": "user reports no change", "partial_notes": None, "pending_reason": None, "superseded": "no"},
    {"title": "Re-register the device", "description": "dsregcmd /leave then rejoin", "status": "applied_partial",
     "confidence_pct": 60, "applied_at": "2025-03-04T11:00:00+00:00", "verified_at": None, "failure_reason": None,
     "partial_notes": "Outlook fine, Teams still asks", "pending_reason": None, "superseded": "no"},
    {"title": "Force a password sync", "description": "Start-ADSyncSyncCycle -PolicyType Delta",
     "status": "applied_pending", "confidence_pct": 75, "applied_at": "2025-03-04T12:00:00+00:00",
     "verified_at": None, "failure_reason": None, "partial_notes": None, "pending_reason": "AD replication",
     "superseded": "no"},
    {"title": "Rebuild the profile", "description": "New Windows profile", "status": "dismissed",
     "confidence_pct": 30, "applied_at": None, "verified_at": None, "failure_reason": None, "partial_notes": None,
     "pending_reason": None, "superseded": "yes"},
]
HANDOFF = {"summary_prose": "s", "what_we_know": ["k"], "likely_cause": "c", "suggested_steps": ["x"],
           "confidence": 0.5}


async def test_bundle_requests_render_every_fix_with_status_notes_and_times(fake: FakeAnthropic) -> None:
    bundle = SessionBundle(context=CTX, problem_summary="Outlook prompts for password", fixes=FIXES)
    fake.tool_call("record_resolution_note", {"problem": "p", "what_we_confirmed": ["a"], "root_cause": "r",
                                              "resolution": "x"})
    fake.tool_call("record_escalation_package", {"problem": "p", "what_we_confirmed": ["a"], "what_we_tried": ["b"],
                                                 "current_hypothesis": "h", "suggested_next_steps": ["x"]})
    fake.tool_call("record_handoff_assessment", HANDOFF)
    provider = fake.provider()
    await provider.resolution_note(bundle)
    await provider.escalation_package(bundle)
    await provider.handoff_assessment(bundle)

    assert len(fake.requests) == 3
    for request in fake.requests:
        content = request["messages"][0]["content"]
        for fix in FIXES:
            assert f"{fix['title']}\n   Outcome status: {fix['status']}\n" in content, (fix["title"], content)
        assert "Failure reason: user reports no change" in content
        assert "Partial notes: Outlook fine, Teams still asks" in content
        assert "Pending (waiting on): AD replication" in content
        assert "Applied at: 2025-03-04T10:00:00+00:00" in content and "Applied at: 2025-03-04T12:00:00+00:00" in content
        assert "Verified at: 2025-03-04T10:20:00+00:00" in content and content.count("Verified at:") == 1
        assert content.count("Failure reason:") == 1 and content.count("Pending (waiting on):") == 1
        assert "Superseded by a later fix: yes" in content and "Confidence: 70%" in content
        assert "applied_pending" in request["system"][0]["text"] and "provisional" in request["system"][0]["text"]
    note_system, package_system, handoff_system = (r["system"][0]["text"] for r in fake.requests)
    assert "awaiting verification" in note_system and "waiting on" in note_system
    assert "applied_pending, or else applied_partial, is the leading hypothesis" in package_system
    assert "assess a parked or escalated session" in handoff_system


async def test_bundle_without_fixes_says_so(fake: FakeAnthropic) -> None:
    fake.tool_call("record_handoff_assessment", HANDOFF)
    await fake.provider().handoff_assessment(SessionBundle(context=CTX, problem_summary="p"))
    content = fake.requests[0]["messages"][0]["content"]
    assert "Fixes (every fix, in order, with its outcome status and notes):\n(none recorded)" in content


async def test_invalid_tool_input_gets_one_corrective_retry(fake: FakeAnthropic) -> None:
    fake.tool_call("record_chat_reply", {"reply": "Try again", "confidence": 7})
    fake.tool_call("record_chat_reply", VALID_CHAT)
    result = await fake.provider().chat_reply(CHAT)

    assert result.output.reply == VALID_CHAT["reply"]
    assert result.output.confidence_tier == "discovery"
    first, second = fake.requests
    assert len(second["messages"]) == 3
    assistant, correction = second["messages"][1:]
    assert assistant["role"] == "assistant" and assistant["content"][0]["type"] == "tool_use"
    [tool_result] = correction["content"]
    assert tool_result["type"] == "tool_result" and tool_result["is_error"] is True
    assert tool_result["tool_use_id"] == assistant["content"][0]["id"]
    assert "confidence" in tool_result["content"]
    assert second["system"] == first["system"]
    assert (result.usage.calls, result.usage.input_tokens) == (2, 2400)


async def test_text_instead_of_a_tool_call_gets_a_corrective_retry(fake: FakeAnthropic) -> None:
    fake.text('{"reply": "broken json')
    fake.tool_call("record_chat_reply", VALID_CHAT)
    result = await fake.provider().chat_reply(CHAT)
    assert result.output.reply == VALID_CHAT["reply"]
    correction = fake.requests[1]["messages"][-1]
    assert correction["role"] == "user" and "did not call the tool record_chat_reply" in correction["content"]


async def test_semantically_invalid_output_is_corrected_too(fake: FakeAnthropic) -> None:
    fake.tool_call("record_intake_classification",
                   {"outcome": "match", "category": "Printing", "flow_id": "flow-made-up", "reason": "r"})
    fake.tool_call("record_intake_classification", {"outcome": "build", "category": "Printing", "reason": "r"})
    result = await fake.provider().classify_intake(INTAKE)
    assert result.output.outcome == "build" and result.output.flow_id is None
    assert "flow-print" in fake.requests[1]["messages"][-1]["content"][0]["content"]


async def test_invalid_output_twice_is_non_retryable(fake: FakeAnthropic) -> None:
    walk = NextWalkNodeInput(context=CTX, problem="VPN fails", category="Network",
                             walked_path=[WalkedStep(node_id="n1", question="Internet ok?", answer="Yes")])
    fake.tool_call("record_walk_step", {"kind": "question", "question": "Which client?", "options": ["One"]})
    fake.tool_call("record_walk_step", {"kind": "question", "question": "", "options": []})
    with pytest.raises(LlmInvalidOutputError) as err:
        await fake.provider().next_walk_node(walk)
    assert not err.value.retryable
    assert len(fake.requests) == 2
    assert err.value.usage is not None and err.value.usage.calls == 2


async def test_outcome_proposal_without_an_active_fix_is_rejected(fake: FakeAnthropic) -> None:
    bad = {**VALID_CHAT, "outcome_proposal": {"outcome": "applied_success", "reason": "said so"}}
    fake.tool_call("record_chat_reply", bad)
    fake.tool_call("record_chat_reply", bad)
    with pytest.raises(LlmInvalidOutputError, match="outcome_proposal"):
        await fake.provider().chat_reply(CHAT)
    fake.tool_call("record_chat_reply", bad)
    active = CHAT.model_copy(update={"active_fix": ProposedFix(title="t", description="d", confidence_pct=60)})
    reply = (await fake.provider().chat_reply(active)).output
    assert reply.outcome_proposal is not None and reply.outcome_proposal.outcome == "applied_success"


async def test_rate_limit_is_retryable_with_retry_after(fake: FakeAnthropic) -> None:
    fake.error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {"retry-after": "7"})
    with pytest.raises(LlmRetryableError) as err:
        await fake.provider().chat_reply(CHAT)
    assert err.value.retry_after_s == 7
    assert "429" in str(err.value)
    assert len(fake.requests) == 1  # the SDK did not retry on its own: Temporal owns retries


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded_error"), (500, "api_error"), (503, "api_error")])
async def test_overload_and_server_errors_are_retryable(fake: FakeAnthropic, status: int, kind: str) -> None:
    fake.error(status, kind, "busy")
    with pytest.raises(LlmRetryableError) as err:
        await fake.provider().chat_reply(CHAT)
    assert err.value.retryable and err.value.retry_after_s is None
    assert len(fake.requests) == 1


async def test_timeout_is_retryable(fake: FakeAnthropic) -> None:
    fake.hang()
    with pytest.raises(LlmRetryableError, match="timed out"):
        await fake.provider().chat_reply(CHAT)


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (401, "authentication_error"),
                                              (404, "not_found_error")])
async def test_client_errors_are_not_retryable(fake: FakeAnthropic, status: int, kind: str) -> None:
    fake.error(status, kind, "messages: field required")
    with pytest.raises(LlmNonRetryableError) as err:
        await fake.provider().chat_reply(CHAT)
    assert not err.value.retryable
    assert str(status) in str(err.value)
    if status == 401:
        assert "ANTHROPIC_API_KEY" in str(err.value)


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "12"}) == 12
    assert retry_after_seconds({"retry-after": "99999"}) == 300  # capped
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds({"retry-after": soon}) or 0) <= 30
    assert retry_after_seconds({"retry-after": "soon-ish"}) is None
    assert retry_after_seconds({}) is None
