from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import QuerySet, Subquery
from django.utils import timezone

from ..adapters.base import OrderEvent
from ..conf import loyalty_settings
from ..exceptions import NoProgram
from ..models import Member, Program
from .notifications import member_email_queue
from .referrals import referral_code_generate
from .rules import on_member_joined


def _candidate_programs(event: OrderEvent) -> QuerySet[Program]:
    slug = event.program or loyalty_settings.DEFAULT_PROGRAM
    programs = Program.objects.filter(is_active=True)
    if slug:
        return programs.filter(slug=slug)
    return programs.filter(currency=event.currency).order_by("id")


def locked_member_for_event(event: OrderEvent) -> Member | None:
    """The buyer's existing membership of the event's programme, locked, with its programme.

    One query for the common case (a returning member); ``None`` sends the caller to
    :func:`program_for_event` and :func:`member_for_order`.
    """
    if event.user_id is None:
        return None
    program_id = Subquery(_candidate_programs(event).values("id")[:1])
    return (
        Member.objects.select_for_update(of=("self",))
        .select_related("program")
        .filter(user_id=event.user_id, program_id=program_id, program__currency=event.currency)
        .first()
    )


def program_for_event(event: OrderEvent) -> Program:
    """The programme an order event belongs to (see ``LOYALTY["DEFAULT_PROGRAM"]``)."""
    slug = event.program or loyalty_settings.DEFAULT_PROGRAM
    program = _candidate_programs(event).first()
    if program is None:
        missing = f"with slug {slug!r}" if slug else f"for {event.currency}"
        raise NoProgram(f"No active programme {missing}.")
    if program.currency != event.currency:
        raise NoProgram(f"Programme {slug!r} counts {program.currency}, the order is in {event.currency}: no points.")
    return program


def member_enroll(*, program: Program, user, at: datetime | None = None) -> tuple[Member, bool]:
    """The user's membership of ``program``, created if needed. Safe to call twice or concurrently.

    A new member gets a referral code and the programme's sign-up bonus rules.
    """
    member = Member.objects.filter(program=program, user=user).first()
    if member is not None:
        return member, False
    joined_at = at or timezone.now()
    for _attempt in range(5):
        try:
            with transaction.atomic():
                member = Member.objects.create(
                    program=program, user=user, joined_at=joined_at, referral_code=referral_code_generate()
                )
        except IntegrityError:
            existing = Member.objects.filter(program=program, user=user).first()
            if existing is not None:
                return existing, False
            continue  # the random referral code was taken: draw again
        on_member_joined(member=member, at=joined_at)
        member_email_queue(member=member, template="welcome", key=f"welcome:member:{member.pk}")
        return member, True
    raise RuntimeError("could not find a free referral code")  # pragma: no cover


def member_for_order(*, program: Program, user_id, at: datetime) -> Member | None:
    """Lock and return the buyer's membership, enrolling them on their first paid order.

    ``None`` when the user no longer exists (the purchase is then kept as a guest's).
    """
    if user_id is None:
        return None
    member = Member.objects.select_for_update().filter(program=program, user_id=user_id).first()
    if member is not None:
        member.program = program
        return member
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return None
    member, _ = member_enroll(program=program, user=user, at=min(at, timezone.now()))
    member = Member.objects.select_for_update().get(pk=member.pk)
    member.program = program
    return member
