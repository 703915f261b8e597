"""Process configuration, read from the environment (and `.env`) by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me"
DEV_CREDENTIALS_KEY = "ZGV2LWluc2VjdXJlLWNyZWRlbnRpYWxzLWtleS0zMmI="  # base64 of 32 dev bytes


class Settings(BaseSettings):
    """Every knob the API, worker and CLI read; see the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    dev_mode: bool = Field(default=False, description="Allows built-in secrets; set by `rflow dev`.")
    database_url: str | None = Field(default=None, description="postgresql+asyncpg URL; unset = embedded.")
    data_dir: Path = Field(default=PROJECT_ROOT / ".data", description="Embedded Postgres and Temporal data.")
    api_host: str = Field(default="127.0.0.1", description="Interface `rflow api`/`rflow dev` bind the API to.")
    api_port: int = Field(default=8000, description="Port of the HTTP API.")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "resolutionflow"
    temporal_connect_timeout_s: float = 5.0
    workflow_call_timeout_s: float = Field(
        default=15.0, description="How long an API call waits on a workflow before answering 503."
    )

    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithm: str = "HS256"
    jwt_expire_minutes: int = 60 * 12

    credentials_key: str = Field(
        default=DEV_CREDENTIALS_KEY, description="Fernet key that encrypts stored PSA credentials."
    )

    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None

    llm_provider: Literal["auto", "anthropic", "offline"] = Field(
        default="auto", description="auto = anthropic when ANTHROPIC_API_KEY is set, else the offline provider."
    )
    anthropic_timeout_s: float = Field(default=45.0, description="Per-request timeout of the Anthropic client.")
    anthropic_max_retries: int = Field(default=0, description="SDK-level retries; 0 because Temporal retries.")
    llm_model_classify_intake: str = "claude-haiku-4-5"
    llm_model_next_walk_node: str = "claude-haiku-4-5"
    llm_model_chat_discovery: str = "claude-haiku-4-5"
    llm_model_chat_exploring: str = "claude-sonnet-4-6"
    llm_model_chat_guided: str = "claude-sonnet-4-6"
    llm_model_resolution_note: str = "claude-sonnet-4-6"
    llm_model_escalation_package: str = "claude-sonnet-4-6"
    llm_model_handoff_assessment: str = "claude-sonnet-4-6"

    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_sender: str = "resolutionflow@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None

    l1_idle_timeout_s: int = Field(default=24 * 3600, description="Walk sessions idle this long are abandoned.")
    l1_max_depth: int = Field(default=12, description="AI-built walks stop asking after this many steps.")

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if not self.dev_mode:
            if self.jwt_secret == DEV_JWT_SECRET:
                raise ValueError("JWT_SECRET must be set (the built-in secret is only allowed in dev mode)")
            if len(self.jwt_secret) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters")
            if self.credentials_key == DEV_CREDENTIALS_KEY:
                raise ValueError("CREDENTIALS_KEY must be set (the built-in key is only allowed in dev mode)")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
