"""Order events from the shop: recorded in its transaction, processed in a savepoint.

``order_event_record`` is what the adapter's receivers call. The inbox row and all points
it causes are written in the shop's own transaction, inside a savepoint: if processing
fails, the savepoint is rolled back, the event is stored as ``failed`` with its error and
the shop's change (the payment, the refund) goes through untouched. A beat task retries.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from .. import signals
from ..adapters.base import EventKind, OrderEvent
from ..conf import loyalty_settings
from ..config_cache import program_config
from ..exceptions import InvalidEvent, NoProgram
from ..models import Member, PointsEntry, Program, Purchase
from ..models import OrderEvent as InboxEvent
from ..selectors import CANCELLED_NOTE
from . import award
from .campaigns import purchase_attribute
from .checkout_points import points_discount_order_cancelled, points_discount_order_refunded
from .codes import codes_used_by_paid_order
from .ledger import points_credit, points_debit
from .members import locked_member_for_event, member_for_order, program_for_event
from .pending import pending_add, pending_reduce_to, pending_until
from .rules import on_purchase_paid
from .tiers import tier_evaluate, tier_multiplier

logger = logging.getLogger("loyalty.events")
Status = InboxEvent.Status


class Skip(Exception):
    """The event is valid but there is nothing to do (stored as ``skipped`` with the reason)."""


class EventResult:
    """What :func:`order_event_record` did: the inbox row, and whether this call created it
    (``None`` in deferred mode: not known until a worker looks). On the lean path the row is
    built from what the statement returned, on first use (no query)."""

    __slots__ = ("_event", "_build", "created")

    def __init__(
        self, event: InboxEvent | None, created: bool | None, build: Callable[[], InboxEvent] | None = None
    ) -> None:
        self._event, self._build, self.created = event, build, created

    @property
    def event(self) -> InboxEvent | None:
        if self._event is None and self._build is not None:
            self._event, self._build = self._build(), None
        return self._event

    @property
    def status(self) -> str | None:
        return self.event.status if self.event else None

    def __repr__(self) -> str:
        return f"EventResult({self.event!r}, {self.created!r})"


def order_event_record(event: OrderEvent) -> EventResult:
    """Store the event once and apply it (now, or after commit by a worker: ``EVENT_PROCESSING``).

    Never raises for a loyalty failure. A ``paid`` event takes the lean path first
    (:func:`loyalty.services.award.award_paid_inline`: one statement on PostgreSQL); what that
    path does not cover is applied here with the ORM, in the same savepoint.
    """
    if loyalty_settings.EVENT_PROCESSING == "deferred":
        return _record_deferred(event)
    now = timezone.now()
    payload = event.to_payload()
    row: InboxEvent | None = None
    try:
        with transaction.atomic():
            if event.kind == EventKind.PAID and award.award_function_available():
                done = award.award_paid_inline(event, payload=payload, now=now)
                if done is not None:
                    if not done.applied:
                        raise _Duplicate()
                    return EventResult(None, True, build=done.build_inbox_row)
            row = _inbox_row(event, status=Status.PROCESSED, attempts=1, payload=payload, received_at=now)
            row.processed_at = now
            try:
                row.save(force_insert=True)
            except IntegrityError:
                raise _Duplicate() from None
            _apply(event, row)
        return EventResult(row, True)
    except _Duplicate:
        logger.info("Order event %s was already recorded; ignored.", event.event_id)
        return EventResult(InboxEvent.objects.filter(event_key=event.event_id).first(), False)
    except award.AwardFunctionMissing:
        return order_event_record(event)  # the savepoint is gone; the portable path this time
    except Exception as exc:  # a loyalty failure must never break the shop
        if row is None:
            row = _inbox_row(event, status=Status.PROCESSED, attempts=1, payload=payload, received_at=now)
        if (reason := _second_payment(event, exc)) is not None:
            return EventResult(_store_outside_savepoint(row, Status.SKIPPED, reason), True)
        logger.exception("Order event %s failed; stored for retry.", row.event_key)
        return EventResult(_store_outside_savepoint(row, Status.FAILED, _describe(exc)), True)


def _second_payment(event: OrderEvent, exc: Exception) -> str | None:
    """The reason to skip, when ``exc`` is a second "paid" for an order already recorded."""
    if not isinstance(exc, IntegrityError) or event.kind != EventKind.PAID:
        return None
    try:
        program = program_for_event(event)
    except NoProgram:
        return None
    if Purchase.objects.filter(program=program, order_reference=event.order_reference).exists():
        return f"Order {event.order_reference} was recorded as paid already."
    return None


def _describe(exc: Exception) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]


def _send_event_failed(row: InboxEvent) -> None:
    signals.send_on_commit(signals.event_failed, sender=InboxEvent, event=row, error=row.last_error)


class _Duplicate(Exception):
    pass


def _inbox_row(event: OrderEvent, **fields) -> InboxEvent:
    fields.setdefault("payload", event.to_payload())
    fields.setdefault("received_at", timezone.now())
    return InboxEvent(event_key=event.event_id, kind=event.kind, order_reference=event.order_reference, **fields)


_DEFERRED_INSERT = (
    "INSERT INTO loyalty_orderevent (event_key, kind, order_reference, payload, status, received_at, attempts, "
    "last_error) VALUES (%s, %s, %s, %s::jsonb, 'pending', %s, 0, '') ON CONFLICT (event_key) DO NOTHING"
)


def _record_deferred(event: OrderEvent) -> EventResult:
    """One ``INSERT ... ON CONFLICT DO NOTHING`` in the shop's transaction; a worker does the rest.

    The savepoint around it keeps a broken loyalty schema from aborting the shop's transaction.
    On PostgreSQL the statement is written out (no model instance, no ORM compilation: it runs
    in every checkout); the returned row is built only if the caller looks at it.
    """
    now = timezone.now()
    payload = event.to_payload()
    try:
        with transaction.atomic():
            if award.fast_path_available():
                with connection.cursor() as cursor:
                    cursor.execute(
                        _DEFERRED_INSERT, [event.event_id, event.kind, event.order_reference, json.dumps(payload), now]
                    )
            else:
                row = _inbox_row(event, status=Status.PENDING, payload=payload, received_at=now)
                InboxEvent.objects.bulk_create([row], ignore_conflicts=True)
    except DatabaseError:
        logger.exception("Order event %s could not be recorded; no points for it.", event.event_id)
        return EventResult(None, None)

    def build() -> InboxEvent:
        return _inbox_row(event, status=Status.PENDING, payload=payload, received_at=now)

    return EventResult(None, None, build=build)


def _apply(event: OrderEvent, row: InboxEvent) -> None:
    """Apply the event; a :class:`Skip` is stored on ``row`` rather than raised."""
    try:
        if event.kind == EventKind.PAID:
            member = locked_member_for_event(event)
            if member is not None:
                award.program_remember(event, member.program)
                _paid(event, member.program, member=member)
                return
        program = program_for_event(event)
        if event.kind == EventKind.PAID:
            award.program_remember(event, program)
        handler = {EventKind.PAID: _paid, EventKind.REFUNDED: _refunded, EventKind.CANCELLED: _cancelled}
        handler[event.kind](event, program)
    except (Skip, NoProgram) as reason:
        row.status = Status.SKIPPED
        row.last_error = str(reason)
        InboxEvent.objects.filter(pk=row.pk).update(status=row.status, last_error=row.last_error)


def _store_outside_savepoint(row: InboxEvent, status: str, reason: str) -> InboxEvent | None:
    """Keep the event after its savepoint was rolled back; never raises into the shop."""
    row.pk, row.status, row.processed_at, row.last_error = None, status, None, reason
    if status == Status.SKIPPED:
        row.processed_at = timezone.now()
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except DatabaseError:
        logger.exception("Order event %s could not even be stored.", row.event_key)
        return None
    if status == Status.FAILED:
        _send_event_failed(row)
    return row


# --- the three kinds of events ------------------------------------------------------------


def _paid(event: OrderEvent, program: Program, member: Member | None = None) -> None:
    # A second "paid" for the same order under another event id trips the unique constraint
    # on Purchase; ``order_event_record`` then stores it as skipped (see ``_second_payment``).
    if member is None:
        member = member_for_order(program=program, user_id=event.user_id, at=event.occurred_at)
    points = 0
    if member is not None:
        member.program = program
        campaign = program_config(program).campaign_multiplier(amount=event.amount, at=event.occurred_at)
        points = program.points_for(event.amount, multiplier=tier_multiplier(member) * campaign)
    purchase = Purchase.objects.create(
        program=program,
        member=member,
        email=event.email,
        order_reference=event.order_reference,
        amount=event.amount,
        currency=event.currency,
        occurred_at=event.occurred_at,
        points_earned=points,
        category=event.category,
    )
    codes_used_by_paid_order(event=event, program=program)
    if member is None:
        return
    purchase_attribute(purchase=purchase)  # a campaign email (or its control row) may have brought it
    first = member.orders_count == 0
    paid_at = Value(event.occurred_at)
    activity = {
        "orders_count": F("orders_count") + 1,
        "last_purchase_at": Greatest(Coalesce(F("last_purchase_at"), paid_at), paid_at),
    }
    pending = bool(points) and pending_until(program, event.occurred_at) is not None
    if pending:
        pending_add(member=member, purchase=purchase, member_updates=activity)
    elif points:
        earn_for_purchase(purchase=purchase, within_event=True, member_updates=activity)
    else:
        Member.objects.filter(pk=member.pk).update(**activity)
    member.orders_count += 1
    if not pending:
        # With an approval period, bonuses this order triggers (first purchase, referral)
        # wait for its approval too: a refund inside the return window then cancels them.
        on_purchase_paid(member=member, purchase=purchase, first=first)
    if program_config(program).tiers:
        tier_evaluate(member=member, at=event.occurred_at, upgrades_only=True)


def earn_for_purchase(
    *, purchase: Purchase, within_event: bool = False, member_updates: dict | None = None, at=None
) -> PointsEntry:
    """Credit ``purchase.points_earned`` (``floor(amount x rate)``) to the purchase's member.

    Idempotent by the key ``purchase:<order>:earn``. ``within_event``: called while
    processing the order event, which already holds the member's lock and a unique inbox
    row, so neither a second lock nor a guarded insert is needed.
    """
    return points_credit(
        member=purchase.member,
        points=purchase.points_earned,
        kind=PointsEntry.Kind.EARN,
        idempotency_key=f"purchase:{purchase.order_reference}:earn",
        reference=purchase.order_reference,
        purchase=purchase,
        at=at or purchase.occurred_at,
        locked=within_event,
        guarded=not within_event,
        member_updates=member_updates,
    )


def _locked_purchase(event: OrderEvent, program: Program, missing: str) -> Purchase:
    purchase = (
        Purchase.objects.select_for_update().filter(program=program, order_reference=event.order_reference).first()
    )
    if purchase is None:
        raise Skip(missing % {"order": event.order_reference})
    return purchase


def _refunded(event: OrderEvent, program: Program) -> None:
    purchase = _locked_purchase(event, program, "No paid purchase %(order)s is known: nothing to take back.")
    if purchase.status == Purchase.Status.CANCELLED:
        raise Skip(f"Purchase {purchase.order_reference} was cancelled already.")
    purchase.refunded_amount = min(purchase.amount, purchase.refunded_amount + event.amount)
    fully = purchase.refunded_amount >= purchase.amount
    purchase.status = Purchase.Status.REFUNDED if fully else Purchase.Status.PARTIALLY_REFUNDED
    target = purchase.points_earned if fully else _pro_rata(purchase)
    _reverse_to(purchase, target, event)
    points_discount_order_refunded(purchase=purchase, at=event.occurred_at)


def _cancelled(event: OrderEvent, program: Program) -> None:
    # Points used at checkout come back first: an unpaid order has no purchase, but may hold a code.
    points_discount_order_cancelled(
        program=program, order_reference=event.order_reference, codes=event.discount_codes, at=event.occurred_at
    )
    purchase = _locked_purchase(event, program, "Order %(order)s was cancelled before it was paid: no points involved.")
    purchase.status = Purchase.Status.CANCELLED
    _reverse_to(purchase, purchase.points_earned, event)


def _pro_rata(purchase: Purchase) -> int:
    """Points to have taken back after refunds so far: cumulative, so rounding never drifts."""
    if purchase.amount <= 0:
        return 0
    share = Decimal(purchase.points_earned) * purchase.refunded_amount / purchase.amount
    return int(share.to_integral_value(rounding=ROUND_FLOOR))


def _reversal_description(event: OrderEvent, forgiven: int) -> str:
    parts = [CANCELLED_NOTE] if event.kind == EventKind.CANCELLED else []
    if forgiven:
        parts.append(f"{forgiven} points forgiven (already spent)")
    return "; ".join(parts)


def _reverse_to(purchase: Purchase, target: int, event: OrderEvent) -> None:
    """Bring ``points_reversed`` up to ``target``, following the programme's negative-balance policy."""
    owed = target - purchase.points_reversed
    if owed > 0 and purchase.member_id is not None and pending_reduce_to(purchase, purchase.points_earned - target):
        owed = 0  # the points were still pending: cancelled there, no ledger entry needed
    if owed > 0 and purchase.member_id is not None:
        member = Member.objects.select_for_update().select_related("program").get(pk=purchase.member_id)
        program = member.program
        allow_negative = program.negative_balance_policy == Program.NegativeBalancePolicy.ALLOW
        taken = owed if allow_negative else min(owed, max(member.balance, 0))
        forgiven = owed - taken
        if taken > 0:
            earn_lot = purchase.entries.filter(kind=PointsEntry.Kind.EARN).only("id").first()
            points_debit(
                member=member,
                points=taken,
                kind=PointsEntry.Kind.REVERSE,
                idempotency_key=f"{event.event_id}:reverse",
                reference=purchase.order_reference,
                description=_reversal_description(event, forgiven),
                purchase=purchase,
                at=event.occurred_at,
                allow_negative=allow_negative,
                prefer_lot=earn_lot,
                reduces_lifetime=True,
                locked=True,
                guarded=False,
            )
        if forgiven:
            logger.info("Purchase %s: %s points forgiven by policy.", purchase.order_reference, forgiven)
    purchase.points_reversed = max(purchase.points_reversed, target)
    purchase.save(update_fields=["refunded_amount", "status", "points_reversed"])


