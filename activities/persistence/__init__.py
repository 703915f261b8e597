"""Postgres writes on behalf of workflows: the `persistence.*` activities, one class per workflow."""

from activities.persistence.walks import WalkPersistence

__all__ = ["WalkPersistence"]
