"""Backfill: import a shop's past orders as purchases (and, if asked, the points they earned).

``orders_backfill`` reads :class:`~loyalty.adapters.base.HistoricalOrder` objects from any
iterable (the adapter's ``iter_historical_orders``) and writes them chunk by chunk, each chunk
in one transaction with a fixed number of statements whatever its size:

1. lock the chunk's existing members (``SELECT ... FOR UPDATE``, by id): a live order event for
   one of them waits for the chunk, then finds the purchase recorded and is skipped;
2. enrol, in bulk, customers who are not members yet (no sign-up bonus, no welcome email:
   they joined, as far as loyalty knows, at their first backfilled order);
3. write the purchases not recorded yet (PostgreSQL: ``COPY`` into a temporary table, then
   ``INSERT ... ON CONFLICT DO NOTHING``; elsewhere ``bulk_create(ignore_conflicts=True)``): the
   unique (programme, order) constraint makes a rerun import nothing twice;
4. with ``award_points``, one ``earn`` lot per kept member purchase, net of refunds (pro rata,
   as a live refund would take them back), key ``purchase:<order>:earn``, dated at the payment
   (so expiry rules apply to it);
5. one ``UPDATE`` of the members from the chunk's totals: balance and lifetime points (so
   ``balance == sum(ledger)`` holds), ``orders_count`` and ``last_purchase_at``.

Base rate only: no tier or campaign multipliers, bonuses, referrals, pending periods or emails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from itertools import islice

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from ..adapters.base import HistoricalOrder, HistoricalStatus
from ..conf import loyalty_settings
from ..exceptions import NoProgram
from ..models import Member, PointsEntry, Program, Purchase


@dataclass
class BackfillChunk:
    """What one chunk did; passed to ``progress`` after it commits."""

    number: int
    orders: int
    imported: int
    skipped: int  # recorded already (a rerun, or a live event) or in another currency
    points: int
    enrolled: int
    last_reference: str
    seconds: float = 0.0
    other_currency: int = 0
    entries: int = 0


@dataclass
class BackfillResult:
    program: Program
    orders: int = 0
    imported: int = 0
    skipped: int = 0
    other_currency: int = 0
    points: int = 0
    entries: int = 0
    enrolled: int = 0
    chunks: int = 0
    seconds: float = 0.0
    last_reference: str = ""
    chunk_reports: list[BackfillChunk] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


def backfill_program(*, slug: str | None = None) -> Program:
    """The programme to backfill: ``slug``, else ``LOYALTY["DEFAULT_PROGRAM"]``, else the oldest active one."""
    slug = slug or loyalty_settings.DEFAULT_PROGRAM
    if slug:
        program = Program.objects.filter(slug=slug).first()
    else:
        program = Program.objects.filter(is_active=True).order_by("id").first()
    if program is None:
        raise NoProgram(f'No programme with the slug "{slug}".' if slug else "No active programme.")
    return program


def orders_backfill(
    *,
    orders: Iterable[HistoricalOrder],
    program: Program | None = None,
    award_points: bool,
    chunk_size: int = 5000,
    progress: Callable[[BackfillChunk], None] | None = None,
    now: datetime | None = None,
) -> BackfillResult:
    """Import ``orders`` into ``program``; safe to run again (what exists is skipped)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    program = program or backfill_program()
    now = now or timezone.now()
    result = BackfillResult(program=program)
    started = time.perf_counter()
    for number, chunk in enumerate(_chunks(orders, chunk_size), start=1):
        clock = time.perf_counter()
        with transaction.atomic():
            report = _import_chunk(program, chunk, award_points=award_points, now=now, number=number)
        report.seconds = time.perf_counter() - clock
        result.chunks += 1
        result.orders += report.orders
        result.imported += report.imported
        result.skipped += report.skipped
        result.points += report.points
        result.enrolled += report.enrolled
        result.other_currency += report.other_currency
        result.entries += report.entries
        result.last_reference = report.last_reference
        result.chunk_reports.append(report)
        if progress is not None:
            progress(report)
    result.seconds = time.perf_counter() - started
    return result


def _chunks(orders: Iterable[HistoricalOrder], size: int) -> Iterator[list[HistoricalOrder]]:
    iterator = iter(orders)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _points(program: Program, order: HistoricalOrder) -> tuple[int, int]:
    """(points earned at the base rate, points a refund or cancellation took back)."""
    earned = program.points_for(order.amount)
    if not earned or order.status == HistoricalStatus.PAID:
        return earned, 0
    if order.status in (HistoricalStatus.REFUNDED, HistoricalStatus.CANCELLED) or order.refunded_amount >= order.amount:
        return earned, earned
    share = Decimal(earned) * order.refunded_amount / order.amount  # cumulative pro rata, as a live refund
    return earned, int(share.to_integral_value(rounding=ROUND_FLOOR))


