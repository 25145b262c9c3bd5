from decimal import ROUND_FLOOR, Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint


class Program(models.Model):
    """A loyalty programme: how points are earned, what they are worth and how long they live."""

    class NegativeBalancePolicy(models.TextChoices):
        ALLOW = "allow", _("Allow a negative balance (the customer owes the points)")
        FORGIVE = "forgive", _("Stop at zero (forgive what was already spent)")

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), unique=True)
    currency = models.CharField(_("currency"), max_length=3, default="EUR", help_text=_("ISO 4217 code."))
    points_per_unit = models.DecimalField(
        _("points per currency unit"),
        max_digits=8,
        decimal_places=4,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Points earned per 1.00 spent; the result is rounded down."),
    )
    point_value = models.DecimalField(
        _("value of one point"),
        max_digits=10,
        decimal_places=4,
        default=Decimal("0.01"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("What one point is worth in the programme's currency, e.g. 0.01."),
    )
    points_lifetime_days = models.PositiveIntegerField(
        _("points lifetime (days)"),
        null=True,
        blank=True,
        help_text=_("Points expire this many days after they were earned. Empty: never."),
    )
    negative_balance_policy = models.CharField(
        _("when a refund takes back points already spent"),
        max_length=10,
        choices=NegativeBalancePolicy.choices,
        default=NegativeBalancePolicy.ALLOW,
    )
    enroll_on_signup = models.BooleanField(
        _("enrol customers when they register"),
        default=True,
        help_text=_("Otherwise a customer becomes a member with their first paid order."),
    )

    class ExpiryPolicy(models.TextChoices):
        PER_LOT = "per_lot", _("Each lot expires its lifetime after it was earned")
        INACTIVITY = "inactivity", _("The whole balance expires after a period without purchases")
        NEVER = "never", _("Points never expire")

    expiry_policy = models.CharField(
        _("expiry policy"), max_length=12, choices=ExpiryPolicy.choices, default=ExpiryPolicy.PER_LOT
    )
    inactivity_days = models.PositiveIntegerField(
        _("inactivity period (days)"),
        null=True,
        blank=True,
        help_text=_("With the inactivity policy: days without a purchase after which the balance expires."),
    )
    expiry_reminder_days = models.PositiveIntegerField(
        _("remind before expiry (days)"),
        default=14,
        help_text=_("Members are emailed this many days before points expire. 0: no reminder."),
    )
    pending_days = models.PositiveIntegerField(
        _("approval period (days)"),
        default=0,
        help_text=_(
            "Points from a purchase stay pending this long (e.g. your return window) before they can be "
            "spent. 0: immediately."
        ),
    )
    tier_retention_days = models.PositiveIntegerField(
        _("tier retention (days)"),
        default=365,
        help_text=_("A member keeps a tier at least this long after reaching it, even if they no longer qualify."),
    )
    refund_points_on_code_expiry = models.BooleanField(
        _("refund points for expired reward codes"),
        default=True,
        help_text=_("When a reward code expires unused, give its points back."),
    )
    email_points_earned = models.BooleanField(
        _("email members when they earn points"),
        default=False,
        help_text=_("A marketing email after each purchase that earned points (members with marketing consent)."),
    )
    expiry_last_chance_days = models.PositiveIntegerField(
        _("last-chance reminder before expiry (days)"),
        default=3,
        help_text=_("A second reminder this many days before points expire (marketing consent). 0: none."),
    )
    code_expiry_reminder_days = models.PositiveIntegerField(
        _("remind before a reward code expires (days)"),
        default=3,
        help_text=_("Members are emailed once this many days before an unused reward code expires. 0: no reminder."),
    )
    email_monthly_statement = models.BooleanField(
        _("monthly statement email"),
        default=False,
        help_text=_("On the 1st, members with marketing consent get their balance and last month's points."),
    )
    email_postal_address = models.TextField(
        _("postal address in email footers"),
        blank=True,
        help_text=_("The shop's address, shown at the bottom of every member email."),
    )

    class CheckoutRefundPolicy(models.TextChoices):
        PRO_RATA = "pro_rata", _("Give back points in proportion to what is refunded")
        KEEP = "keep", _("Keep them: a refund pays back the money paid only")

    checkout_points_refund_policy = models.CharField(
        _("points used at checkout, when the order is partly refunded"),
        max_length=10,
        choices=CheckoutRefundPolicy.choices,
        default=CheckoutRefundPolicy.PRO_RATA,
        help_text=_(
            "A cancelled order and a full refund always give all of them back; this decides partial refunds."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    config_changed_at = models.DateTimeField(
        _("configuration changed at"),
        auto_now=True,
        help_text=_("Bumped when the programme, its tiers or its rules change; keys the in-process cache."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("programme")
        verbose_name_plural = _("programmes")
        constraints = [
            check_constraint(condition=Q(points_per_unit__gte=0), name="loyalty_program_rate_not_negative"),
            check_constraint(condition=Q(point_value__gte=0), name="loyalty_program_value_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.expiry_policy == self.ExpiryPolicy.PER_LOT and not self.points_lifetime_days:
            raise ValidationError({"points_lifetime_days": _("Set a lifetime for the per-lot expiry policy.")})
        if self.expiry_policy == self.ExpiryPolicy.INACTIVITY and not self.inactivity_days:
            raise ValidationError({"inactivity_days": _("Set the inactivity period for this expiry policy.")})

    def points_for(self, amount: Decimal, multiplier: Decimal = Decimal("1")) -> int:
        """Points for spending ``amount`` (times tier and campaign multipliers), rounded down once."""
        if amount <= 0 or multiplier <= 0:
            return 0
        return int((amount * self.points_per_unit * multiplier).to_integral_value(rounding=ROUND_FLOOR))

    def money_value(self, points: int) -> Decimal:
        return (Decimal(points) * self.point_value).quantize(Decimal("0.01"))
