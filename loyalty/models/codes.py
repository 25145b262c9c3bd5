from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint
from .rewards import Reward


class RewardCode(models.Model):
    """A discount code loyalty issues and checks itself, for shops without a discount model.

    The shop's checkout asks loyalty about it (``loyalty.services.codes``: quote, consume,
    release) instead of looking in a discount table of its own. A code is used by one order
    at most: ``order_reference`` is set while it is used and cleared when that order is
    released. ``member`` set: a personal code, only that member may use it.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Not used yet")
        USED = "used", _("Used")
        REVOKED = "revoked", _("Revoked")

    program = models.ForeignKey("loyalty.Program", on_delete=models.PROTECT, related_name="+")
    code = models.CharField(_("code"), max_length=64, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Reward.Kind.choices)
    value = models.DecimalField(
        _("value"), max_digits=10, decimal_places=2, default=Decimal("0"), help_text=_("Amount or percent off.")
    )
    currency = models.CharField(_("currency"), max_length=3)
    min_order_value = models.DecimalField(
        _("minimum order value"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    product_reference = models.CharField(_("product"), max_length=100, blank=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    member = models.ForeignKey(
        "loyalty.Member",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("only for member"),
    )
    redemption = models.OneToOneField(
        "loyalty.Redemption", null=True, blank=True, on_delete=models.PROTECT, related_name="reward_code"
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    valid_from = models.DateTimeField(_("valid from"))
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    order_reference = models.CharField(_("used on order"), max_length=100, blank=True, db_index=True)
    discount = models.DecimalField(_("discount given"), max_digits=12, decimal_places=2, null=True, blank=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("reward code")
        verbose_name_plural = _("reward codes")
        constraints = [
            check_constraint(condition=Q(value__gte=0), name="loyalty_rewardcode_value_not_negative"),
            check_constraint(
                condition=~Q(kind="percent") | Q(value__lte=100), name="loyalty_rewardcode_percent_at_most_100"
            ),
            check_constraint(
                condition=(Q(status="used") & ~Q(order_reference="") & Q(used_at__isnull=False))
                | (~Q(status="used") & Q(order_reference="")),
                name="loyalty_rewardcode_order_only_when_used",
            ),
        ]

    def __str__(self) -> str:
        return self.code
