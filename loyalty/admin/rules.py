"""Admin for rules (registered on import from loyalty/admin/__init__.py)."""

from django.contrib import admin
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from ..models import EarningRule, Referral
from .base import ReadOnlyMixin, _member_link


@admin.register(EarningRule)
class EarningRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "program",
        "kind",
        "points",
        "multiplier",
        "min_order_amount",
        "active_window",
        "is_active",
    ]
    list_display_links = ["name"]
    list_editable = ["is_active"]
    list_filter = ["kind", "program", "is_active"]
    list_select_related = ["program"]
    search_fields = ["name", "action_key"]
    fieldsets = [
        (None, {"fields": ["program", "name", "kind", "is_active"]}),
        (
            _("What it gives"),
            {
                "fields": ["points", "multiplier", "min_order_amount", "action_key"],
                "description": _(
                    "Bonus rules give their points once per member and reason (birthdays once a year, "
                    "custom actions once per reference). Multiplier campaigns multiply the points of "
                    "qualifying orders; the minimum order amount applies to both."
                ),
            },
        ),
        (_("When"), {"fields": ["active_from", "active_until"]}),
    ]

    @admin.display(description=_("active window"), ordering="active_from")
    def active_window(self, obj: EarningRule) -> str:
        if obj.active_from is None and obj.active_until is None:
            return _("always")
        start = f"{localtime(obj.active_from):%Y-%m-%d %H:%M}" if obj.active_from else "…"
        end = f"{localtime(obj.active_until):%Y-%m-%d %H:%M}" if obj.active_until else "…"
        return f"{start} – {end}"


@admin.register(Referral)
class ReferralAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "referrer_link", "friend_link", "program", "status", "rewarded_at", "note"]
    list_filter = ["status", "program"]
    list_select_related = ["referrer__user", "friend__user", "program"]
    search_fields = [
        "referrer__user__email",
        "referrer__user__last_name",
        "referrer__referral_code",
        "friend__user__email",
        "friend__user__last_name",
        "friend__referral_code",
    ]
    date_hierarchy = "created_at"
    fields = ["program", "referrer", "friend", "status", "note", "created_at", "rewarded_at"]
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description=_("referrer"), ordering="referrer__user__email")
    def referrer_link(self, obj: Referral) -> str:
        return _member_link(obj.referrer)

    @admin.display(description=_("friend"), ordering="friend__user__email")
    def friend_link(self, obj: Referral) -> str:
        return _member_link(obj.friend)
