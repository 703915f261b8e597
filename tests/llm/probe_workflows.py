"""Tiny workflows that call `llm.*` activities by name, the way product workflows will."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.llm import (
        LLM_CHAT_REPLY,
        LLM_CLASSIFY_INTAKE,
        LLM_RETRY_POLICY,
        LLM_SCHEDULE_TO_CLOSE,
        LLM_START_TO_CLOSE,
        ChatReply,
        ChatReplyInput,
        ClassifyIntakeInput,
        IntakeClassification,
    )


@workflow.defn
class IntakeProbeWorkflow:
    """Runs llm.classify_intake once."""

    @workflow.run
    async def run(self, data: ClassifyIntakeInput) -> IntakeClassification:
        """Classify and return."""
        return await workflow.execute_activity(
            LLM_CLASSIFY_INTAKE, data, result_type=IntakeClassification, start_to_close_timeout=LLM_START_TO_CLOSE,
            schedule_to_close_timeout=LLM_SCHEDULE_TO_CLOSE, retry_policy=LLM_RETRY_POLICY,
        )


@workflow.defn
class ChatProbeWorkflow:
    """Runs llm.chat_reply once."""

    @workflow.run
    async def run(self, data: ChatReplyInput) -> ChatReply:
        """Reply and return."""
        return await workflow.execute_activity(
            LLM_CHAT_REPLY, data, result_type=ChatReply, start_to_close_timeout=LLM_START_TO_CLOSE,
            schedule_to_close_timeout=LLM_SCHEDULE_TO_CLOSE, retry_policy=LLM_RETRY_POLICY,
        )
