"""Who may call the staff endpoints. How many points they may move is the staff policy of
``loyalty.services.staff``, which the services enforce for every caller."""

from __future__ import annotations

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
