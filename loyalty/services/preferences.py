"""What a member chose about emails: marketing consent, recorded with when it changed."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from ..models import Member

logger = logging.getLogger("loyalty.preferences")


def member_set_marketing_consent(*, member: Member, allowed: bool, at: datetime | None = None) -> bool:
    """Turn the member's marketing emails on or off; ``True`` if that changed anything.

    ``consent_changed_at`` records when; setting the same value again changes nothing (one
    conditional ``UPDATE``, so two requests at once record one change).
    """
    at = at or timezone.now()
    changed = (
        Member.objects.filter(pk=member.pk)
        .exclude(marketing_consent=allowed)
        .update(marketing_consent=allowed, consent_changed_at=at)
    )
    if changed:
        member.marketing_consent, member.consent_changed_at = allowed, at
        logger.info("Member %s turned marketing emails %s.", member.pk, "on" if allowed else "off")
    return bool(changed)
