"""Deferred events applied in batches, set-based (PostgreSQL).

``events_process_pending`` claims up to ``EVENT_BATCH_SIZE`` pending events with
``SELECT ... FOR UPDATE SKIP LOCKED`` (so several workers share a backlog without waiting
for each other) and applies them in one transaction:

- the paid orders of returning members and guests with a handful of statements whatever the
  batch size: lock the members (in id order), read what decides the award (existing
  purchases, qualifying values for tiers), insert the purchases, earn lots and pending points,
  update the members' balances and counters, mark the events processed;
- everything else (a customer who is not a member yet, a first order with a bonus or a
  referral, a member with an open campaign message, an order that may reach a higher tier,
  refunds and cancellations, and every event of the same customer or order as one of those)
  one by one through ``event_retry``, each in a savepoint of its own, after the set-based part.

If the set-based part raises, it is rolled back to its savepoint and its events too go one by
one, so a failure stays with the event that caused it. Points are those of the portable path:
``Program.points_for`` with the tier and campaign multipliers, lots paying back a negative
balance first, pending points during an approval period.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from .. import signals
from ..adapters.base import EventKind, OrderEvent
from ..config_cache import program_config
from ..exceptions import InvalidEvent, NoProgram
from ..models import Member, PointsEntry, Program, Purchase
from ..models import OrderEvent as InboxEvent
from ..selectors import members_with_tier_qualification, tier_qualification_alias
from . import award
from .members import program_for_event
from .order_points import first_order_pays, lot_expiry, points_by_tier, qualification_keys, tier_crossed
from .pending import pending_until

logger = logging.getLogger("loyalty.events")
_LOCKED = ("pk", "program_id", "user_id", "balance", "orders_count", "tier_id", "marketing_consent")
_LOCKED += ("has_referral", "has_message")
Status = InboxEvent.Status


@dataclass
class _Paid:
    row_id: int
    event: OrderEvent
    program: Program
    member: dict | None = None  # the locked member's columns


def events_apply_batch(*, limit: int) -> dict[str, int]:
    """Claim up to ``limit`` pending events and apply them; counts by outcome."""
    from .events import event_retry

    counts: dict[str, int] = defaultdict(int)
    with transaction.atomic():
        claimed = list(
            InboxEvent.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING)
            .order_by("received_at", "id")
            .values_list("id", "payload")[:limit]
        )
        if not claimed:
            return {}
        simple, one_by_one = _sort(claimed)
        if simple:
            try:
                with transaction.atomic():
                    for status, n in _apply_set_based(simple).items():
                        counts[status] += n
            except Exception:
                logger.exception("A batch of %s order events failed; applying them one by one.", len(simple))
                one_by_one = sorted(one_by_one + [paid.row_id for paid in simple])
        if one_by_one:
            for row in InboxEvent.objects.filter(id__in=one_by_one).order_by("received_at", "id"):
                counts[event_retry(event=row).status] += 1
    return dict(counts)


def _sort(claimed: list[tuple[int, dict]]) -> tuple[list[_Paid], list[int]]:
    """Paid events that can go set-based, and the ids of those that go one by one."""
    events: list[tuple[int, OrderEvent | None]] = []
    for row_id, payload in claimed:
        try:
            events.append((row_id, OrderEvent.from_payload(payload)))
        except InvalidEvent:
            events.append((row_id, None))
    programs: dict[award.ProgramKey, Program | None] = {}
    candidates: list[_Paid] = []
    one_by_one: list[int] = []
    for row_id, event in events:
        if event is None or event.kind != EventKind.PAID or getattr(event, "discount_codes", None):
            one_by_one.append(row_id)
            continue
        key = award._program_key(event)
        if key not in programs:
            try:
                programs[key] = program_for_event(event)
            except NoProgram:
                programs[key] = None
        if programs[key] is None:
            one_by_one.append(row_id)
        else:
            candidates.append(_Paid(row_id, event, programs[key]))
    if candidates:
        one_by_one += _lock_members(candidates)
    # Whatever shares a customer or an order with an event that goes one by one goes that way too,
    # so the events of one customer and of one order are applied in the order they came.
    by_id = dict(events)
    users = {by_id[i].user_id for i in one_by_one if by_id[i] is not None and by_id[i].user_id is not None}
    orders = {by_id[i].order_reference for i in one_by_one if by_id[i] is not None}
    simple = []
    for paid in candidates:
        if paid.row_id in one_by_one:
            continue
        if (paid.event.user_id is not None and paid.event.user_id in users) or paid.event.order_reference in orders:
            one_by_one.append(paid.row_id)
        else:
            simple.append(paid)
    return simple, sorted(set(one_by_one))


def _lock_members(candidates: list[_Paid]) -> list[int]:
    """Lock the buyers' memberships (id order) and read what decides the award; the ids of
    the events that must go one by one."""
    wanted = sorted(
        {(paid.program.pk, str(paid.event.user_id)) for paid in candidates if paid.event.user_id is not None}
    )
    rows = []
    if wanted:
        user_type = Member._meta.get_field("user").db_type(connection)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT mb.id, mb.program_id, mb.user_id, mb.balance, mb.orders_count, mb.tier_id,
                           mb.marketing_consent,
                           EXISTS (SELECT 1 FROM loyalty_referral r WHERE r.friend_id = mb.id AND r.status = 'pending'),
                           EXISTS (SELECT 1 FROM loyalty_message m WHERE m.member_id = mb.id
                                   AND m.status IN ('sent', 'control') AND m.converted_at IS NULL)
                    FROM loyalty_member mb
                    JOIN unnest(%s::bigint[], %s::text[]) AS w(program_id, user_id)
                      ON mb.program_id = w.program_id AND mb.user_id = w.user_id::{user_type}
                    ORDER BY mb.id
                    FOR UPDATE OF mb""",
                [[w[0] for w in wanted], [w[1] for w in wanted]],
            )
            rows = [dict(zip(_LOCKED, values, strict=True)) for values in cursor.fetchall()]
    members = {(row["program_id"], str(row["user_id"])): row for row in rows}
    go_alone: set[int] = set()
    for paid in candidates:
        if paid.event.user_id is None:
            continue
        paid.member = members.get((paid.program.pk, str(paid.event.user_id)))
        if paid.member is None or paid.member["has_message"]:
            go_alone.add(paid.row_id)
    _first_orders(candidates, go_alone)
    _tier_crossings(candidates, go_alone)
    return sorted(go_alone)


