"""Small validated values that come in from clients: names, descriptions, idempotency keys."""

from __future__ import annotations

import unicodedata

from domain.errors import InvalidValue

NAME_MAX = 100
DESCRIPTION_MAX = 500
IDEMPOTENCY_KEY_MAX = 255


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
