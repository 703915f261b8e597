"""Postgres writes on behalf of workflows: the `persistence.*` activities, one class per workflow."""

from activities.persistence.ai_sessions import SessionPersistence
from activities.persistence.fixes import FixPersistence
from activities.persistence.handoffs import HandoffPersistence
from activities.persistence.persist_floor import PersistFloorPersistence
from activities.persistence.walks import WalkPersistence
from activities.persistence.writebacks import WritebackPersistence

__all__ = [
    "FixPersistence",
    "HandoffPersistence",
    "PersistFloorPersistence",
    "SessionPersistence",
    "WalkPersistence",
    "WritebackPersistence",
]