def _first_orders(candidates: list[_Paid], go_alone: set[int]) -> None:
    seen: set[int] = set()
    for paid in candidates:
        member = paid.member
        if member is None or paid.row_id in go_alone or member["pk"] in seen:
            continue
        seen.add(member["pk"])
        if member["orders_count"] == 0 and (member["has_referral"] or first_order_pays(paid.program, paid.event)):
            go_alone.add(paid.row_id)


def _tier_crossings(candidates: list[_Paid], go_alone: set[int]) -> None:
    """Members whose orders in this batch may reach a higher tier go one by one (tier_evaluate
    decides). Measured once per programme for the batch, over windows that span all its orders:
    an upper bound, so nothing that would cross is missed."""
    by_program: dict[int, list[_Paid]] = defaultdict(list)
    for paid in candidates:
        if paid.member is not None and program_config(paid.program).tiers:
            by_program[paid.program.pk].append(paid)
    for orders in by_program.values():
        program = orders[0].program
        config = program_config(program)
        first, last = min(p.event.occurred_at for p in orders), max(p.event.occurred_at for p in orders)
        extra = math.ceil((last - first).total_seconds() / 86400)
        keys = [(kind, days) for kind, days, _rank in qualification_keys(config)]
        wide = [(kind, days + extra) for kind, days in keys]
        rows = (
            members_with_tier_qualification(program, at=last, keys=wide)
            .filter(pk__in={p.member["pk"] for p in orders})
            .values_list("pk", *[tier_qualification_alias(key) for key in wide])
        )
        before = {pk: dict(zip(keys, values, strict=True)) for pk, *values in rows}
        spend: dict[int, Decimal] = defaultdict(Decimal)
        points: dict[int, int] = defaultdict(int)
        for paid in orders:
            pk = paid.member["pk"]
            spend[pk] += paid.event.amount
            points[pk] += _points(paid)
        for paid in orders:
            pk = paid.member["pk"]
            if tier_crossed(
                config,
                tier_id=paid.member["tier_id"],
                before=before.get(pk, {}),
                at=last,
                spend=spend[pk],
                points=points[pk],
            ):
                go_alone.add(paid.row_id)


