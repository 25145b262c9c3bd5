from django.db import models
from django.utils.translation import gettext_lazy as _


class OrderEvent(models.Model):
    """Inbox of order events from the shop, written in the shop's own transaction.

    ``event_key`` is unique, so an event delivered twice is stored (and processed) once.
    A failed event stays here with its error; ``retry_unprocessed_events`` tries again.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Received, waiting for a worker")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed, will retry")
        SKIPPED = "skipped", _("Skipped")
        GAVE_UP = "gave_up", _("Failed, retries exhausted")

    event_key = models.CharField(_("event key"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=20)
    order_reference = models.CharField(_("order"), max_length=100, db_index=True)
    payload = models.JSONField(_("payload"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    received_at = models.DateTimeField(_("received at"), db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=models.Q(status__in=["failed", "pending"]),
                name="loyalty_event_unprocessed",
            ),
        ]

    def __str__(self) -> str:
        return self.event_key
