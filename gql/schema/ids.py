"""Opaque global IDs ("Account:42" in base64url) and pagination cursors."""

from __future__ import annotations

import base64
import binascii
import re

from domain.ports import PageRequest
from gql.schema.top_level_errors import BadUserInput

MAX_KEY = 2**63 - 1
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_KEY = re.compile(r"[1-9][0-9]{0,18}")


class MalformedId(ValueError):
    pass


def _encode(prefix: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{key}".encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MalformedId(token) from None
    prefix, _, key = raw.partition(":")
    # Only the exact text the server issues is accepted, so one object has one ID.
    if not _KEY.fullmatch(key) or int(key) > MAX_KEY or _encode(prefix, int(key)) != token:
        raise MalformedId(token)
    return prefix, int(key)


def to_global_id(type_name: str, key: int) -> str:
    return _encode(type_name, key)


def from_global_id(global_id: str) -> tuple[str, int]:
    """The type name and key of a global ID; MalformedId when the server did not issue it."""
    return _decode(global_id)


def key_of(global_id: str, type_name: str) -> int:
    """The key of a global ID of one type; MalformedId for any other ID."""
    found_type, key = _decode(global_id)
    if found_type != type_name:
        raise MalformedId(global_id)
    return key


def argument_key(global_id: str, type_name: str, argument: str = "id") -> int:
    """The key of an ID argument; a BAD_USER_INPUT error for an ID of another type or none."""
    try:
        return key_of(global_id, type_name)
    except MalformedId:
        raise BadUserInput(f"`{argument}` is not a {type_name} ID issued by this server.") from None


def to_cursor(key: int) -> str:
    return _encode("cursor", key)


def page_request(first: int | None, after: str | None) -> PageRequest:
    """Validated Relay arguments; a bad size or an unknown cursor is a BAD_USER_INPUT error."""
    size = DEFAULT_PAGE_SIZE if first is None else first
    if not 0 <= size <= MAX_PAGE_SIZE:
        raise BadUserInput(f"`first` must be between 0 and {MAX_PAGE_SIZE}.")
    if after is None:
        return PageRequest(size)
    try:
        prefix, key = _decode(after)
    except MalformedId:
        prefix = ""
    if prefix != "cursor":
        raise BadUserInput("`after` is not a cursor that this server issued.")
    return PageRequest(size, key)
