"""The offline provider: deterministic, honest about being rule-based, valid output for every operation."""

from __future__ import annotations

import pytest

from core.config import Settings
from integrations.llm.anthropic_provider import AnthropicProvider
from integrations.llm.factory import build_llm_provider
from integrations.llm.fixes import summary_line
from integrations.llm.offline_library import LIBRARY
from integrations.llm.offline_provider import OfflineProvider
from workflows.contracts.llm import (
    CategoryInfo,
    ChatReply,
    ChatReplyInput,
    ChatTurn,
    ClassifyIntakeInput,
    FlowSummary,
    HandoffAssessment,
    IntakeClassification,
    LlmCallContext,
    MarkdownDocument,
    NextWalkNodeInput,
    ProposedFix,
    SessionBundle,
    WalkedStep,
    WalkNodeSuggestion,
)

CTX = LlmCallContext(account_id="00000000-0000-0000-0000-000000000001")
CATEGORIES = [CategoryInfo(name="Printing"), CategoryInfo(name="Network"), CategoryInfo(name="Email"),
              CategoryInfo(name="Accounts"), CategoryInfo(name="Hardware"),
              CategoryInfo(name="Payroll software", in_scope=False)]
PROBLEMS = {
    "printing": "The printer in accounting shows offline and jobs are stuck",
    "vpn": "GlobalProtect VPN won't connect from home",
    "dns": "Some websites won't load, DNS_PROBE_FINISHED_NXDOMAIN in Chrome",
    "outlook_m365": "Outlook keeps prompting for the password after the MFA change",
    "account_lockout": "User is locked out of their account again",
    "wifi": "Laptop keeps disconnecting from the office wifi",
    "disk_full": "Low disk space warning, C: drive is full",
    "slow_pc": "PC is very slow and freezes when opening Excel",
}
BUNDLE = SessionBundle(
    context=CTX, problem_summary="Outlook keeps prompting for the password",
    transcript=[ChatTurn(role="user", content="Outlook prompts for a password since the MFA change")],
    fixes=[{"title": "Clear cached Office credentials", "status": "applied_failed"},
           {"title": "Create a new Outlook profile", "status": "applied_pending"}],
    engineer_notes="Web sign-in at outlook.office.com works.",
)
provider = OfflineProvider()


def test_library_covers_the_common_msp_problems() -> None:
    assert {p.key for p in LIBRARY} == set(PROBLEMS)


def test_factory_picks_offline_without_a_key_and_anthropic_with_one() -> None:
    assert isinstance(build_llm_provider(Settings(dev_mode=True, anthropic_api_key=None)), OfflineProvider)
    assert isinstance(build_llm_provider(Settings(dev_mode=True, anthropic_api_key="sk-x")), AnthropicProvider)
    forced = Settings(dev_mode=True, anthropic_api_key="sk-x", llm_provider="offline")
    assert isinstance(build_llm_provider(forced), OfflineProvider)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        build_llm_provider(Settings(dev_mode=True, anthropic_api_key=None, llm_provider="anthropic"))


async def test_every_operation_returns_a_valid_model_saying_offline() -> None:
    results = [
        (await provider.classify_intake(ClassifyIntakeInput(context=CTX, problem="VPN drops",
                                                            categories=CATEGORIES))).output,
        (await provider.next_walk_node(NextWalkNodeInput(context=CTX, problem="VPN drops", category="Network"))).output,
        (await provider.chat_reply(ChatReplyInput(context=CTX, transcript=[ChatTurn(role="user",
                                                                                    content="VPN drops")]))).output,
        (await provider.resolution_note(BUNDLE)).output,
        (await provider.escalation_package(BUNDLE)).output,
        (await provider.handoff_assessment(BUNDLE)).output,
    ]
    types = [IntakeClassification, WalkNodeSuggestion, ChatReply, MarkdownDocument, MarkdownDocument,
             HandoffAssessment]
    for result, kind in zip(results, types, strict=True):
        assert isinstance(result, kind)
        kind.model_validate(result.model_dump())  # round-trips through its own validation
        assert result.provider == "offline"
    intake, _, chat, note, package, assessment = results
    assert "Offline" in intake.reason and "Offline" in chat.reply  # type: ignore[attr-defined]
    assert "offline rule-based provider" in note.markdown  # type: ignore[attr-defined]
    assert "offline rule-based provider" in package.markdown  # type: ignore[attr-defined]
    assert "offline" in assessment.summary_prose  # type: ignore[attr-defined]


async def test_same_input_same_output() -> None:
    walk = NextWalkNodeInput(context=CTX, problem=PROBLEMS["printing"], category="Printing",
                             walked_path=[WalkedStep(node_id="a", question="Can other people print to this printer?",
                                                     answer="Yes, only this user is affected")])
    chat = ChatReplyInput(context=CTX, transcript=[ChatTurn(role="user", content=PROBLEMS["wifi"])])
    for call in (lambda: provider.next_walk_node(walk), lambda: provider.chat_reply(chat),
                 lambda: provider.escalation_package(BUNDLE), lambda: provider.handoff_assessment(BUNDLE)):
        first, second = await call(), await call()
        assert first.output == second.output
        assert (first.usage.provider, first.usage.model, first.usage.input_tokens) == ("offline",
                                                                                        "offline-rules-v1", 0)


