"""Shared by loyalty's ModelAdmins (read-only records, member links, the staff policy's
capabilities) and the programme admin."""

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import (
    Member,
    Program,
)
from ..services.staff import staff_adjust_limit, staff_is_manager
from .dashboard.view import dashboard_view

#: How admins that list rows of members search them: email, name, referral code.
MEMBER_SEARCH = ["member__user__email", "member__user__first_name", "member__user__last_name", "member__referral_code"]


def is_loyalty_manager(user) -> bool:
    """The "loyalty manager" capability (``services.staff.staff_is_manager``): may change programmes."""
    return staff_is_manager(user)


def adjust_limit_for(user) -> int | None:
    """The most points ``user`` may move in one adjustment (``None``: no limit); the services enforce it."""
    return staff_adjust_limit(user)


class ReadOnlyMixin:
    """Records kept by services: staff read them, nobody edits or deletes them here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _member_link(member: Member | None) -> str:
    """A link to the member's change page (needs ``member__user`` selected)."""
    if member is None:
        return "–"
    url = reverse("admin:loyalty_member_change", args=[quote(member.pk)])
    return format_html('<a href="{}">{}</a>', url, member)


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    """Programmes; its URLs also carry the KPI dashboard (``admin:loyalty_dashboard``)."""

    list_display = ["name", "slug", "currency", "points_per_unit", "point_value", "points_lifetime_days", "is_active"]
    list_filter = ["is_active", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "currency", "is_active"]}),
        (_("Earning and value"), {"fields": ["points_per_unit", "point_value", "pending_days"]}),
        (
            _("Expiry"),
            {"fields": ["expiry_policy", "points_lifetime_days", "inactivity_days", "expiry_reminder_days"]},
        ),
        (
            _("Tiers and rewards"),
            {"fields": ["tier_retention_days", "refund_points_on_code_expiry", "checkout_points_refund_policy"]},
        ),
        (_("Policies"), {"fields": ["negative_balance_policy", "enroll_on_signup"]}),
        (
            _("Member emails"),
            {
                "fields": [
                    "email_points_earned",
                    "expiry_last_chance_days",
                    "code_expiry_reminder_days",
                    "email_monthly_statement",
                    "email_postal_address",
                ]
            },
        ),
    ]

    def get_urls(self):
        dashboard = path("dashboard/", self.admin_site.admin_view(dashboard_view), name="loyalty_dashboard")
        return [dashboard, *super().get_urls()]  # before "<path:object_id>/", which would match it too
