"""Field permissions, checked before a resolver runs, so a refused request touches nothing."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from gql.schema.types import Info


class IsAuthenticated(BasePermission):
    message = "Sign in to do this: send Authorization: Bearer <token>."
    error_extensions = {"code": "UNAUTHENTICATED"}

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return await info.context.viewer() is not None


SIGNED_IN: list[type[BasePermission]] = [IsAuthenticated]
