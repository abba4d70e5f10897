"""The administrators' check of the whole ledger."""

from __future__ import annotations

from domain.errors import Forbidden
from domain.model import Actor, Role
from domain.ports import AuditReport, UnitOfWorkFactory


class AuditService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def audit(self, *, actor: Actor) -> AuditReport:
        """Customer balances against their entries, none below zero, every transaction
        summing to zero, and in each currency the funding entries offsetting the customers."""
        if actor.role is not Role.ADMIN:
            raise Forbidden()
        async with self._uow(read_only=True) as uow:
            return await uow.transactions.audit()
