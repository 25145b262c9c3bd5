from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint

MONEY = {"max_digits": 12, "decimal_places": 2}


class Purchase(models.Model):
    """What loyalty knows of a shop order: the facts its events reported, member or guest."""

    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
        REFUNDED = "refunded", _("Refunded")
        CANCELLED = "cancelled", _("Cancelled")

    #: Orders that still count as bought (health, KPIs, surveys, alerts): paid, or refunded in part.
    KEPT_STATUSES = (Status.PAID, Status.PARTIALLY_REFUNDED)

    program = models.ForeignKey("loyalty.Program", on_delete=models.PROTECT, related_name="purchases")
    member = models.ForeignKey(
        "loyalty.Member", null=True, blank=True, on_delete=models.PROTECT, related_name="purchases"
    )
    email = models.EmailField(_("email"), blank=True, db_index=True)
    order_reference = models.CharField(_("order"), max_length=100)
    amount = models.DecimalField(_("amount"), **MONEY)
    refunded_amount = models.DecimalField(_("refunded"), default=Decimal("0.00"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PAID)
    points_earned = models.PositiveIntegerField(_("points earned"), default=0)
    points_reversed = models.PositiveIntegerField(_("points reversed"), default=0)
    occurred_at = models.DateTimeField(_("paid at"), db_index=True)
    category = models.CharField(
        _("product category"), max_length=100, blank=True, help_text=_("As reported by the shop's adapter (optional).")
    )

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        constraints = [
            models.UniqueConstraint(fields=["program", "order_reference"], name="loyalty_purchase_order_unique"),
            check_constraint(condition=Q(amount__gte=0), name="loyalty_purchase_amount_not_negative"),
            check_constraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="loyalty_purchase_refund_within_amount",
            ),
            check_constraint(
                condition=Q(points_reversed__lte=F("points_earned")), name="loyalty_purchase_reversal_within_earned"
            ),
        ]
        indexes = [
            # Covering (PostgreSQL): the nightly health refresh aggregates every member's purchases
            # from this index alone instead of visiting 10M rows scattered over the table.
            models.Index(
                fields=["member", "-occurred_at"],
                name="loyalty_purchase_member_recent",
                include=["program", "status", "amount", "refunded_amount"],
            )
        ]

    def __str__(self) -> str:
        return self.order_reference

    @property
    def is_guest(self) -> bool:
        return self.member_id is None
