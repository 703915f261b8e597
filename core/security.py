"""Password hashing (argon2) and access tokens (JWT)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import NotAuthenticated

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Hash a password for storage."""
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    """True when `password` matches the stored hash (a malformed hash never matches)."""
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def create_access_token(user_id: uuid.UUID, *, secret: str, algorithm: str, expire_minutes: int) -> str:
    """A signed bearer token naming the user."""
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=expire_minutes)}
    return jwt.encode(claims, secret, algorithm=algorithm)


def decode_access_token(token: str, *, secret: str, algorithm: str) -> uuid.UUID:
    """The user id inside a valid token; `NotAuthenticated` for garbled or expired ones."""
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm], options={"require": ["sub", "exp"]})
        return uuid.UUID(claims["sub"])
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated("Token expired; log in again") from exc
    except (jwt.PyJWTError, ValueError) as exc:
        raise NotAuthenticated("Invalid token") from exc
