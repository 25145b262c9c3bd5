"""Admin for rewards (registered on import from loyalty/admin/__init__.py)."""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..exceptions import LoyaltyError
from ..models import PendingPoints, Redemption, Reward, RewardCode
from ..services.rewards import redemption_cancel
from .base import MEMBER_SEARCH, ReadOnlyMixin, _member_link


class RewardForm(forms.ModelForm):
    class Meta:
        model = Reward
        fields = [
            "program",
            "name",
            "description",
            "is_active",
            "kind",
            "value",
            "product_reference",
            "code_valid_days",
            "personal_code",
            "points_cost",
            "min_order_value",
            "min_tier",
            "active_from",
            "active_until",
            "stock",
            "per_member_limit",
            "point_value",
            "points_step",
            "max_order_share",
            "max_amount",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only points as money at checkout uses the step: other rewards need not fill it in.
        self.fields["points_step"].required = False

    def clean_points_step(self) -> int:
        return self.cleaned_data.get("points_step") or Reward._meta.get_field("points_step").default

    def clean(self):
        cleaned = super().clean()
        kind, value = cleaned.get("kind"), cleaned.get("value")
        program, min_tier = cleaned.get("program"), cleaned.get("min_tier")
        if kind in (Reward.Kind.FIXED, Reward.Kind.PERCENT) and not value:
            self.add_error("value", gettext("Enter the amount or percentage off."))
        if kind == Reward.Kind.PERCENT and value is not None and value > 100:
            self.add_error("value", gettext("A percentage cannot be more than 100."))
        if kind == Reward.Kind.FREE_PRODUCT and not cleaned.get("product_reference"):
            self.add_error("product_reference", gettext("Say which product comes free (the shop's reference)."))
        if program and min_tier and min_tier.program_id != program.pk:
            self.add_error("min_tier", gettext("Choose a tier of the same programme."))
        start, end = cleaned.get("active_from"), cleaned.get("active_until")
        if start and end and end <= start:
            self.add_error("active_until", gettext("The end must be after the start."))
        if kind == Reward.Kind.POINTS_DISCOUNT:
            cost, step = cleaned.get("points_cost"), cleaned.get("points_step")
            if cost and step and cost % step:
                self.add_error("points_cost", gettext("The fewest points must be a multiple of the step."))
            if cleaned.get("stock") is not None:
                self.add_error("stock", gettext("Points as money at checkout has no stock: leave it empty."))
            if cleaned.get("per_member_limit") is not None:
                self.add_error(
                    "per_member_limit",
                    gettext("Points as money at checkout has no limit per member: leave it empty."),
                )
        return cleaned


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    form = RewardForm
    list_display = [
        "name",
        "program",
        "kind",
        "points_cost",
        "value",
        "stock",
        "per_member_limit",
        "min_tier",
        "active_window",
        "is_active",
    ]
    list_filter = ["program", "kind", "is_active", "min_tier"]
    list_select_related = ["program", "min_tier"]
    search_fields = ["name", "description", "product_reference"]
    fieldsets = [
        (None, {"fields": ["program", "name", "description", "is_active"]}),
        (
            _("What the customer gets"),
            {"fields": ["kind", "value", "product_reference", "code_valid_days", "personal_code"]},
        ),
        (_("Price and conditions"), {"fields": ["points_cost", "min_order_value", "min_tier"]}),
        (
            _("Points as money at checkout"),
            {
                "fields": ["point_value", "points_step", "max_order_share", "max_amount"],
                "description": _(
                    "Only for the kind “Points as money at checkout”: members choose how many points to use in "
                    "the cart (at least the points cost above, in steps), and the code takes their value off "
                    "that order. The code works for CHECKOUT_POINTS_VALID_MINUTES (2 hours by default)."
                ),
            },
        ),
        (_("Availability"), {"fields": ["active_from", "active_until", "stock", "per_member_limit"]}),
    ]

    @admin.display(description=_("available"))
    def active_window(self, obj: Reward) -> str:
        if obj.active_from is None and obj.active_until is None:
            return gettext("always")
        start = f"{timezone.localtime(obj.active_from):%Y-%m-%d}" if obj.active_from else "…"
        end = f"{timezone.localtime(obj.active_until):%Y-%m-%d}" if obj.active_until else "…"
        return f"{start} – {end}"


@admin.register(RewardCode)
class RewardCodeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Loyalty's own codes (REWARD_CODES = "loyalty"): the record of what checkout took; changed only by
    the checkout API and by cancelling the redemption."""

    list_display = ["code", "kind", "value", "currency", "status", "order_reference", "used_at", "expires_at"]
    list_filter = ["status", "kind", "program"]
    search_fields = ["code", "order_reference", "description"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "member_link",
        "reward",
        "points",
        "amount",
        "code",
        "status",
        "expires_at",
        "used_at",
        "order_reference",
    ]
    list_filter = ["status", "program", "reward"]
    search_fields = [
        "code",
        "order_reference",
        "reward__name",
        "idempotency_key",
        "member__user__username",
        *MEMBER_SEARCH,
    ]
    list_select_related = ["member__user", "reward"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["cancel_and_refund"]

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # Cancelling is a change of state through a service, never an edit: the form stays read-only.
        return request.user.has_perm("loyalty.change_redemption")

    @admin.display(description=_("member"), ordering="member__user__username")
    def member_link(self, obj: Redemption) -> str:
        return _member_link(obj.member)

    @admin.action(description=_("Cancel selected redemptions and return their points"), permissions=["cancel"])
    def cancel_and_refund(self, request: HttpRequest, queryset: QuerySet[Redemption]):
        done, skipped, refused = 0, 0, []
        for redemption in queryset.select_related("member__user", "reward").order_by("pk"):
            if redemption.status == Redemption.Status.CANCELLED:
                skipped += 1
                continue
            try:
                redemption_cancel(redemption=redemption, by=request.user)
            except LoyaltyError as exc:
                refused.append(f"{redemption.code or redemption.pk} ({redemption.member}): {exc.message}")
            else:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext(
                    "Cancelled %d redemption and returned its points.",
                    "Cancelled %d redemptions and returned their points.",
                    done,
                )
                % done,
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext("%d redemption was cancelled already.", "%d redemptions were cancelled already.", skipped)
                % skipped,
                messages.INFO,
            )
        for message in refused:
            self.message_user(request, message, messages.ERROR)


@admin.register(PendingPoints)
class PendingPointsAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Points waiting out the approval period; the hourly task approves them."""

    list_display = ["member", "purchase", "points", "status", "approve_at"]
    list_filter = ["status", "program"]
    search_fields = ["purchase__order_reference", *MEMBER_SEARCH]
    list_select_related = ["member__user", "purchase"]
    date_hierarchy = "approve_at"
