"""Selecting members and queueing a campaign run: one ``Message`` per member and cycle, its
email in the outbox in the same transaction; a stable hash holds the control group back."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from ...models import Campaign, Member, Message, Program
from ..outbox import CAMPAIGN as CAMPAIGN_EMAIL
from ..outbox import emails_queue, outbox_nudge_on_commit, outbox_row
from .scheduling import campaign_next_send_at

logger = logging.getLogger("loyalty.campaigns")

Status = Message.Status
CHUNK_SIZE = 1000


# --- selecting and queueing ----------------------------------------------------------------


def campaign_cycle(now: datetime) -> str:
    """A run's cycle: its local date, so each member gets at most one message a day per campaign."""
    return timezone.localdate(now).isoformat()


def in_control_group(*, campaign_id: int, member_id: int, percent: int) -> bool:
    """Stable across runs and processes (``hash()`` is salted per process; sha256 is not)."""
    digest = hashlib.sha256(f"loyalty-control:{campaign_id}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def _user_has_field(name: str) -> bool:
    try:
        get_user_model()._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def marketing_reachable(members: QuerySet[Member]) -> QuerySet[Member]:
    """``members`` narrowed to those a marketing email may go to: consent (which erasure
    withdraws), an address, an active account (when the user model has ``is_active``).
    Campaigns and post-purchase surveys select through it."""
    email = get_user_model().get_email_field_name()
    members = (
        members.filter(marketing_consent=True)
        .exclude(**{f"user__{email}": ""})
        .exclude(**{f"user__{email}__isnull": True})
    )
    if _user_has_field("is_active"):
        members = members.filter(user__is_active=True)
    return members


def marketing_unreachable_reason(member: Member) -> str:
    """Why a marketing email may no longer go to ``member`` (checked again at send time, since
    consent can change after selection), or ``""``: :func:`marketing_reachable` for one member."""
    user = member.user
    if not member.marketing_consent:
        return "The member has withdrawn marketing consent."
    if not getattr(user, "is_active", True):
        return "The customer's account is deactivated."
    if not (getattr(user, user.get_email_field_name(), "") or "").strip():
        return "The customer has no email address."
    return ""


def campaign_eligible_members(*, campaign: Campaign, now: datetime) -> QuerySet[Member]:
    """Who the campaign would queue now (one query): segment, consent, an address, no recent
    re-engagement email from any campaign of the programme, none from this one this cycle."""
    cooldown_from = now - timedelta(days=campaign.cooldown_days)
    recent = Message.objects.filter(
        member_id=OuterRef("pk"), status__in=(Status.QUEUED, Status.SENT), created_at__gt=cooldown_from
    )
    this_cycle = Message.objects.filter(member_id=OuterRef("pk"), campaign_id=campaign.pk, cycle=campaign_cycle(now))
    members = Member.objects.filter(
        program_id=campaign.program_id, health__segment__in=[str(s) for s in campaign.segments or []]
    ).filter(~Exists(recent), ~Exists(this_cycle))
    return marketing_reachable(members)


def campaign_run(*, campaign: Campaign, now: datetime | None = None) -> dict[str, int]:
    """Queue this cycle's messages and, after commit, their send tasks; returns the counts.

    ``eligible`` = members selected by this run, ``queued`` + ``control`` = eligible. A
    switched-off campaign or programme runs nothing. Runs of one programme take turns (a
    row lock on the programme), so the cooldown across its campaigns holds under concurrency.
    """
    now = now or timezone.now()
    counts = {"eligible": 0, "queued": 0, "control": 0}
    with transaction.atomic():
        program = Program.objects.select_for_update().filter(pk=campaign.program_id).first()
        current = Campaign.objects.filter(pk=campaign.pk).first()
        if program is None or current is None or not program.is_active or not current.is_active:
            return counts
        cycle = campaign_cycle(now)
        due_at = campaign_next_send_at(campaign=current, now=now) or now
        selection = campaign_eligible_members(campaign=current, now=now).order_by("pk")
        last_id = 0
        while True:
            chunk = list(selection.filter(pk__gt=last_id).values_list("pk", "health__segment")[:CHUNK_SIZE])
            if not chunk:
                break
            rows = []
            for member_id, segment in chunk:
                control = in_control_group(campaign_id=current.pk, member_id=member_id, percent=current.control_percent)
                counts["control" if control else "queued"] += 1
                rows.append(
                    Message(
                        campaign_id=current.pk,
                        program_id=current.program_id,
                        member_id=member_id,
                        cycle=cycle,
                        status=Status.CONTROL if control else Status.QUEUED,
                        segment=segment or "",
                        created_at=now,
                    )
                )
            Message.objects.bulk_create(rows, ignore_conflicts=True)
            _queue_emails(campaign=current, cycle=cycle, member_ids=[m for m, _s in chunk], now=now, due_at=due_at)
            counts["eligible"] += len(chunk)
            last_id = chunk[-1][0]
        Campaign.objects.filter(pk=current.pk).update(last_run_at=now)
        if counts["queued"]:
            outbox_nudge_on_commit(due_at=due_at)
    campaign.last_run_at = now
    logger.info("Campaign %s, cycle %s: %s", campaign.pk, cycle, counts)
    return counts


def campaigns_run_active(*, now: datetime | None = None) -> dict[int, dict[str, int]]:
    """Run every active campaign of an active programme (for shops without per-campaign schedules)."""
    results: dict[int, dict[str, int]] = {}
    for campaign in Campaign.objects.filter(is_active=True, program__is_active=True).order_by("pk"):
        try:
            results[campaign.pk] = campaign_run(campaign=campaign, now=now)
        except Exception:  # one broken campaign must not stop the others; the next run tries again
            logger.exception("Campaign %s could not be run.", campaign.pk)
    return results


def campaign_email_key(*, campaign_id: int, member_id: int, cycle: str) -> str:
    return f"campaign:{campaign_id}:{member_id}:{cycle}"


def _queue_emails(*, campaign: Campaign, cycle: str, member_ids: list[int], now: datetime, due_at: datetime) -> None:
    """One outbox row per queued message of these members in this cycle (the caller's
    transaction; a rerun finds the keys taken and adds nothing)."""
    queued = Message.objects.filter(
        campaign_id=campaign.pk, cycle=cycle, member_id__in=member_ids, status=Status.QUEUED, email__isnull=True
    ).values_list("pk", "member_id")
    emails_queue(
        [
            outbox_row(
                key=campaign_email_key(campaign_id=campaign.pk, member_id=member_id, cycle=cycle),
                kind=CAMPAIGN_EMAIL,
                member_id=member_id,
                program_id=campaign.program_id,
                message_id=message_id,
                now=now,
                due_at=due_at,
            )
            for message_id, member_id in queued
        ],
        nudge=False,
    )
