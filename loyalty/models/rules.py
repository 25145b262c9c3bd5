from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint


class EarningRule(models.Model):
    """A way to earn beyond the base rate, configured by staff; each award is idempotent."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", _("Sign-up bonus")
        FIRST_PURCHASE = "first_purchase", _("First purchase bonus")
        BIRTHDAY = "birthday", _("Birthday bonus (once a year)")
        PROFILE_COMPLETION = "profile_completion", _("Profile completion bonus")
        REFERRER = "referrer", _("Referral bonus for the referrer")
        REFEREE = "referee", _("Referral bonus for the friend")
        MULTIPLIER = "multiplier", _("Points multiplier campaign")
        CUSTOM_ACTION = "custom_action", _("Custom action (award_for_action)")
        SURVEY_ANSWERED = "survey_answered", _("Survey answered (once per order)")

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="earning_rules")
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    points = models.PositiveIntegerField(_("bonus points"), default=0)
    multiplier = models.DecimalField(
        _("multiplier"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("1"))],
        help_text=_("For multiplier campaigns: 2.00 doubles the points of qualifying orders."),
    )
    min_order_amount = models.DecimalField(
        _("minimum order amount"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    action_key = models.SlugField(
        _("action key"), max_length=60, blank=True, help_text=_("For custom actions, e.g. 'product-review'.")
    )
    active_from = models.DateTimeField(_("active from"), null=True, blank=True)
    active_until = models.DateTimeField(_("active until"), null=True, blank=True)
    is_active = models.BooleanField(_("on"), default=True)

    class Meta:
        ordering = ["program", "kind", "name"]
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        constraints = [
            check_constraint(
                condition=Q(active_until__isnull=True)
                | Q(active_from__isnull=True)
                | Q(active_until__gt=models.F("active_from")),
                name="loyalty_rule_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name
