"""Configuration refuses the built-in secrets outside dev mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.config import Settings


def test_production_refuses_builtin_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEV_MODE", raising=False)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(dev_mode=False, credentials_key="x" * 44)


def test_production_refuses_short_jwt_secret_and_builtin_credentials_key() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(dev_mode=False, jwt_secret="short")
    with pytest.raises(ValidationError, match="CREDENTIALS_KEY"):
        Settings(dev_mode=False, jwt_secret="s" * 40)


def test_dev_mode_accepts_builtin_secrets_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.internal:7233")
    settings = Settings(dev_mode=True)
    assert settings.temporal_address == "temporal.internal:7233"
