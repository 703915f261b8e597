"""SessionDocumentWorkflow: writes a resolution-note or escalation-package preview of an AI session.

A short workflow (like intake classification), so the API never calls the model itself. Its id
names the session, kind and state version, so concurrent previews of an unchanged session share one
run and one model call; the activity also serves the Postgres cache.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.ai_session import SESSION_DOCUMENT, DocumentRequest, DocumentResult


@workflow.defn
class SessionDocumentWorkflow:
    """One preview, from the cache or the model."""

    @workflow.run
    async def run(self, inp: DocumentRequest) -> DocumentResult:
        """Read the session's bundle by id and return the cached or freshly written document."""
        return await SESSION_DOCUMENT(inp, summary=inp.kind.replace("_", " "))
