"""Resending a sent or failed campaign message from the admin (carrying the original's incentive)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ...exceptions import LoyaltyError
from ...models import Member, Message
from ..outbox import CAMPAIGN as CAMPAIGN_EMAIL
from ..outbox import email_queue
from .selection import campaign_email_key
from .sending import RESEND_MARK, _incentive_owner, campaign_skip_reason

logger = logging.getLogger("loyalty.campaigns")

Status = Message.Status


# --- resending (admin) ---------------------------------------------------------------------------


def message_resend(*, message: Message, by=None, token: str | None = None) -> Message:
    """Queue a new message of ``message``'s campaign to the same member, cycle ``resend-<8 hex>``,
    and its email in the outbox; returns the new message.

    Only a sent or failed message is resent. The resend carries the original's incentive:
    the outbox keys it on the original message, so the customer sees the same points or
    code and nothing is issued twice. The checks made when it is sent (campaign and programme on, consent, an active
    account with an address) are made now, so staff see a refusal instead of a skipped message.
    Every refusal is a :class:`LoyaltyError` and writes nothing. ``token`` (the admin form's)
    names the cycle, so a form sent twice returns the first resend instead of queueing another.
    """
    import uuid

    cycle = f"resend-{(token or uuid.uuid4().hex)[:8]}"
    with transaction.atomic():
        locked = Member.objects.select_for_update(of=("self",)).select_related("program", "user")
        member = locked.get(pk=message.member_id)
        original = Message.objects.select_related("campaign__program").get(pk=message.pk)
        campaign = original.campaign
        found = Message.objects.filter(campaign_id=campaign.pk, member_id=member.pk, cycle=cycle).first()
        if found is not None:
            return found
        if original.status not in (Status.SENT, Status.FAILED):
            raise LoyaltyError(
                _("Only a sent or failed message can be resent; this one is %(status)s.")
                % {"status": original.get_status_display().lower()},
                code="message_not_resendable",
            )
        if reason := campaign_skip_reason(original, member):
            raise LoyaltyError(reason, code="message_not_sendable")
        resent = Message.objects.create(
            campaign=campaign,
            program_id=campaign.program_id,
            member=member,
            cycle=cycle,
            status=Status.QUEUED,
            segment=original.segment,
            created_at=timezone.now(),
            # The resend carries the original's incentive (same ledger entry or code), never a second one.
            incentive_reference=f"{RESEND_MARK}{_incentive_owner(original)}",
        )

        email_queue(
            key=campaign_email_key(campaign_id=campaign.pk, member_id=member.pk, cycle=cycle),
            kind=CAMPAIGN_EMAIL,
            member=member,
            message_id=resent.pk,
        )
    logger.info(
        "Message %s resent as message %s by user %s.", original.pk, resent.pk, getattr(by, "pk", None) or "system"
    )
    return resent
