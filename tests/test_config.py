"""Configuration: no secret is built in, missing or malformed secrets fail clearly, and none is ever echoed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

import core.config
from core.config import Settings, get_settings

SECRET_VARS = ("JWT_SECRET", "CREDENTIALS_KEY", "BILLING_SECRET", "DEV_MODE")


@pytest.fixture(autouse=True)
def _no_secrets_in_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    get_settings.cache_clear()


def test_no_secret_is_a_constant_in_the_source() -> None:
    assert not [name for name in dir(core.config) if name.startswith("DEV_")]  # DEV_JWT_SECRET, DEV_CREDENTIALS_KEY
    source = Path(core.config.__file__).read_text()
    assert "dev-insecure" not in source and "ZGV2LWluc2VjdXJl" not in source
    relaxed = Settings(dev_mode=True)
    assert (relaxed.jwt_secret, relaxed.credentials_key, relaxed.billing_secret) == ("", "", "")


def test_production_without_secrets_fails_naming_each_and_how_to_make_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(dev_mode=False)
    message = str(caught.value)
    assert "JWT_SECRET is not set" in message and "CREDENTIALS_KEY is not set" in message
    assert "secrets.token_urlsafe" in message and "Fernet.generate_key" in message


def test_api_and_worker_settings_refuse_to_run_without_secrets_even_in_dev_mode(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEV_MODE", "true")
    with pytest.raises(ValueError, match="JWT_SECRET is not set"):
        get_settings()
    monkeypatch.setenv("JWT_SECRET", secrets.token_urlsafe(48))
    monkeypatch.setenv("CREDENTIALS_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    assert get_settings().jwt_secret == os.environ["JWT_SECRET"]


def test_malformed_secrets_are_refused_without_echoing_them() -> None:
    short, bad_key = "short-secret-value", "not-a-fernet-key-value"
    for kwargs, expected in (
        ({"jwt_secret": short, "credentials_key": Fernet.generate_key().decode()}, "at least 32"),
        ({"jwt_secret": "s" * 40, "credentials_key": bad_key}, "Fernet key"),
        ({"jwt_secret": "s" * 40, "credentials_key": Fernet.generate_key().decode(), "billing_secret": short},
         "BILLING_SECRET must be at least 32"),
    ):
        for dev_mode in (False, True):
            with pytest.raises(ValidationError, match=expected) as caught:
                Settings.model_validate({"dev_mode": dev_mode, **kwargs})
            assert short not in str(caught.value) and bad_key not in str(caught.value)


def test_settings_never_show_their_secrets() -> None:
    values = {"jwt_secret": secrets.token_urlsafe(48), "credentials_key": Fernet.generate_key().decode(),
              "billing_secret": secrets.token_urlsafe(48)}
    settings = Settings.model_validate({"dev_mode": False, **values})
    for value in values.values():
        assert value not in repr(settings) and value not in str(settings)


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.internal:7233")
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_EMAIL", "3")
    settings = Settings(dev_mode=True)
    assert settings.temporal_address == "temporal.internal:7233"
    assert settings.login_max_failures_per_email == 3
    assert (settings.login_max_failures_per_address, settings.login_throttle_window_s) == (50, 900)


def test_a_bad_value_is_refused_naming_its_variable_not_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("API_PORT", "eighty")
    with pytest.raises(ValueError) as caught:
        get_settings()
    message = str(caught.value)
    assert "JWT_ALGORITHM: Input should be 'HS256', 'HS384' or 'HS512'" in message
    assert "API_PORT: Input should be a valid integer" in message
    assert "RS256" not in message and "eighty" not in message


@pytest.mark.parametrize("command", ["api", "worker"])
def test_rflow_names_the_variable_of_a_bad_value(command: str) -> None:
    # The message as a person meets it: `JWT_ALGORITHM=RS256 rflow api` said only "Input should be 'HS256', ...".
    env = {**os.environ, "JWT_ALGORITHM": "RS256", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    # `-m` from the project root: the code of this tree, whichever tree the installed `rflow` script points at.
    result = subprocess.run([sys.executable, "-m", "cli.main", command], env=env, cwd=core.config.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "JWT_ALGORITHM: Input should be 'HS256', 'HS384' or 'HS512'" in result.stderr, result.stderr