def _points(paid: _Paid) -> int:
    base, by_tier = points_by_tier(paid.program, program_config(paid.program), paid.event)
    tier_id = paid.member["tier_id"] if paid.member else None
    return by_tier.get(tier_id, base) if paid.member else 0


def _apply_set_based(batch: list[_Paid]) -> dict[str, int]:
    now = timezone.now()
    existing = set(
        Purchase.objects.filter(
            program_id__in={p.program.pk for p in batch}, order_reference__in={p.event.order_reference for p in batch}
        ).values_list("program_id", "order_reference")
    )
    applied: list[_Paid] = []
    skipped: list[tuple[int, str]] = []
    records: list[dict] = []
    deltas: dict[int, list] = {}  # member pk -> [earned, held, orders, last purchase]
    earned: list[tuple[_Paid, int]] = []
    for paid in batch:
        event, member = paid.event, paid.member
        key = (paid.program.pk, event.order_reference)
        if key in existing:
            skipped.append((paid.row_id, f"Order {event.order_reference} was recorded as paid already."))
            continue
        existing.add(key)
        applied.append(paid)
        points = _points(paid)
        remaining = expires_at = approve_at = None
        if member is not None:
            delta = deltas.setdefault(member["pk"], [0, 0, 0, event.occurred_at])
            delta[2] += 1
            delta[3] = max(delta[3], event.occurred_at)
            approve_at = pending_until(paid.program, event.occurred_at) if points else None
            if approve_at is not None:
                delta[1] += points
            elif points:
                balance = member["balance"] + delta[0]
                remaining = max(0, min(points, points + balance))  # a negative balance is paid back first
                expires_at = lot_expiry(paid.program, event.occurred_at)
                delta[0] += points
                earned.append((paid, points))
        records.append(
            {
                "program_id": paid.program.pk,
                "member_id": member["pk"] if member else None,
                "email": event.email,
                "reference": event.order_reference,
                "amount": str(event.amount),
                "currency": event.currency,
                "points": points,
                "at": event.occurred_at.isoformat(),
                "category": event.category,
                "remaining": remaining,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "approve_at": approve_at.isoformat() if approve_at else None,
                "seq": len(records),
            }
        )
    ids = _insert(records) if applied else {}
    _update_members(deltas)
    _queue_emails(
        [
            (paid.member["pk"], paid.program.pk, ids[(paid.program.pk, paid.event.order_reference)][0], paid, points)
            for paid, points in earned
            if paid.program.email_points_earned and paid.member["marketing_consent"]
        ],
        now,
    )
    _mark(applied, skipped, now)
    _points_awarded_on_commit([entry_id for _purchase_id, entry_id in ids.values() if entry_id is not None])
    counts = {}
    if applied:
        counts[Status.PROCESSED.value] = len(applied)
    if skipped:
        counts[Status.SKIPPED.value] = len(skipped)
    return counts


