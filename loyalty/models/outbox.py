"""The email outbox: every email loyalty sends is a row here first.

A row is written in the same transaction as the change it reports (a tier change, a
redemption, a campaign's selection, a survey invitation, a detractor alert), under a key that
is unique per email, so nothing about email is decided after commit and a rerun or a
redelivered event writes nothing twice. Workers claim due rows in batches
(``SELECT ... FOR UPDATE SKIP LOCKED``) and send them (``services.outbox``).

States: ``queued`` → ``sending`` (claimed, with a lease) → ``sent`` / ``failed``; a row may
also end ``skipped`` (nothing to send any more: consent withdrawn, member gone), ``cancelled``
(staff) or ``expired`` (not sent within ``OUTBOX_EXPIRE_HOURS``). A ``sending`` row whose lease
ran out (its worker died) is claimed again.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class OutboundEmail(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")

    #: Rows a worker may still send.
    OPEN_STATUSES = (Status.QUEUED, Status.SENDING)

    key = models.CharField(_("key"), max_length=200, unique=True, help_text=_("Unique per email: what it reports."))
    kind = models.CharField(_("email"), max_length=50, db_index=True)
    program = models.ForeignKey("loyalty.Program", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey(
        "loyalty.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="emails"
    )
    # SET_NULL: an email whose campaign or invitation was deleted stays, and ends "skipped" with the reason.
    message = models.OneToOneField(
        "loyalty.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="email"
    )
    invitation = models.OneToOneField(
        "loyalty.SurveyInvitation", null=True, blank=True, on_delete=models.SET_NULL, related_name="email"
    )
    to_email = models.EmailField(
        _("to"), blank=True, help_text=_("Staff emails: the address. Member emails: the address it was sent to.")
    )
    context = models.JSONField(_("context"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("queued at"), db_index=True)
    due_at = models.DateTimeField(_("due at"), help_text=_("Not sent before this time (send window, retry backoff)."))
    lease_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("email")
        verbose_name_plural = _("emails")
        indexes = [
            # The dispatcher's claim: only open rows are in it, so it stays small however much was sent.
            models.Index(fields=["due_at"], condition=Q(status__in=["queued", "sending"]), name="loyalty_outbox_due"),
            models.Index(fields=["member", "-created_at"], name="loyalty_outbox_member"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.status})"
