"""Password hashing (argon2, off the event loop) and access tokens (JWT)."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import NotAuthenticated

_hasher = PasswordHasher()
# argon2 takes ~0.1 s of CPU and 64 MiB per call: a small pool of its own keeps it off the event loop, bounds
# memory under a login flood, and leaves the default executor (DNS lookups of new DB connections) free.
_HASH_POOL = ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) // 2), thread_name_prefix="argon2")
IAT_LEEWAY_S = 30  # clock skew tolerated between API processes (issue time and expiry)


def hash_password(password: str) -> str:
    """Hash a password for storage (blocking; use `hash_password_async` on the event loop)."""
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    """True when `password` matches the stored hash (a malformed hash never matches); blocking."""
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    # Hashed once per process: verifying against it makes an unknown email cost what a wrong password costs.
    return hash_password(secrets.token_urlsafe(16))


def _verify_or_dummy(password: str, hashed: str | None) -> bool:
    if hashed is None:
        verify_password(password, _dummy_hash())
        return False
    return verify_password(password, hashed)


async def hash_password_async(password: str) -> str:
    """`hash_password` in the hashing pool, so other requests keep being served meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(_HASH_POOL, hash_password, password)


async def verify_password_async(password: str, hashed: str | None) -> bool:
    """`verify_password` in the hashing pool; `hashed=None` (no such user) costs the same and is False."""
    return await asyncio.get_running_loop().run_in_executor(_HASH_POOL, _verify_or_dummy, password, hashed)


def _require_secret(secret: str) -> None:
    if not secret:
        raise RuntimeError("JWT_SECRET is not set; the API cannot issue or check tokens without it")


def create_access_token(user_id: uuid.UUID, *, secret: str, algorithm: str, expire_minutes: int) -> str:
    """A signed bearer token naming the user, with its issue time and expiry."""
    _require_secret(secret)
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=expire_minutes)}
    return jwt.encode(claims, secret, algorithm=algorithm)


def decode_access_token(token: str, *, secret: str, algorithm: str, lifetime_minutes: int) -> uuid.UUID:
    """The user id inside a valid token; `NotAuthenticated` for garbled, expired or over-long ones."""
    _require_secret(secret)
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm], leeway=IAT_LEEWAY_S,
                            options={"require": ["sub", "iat", "exp"]})
        issued, expires = int(claims["iat"]), int(claims["exp"])
        # A token must not outlive the configured lifetime, whatever expiry it was signed with, nor come from
        # the future (a bounded skew between API processes is tolerated).
        if issued > time.time() + IAT_LEEWAY_S or expires - issued > lifetime_minutes * 60:
            raise NotAuthenticated("Invalid token")
        return uuid.UUID(claims["sub"])
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated("Token expired; log in again") from exc
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        raise NotAuthenticated("Invalid token") from exc
