from django.db import models
from django.utils.translation import gettext_lazy as _


class EmailReceipt(models.Model):
    """A member email that must go out once: the key names what it reports
    (``last-chance:lot:<id>``, ``code-expiring:<redemption id>``, ``statement:<YYYY-MM>``).
    Written in the transaction that queues the email; the unique constraint makes a rerun,
    or a concurrent one, queue nothing. Independent of the ledger (which stays append-only)."""

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.CASCADE, related_name="email_receipts")
    key = models.CharField(_("key"), max_length=100)
    template = models.CharField(_("email"), max_length=50)
    created_at = models.DateTimeField(_("queued at"))

    class Meta:
        verbose_name = _("email receipt")
        verbose_name_plural = _("email receipts")
        constraints = [models.UniqueConstraint(fields=["member", "key"], name="loyalty_email_receipt_once")]

    def __str__(self) -> str:
        return f"{self.template} {self.key} → member {self.member_id}"