_INSERT = """WITH ev AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS e(
        program_id bigint, member_id bigint, email text, reference text, amount numeric, currency text,
        points integer, at timestamptz, category text, remaining integer, expires_at timestamptz,
        approve_at timestamptz, seq integer)
),
purchases AS (
    INSERT INTO loyalty_purchase
        (program_id, member_id, email, order_reference, amount, refunded_amount, currency, status,
         points_earned, points_reversed, occurred_at, category)
    SELECT program_id, member_id, email, reference, amount, 0, currency, 'paid', points, 0, at, category
    FROM ev ORDER BY seq
    RETURNING id, program_id, order_reference
),
lots AS (
    INSERT INTO loyalty_pointsentry
        (program_id, member_id, kind, points, remaining, expires_at, idempotency_key, reference,
         description, purchase_id, created_at)
    SELECT ev.program_id, ev.member_id, 'earn', ev.points, ev.remaining, ev.expires_at,
           'purchase:' || ev.reference || ':earn', ev.reference, '', p.id, ev.at
    FROM ev JOIN purchases p ON p.program_id = ev.program_id AND p.order_reference = ev.reference
    WHERE ev.remaining IS NOT NULL
    ORDER BY ev.seq
    RETURNING id, purchase_id
),
held AS (
    INSERT INTO loyalty_pendingpoints (program_id, member_id, purchase_id, points, approve_at, status)
    SELECT ev.program_id, ev.member_id, p.id, ev.points, ev.approve_at, 'pending'
    FROM ev JOIN purchases p ON p.program_id = ev.program_id AND p.order_reference = ev.reference
    WHERE ev.approve_at IS NOT NULL
    ORDER BY ev.seq
    RETURNING id
)
SELECT p.program_id, p.order_reference, p.id, l.id FROM purchases p LEFT JOIN lots l ON l.purchase_id = p.id"""


def _insert(records: list[dict]) -> dict[tuple[int, str], tuple[int, int | None]]:
    """The batch's purchases, earn lots and pending points in one statement (the rows go as one
    JSON document: cheaper to send than a dozen arrays); ids by order."""
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [json.dumps(records)])
        return {
            (program_id, reference): (purchase_id, entry_id)
            for program_id, reference, purchase_id, entry_id in cursor.fetchall()
        }


def _update_members(deltas: dict[int, list]) -> None:
    if not deltas:
        return
    ids, earned, held, orders, last = zip(*((pk, *d) for pk, d in sorted(deltas.items())), strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE loyalty_member mb SET
                   balance = mb.balance + d.earned,
                   lifetime_points = mb.lifetime_points + d.earned,
                   pending_points = mb.pending_points + d.held,
                   orders_count = mb.orders_count + d.orders,
                   last_purchase_at = GREATEST(COALESCE(mb.last_purchase_at, d.last), d.last)
               FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::int[], %s::timestamptz[])
                    AS d(id, earned, held, orders, last)
               WHERE mb.id = d.id""",
            [list(ids), list(earned), list(held), list(orders), list(last)],
        )


def _mark(applied: list[_Paid], skipped: list[tuple[int, str]], now) -> None:
    from django.db.models import F

    if applied:
        InboxEvent.objects.filter(id__in=[p.row_id for p in applied]).update(
            status=Status.PROCESSED, attempts=F("attempts") + 1, processed_at=now, last_error=""
        )
    for row_id, reason in skipped:
        InboxEvent.objects.filter(id=row_id).update(
            status=Status.SKIPPED, attempts=F("attempts") + 1, processed_at=now, last_error=reason
        )


def _queue_emails(emails, now) -> None:
    if not emails:
        return
    from .outbox import emails_queue, outbox_row

    emails_queue(
        [
            outbox_row(
                key=f"points-earned:purchase:{purchase_id}",
                kind="points_earned",
                member_id=member_id,
                program_id=program_id,
                context={"points": points, "order": paid.event.order_reference},
                now=now,
            )
            for member_id, program_id, purchase_id, paid, points in emails
        ]
    )


def _points_awarded_on_commit(entry_ids: list[int]) -> None:
    """``points_awarded`` for every earn lot, on commit, if someone listens (rows are read then)."""
    if not entry_ids:
        return

    def send() -> None:
        if not signals.points_awarded.has_listeners(Member):
            return
        for entry in PointsEntry.objects.select_related("member__program").filter(pk__in=entry_ids).order_by("pk"):
            signals.send_now(signals.points_awarded, sender=Member, member=entry.member, entry=entry)

    transaction.on_commit(send)
