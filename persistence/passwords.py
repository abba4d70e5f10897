"""Argon2id password hashing, off the event loop; hashes stay inside persistence."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass(frozen=True)
class PasswordHashing:
    """Argon2id with the library's recommended costs unless told otherwise (tests go cheaper)."""

    time_cost: int = 3
    memory_cost_kib: int = 65536
    parallelism: int = 4

    @cached_property
    def _hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.time_cost, memory_cost=self.memory_cost_kib, parallelism=self.parallelism
        )

    @cached_property
    def _decoy(self) -> str:
        # Checked against when an email is unknown, so that both answers take the same time.
        return self._hasher.hash("not the password of anyone")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when the password matches; a missing hash costs as much as a wrong password."""
        return await asyncio.to_thread(self._verify, stored_hash, password)

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._decoy, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False
