"""Who may call the staff endpoints, and how many points they may move at once."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission


class HasLoyaltyPerms(BasePermission):
    """Staff (``is_staff``) with every model permission in the view's ``required_perms``
    (e.g. ``("loyalty.view_member",)``); a view may ask more for POST with ``write_perms``."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        perms = tuple(getattr(view, "required_perms", ()))
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            perms += tuple(getattr(view, "write_perms", ()))
        return user.has_perms(perms)


class AdjustLimitExceeded(PermissionDenied):
    default_code = "adjust_limit_exceeded"
    default_detail = "Support agents can adjust only a limited number of points at a time; ask a loyalty manager."


def adjust_limit_for(user) -> int | None:
    """The most points ``user`` may move in one adjustment (``None``: no limit): the admin's own
    rule (``loyalty.admin.base.adjust_limit_for``: loyalty managers unlimited, other staff
    ``LOYALTY["SUPPORT_ADJUST_LIMIT"]``), imported at use so the API never imports admin at load."""
    from ..admin.base import adjust_limit_for as admin_adjust_limit_for

    return admin_adjust_limit_for(user)


def check_adjust_limit(user, points: int) -> None:
    limit = adjust_limit_for(user)
    if limit is not None and abs(points) > limit:
        raise AdjustLimitExceeded(f"Support agents can adjust at most {limit} points at a time; ask a loyalty manager.")
