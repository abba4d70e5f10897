"""Signed bearer tokens (JWT, HS256): who a request speaks for, in which session.

An access token lives briefly (BANKQL_TOKEN_TTL_SECONDS) and names its session in the `sid`
claim; every request checks that the session is still live (see Context.viewer), so an
ended session's tokens are refused at once. Refresh tokens are opaque, not JWTs: see
domain/services/sessions.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from domain.model import SessionId, UserId

ALGORITHM = "HS256"
BEARER = "bearer"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class SignedIn:
    """Who a valid token speaks for, and until when."""

    user_id: UserId
    expires_at: datetime
    session_id: SessionId


def _key(value: object) -> int | None:
    """A positive row key written as digits, or None."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    return int(value) if len(value) <= 19 and int(value) > 0 else None


@dataclass(frozen=True)
class TokenCodec:
    key: str
    ttl: timedelta
    # How long a refresh token lasts unless traded; kept here beside the access tokens'.
    refresh_ttl: timedelta = timedelta(days=30)

    def issue(
        self, user_id: UserId, session_id: SessionId, *, now: datetime | None = None
    ) -> IssuedToken:
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        expires_at = issued_at + self.ttl
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": issued_at,
            "exp": expires_at,
        }
        return IssuedToken(jwt.encode(claims, self.key, algorithm=ALGORITHM), expires_at)

    def verify(self, token: str) -> SignedIn | None:
        """The signed-in user, or None for any token that is not valid right now."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "sid", "iat", "exp"]},
            )
        except jwt.PyJWTError:
            return None
        user, session = _key(claims["sub"]), _key(claims["sid"])
        if user is None or session is None:
            return None
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        return SignedIn(UserId(user), expires_at, SessionId(session))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == BEARER and token and " " not in token else None