def _import_chunk(
    program: Program, chunk: list[HistoricalOrder], *, award_points: bool, now: datetime, number: int
) -> BackfillChunk:
    pk_of_user = get_user_model()._meta.pk.to_python
    # One order per reference (the first one), in this programme's currency.
    wanted: dict[str, HistoricalOrder] = {}
    other_currency = 0
    for order in chunk:
        if order.currency != program.currency:
            other_currency += 1
        else:
            wanted.setdefault(order.reference, order)

    existing = set(
        Purchase.objects.filter(program=program, order_reference__in=list(wanted)).values_list(
            "order_reference", flat=True
        )
    )
    new = [order for reference, order in wanted.items() if reference not in existing]
    user_ids = {pk_of_user(order.user_id) for order in new if order.user_id is not None}

    # 1-2. the buyers' memberships, locked; customers without one are enrolled in bulk
    members = _locked_members(program, user_ids)
    enrolled = 0
    missing = user_ids - members.keys()
    if missing:
        first_paid: dict = {}
        for order in new:
            if order.user_id is not None and (user_id := pk_of_user(order.user_id)) in missing:
                first_paid[user_id] = min(first_paid.get(user_id, order.paid_at), order.paid_at)
        alive = set(get_user_model().objects.filter(pk__in=missing).values_list("pk", flat=True))
        Member.objects.bulk_create(
            [Member(program=program, user_id=user, joined_at=min(first_paid[user], now)) for user in alive],
            ignore_conflicts=True,
        )
        members.update(_locked_members(program, alive))
        enrolled = len(alive)

    # 3. the purchases (a user who no longer exists buys as a guest, as live events do)
    rows: list[tuple] = []  # in PURCHASE_COLUMNS order
    credits: list[tuple[str, int, datetime, int]] = []  # (order, member id, paid at, points)
    for order in new:
        member = members.get(pk_of_user(order.user_id)) if order.user_id is not None else None
        earned, reversed_ = _points(program, order) if (award_points and member is not None) else (0, 0)
        member_id = member.pk if member is not None else None
        rows.append(
            (
                program.pk,
                member_id,
                order.email,
                order.reference,
                order.amount,
                order.refunded_amount,
                order.currency,
                order.status,
                earned,
                reversed_,
                order.paid_at,
                order.category,
            )
        )
        if earned > reversed_:
            credits.append((order.reference, member_id, order.paid_at, earned - reversed_))
    inserted = _insert_purchases(program, rows)  # order reference -> id, for the rows this chunk wrote

    # 4. the points: one earn lot per purchase this chunk wrote, net of refunds
    points_total = 0
    deltas: dict[int, list] = {}  # member id -> [points, orders, last purchase]
    credits = [credit for credit in credits if credit[0] in inserted]
    if credits:
        per_lot = program.expiry_policy == Program.ExpiryPolicy.PER_LOT
        lifetime = timedelta(days=program.points_lifetime_days) if per_lot and program.points_lifetime_days else None
        running = {member_id: member.balance for member_id, member in members.items_by_id()}
        entries = []
        for reference, member_id, paid_at, points in sorted(credits, key=lambda credit: (credit[2], credit[0])):
            balance = running[member_id]
            entries.append(
                (
                    program.pk,
                    member_id,
                    PointsEntry.Kind.EARN.value,
                    points,
                    max(0, min(points, points + balance)),  # a negative balance is paid back first
                    paid_at + lifetime if lifetime else None,
                    f"purchase:{reference}:earn",
                    reference,
                    "Backfill of a past order",
                    inserted[reference],
                    paid_at,
                )
            )
            running[member_id] = balance + points
            deltas.setdefault(member_id, [0, 0, None])[0] += points
            points_total += points
        _insert_entries(entries)  # the purchases are new: their keys cannot exist yet

    # 5. the members' totals, in one statement
    for row in rows:
        member_id, reference, paid_at = row[1], row[3], row[10]
        if member_id is not None and reference in inserted:
            delta = deltas.setdefault(member_id, [0, 0, None])
            delta[1] += 1
            delta[2] = paid_at if delta[2] is None else max(delta[2], paid_at)
    _update_members(members, deltas)

    report = BackfillChunk(
        number=number,
        orders=len(chunk),
        imported=len(inserted),
        skipped=len(chunk) - len(inserted),
        points=points_total,
        enrolled=enrolled,
        last_reference=chunk[-1].reference,
        other_currency=other_currency,
        entries=len(credits),
    )
    return report


