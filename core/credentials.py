"""Encrypts PSA credentials at rest with Fernet; the key comes from CREDENTIALS_KEY, never from the source."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken


class CredentialsUnreadable(Exception):
    """Stored credentials do not decrypt with the configured key (the key changed, or the row was altered)."""


class CredentialCipher:
    """Turns a dict of secrets into an opaque token and back."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("CREDENTIALS_KEY is not set: PSA credentials cannot be stored or read")
        self._fernet = Fernet(key.encode())

    def encrypt(self, secrets: dict[str, str]) -> bytes:
        """The encrypted token of `secrets`."""
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode())

    def decrypt(self, token: bytes) -> dict[str, str]:
        """The secrets in `token` (CredentialsUnreadable when the key does not fit)."""
        try:
            value = json.loads(self._fernet.decrypt(bytes(token)))
        except (InvalidToken, ValueError) as exc:
            raise CredentialsUnreadable("the stored PSA credentials do not decrypt with CREDENTIALS_KEY") from exc
        if not isinstance(value, dict):
            raise CredentialsUnreadable("the stored PSA credentials are not a set of keys")
        return {str(k): str(v) for k, v in value.items()}
