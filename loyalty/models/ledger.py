from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint


class PointsEntryQuerySet(models.QuerySet):
    def credits(self):
        return self.filter(points__gt=0)

    def open_lots(self):
        """Credits with points left to spend, in the order debits consume them."""
        return self.filter(points__gt=0, remaining__gt=0).order_by(
            F("expires_at").asc(nulls_last=True), "created_at", "id"
        )


class PointsEntry(models.Model):
    """One line of the append-only points ledger.

    Credits (points > 0) are lots: ``remaining`` says how much of the lot is still unspent
    and ``expires_at`` when it lapses. Debits consume lots oldest-first, so expiry is exact.
    Nothing here is ever updated except ``remaining``, and nothing is ever deleted.
    """

    class Kind(models.TextChoices):
        EARN = "earn", _("Earned")
        BONUS = "bonus", _("Bonus")
        ADJUST = "adjust", _("Adjustment")
        REDEEM = "redeem", _("Redeemed")
        REVERSE = "reverse", _("Reversed")
        EXPIRE = "expire", _("Expired")

    program = models.ForeignKey("loyalty.Program", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    points = models.IntegerField(_("points"))
    remaining = models.PositiveIntegerField(_("unspent"), default=0)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    expiry_reminded_at = models.DateTimeField(_("expiry reminder sent"), null=True, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200)
    reference = models.CharField(_("reference"), max_length=100, blank=True, db_index=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    purchase = models.ForeignKey(
        "loyalty.Purchase", null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), db_index=True)

    objects = PointsEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("points entry")
        verbose_name_plural = _("points ledger")
        constraints = [
            models.UniqueConstraint(fields=["program", "idempotency_key"], name="loyalty_entry_key_unique"),
            check_constraint(condition=~Q(points=0), name="loyalty_entry_points_not_zero"),
            check_constraint(
                condition=Q(points__lt=0, remaining=0) | Q(points__gt=0, remaining__lte=F("points")),
                name="loyalty_entry_remaining_within_credit",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "-created_at", "-id"], name="loyalty_entry_member_recent"),
            models.Index(fields=["member", "expires_at"], condition=Q(remaining__gt=0), name="loyalty_entry_open_lots"),
            # A support agent's adjustments of the day (services.staff's daily total): a range of
            # this index, not every adjustment they ever made; points included for an index-only sum.
            models.Index(
                fields=["created_by", "created_at"],
                condition=Q(kind="adjust"),
                include=["points"],
                name="loyalty_entry_staff_adjust",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.points:+d} {self.get_kind_display().lower()} ({self.reference or self.idempotency_key})"

    @property
    def is_credit(self) -> bool:
        return self.points > 0
