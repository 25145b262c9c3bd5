"""Admin for tiers (registered on import from loyalty/admin/__init__.py)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..models import Tier, TierChange
from .base import MEMBER_SEARCH, ReadOnlyMixin, _member_link


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "program",
        "rank",
        "qualifies_by",
        "threshold",
        "window_days",
        "multiplier",
        "entry_bonus_points",
    ]
    list_filter = ["program"]
    list_select_related = ["program"]
    search_fields = ["name"]
    autocomplete_fields = ["entry_reward"]
    ordering = ["program", "rank"]
    fieldsets = [
        (None, {"fields": ["program", "name", "rank", "colour", "benefits"]}),
        (_("Qualification"), {"fields": ["qualifies_by", "threshold", "window_days"]}),
        (_("Benefits in points"), {"fields": ["multiplier", "entry_bonus_points", "entry_reward"]}),
    ]


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["member_link", "from_tier", "to_tier", "reason", "created_at"]
    list_filter = ["reason", "member__program"]
    list_select_related = ["member__user", "from_tier", "to_tier"]
    search_fields = MEMBER_SEARCH
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description=_("member"), ordering="member__user__username")
    def member_link(self, obj: TierChange) -> str:
        return _member_link(obj.member)
