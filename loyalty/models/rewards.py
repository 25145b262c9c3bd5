from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint


class Reward(models.Model):
    """Something members buy with points; the shop's adapter turns it into a discount code.

    A *points discount* (``kind = "points_discount"``) has no fixed price: at checkout the
    member chooses how many points to use (``points_cost`` is the fewest, in steps of
    ``points_step``), each worth ``point_value`` (or the programme's), and gets a code for
    exactly that amount, capped by ``max_order_share`` and ``max_amount``
    (``services.checkout_points``).
    """

    class Kind(models.TextChoices):
        FIXED = "fixed", _("Fixed amount off")
        PERCENT = "percent", _("Percentage off")
        FREE_SHIPPING = "free_shipping", _("Free shipping")
        FREE_PRODUCT = "free_product", _("Free product")
        POINTS_DISCOUNT = "points_discount", _("Points as money at checkout")

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="rewards")
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    points_cost = models.PositiveIntegerField(
        _("points cost"),
        validators=[MinValueValidator(1)],
        help_text=_("For points as money at checkout: the fewest points a member can use at once."),
    )
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
    # --- points as money at checkout (kind "points_discount") ---
    point_value = models.DecimalField(
        _("value of one point at checkout"),
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.0001"))],
        help_text=_("What one point takes off an order. Empty: the programme's value of one point."),
    )
    points_step = models.PositiveIntegerField(
        _("points in steps of"),
        default=100,
        validators=[MinValueValidator(1)],
        help_text=_("Members use points in multiples of this, e.g. 100."),
    )
    max_order_share = models.DecimalField(
        _("at most this share of the order (%)"),
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Points pay at most this percentage of the order total, e.g. 50. Empty: up to all of it."),
    )
    max_amount = models.DecimalField(
        _("at most this amount off"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Points pay at most this much of one order, in the programme's currency. Empty: no limit."),
    )
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
            check_constraint(condition=Q(points_step__gt=0), name="loyalty_reward_step_positive"),
            check_constraint(
                condition=Q(max_order_share__isnull=True) | Q(max_order_share__gt=0, max_order_share__lte=100),
                name="loyalty_reward_share_a_percentage",
            ),
            check_constraint(
                condition=Q(max_amount__isnull=True) | Q(max_amount__gt=0), name="loyalty_reward_max_amount_positive"
            ),
            check_constraint(
                condition=Q(point_value__isnull=True) | Q(point_value__gt=0), name="loyalty_reward_point_value_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_points_discount(self) -> bool:
        return self.kind == self.Kind.POINTS_DISCOUNT

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if not self.is_points_discount:
            return
        errors = {}
        if self.points_step and self.points_cost and self.points_cost % self.points_step:
            errors["points_cost"] = _("The fewest points must be a multiple of the step.")
        if self.stock is not None:
            errors["stock"] = _("Points as money at checkout has no stock: leave it empty.")
        if self.per_member_limit is not None:
            errors["per_member_limit"] = _("Points as money at checkout has no limit per member: leave it empty.")
        if errors:
            raise ValidationError(errors)


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
    # Points as money at checkout: the code takes ``amount`` off; one live code per checkout.
    amount = models.DecimalField(_("amount off"), max_digits=12, decimal_places=2, null=True, blank=True)
    checkout_key = models.CharField(
        _("checkout"), max_length=100, blank=True, help_text=_("The shop's basket the points were used on.")
    )
    points_returned = models.PositiveIntegerField(
        _("points returned"), default=0, help_text=_("Given back after refunds of the order (pro rata).")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        constraints = [
            models.UniqueConstraint(fields=["program", "idempotency_key"], name="loyalty_redemption_key_unique"),
            # Points used at one checkout: at most one code that works or was used (a double
            # press or a second tab can never spend twice).
            models.UniqueConstraint(
                fields=["member", "checkout_key"],
                condition=Q(status__in=["issued", "used"]) & ~Q(checkout_key=""),
                name="loyalty_redemption_one_live_per_checkout",
            ),
            check_constraint(
                condition=Q(points_returned__lte=models.F("points")), name="loyalty_redemption_returned_within_points"
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="loyalty_redemption_due")]

    def __str__(self) -> str:
        return f"{self.reward} for {self.member}"

    # What the code does, for adapters: a points discount is a fixed amount off of its own size.

    @property
    def discount_kind(self) -> str:
        """The code's kind: ``fixed`` for a points discount, else the reward's."""
        return Reward.Kind.FIXED if self.reward.is_points_discount else self.reward.kind

    @property
    def discount_value(self) -> Decimal:
        """Amount (fixed) or percent (percent) off: for a points discount, this redemption's amount."""
        return self.amount if self.reward.is_points_discount else self.reward.value

    @property
    def discount_min_order_value(self) -> Decimal | None:
        """The smallest order the code works on: for a points discount, the smallest one whose caps
        allow ``amount`` (the code never takes more than the reward's share of an order)."""
        if not self.reward.is_points_discount:
            return self.reward.min_order_value
        from decimal import ROUND_CEILING

        floor = self.amount
        if self.reward.max_order_share:
            share = self.amount * 100 / self.reward.max_order_share
            floor = max(floor, share.quantize(Decimal("0.01"), ROUND_CEILING))
        if self.reward.min_order_value is not None:
            floor = max(floor, self.reward.min_order_value)
        return floor


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