PURCHASE_COLUMNS = (
    "program_id", "member_id", "email", "order_reference", "amount", "refunded_amount", "currency", "status",
    "points_earned", "points_reversed", "occurred_at", "category",
)  # fmt: skip
ENTRY_COLUMNS = (
    "program_id", "member_id", "kind", "points", "remaining", "expires_at", "idempotency_key", "reference",
    "description", "purchase_id", "created_at",
)  # fmt: skip


def _insert_purchases(program: Program, rows: list[tuple]) -> dict[str, int]:
    """Write the purchases that are not recorded yet; returns ``{order reference: id}`` of those written.

    On PostgreSQL the rows are streamed with ``COPY`` into a temporary table and moved with one
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: no model instances, no 60,000-parameter
    statement (the ORM path spent half the chunk building and binding it), and a purchase a
    concurrent backfill or live event wrote meanwhile is simply not ours to credit.
    """
    if not rows:
        return {}
    columns = ", ".join(PURCHASE_COLUMNS)
    if connection.vendor == "postgresql":
        table = Purchase._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE loyalty_backfill_purchase ON COMMIT DROP AS "
                f"SELECT {columns} FROM {table} WITH NO DATA"
            )
            with cursor.cursor.copy(f"COPY loyalty_backfill_purchase ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM loyalty_backfill_purchase "
                f"ON CONFLICT DO NOTHING RETURNING order_reference, id"
            )
            inserted = dict(cursor.fetchall())
            cursor.execute("DROP TABLE loyalty_backfill_purchase")  # inside an outer transaction, commit is later
            return inserted
    Purchase.objects.bulk_create(
        [Purchase(**dict(zip(PURCHASE_COLUMNS, row, strict=True))) for row in rows], ignore_conflicts=True
    )
    # Which of them this chunk wrote cannot be told apart portably: the references were not
    # recorded when the chunk started (under the members' locks), so they are taken as ours.
    return dict(
        Purchase.objects.filter(program=program, order_reference__in=[row[3] for row in rows]).values_list(
            "order_reference", "id"
        )
    )


def _insert_entries(entries: list[tuple]) -> None:
    if connection.vendor == "postgresql":
        columns = ", ".join(ENTRY_COLUMNS)
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {PointsEntry._meta.db_table} ({columns}) FROM STDIN") as copy:
                for entry in entries:
                    copy.write_row(entry)
        return
    PointsEntry.objects.bulk_create([PointsEntry(**dict(zip(ENTRY_COLUMNS, entry, strict=True))) for entry in entries])


class _Members(dict):
    """user id -> locked Member (id, balance, lifetime points, orders, last purchase)."""

    def items_by_id(self):
        return ((member.pk, member) for member in self.values())

    def by_id(self) -> dict[int, Member]:
        return {member.pk: member for member in self.values()}


def _locked_members(program: Program, user_ids) -> _Members:
    if not user_ids:
        return _Members()
    rows = (
        Member.objects.select_for_update()
        .filter(program=program, user_id__in=list(user_ids))
        .order_by("pk")  # always the same locking order: no deadlock between two backfills
        .only("id", "user_id", "balance", "lifetime_points", "orders_count", "last_purchase_at")
    )
    return _Members((member.user_id, member) for member in rows)


def _update_members(members: _Members, deltas: dict[int, list]) -> None:
    if not deltas:
        return
    if connection.vendor == "postgresql":
        values = ", ".join(["(%s, %s, %s, %s::timestamptz)"] * len(deltas))
        params = [
            value for member_id, (points, orders, last) in deltas.items() for value in (member_id, points, orders, last)
        ]
        table = Member._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {table} AS m
                   SET balance = m.balance + v.points,
                       lifetime_points = m.lifetime_points + v.points,
                       orders_count = m.orders_count + v.orders,
                       last_purchase_at = GREATEST(COALESCE(m.last_purchase_at, v.last), v.last)
                  FROM (VALUES {values}) AS v(id, points, orders, last)
                 WHERE m.id = v.id
                """,
                params,
            )
        return
    # Elsewhere: absolute values from the locked rows (bulk_update batches by the backend's limits).
    by_id = members.by_id()
    changed = []
    for member_id, (points, orders, last) in deltas.items():
        member = by_id[member_id]
        member.balance += points
        member.lifetime_points += points
        member.orders_count += orders
        if last is not None and (member.last_purchase_at is None or last > member.last_purchase_at):
            member.last_purchase_at = last
        changed.append(member)
    Member.objects.bulk_update(changed, ["balance", "lifetime_points", "orders_count", "last_purchase_at"])