@pytest.mark.parametrize(("key", "category"), [("printing", "Printing"), ("vpn", "Network"), ("dns", "Network"),
                                               ("outlook_m365", "Email"), ("account_lockout", "Accounts"),
                                               ("wifi", "Network"), ("disk_full", "Hardware"),
                                               ("slow_pc", "Hardware")])
async def test_intake_builds_in_the_right_category(key: str, category: str) -> None:
    result = (await provider.classify_intake(ClassifyIntakeInput(context=CTX, problem=PROBLEMS[key],
                                                                 categories=CATEGORIES))).output
    assert (result.outcome, result.category, result.flow_id) == ("build", category, None)


async def test_intake_matches_a_flow_and_refuses_out_of_scope() -> None:
    flows = [FlowSummary(id="f-vpn", title="VPN will not connect", category="Network", keywords=["vpn"])]
    matched = (await provider.classify_intake(ClassifyIntakeInput(context=CTX, problem=PROBLEMS["vpn"],
                                                                  categories=CATEGORIES, flows=flows))).output
    assert (matched.outcome, matched.flow_id, matched.category) == ("match", "f-vpn", "Network")
    refused = (await provider.classify_intake(ClassifyIntakeInput(
        context=CTX, problem="The payroll software shows the wrong overtime rate", categories=CATEGORIES))).output
    assert (refused.outcome, refused.category) == ("out_of_scope", "Payroll software")


async def test_walk_asks_each_question_then_resolves() -> None:
    path: list[WalkedStep] = []
    nodes = []
    for _ in range(10):
        node = (await provider.next_walk_node(NextWalkNodeInput(context=CTX, problem=PROBLEMS["printing"],
                                                                category="Printing", walked_path=path))).output
        nodes.append(node)
        if node.kind == "resolution":
            break
        assert node.question and len(node.options) >= 2
        answer = {"Does a Windows test page print (Printer properties > Print Test Page)?": "No"}.get(
            node.question, node.options[0])
        path.append(WalkedStep(node_id=f"n{len(path)}", question=node.question, answer=answer))
    assert [n.kind for n in nodes] == ["question", "question", "question", "resolution"]
    assert "Print Spooler" in (nodes[-1].resolution or "") and not nodes[-1].escalate


async def test_walk_ends_early_on_a_decisive_answer_and_on_the_depth_cap() -> None:
    step = WalkedStep(node_id="n1", question="Is it just this PC or everyone at the site?",
                      answer="Everyone at the site")
    early = (await provider.next_walk_node(NextWalkNodeInput(context=CTX, problem=PROBLEMS["dns"], category="Network",
                                                             walked_path=[step]))).output
    assert early.kind == "resolution" and early.escalate and "DNS server" in (early.resolution or "")
    capped = (await provider.next_walk_node(NextWalkNodeInput(context=CTX, problem=PROBLEMS["vpn"], category="Network",
                                                              force_conclusion=True))).output
    assert capped.kind == "resolution"
    unknown = (await provider.next_walk_node(NextWalkNodeInput(context=CTX, problem="The coffee machine beeps",
                                                               category="General", force_conclusion=True))).output
    assert unknown.kind == "resolution" and unknown.escalate


async def test_chat_discovers_then_proposes_a_fix_then_reads_the_outcome() -> None:
    transcript = [ChatTurn(role="user", content=PROBLEMS["outlook_m365"])]
    tiers = []
    reply = None
    for _ in range(4):
        reply = (await provider.chat_reply(ChatReplyInput(context=CTX, transcript=transcript))).output
        tiers.append(reply.confidence_tier)
        transcript += [ChatTurn(role="assistant", content=reply.reply), ChatTurn(role="user", content="Yes")]
    assert reply is not None and reply.proposed_fix is not None
    assert tiers == ["discovery", "exploring", "exploring", "exploring"]
    fix = ProposedFix(title=reply.proposed_fix.title, description="d", confidence_pct=65)
    for said, outcome in [("That worked, thanks", "applied_success"), ("Didn't work, same prompt", "applied_failed"),
                          ("Partly better but Teams still asks", "applied_partial"),
                          ("Still waiting on the user to reboot", "applied_pending")]:
        turn = [*transcript, ChatTurn(role="user", content=said)]
        result = (await provider.chat_reply(ChatReplyInput(context=CTX, transcript=turn, active_fix=fix))).output
        assert result.outcome_proposal is not None and result.outcome_proposal.outcome == outcome, said


