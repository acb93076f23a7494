"""Roles are Django groups; these are their names and the DRF permissions built on them."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from rest_framework.permissions import SAFE_METHODS, BasePermission

DPO = "DPO"
LEGAL = "Legal"
AUDITOR = "Auditor"
OPERATOR = "Operator"
SITE_STEWARD = "Site steward"
SERVICE = "Service"
ALL_ROLES = (DPO, LEGAL, AUDITOR, OPERATOR, SITE_STEWARD, SERVICE)


def roles_of(user: User | AnonymousUser) -> set[str]:
    if not user or not user.is_authenticated:
        return set()
    cached = getattr(user, "_fedgov_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached.add(DPO)
        user._fedgov_roles = cached  # type: ignore[attr-defined]  # a cache for this request
    return cached


def has_role(user: User | AnonymousUser, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


class RolePermission(BasePermission):
    """Allow reads to ``read_roles`` and writes to ``write_roles``.

    Views declare both as class attributes, so the role × endpoint matrix is readable
    from the view code itself.
    """

    def has_permission(self, request, view) -> bool:
        read_roles = getattr(view, "read_roles", ())
        write_roles = getattr(view, "write_roles", ())
        if request.method in SAFE_METHODS:
            return has_role(request.user, *read_roles, *write_roles)
        return has_role(request.user, *write_roles)


def actor_label(user: User | AnonymousUser | None) -> str:
    """The text copy of an actor kept beside every foreign key to a user."""
    if user is None or not user.is_authenticated:
        return "system"
    return user.get_username()
