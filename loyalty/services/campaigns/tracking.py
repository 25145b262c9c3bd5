"""What members do with a campaign email: unsubscribe, open, click; each timestamp written once."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ...models import Member, Message

logger = logging.getLogger("loyalty.campaigns")

Status = Message.Status


# --- what members do with the email ------------------------------------------------------------


def member_unsubscribe(*, member: Member, message: Message | None = None, at: datetime | None = None) -> bool:
    """Withdraw the member's marketing consent; ``True`` if it was on. Twice changes nothing."""
    at = at or timezone.now()
    with transaction.atomic():
        changed = Member.objects.filter(pk=member.pk, marketing_consent=True).update(
            marketing_consent=False, consent_changed_at=at
        )
        if message is not None:
            Message.objects.filter(pk=message.pk, unsubscribed_at__isnull=True).update(unsubscribed_at=at)
    if changed:
        member.marketing_consent, member.consent_changed_at = False, at
        logger.info("Member %s unsubscribed from marketing emails.", member.pk)
    return bool(changed)


def message_opened(*, message_id: int, at: datetime | None = None) -> bool:
    """Record the first open of a sent message; ``True`` if this was it."""
    at = at or timezone.now()
    return bool(Message.objects.filter(pk=message_id, status=Status.SENT, opened_at__isnull=True).update(opened_at=at))


def message_clicked(*, message_id: int, at: datetime | None = None) -> bool:
    """Record the first click (a click means the email was opened, images blocked or not)."""
    at = at or timezone.now()
    with transaction.atomic():
        first = Message.objects.filter(pk=message_id, status=Status.SENT, clicked_at__isnull=True).update(clicked_at=at)
        Message.objects.filter(pk=message_id, status=Status.SENT, opened_at__isnull=True).update(opened_at=at)
    return bool(first)
