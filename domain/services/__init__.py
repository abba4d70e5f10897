"""The use cases: each one method, one unit of work, domain objects in and out."""

from domain.services.accounts import AccountService
from domain.services.audit import AuditService
from domain.services.holds import HoldCapture, HoldChange, HoldService
from domain.services.movements import Movement, MovementService
from domain.services.sessions import SessionService, StartedSession
from domain.services.users import UserService
from domain.services.watch import EntryWatch, SessionWatch

__all__ = [
    "AccountService",
    "AuditService",
    "EntryWatch",
    "HoldCapture",
    "HoldChange",
    "HoldService",
    "Movement",
    "MovementService",
    "SessionService",
    "SessionWatch",
    "StartedSession",
    "UserService",
]
