from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Member(models.Model):
    """A customer enrolled in a programme. ``balance`` caches the sum of the ledger."""

    program = models.ForeignKey("loyalty.Program", on_delete=models.PROTECT, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="loyalty_memberships")
    balance = models.IntegerField(_("balance"), default=0, editable=False)
    lifetime_points = models.PositiveIntegerField(
        _("lifetime points"), default=0, editable=False, help_text=_("Points ever earned, net of reversals.")
    )
    joined_at = models.DateTimeField(_("joined at"), db_index=True)
    orders_count = models.PositiveIntegerField(_("paid orders"), default=0, editable=False)
    last_purchase_at = models.DateTimeField(_("last purchase"), null=True, blank=True, editable=False)
    pending_points = models.PositiveIntegerField(
        _("pending points"), default=0, editable=False, help_text=_("Earned, not yet spendable (approval period).")
    )
    tier = models.ForeignKey(
        "loyalty.Tier", null=True, blank=True, on_delete=models.SET_NULL, related_name="members", verbose_name=_("tier")
    )
    tier_since = models.DateTimeField(_("tier reached at"), null=True, blank=True)
    referral_code = models.CharField(_("referral code"), max_length=16, unique=True, null=True, blank=True)
    referred_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="referrals",
        verbose_name=_("referred by"),
    )
    birth_date = models.DateField(_("birthday"), null=True, blank=True)
    marketing_consent = models.BooleanField(_("marketing emails allowed"), default=False)
    consent_changed_at = models.DateTimeField(_("consent changed at"), null=True, blank=True)

    class Meta:
        ordering = ["-joined_at", "-id"]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints = [
            models.UniqueConstraint(fields=["program", "user"], name="loyalty_member_unique_per_program"),
        ]

    def __str__(self) -> str:
        return self.user.get_username() if self.user_id else f"member {self.pk}"

    @property
    def balance_value(self):
        return self.program.money_value(max(self.balance, 0))