async def test_escalation_package_leads_with_the_pending_fix() -> None:
    markdown = (await provider.escalation_package(BUNDLE)).output.markdown
    hypothesis = markdown.split("## Current hypothesis")[1].split("##")[0]
    assert "Create a new Outlook profile" in hypothesis and "awaiting verification" in hypothesis
    assert "Clear cached Office credentials: did not work" in markdown


def fix(title: str, status: str, **fields: str | int | None) -> dict[str, str | int | None]:
    """A fix dict with every key a session bundle carries."""
    return {"title": title, "description": f"{title} (how).", "status": status, "confidence_pct": 60,
            "applied_at": None, "verified_at": None, "failure_reason": None, "partial_notes": None,
            "pending_reason": None, "superseded": "no", **fields}


FAILED = fix("Reset credential cache", "applied_failed", failure_reason="user reports no change",
             applied_at="2025-03-04T10:00:00+00:00")
PARTIAL = fix("Re-register the device in Entra ID", "applied_partial",
              partial_notes="Outlook is fine, Teams still asks", failure_reason="first attempt timed out")
PENDING = fix("Force a password sync", "applied_pending", pending_reason="AD replication",
              applied_at="2025-03-04T11:00:00+00:00")
DISMISSED = fix("Rebuild the Windows profile", "dismissed", superseded="yes")
FULL = SessionBundle(context=CTX, problem_summary="Outlook keeps prompting for the password",
                     fixes=[FAILED, PARTIAL, PENDING, DISMISSED], engineer_notes="Web sign-in works.")


def section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}")[1].split("\n## ")[0].split("\n---")[0]


def test_fix_line_has_title_label_raw_status_and_notes() -> None:
    assert summary_line(FAILED) == "Reset credential cache: did not work (applied_failed) — user reports no change"
    assert summary_line(PARTIAL) == ("Re-register the device in Entra ID: partly worked (applied_partial) — Outlook is "
                                     "fine, Teams still asks; failure reason: first attempt timed out")
    assert summary_line(PENDING) == ("Force a password sync: applied, awaiting verification (applied_pending) — "
                                     "waiting on AD replication")
    assert summary_line(DISMISSED) == "Rebuild the Windows profile [superseded]: dismissed (dismissed)"
    assert summary_line({"title": "Old shape", "outcome": "applied_success"}) == "Old shape: worked (applied_success)"


async def test_documents_carry_every_fix_with_its_status_and_notes() -> None:
    note = (await provider.resolution_note(FULL)).output.markdown
    package = (await provider.escalation_package(FULL)).output.markdown
    handoff = (await provider.handoff_assessment(FULL)).output
    handoff_text = " ".join([handoff.summary_prose, *handoff.what_we_know])
    for text in (note, package, handoff_text):
        for item in FULL.fixes:
            assert f"{item['title']}" in text and f"({item['status']})" in text, (item, text)
        for words in ("user reports no change", "Outlook is fine, Teams still asks", "first attempt timed out",
                      "waiting on AD replication"):
            assert words in text, (words, text)
        assert "offline" in text.lower()
    assert "offline rule-based provider" in note and "offline rule-based provider" in package
    tried = section(package, "What we've tried")
    assert "- Reset credential cache: did not work (applied_failed) — user reports no change" in tried


async def test_resolution_note_frames_a_pending_fix_as_provisional() -> None:
    resolution = section((await provider.resolution_note(FULL)).output.markdown, "Resolution")
    assert "Force a password sync has been applied, awaiting verification: waiting on AD replication" in resolution
    assert "provisional" in resolution
    worked = FULL.model_copy(update={"fixes": [fix("Clear creds", "applied_success"), PENDING]})
    resolution = section((await provider.resolution_note(worked)).output.markdown, "Resolution")
    assert "Clear creds: Clear creds (how)." in resolution and "awaiting verification" in resolution


async def test_escalation_leads_with_pending_then_partial_never_a_superseded_one() -> None:
    hypothesis = section((await provider.escalation_package(FULL)).output.markdown, "Current hypothesis")
    assert hypothesis.strip().startswith("Force a password sync was applied and is awaiting verification")
    assert "waiting on AD replication" in hypothesis and "leading hypothesis" in hypothesis
    no_pending = FULL.model_copy(update={"fixes": [FAILED, PARTIAL, {**PENDING, "superseded": "yes"}]})
    hypothesis = section((await provider.escalation_package(no_pending)).output.markdown, "Current hypothesis")
    assert hypothesis.strip().startswith("Re-register the device in Entra ID partly worked (applied_partial)")
    assert "Outlook is fine, Teams still asks" in hypothesis and "Force a password sync" not in hypothesis
    handoff = (await provider.handoff_assessment(no_pending)).output
    assert "Re-register the device in Entra ID partly worked" in handoff.summary_prose
    only_failed = FULL.model_copy(update={"fixes": [FAILED]})
    hypothesis = section((await provider.escalation_package(only_failed)).output.markdown, "Current hypothesis")
    assert "leading hypothesis" not in hypothesis and "Most common cause" in hypothesis
