"""All ORM models, imported here so Alembic and the repositories see one metadata."""

from db.models.account import Account, AccountSettings, Subscription
from db.models.ai_session import AiSession, AiSessionMessage, SessionDocument, SuggestedFix
from db.models.applied_command import AppliedCommand
from db.models.handoff import EscalationEvent, SessionHandoff
from db.models.idempotency import IdempotencyRecord
from db.models.l1 import FlowProposal, InternalTicket, L1Category, L1Flow, L1WalkNote, L1WalkSession
from db.models.llm_usage import LlmUsage
from db.models.login_throttle import LoginThrottle
from db.models.notification import Notification
from db.models.persist_floor import PersistFloorRow
from db.models.psa import PsaConnection, PsaWriteback
from db.models.user import ROLE_RANK, AccountRole, User

__all__ = [
    "ROLE_RANK",
    "Account",
    "AccountRole",
    "AccountSettings",
    "AiSession",
    "AiSessionMessage",
    "AppliedCommand",
    "EscalationEvent",
    "FlowProposal",
    "IdempotencyRecord",
    "InternalTicket",
    "L1Category",
    "L1Flow",
    "L1WalkNote",
    "L1WalkSession",
    "LlmUsage",
    "LoginThrottle",
    "Notification",
    "PersistFloorRow",
    "PsaConnection",
    "PsaWriteback",
    "SessionDocument",
    "SessionHandoff",
    "Subscription",
    "SuggestedFix",
    "User",
]
