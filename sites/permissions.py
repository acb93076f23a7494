"""Who may call which API action, and what a site steward may see."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from fedgov import roles
from fedgov.roles import RolePermission, has_role

# Roles that see every site's records; a site steward sees only its own site's.
ALL_SITES_ROLES = (roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR)


class ActionRolePermission(RolePermission):
    """``RolePermission`` plus ``action_roles``: a view action's own allowed roles.

    An action named there (e.g. the steward's consent upload) admits exactly those
    roles, read or write; every other action falls back to ``read_roles``/``write_roles``.
    """

    def has_permission(self, request, view) -> bool:
        action_roles = getattr(view, "action_roles", {})
        action = getattr(view, "action", None)
        if action in action_roles:
            return has_role(request.user, *action_roles[action])
        return super().has_permission(request, view)


def steward_site_id(user: User | AnonymousUser) -> int | None:
    steward = getattr(user, "steward", None) if user.is_authenticated else None
    return steward.site_id if steward is not None else None


def scope_to_site(queryset: QuerySet, user: User | AnonymousUser, site_field: str) -> QuerySet:
    """Everything for the DPO, Legal, Auditor and Operator; one site for its steward.

    Any other caller gets nothing: the view's role check has already refused them, this
    is the second lock.
    """
    if has_role(user, *ALL_SITES_ROLES):
        return queryset
    if has_role(user, roles.SITE_STEWARD):
        site_id = steward_site_id(user)
        if site_id is not None:
            return queryset.filter(**{site_field: site_id})
    return queryset.none()
