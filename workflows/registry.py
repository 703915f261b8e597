"""Every workflow class the worker registers."""

from __future__ import annotations

from workflows.echo import EchoWorkflow
from workflows.fix_verification import FixVerificationWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.l1_intake import L1IntakeWorkflow
from workflows.persist_floor import PersistFloorWorkflow
from workflows.session_document import SessionDocumentWorkflow
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow
from workflows.walk_session import WalkSessionWorkflow

ALL_WORKFLOWS: tuple[type, ...] = (EchoWorkflow, WalkSessionWorkflow, L1IntakeWorkflow, TroubleshootingSessionWorkflow,
                                   FixVerificationWorkflow, SessionDocumentWorkflow, HandoffWorkflow,
                                   PersistFloorWorkflow)
