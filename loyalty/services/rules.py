"""Earning rules: bonuses and multiplier campaigns configured in admin.

CONTRACT (wired by services/events.py, receivers.py and tasks.py; keep these signatures):
- ``on_member_joined(*, member, at) -> None``: sign-up bonus (member just enrolled).
- ``on_purchase_paid(*, member, purchase, first: bool) -> None``: first-purchase bonus and
  referral completion; called inside the order event's savepoint, member locked.
- ``award_for_action(member, action_key, reference) -> PointsEntry | None``: public hook.
- ``birthday_bonuses_award(*, today=None) -> int``: daily task.
- ``profile_completed(*, member) -> PointsEntry | None``.

Every award is a BONUS ledger entry whose idempotency key names the rule and the reason
(``rule:<rule>:member:<member>``, ``...:birthday:<year>``, ``rule:<rule>:action:<reference>``),
so replayed signals, re-run tasks and double clicks never pay twice. Only rules that are on
and inside their active window at the time of the cause pay (``program_config``: no query).
Multiplier campaigns are applied to base earning in ``events._paid``, not here.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time

from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from ..config_cache import paying_rules
from ..models import EarningRule, Member, PointsEntry, Program, Purchase
from .ledger import points_credit
from .notifications import member_email_queue
from .referrals import referral_complete

logger = logging.getLogger("loyalty.rules")
Kind = EarningRule.Kind
BIRTHDAY_CHUNK = 500
MAX_REFERENCE_LENGTH = 150  # the key "rule:<id>:action:<reference>" must fit in 200 characters


def _bonus(
    member: Member,
    rule: EarningRule,
    key: str,
    *,
    at: datetime,
    reference: str = "",
    purchase: Purchase | None = None,
    locked: bool = False,
) -> PointsEntry:
    return points_credit(
        member=member,
        points=rule.points,
        kind=PointsEntry.Kind.BONUS,
        idempotency_key=key,
        reference=reference,
        description=rule.name,
        purchase=purchase,
        at=at,
        locked=locked,
        guarded=True,
    )


def on_member_joined(*, member: Member, at: datetime) -> None:
    """Sign-up bonus: every SIGNUP rule active when the member joined, once per member."""
    for rule in paying_rules(member.program, Kind.SIGNUP, at):
        _bonus(member, rule, f"rule:{rule.pk}:member:{member.pk}", at=at)


def on_purchase_paid(*, member: Member, purchase: Purchase, first: bool, notify_earned: bool = True) -> None:
    """First-purchase bonus and referral completion, on the member's first paid order only.

    With the programme's ``email_points_earned`` (and ``notify_earned``: pending approval sends
    its own email instead), a marketing email tells the member what the order earned.

    ``member`` is locked by the caller and carries a current balance (order processing
    loads it with ``select_for_update`` and keeps it in step), so the credit uses it as is
    (``locked=True``): no second lock, and the caller's instance stays current for the
    tier evaluation that follows.
    """
    if notify_earned and purchase.points_earned > 0 and member.program.email_points_earned:
        member_email_queue(
            member=member,
            template="points_earned",
            key=f"points-earned:purchase:{purchase.pk}",
            context={"points": purchase.points_earned, "order": purchase.order_reference},
        )
    if not first:
        return
    for rule in paying_rules(member.program, Kind.FIRST_PURCHASE, purchase.occurred_at, purchase.amount):
        _bonus(
            member,
            rule,
            f"rule:{rule.pk}:member:{member.pk}",
            at=purchase.occurred_at,
            reference=purchase.order_reference,
            purchase=purchase,
            locked=True,
        )
    referral_complete(friend=member, purchase=purchase)


def award_for_action(member: Member, action_key: str, reference: str) -> PointsEntry | None:
    """Reward a shop event (a product review, a newsletter signup) through CUSTOM_ACTION rules.

    ``reference`` identifies the event and must be unique per programme across members
    (e.g. ``f"review:{review.pk}"``, ``f"newsletter:{user.pk}"``): the same reference never
    pays twice. Returns the (first) entry, the existing one on a repeat call, or ``None``
    when no active rule has ``action_key`` (logged) or the reference belongs to someone else.
    """
    reference = (reference or "").strip()
    if not reference or len(reference) > MAX_REFERENCE_LENGTH:
        raise ValueError(f"award_for_action needs a reference of 1 to {MAX_REFERENCE_LENGTH} characters")
    at = timezone.now()
    rules = [rule for rule in paying_rules(member.program, Kind.CUSTOM_ACTION, at) if rule.action_key == action_key]
    if not rules:
        logger.info(
            "No active earning rule for action %r in programme %s; nothing awarded.", action_key, member.program_id
        )
        return None
    first: PointsEntry | None = None
    for rule in rules:
        entry = _bonus(member, rule, f"rule:{rule.pk}:action:{reference}", at=at, reference=reference[:100])
        if entry.member_id != member.pk:
            logger.error(
                "Action %r reference %r was rewarded to member %s already; not paid to member %s. "
                "References must identify one event.",
                action_key,
                reference,
                entry.member_id,
                member.pk,
            )
            continue
        first = first or entry
    return first


def profile_completed(*, member: Member) -> PointsEntry | None:
    """The member completed their profile: every active PROFILE_COMPLETION rule pays, once."""
    at = timezone.now()
    entries = [
        _bonus(member, rule, f"rule:{rule.pk}:member:{member.pk}", at=at)
        for rule in paying_rules(member.program, Kind.PROFILE_COMPLETION, at)
    ]
    return entries[0] if entries else None


# --- birthdays ------------------------------------------------------------------------------


def _birthday_q(today: date) -> Q:
    q = Q(birth_date__month=today.month, birth_date__day=today.day)
    is_leap = today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)
    if (today.month, today.day) == (3, 1) and not is_leap:
        q |= Q(birth_date__month=2, birth_date__day=29)  # 29 February birthdays on 1 March
    return q


def birthday_bonuses_award(*, today: date | None = None) -> int:
    """Daily task: each BIRTHDAY rule pays members whose birthday is ``today``, once a year.

    Set-based: one query per chunk selects the birthday members not yet paid this year;
    each award then locks one member in its own short transaction. Returns awards made.
    """
    if today is None or today == timezone.localdate():
        today, at = timezone.localdate(), timezone.now()
    else:  # a catch-up run for another day: judge the rules' windows at that day's noon
        at = timezone.make_aware(datetime.combine(today, time(12)))
    programs = Program.objects.filter(
        is_active=True, earning_rules__kind=Kind.BIRTHDAY, earning_rules__is_active=True
    ).distinct()
    awarded = 0
    for program in programs:
        for rule in paying_rules(program, Kind.BIRTHDAY, at):
            awarded += _birthday_rule_award(program, rule, today=today, at=at)
    return awarded


def _birthday_key(rule: EarningRule, member_id, year: int) -> str:
    return f"rule:{rule.pk}:member:{member_id}:birthday:{year}"


def _birthday_rule_award(program: Program, rule: EarningRule, *, today: date, at: datetime) -> int:
    key = Concat(
        Value(f"rule:{rule.pk}:member:"),
        Cast(OuterRef("pk"), output_field=CharField()),
        Value(f":birthday:{today.year}"),
        output_field=CharField(),
    )
    paid = PointsEntry.objects.filter(program_id=program.pk, idempotency_key=key)
    due = (
        Member.objects.filter(_birthday_q(today), program=program, user__is_active=True)
        .filter(~Exists(paid))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    awarded, last = 0, 0
    while ids := list(due.filter(pk__gt=last)[:BIRTHDAY_CHUNK]):
        last = ids[-1]
        for member_id in ids:
            idempotency_key = _birthday_key(rule, member_id, today.year)
            with transaction.atomic():
                member = Member.objects.select_for_update().filter(pk=member_id).first()
                # Checked under the member's lock, so a concurrent run cannot count it twice.
                if (
                    member is None
                    or PointsEntry.objects.filter(program_id=program.pk, idempotency_key=idempotency_key).exists()
                ):
                    continue
                member.program = program
                _bonus(member, rule, idempotency_key, at=at, locked=True)
                member_email_queue(
                    member=member, template="birthday", key=f"email:{idempotency_key}", context={"points": rule.points}
                )
                awarded += 1
    return awarded
