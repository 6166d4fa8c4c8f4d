"""Password hashing, random tokens, signed session cookies and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

# Tests hash hundreds of passwords; they opt into cheap parameters. Never set this in production.
_FAST = os.environ.get("RS_INSECURE_FAST_PASSWORD_HASH") == "1"
_hasher = (
    PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1) if _FAST else PasswordHasher()
)
# A valid hash of a random password: verifying against it makes unknown-email logins cost the
# same time as real ones, so response timing does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """A readable reason why a password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    return None


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Tokens are stored only as their SHA-256: a database leak does not leak sessions."""
    return hashlib.sha256(token.encode()).hexdigest()


class CookieSigner:
    """Signs the session token placed in the cookie, so tampered cookies are rejected early."""

    def __init__(self, secret_key: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="rs-session")
        self._max_age_s = max_age_s

    def sign(self, token: str) -> str:
        return self._serializer.dumps(token)

    def unsign(self, value: str) -> str | None:
        try:
            token = self._serializer.loads(value, max_age=self._max_age_s)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None


def csrf_token(secret_key: str, seed: str, session_token: str | None) -> str:
    """Signed double-submit token, bound to the browser's seed cookie and to its login session."""
    message = f"{seed}|{session_token or ''}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def csrf_valid(secret_key: str, seed: str | None, session_token: str | None, given: str) -> bool:
    if not seed or not given:
        return False
    return hmac.compare_digest(csrf_token(secret_key, seed, session_token), given)
