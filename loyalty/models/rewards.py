from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint


class Reward(models.Model):
    """Something members buy with points; the shop's adapter turns it into a discount code."""

    class Kind(models.TextChoices):
        FIXED = "fixed", _("Fixed amount off")
        PERCENT = "percent", _("Percentage off")
        FREE_SHIPPING = "free_shipping", _("Free shipping")
        FREE_PRODUCT = "free_product", _("Free product")

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="rewards")
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=14, choices=Kind.choices)
    points_cost = models.PositiveIntegerField(_("points cost"), validators=[MinValueValidator(1)])
    value = models.DecimalField(
        _("value"),
        max_digits=10,
        decimal_places=2,
        default=Decimal("0"),
        help_text=_("Amount off (fixed) or percent off (percentage)."),
    )
    product_reference = models.CharField(
        _("product"), max_length=100, blank=True, help_text=_("For a free product: the shop's product reference.")
    )
    min_order_value = models.DecimalField(
        _("minimum order value"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    min_tier = models.ForeignKey(
        "loyalty.Tier",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("minimum tier"),
    )
    per_member_limit = models.PositiveIntegerField(_("limit per member"), null=True, blank=True)
    stock = models.PositiveIntegerField(_("stock left"), null=True, blank=True, help_text=_("Empty: unlimited."))
    code_valid_days = models.PositiveIntegerField(_("code valid for (days)"), default=30)
    active_from = models.DateTimeField(_("available from"), null=True, blank=True)
    active_until = models.DateTimeField(_("available until"), null=True, blank=True)
    is_active = models.BooleanField(_("available"), default=True)
    personal_code = models.BooleanField(
        _("code for the member only"),
        default=True,
        help_text=_(
            "Loyalty's own reward codes (REWARD_CODES = \"loyalty\"): only the member who redeemed it can use "
            "the code at checkout. Codes made by the shop's adapter follow the shop's rules."
        ),
    )

    class Meta:
        ordering = ["program", "points_cost", "name"]
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        constraints = [
            check_constraint(condition=Q(points_cost__gt=0), name="loyalty_reward_cost_positive"),
            check_constraint(condition=Q(value__gte=0), name="loyalty_reward_value_not_negative"),
            check_constraint(
                condition=~Q(kind="percent") | Q(value__lte=100), name="loyalty_reward_percent_at_most_100"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Redemption(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", _("Issued")
        USED = "used", _("Used")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")

    program = models.ForeignKey("loyalty.Program", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.PROTECT, related_name="redemptions")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions")
    points = models.PositiveIntegerField(_("points"), help_text=_("0 for rewards granted free (tier entry)."))
    entry = models.OneToOneField(
        "loyalty.PointsEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="redemption"
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=200)
    code = models.CharField(_("code"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ISSUED)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("redeemed at"), db_index=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    order_reference = models.CharField(_("used on order"), max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        constraints = [
            models.UniqueConstraint(fields=["program", "idempotency_key"], name="loyalty_redemption_key_unique"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="loyalty_redemption_due")]

    def __str__(self) -> str:
        return f"{self.reward} for {self.member}"


class Referral(models.Model):
    """A friend who signed up through a member's referral link."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the friend's first paid order")
        REWARDED = "rewarded", _("Rewarded")
        REFUSED = "refused", _("Refused")

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="referrals")
    referrer = models.ForeignKey("loyalty.Member", on_delete=models.CASCADE, related_name="referrals_made")
    friend = models.OneToOneField("loyalty.Member", on_delete=models.CASCADE, related_name="referral")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"))
    rewarded_at = models.DateTimeField(_("rewarded at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")

    def __str__(self) -> str:
        return f"{self.referrer} -> {self.friend}"


class PendingPoints(models.Model):
    """Points from a purchase waiting out the approval period; not in the balance until approved."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        CANCELLED = "cancelled", _("Cancelled")

    program = models.ForeignKey("loyalty.Program", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.PROTECT, related_name="pending")
    purchase = models.OneToOneField("loyalty.Purchase", on_delete=models.PROTECT, related_name="pending")
    points = models.PositiveIntegerField(_("points"))
    approve_at = models.DateTimeField(_("approved on"), db_index=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    entry = models.OneToOneField(
        "loyalty.PointsEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["approve_at", "id"]
        verbose_name = _("pending points")
        verbose_name_plural = _("pending points")

    def __str__(self) -> str:
        return f"{self.points} pending for {self.member}"
