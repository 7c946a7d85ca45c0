"""Password hashing (argon2id via argon2-cffi); the only importer of ``argon2``."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 12

_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the username is unknown, so a failed login takes as long either way."""
    return _HASHER.hash("modstream-no-such-user")


def hash_password(password: str) -> str:
    """An argon2id hash; raises ``ValueError`` for a password that is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; ``None`` (unknown user) still costs one verification."""
    try:
        matched = _HASHER.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None
