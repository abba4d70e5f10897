"""Signed bearer tokens (JWT, HS256): who a request speaks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from domain.model import UserId

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


@dataclass(frozen=True)
class TokenCodec:
    key: str
    ttl: timedelta

    def issue(self, user_id: UserId, *, now: datetime | None = None) -> IssuedToken:
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        expires_at = issued_at + self.ttl
        claims = {"sub": str(user_id), "iat": issued_at, "exp": expires_at}
        return IssuedToken(jwt.encode(claims, self.key, algorithm=ALGORITHM), expires_at)

    def verify(self, token: str) -> SignedIn | None:
        """The signed-in user, or None for any token that is not valid right now."""
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[ALGORITHM], options={"require": ["sub", "iat", "exp"]}
            )
        except jwt.PyJWTError:
            return None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.isascii() or not subject.isdigit():
            return None
        return SignedIn(UserId(int(subject)), datetime.fromtimestamp(claims["exp"], UTC))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == BEARER and token and " " not in token else None