# --- retries ---------------------------------------------------------------------------------


def event_retry(*, event: InboxEvent) -> InboxEvent:
    """Process a stored event that is not processed yet; returns it with its new status.

    Pending, failed, skipped and given-up events can all be (re)tried; a processed one is
    returned untouched, so calling this twice never applies an event twice.
    """
    with transaction.atomic():
        row = InboxEvent.objects.select_for_update().filter(pk=event.pk).first()
        if row is None or row.status == Status.PROCESSED:
            return row or event
        try:
            order_event = OrderEvent.from_payload(row.payload)
            with transaction.atomic():
                row.status = Status.PROCESSED
                row.last_error = ""
                _apply(order_event, row)
        except InvalidEvent as exc:
            row.status, row.last_error = Status.GAVE_UP, str(exc)
        except Exception as exc:
            if (reason := _second_payment(order_event, exc)) is not None:
                row.status, row.last_error = Status.SKIPPED, reason
            else:
                logger.exception("Processing of order event %s failed.", row.event_key)
                row.last_error = _describe(exc)
                last_try = row.attempts + 1 >= loyalty_settings.EVENT_MAX_ATTEMPTS
                row.status = Status.GAVE_UP if last_try else Status.FAILED
        row.attempts += 1
        row.processed_at = timezone.now() if row.status in (Status.PROCESSED, Status.SKIPPED) else None
        row.save(update_fields=["status", "last_error", "attempts", "processed_at"])
        if row.status in (Status.FAILED, Status.GAVE_UP):
            _send_event_failed(row)
        return row


