"""Small validated values that come in from clients: names, descriptions, idempotency keys."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TypeVar

from email_validator import EmailNotValidError, validate_email

from domain.errors import AmountOutOfRange, InvalidInput, InvalidValue

T = TypeVar("T")

NAME_MAX = 100
DESCRIPTION_MAX = 500
IDEMPOTENCY_KEY_MAX = 255
PASSWORD_MIN = 12
PASSWORD_MAX = 256
EMAIL_MAX = 320


def at(field: str, parse: Callable[..., T], *args: object) -> T:
    """Run a parser on one input field, naming that field (a dotted path) in its error."""
    try:
        return parse(*args)
    except (InvalidValue, AmountOutOfRange) as error:
        raise InvalidInput(field, error.message) from error


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def account_name(text: str) -> str:
    """A name trimmed of surrounding white space, 1 to 100 code points, no control characters."""
    name = text.strip()
    if not name:
        raise InvalidValue("A name cannot be empty.")
    if len(name) > NAME_MAX:
        raise InvalidValue(f"A name has at most {NAME_MAX} characters.")
    if _has_control_characters(name):
        raise InvalidValue("A name cannot contain control characters.")
    return name


def description(text: str | None) -> str | None:
    """A trimmed free-text note of at most 500 code points; empty means none."""
    if text is None or not text.strip():
        return None
    note = text.strip()
    if len(note) > DESCRIPTION_MAX:
        raise InvalidValue(f"A description has at most {DESCRIPTION_MAX} characters.")
    if _has_control_characters(note):
        raise InvalidValue("A description cannot contain control characters.")
    return note


def idempotency_key(text: str | None) -> str | None:
    """A client-chosen key of 1 to 255 characters that makes a retried movement safe."""
    if text is None:
        return None
    if not 1 <= len(text) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidValue(f"An idempotency key has 1 to {IDEMPOTENCY_KEY_MAX} characters.")
    if _has_control_characters(text):
        raise InvalidValue("An idempotency key cannot contain control characters.")
    return text


def email(text: str) -> str:
    """An address trimmed and lower-cased, so that one mailbox is one user whatever its case."""
    address = text.strip()
    if len(address) > EMAIL_MAX:
        raise InvalidValue(f"An email address has at most {EMAIL_MAX} characters.")
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValue(f"This is not a valid email address: {error}") from None
    return checked.normalized.lower()


def password(text: str) -> str:
    """A password of 12 to 256 characters, kept exactly as typed."""
    if not PASSWORD_MIN <= len(text) <= PASSWORD_MAX:
        raise InvalidValue(f"A password has {PASSWORD_MIN} to {PASSWORD_MAX} characters.")
    return typed_password(text)


def typed_password(text: str) -> str:
    """Any password as typed, as long as it is text that can be hashed: JSON may carry half
    of a surrogate pair, which no keyboard types and UTF-8 cannot encode."""
    if any(unicodedata.category(char) == "Cs" for char in text):
        raise InvalidValue("A password cannot contain unpaired surrogate code points.")
    return text
