"""All ORM models, imported here so Alembic and the repositories see one metadata."""

from db.models.account import Account, AccountSettings, Subscription
from db.models.llm_usage import LlmUsage
from db.models.user import ROLE_RANK, AccountRole, User

__all__ = ["ROLE_RANK", "Account", "AccountRole", "AccountSettings", "LlmUsage", "Subscription", "User"]