def events_process_pending(*, limit: int | None = None) -> dict[str, int]:
    """Apply events recorded in deferred mode, oldest first, a bounded batch per call.

    On PostgreSQL the batch is claimed with ``SKIP LOCKED`` and applied set-based
    (:mod:`loyalty.services.award_batch`); elsewhere event by event.
    """
    if award.fast_path_available():
        from .award_batch import events_apply_batch

        return events_apply_batch(limit=limit or loyalty_settings.EVENT_BATCH_SIZE)
    return _process_batch(Q(status=Status.PENDING), limit)


def events_retry_unprocessed(*, limit: int | None = None) -> dict[str, int]:
    """Retry failed events (and deferred ones whose task was lost), oldest first, a bounded batch.

    Returns counts by outcome.
    """
    stale = timezone.now() - timedelta(seconds=loyalty_settings.EVENT_PENDING_GRACE_SECONDS)
    due = Q(status=Status.FAILED) | Q(status=Status.PENDING, received_at__lt=stale)
    return _process_batch(due, limit)


def _process_batch(due: Q, limit: int | None) -> dict[str, int]:
    limit = limit or loyalty_settings.EVENT_BATCH_SIZE
    ids = list(InboxEvent.objects.filter(due).order_by("received_at", "id").values_list("id", flat=True)[:limit])
    counts: dict[str, int] = {}
    for event in InboxEvent.objects.filter(id__in=ids).order_by("received_at", "id"):
        status = event_retry(event=event).status
        counts[status] = counts.get(status, 0) + 1
    return counts
