from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint


class Tier(models.Model):
    """A VIP level. Members qualify by spend (money) or points earned within a rolling window."""

    class QualifiesBy(models.TextChoices):
        SPEND = "spend", _("Money spent")
        POINTS = "points", _("Points earned")

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(_("name"), max_length=60)
    rank = models.PositiveSmallIntegerField(_("rank"), help_text=_("1 is the lowest tier; higher ranks are better."))
    threshold = models.DecimalField(
        _("qualifies from"),
        max_digits=12,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Spend (in the programme's currency) or points earned within the window."),
    )
    qualifies_by = models.CharField(_("what qualifies"), max_length=6, choices=QualifiesBy.choices)
    window_days = models.PositiveIntegerField(_("rolling window (days)"), default=365)
    multiplier = models.DecimalField(
        _("earn multiplier"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    entry_bonus_points = models.PositiveIntegerField(
        _("entry bonus (points)"), default=0, help_text=_("Granted once when a member first reaches this tier.")
    )
    entry_reward = models.ForeignKey(
        "loyalty.Reward",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("entry reward"),
        help_text=_("Issued free of points, once, when a member first reaches this tier."),
    )
    benefits = models.TextField(_("benefits"), blank=True)
    colour = models.CharField(_("badge colour"), max_length=7, default="#8c6d1f")

    class Meta:
        ordering = ["program", "rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.UniqueConstraint(fields=["program", "rank"], name="loyalty_tier_rank_unique"),
            check_constraint(condition=Q(multiplier__gte=0), name="loyalty_tier_multiplier_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class TierChange(models.Model):
    class Reason(models.TextChoices):
        QUALIFIED = "qualified", _("Qualified")
        EXPIRED = "expired", _("No longer qualifies after the retention period")
        STAFF = "staff", _("Set by staff")

    member = models.ForeignKey("loyalty.Member", on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(_("reason"), max_length=10, choices=Reason.choices)
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("changed at"), db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")

    def __str__(self) -> str:
        return f"{self.member}: {self.from_tier or '-'} -> {self.to_tier or '-'}"
