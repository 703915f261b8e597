"""Process configuration, read from the environment (and `.env`) by pydantic-settings."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_SECRET_LENGTH = 32
SECRETS_FILE = "secrets.env"  # where `rflow dev` keeps the secrets it generated, inside the data dir
HOW_TO_GENERATE = {
    "JWT_SECRET": "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
    "CREDENTIALS_KEY": "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
    "BILLING_SECRET": "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
}


def _missing(name: str) -> str:
    return (f"{name} is not set: generate one with `{HOW_TO_GENERATE[name]}` (only `rflow dev` provides its own, "
            f"kept in <data dir>/{SECRETS_FILE})")


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value.encode("ascii"), altchars=b"-_", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class Settings(BaseSettings):
    """Every knob the API, worker and CLI read; docs/configuration.md lists them (tests/test_docs.py checks it)."""

    # Validation errors must never echo a secret back (they end up in logs and on terminals).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    dev_mode: bool = Field(
        default=False, description="Development conveniences; set by `rflow dev`. Never supplies a secret."
    )
    bench_routes: bool = Field(
        default=False, description="Mount the persist floor's bare /api/v1/bench routes (always on in dev mode)."
    )
    database_url: str | None = Field(default=None, description="postgresql+asyncpg URL; unset = embedded.")
    data_dir: Path = Field(default=PROJECT_ROOT / ".data", description="Embedded Postgres and Temporal data.")
    api_host: str = Field(default="127.0.0.1", description="Interface `rflow api`/`rflow dev` bind the API to.")
    api_port: int = Field(default=8000, description="Port of the HTTP API.")
    # A database that stops answering must cost a bounded wait and a 503, not a hung request.
    database_connect_timeout_s: float = Field(
        default=5.0, gt=0, description="How long opening a database connection may take."
    )
    database_statement_timeout_s: float = Field(
        default=10.0, gt=0, description="Server-side statement_timeout; the client gives up 2 s after it."
    )
    database_pool_timeout_s: float = Field(
        default=5.0, gt=0, description="How long a request waits for a free pooled connection."
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "resolutionflow"
    temporal_connect_timeout_s: float = 5.0
    workflow_call_timeout_s: float = Field(
        default=15.0, description="How long a command waits to be accepted by a worker before answering 429 (503 "
                                  "when no worker polls)."
    )
    admission_max_in_flight: int = Field(
        default=4, ge=1, le=10_000,
        description="Workflow commands one API process has with the engine at once (until a worker accepts each); "
                    "the rest wait their account's turn (docs/fairness.md: 4 measured best on 2 cores).",
    )
    admission_reserve: int = Field(
        default=2, ge=0, le=10_000,
        description="Slots past ADMISSION_MAX_IN_FLIGHT for accounts with no command in flight, so one "
                    "technician's command does not wait behind another account's burst.",
    )
    admission_account_share: int = Field(
        default=1, ge=1, le=10_000,
        description="Most of those slots one account's commands hold while another account has sent a command in "
                    "the last 5 s (alone, an account may fill them all): what keeps other accounts' steps quick "
                    "beside a burst (docs/fairness.md).",
    )
    admission_max_queued_per_account: int = Field(
        default=500, ge=0, le=100_000,
        description="Commands one account may have waiting for a slot; the next is refused at once with a 429.",
    )
    admission_max_wait_s: float = Field(
        default=10.0, gt=0, le=120, description="How long a command waits for a slot before a 429."
    )
    admission_retry_after_s: int = Field(default=1, ge=1, le=60, description="Retry-After of an admission 429.")

    # Secrets: "" means unset. There is no built-in value, not even for dev mode (`rflow dev` generates its own);
    # repr=False keeps them out of any printed or logged Settings.
    jwt_secret: str = Field(default="", repr=False, description="HMAC key of access tokens (32+ characters).")
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_expire_minutes: int = Field(default=60 * 12, ge=1, le=60 * 24 * 30, description="Access token lifetime.")
    credentials_key: str = Field(
        default="", repr=False, description="Fernet key that encrypts stored PSA credentials."
    )
    billing_secret: str = Field(
        default="", repr=False, description="Shared secret of the billing system's subscription hook; unset = 503."
    )

    login_max_failures_per_email: int = Field(
        default=10, ge=1, description="Failed logins per email within the window before 429."
    )
    login_max_failures_per_address: int = Field(
        default=50, ge=1, description="Failed logins per client address within the window before 429."
    )
    login_throttle_window_s: int = Field(default=15 * 60, ge=1, description="Length of the throttle window.")

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
    worker_max_cached_workflows: int = Field(
        default=250, ge=0,
        description="Workflows a worker keeps in memory between tasks; an evicted one is rebuilt from its history "
                    "on its next task (a parked fix wakes a few times a day). Bounds the worker's memory: "
                    "~120 KB per cached workflow over a ~160 MB base (docs/performance.md).",
    )
    workflow_sandbox: Literal["shared", "strict"] = Field(
        default="shared",
        description="How a worker sandboxes workflow code. `shared`: our workflow modules are imported once and "
                    "shared by every workflow instance (an evicted workflow is rebuilt in half the CPU). "
                    "`strict`: each instance imports them afresh inside its sandbox, so workflow code that reads "
                    "the clock, randomness or the network fails at once; the test suite runs this one.",
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        default=20, ge=1,
        description="Workflow tasks a worker works on at once (the SDK's default is 100). One process runs them on "
                    "one core: when parked work wakes up and replays, more than it can finish within the task "
                    "timeout time out and run again (5,000 parked fixes: 478 timed-out tasks at 100, 868 at 50, "
                    "none at 20; docs/performance.md). The rest wait on the server.",
    )
    workflow_idle_unload_s: int = Field(
        default=3600, ge=1,
        description="An AI session or fix workflow with nothing due ends its run after this long without a "
                    "command (its state is in Postgres; the next command starts a new run); an escalated "
                    "session's run waits this long for its claim. Bounds how many workflows stay open.",
    )

    handoff_assessment_timeout_s: int = Field(
        default=120, ge=1,
        description="How long the AI assessment of a handoff may take, retries included; the handoff never waits "
                    "on it, and an assessment that gives up is recorded as failed.",
    )
    escalation_heartbeat_s: float = Field(
        default=25.0, gt=0, description="Seconds between heartbeat comments on the escalation stream (proxies "
                                        "close idle connections).",
    )
    escalation_listener_liveness_s: float = Field(
        default=10.0, gt=0, description="How often the API's LISTEN connection is checked with a query; a dead "
                                        "one is replaced and the events it missed are read from Postgres.",
    )
    escalation_streams_per_user: int = Field(
        default=10, ge=1, description="Escalation streams one user may hold open in one API process (each browser "
                                      "tab holds one); one more is a 429.",
    )
    # Observability (docs/operations.md, "Observability"). LOG_FORMAT is read from the environment by
    # core/logging.py before the settings load (so their own errors are logged in it); it is declared here to be
    # documented and checked.
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: a line for people; json: one JSON object per line (with request_id)."
    )
    worker_metrics_address: str = Field(
        default="127.0.0.1:9464", description="host:port where the worker serves the Temporal SDK's Prometheus "
                                              "/metrics; empty = off. In a container: 0.0.0.0:9464.",
    )
    otel_exporter_otlp_endpoint: str = Field(
        default="", description="OTLP/HTTP collector base URL (e.g. http://collector:4318): spans of the API and "
                                "the worker go to <url>/v1/traces. Unset = no tracing.",
    )
    otel_service_name: str = Field(
        default="", description="service.name of the spans; default resolutionflow-api / resolutionflow-worker."
    )

    escalation_subscriber_queue: int = Field(
        default=256, ge=1, description="Events buffered per stream subscriber; a subscriber that falls further "
                                       "behind catches up from Postgres instead of slowing publishers.",
    )

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        # Dev mode may construct settings without secrets (the `rflow dev` supervisor itself, `rflow migrate`,
        # tools); the API and the worker still refuse to start without them (`get_settings`).
        problems = self.secret_problems(required=not self.dev_mode)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def secret_problems(self, *, required: bool) -> list[str]:
        """What is wrong with the secrets (never their values); `required` also reports unset ones."""
        problems = []
        if self.jwt_secret and len(self.jwt_secret) < MIN_SECRET_LENGTH:
            problems.append(f"JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        elif required and not self.jwt_secret:
            problems.append(_missing("JWT_SECRET"))
        if self.credentials_key and not _is_fernet_key(self.credentials_key):
            problems.append("CREDENTIALS_KEY must be a Fernet key (urlsafe base64 of 32 bytes)")
        elif required and not self.credentials_key:
            problems.append(_missing("CREDENTIALS_KEY"))
        if self.billing_secret and len(self.billing_secret) < MIN_SECRET_LENGTH:
            problems.append(f"BILLING_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        return problems

    def require_secrets(self) -> Settings:
        """These settings, or a ValueError naming every missing or malformed secret."""
        problems = self.secret_problems(required=True)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ConfigError(ValueError):
    """The environment's settings are invalid; the message names each variable to fix (never its value)."""


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming each bad variable and what it should be, e.g. `JWT_ALGORITHM: Input should be 'HS256', ...`."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        # A field's error is located by its name, which is its variable (no prefix, no aliases); the secrets'
        # model-level checks name their variables in the message already.
        problems.append(f"{str(error['loc'][0]).upper()}: {message}" if error["loc"] else message)
    return "; ".join(problems)


def load_settings(**values: object) -> Settings:
    """Settings from the environment (and `values`), or a ConfigError naming every variable to fix."""
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings of the API and the worker, read once; refuses to run without secrets."""
    return load_settings().require_secrets()
