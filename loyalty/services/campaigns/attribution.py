"""Crediting a paid purchase to the campaign message whose attribution window holds it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db.models import Case, F, When

from ...models import Message, Purchase

Status = Message.Status
#: Messages a purchase is matched against (newest first): more than any member has open windows.
ATTRIBUTION_CANDIDATES = 20


def purchase_attribute(*, purchase: Purchase) -> int | None:
    """Credit a member's paid purchase to the latest message whose attribution window holds it.

    Sent messages count from ``sent_at``, control rows from ``created_at`` (when they would
    have been sent); the window is ``[start, start + attribution_days]``, both ends included.
    A message converts once. Returns the message id, or ``None``. One indexed query when the
    member has no open message.
    """
    if purchase.member_id is None:
        return None
    at = purchase.occurred_at
    started = Case(When(status=Status.SENT, then=F("sent_at")), default=F("created_at"))
    candidates = (
        Message.objects.filter(
            member_id=purchase.member_id, status__in=(Status.SENT, Status.CONTROL), converted_at__isnull=True
        )
        .annotate(started=started)
        .filter(started__lte=at)
        .order_by("-started", "-pk")
        .values_list("pk", "started", "campaign__attribution_days")[:ATTRIBUTION_CANDIDATES]
    )
    for message_id, start, days in candidates:
        if at <= start + timedelta(days=days):
            converted = Message.objects.filter(pk=message_id, converted_at__isnull=True).update(
                converted_at=at, conversion_purchase=purchase, revenue=purchase.amount or Decimal("0.00")
            )
            return message_id if converted else None
    return None
