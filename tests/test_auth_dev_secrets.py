"""`rflow dev`'s secrets: random per data dir, kept private in `<data dir>/secrets.env`, stable across runs."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.fernet import Fernet

from cli.dev_secrets import load_or_create
from core.config import Settings

NAMES = {"JWT_SECRET", "CREDENTIALS_KEY", "BILLING_SECRET"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_per_data_dir_and_kept_private(tmp_path: Path) -> None:
    first, notes = load_or_create(tmp_path / "a")
    path = tmp_path / "a" / "secrets.env"
    assert set(first) == NAMES and _mode(path) == 0o600
    assert notes == [f"generated JWT_SECRET, CREDENTIALS_KEY, BILLING_SECRET into {path}"]
    assert not any(value in note for note in notes for value in first.values())  # notes never show a value
    Fernet(first["CREDENTIALS_KEY"].encode())  # a usable key
    settings = Settings(dev_mode=False, jwt_secret=first["JWT_SECRET"], credentials_key=first["CREDENTIALS_KEY"],
                        billing_secret=first["BILLING_SECRET"])
    assert settings.secret_problems(required=True) == []

    again, notes = load_or_create(tmp_path / "a")
    assert again == first and notes == []
    other, _ = load_or_create(tmp_path / "b")
    assert not set(other.values()) & set(first.values())


def test_a_missing_secret_is_added_and_a_readable_file_is_made_private(tmp_path: Path) -> None:
    values, _ = load_or_create(tmp_path)
    path = tmp_path / "secrets.env"
    # A data dir from before billing existed: the other secrets stay, the missing one is generated.
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items() if k != "BILLING_SECRET"))
    path.chmod(0o644)
    updated, notes = load_or_create(tmp_path)
    assert {k: updated[k] for k in ("JWT_SECRET", "CREDENTIALS_KEY")} == {
        k: values[k] for k in ("JWT_SECRET", "CREDENTIALS_KEY")}
    assert updated["BILLING_SECRET"] != values["BILLING_SECRET"]
    assert notes == [f"generated BILLING_SECRET into {path}"] and _mode(path) == 0o600
    path.chmod(0o644)
    assert load_or_create(tmp_path) == (updated, [f"{path} was readable by others; its mode is now 0600"])
    assert _mode(path) == 0o600
