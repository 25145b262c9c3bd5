"""The lean award path: a paid order's points in one statement on PostgreSQL.

``order_event_record`` (inline, the default) first offers a ``paid`` event to
:func:`award_paid_inline`. On PostgreSQL, a returning member's payment (or a guest's) is then
applied with **one statement**, ``SELECT ... FROM loyalty_award_paid_v1(...)``, inside the
caller's savepoint. The PL/pgSQL function (migration 0014) runs, on the server:

- check the programme knowledge the process sent (below);
- lock the member (``FOR UPDATE``);
- read what tier evaluation needs: the member's qualifying spend or points in each window,
  only for windows a tier above the member's uses (after the lock, so a payment of the same
  member that committed meanwhile counts);
- insert the inbox row (``ON CONFLICT (event_key) DO NOTHING``: a second delivery writes nothing);
- insert the purchase, then the earn lot (or the pending points of an approval period);
- update the member's balance, lifetime points (or pending points) and activity counters;
- credit the campaign message that brought the order, if one did (attribution).

Why a function: PostgreSQL plans the statements of a function once per connection and reuses
the plans, where the same work sent as one long statement of data-modifying CTEs was parsed
and planned on every call (about 1.5 ms here, more than its execution); and the call is short
text, which the driver parses once. It needs no prepared statements, so it works behind any
connection pooler.

What the function needs to know about the programme (its rate, multipliers, tiers, approval
period, lot lifetime) comes from the per-process config cache (``config_cache``), and the
function checks that this knowledge is current (``config_changed_at`` and the fields it uses):
when it is not, or when the order needs work that is not in the function (a customer who is
not a member yet, a first order that pays a bonus or completes a referral), it writes nothing
and answers ``portable``; the caller then takes the portable path (``events._apply``), which
writes the same rows with the ORM on any database. Tier changes are made by ``tier_evaluate``,
called only when the order's spend or points cross a threshold of a higher tier.

Deferred events are applied in batches by :mod:`loyalty.services.award_batch`.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction

from .. import signals
from ..adapters.base import OrderEvent
from ..conf import loyalty_settings
from ..config_cache import ProgramConfig, program_config
from ..models import Member, PointsEntry, Program, Tier
from ..models import OrderEvent as InboxEvent
from ..selectors import TIER_ENTRY_KEY_PREFIX
from .campaigns import ATTRIBUTION_CANDIDATES
from .order_points import first_order_pays, lot_expiry, points_by_tier, qualification_keys, tier_crossed
from .pending import pending_until

#: Vendors with the one-statement path; others take the portable path (same rows).
FAST_VENDORS = frozenset({"postgresql"})

_SPEND, _POINTS = Tier.QualifiesBy.SPEND, Tier.QualifiesBy.POINTS
_MEMBER_COLUMNS = tuple(f.column for f in Member._meta.concrete_fields)
_MEMBER_ATTNAMES = tuple(f.attname for f in Member._meta.concrete_fields)
_TIER_ENTRY_PATTERN = f"{TIER_ENTRY_KEY_PREFIX}%"


# --- which programme: remembered per process, checked by the statement ------------------------

ProgramKey = tuple[str | None, str]
_programs: dict[ProgramKey, Program] = {}


def _program_key(event: OrderEvent) -> ProgramKey:
    return (event.program or loyalty_settings.DEFAULT_PROGRAM or None, event.currency)


def program_remember(event: OrderEvent, program: Program) -> None:
    """Remember which programme events like ``event`` go to (the portable path found it)."""
    _programs[_program_key(event)] = program


def programs_forget() -> None:
    _programs.clear()


logger = logging.getLogger("loyalty.events")

#: After the database said the award function does not exist, the portable path is taken for
#: this long before the function is tried again (a ``migrate`` may have run meanwhile).
MISSING_FUNCTION_RETRY_SECONDS = 300
_function_missing_until = 0.0


class AwardFunctionMissing(Exception):
    """The database has no award function (migrations not applied, e.g. a test run with
    ``--no-migrations``): the caller rolls its savepoint back and takes the portable path."""


def fast_path_available() -> bool:
    return connection.vendor in FAST_VENDORS


def award_function_available() -> bool:
    """The inline award may call the function: PostgreSQL, and not found missing recently."""
    return connection.vendor in FAST_VENDORS and time.monotonic() >= _function_missing_until


def award_function_forget_missing() -> None:
    global _function_missing_until
    _function_missing_until = 0.0


def _undefined_function(exc: DatabaseError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "42883"  # undefined_function


# --- the call ---------------------------------------------------------------------------------------

#: The function (migration 0014) and the SQL types of its arguments, in order; ``None``: no cast
#: (the user's primary key, whatever type the user model has).
FUNCTION = "loyalty_award_paid_v1"
_ARGUMENTS = (
    ("program_id", "bigint"), ("slug", "text"), ("currency", "text"), ("version", "timestamptz"),
    ("rate", "numeric"), ("pending_days", "integer"), ("lifetime", "integer"), ("expiry_policy", "text"),
    ("email_earned", "boolean"), ("event_key", "text"), ("kind", "text"), ("reference", "text"),
    ("payload", "jsonb"), ("now", "timestamptz"), ("email", "text"), ("amount", "numeric"),
    ("at", "timestamptz"), ("category", "text"), ("user_id", None), ("points", "integer"),
    ("tier_ids", "bigint[]"), ("tier_points", "integer[]"), ("tier_ranks", "integer[]"), ("held", "boolean"),
    ("approve_at", "timestamptz"), ("first_pays", "boolean"), ("expires_at", "timestamptz"),
    ("earn_key", "text"), ("tier_entry", "text"), ("q_kinds", "text[]"), ("q_from", "timestamptz[]"),
    ("q_highest", "integer[]"), ("candidates", "integer"),
)  # fmt: skip
_CALL = (
    "SELECT r.o_outcome, r.o_inbox_id, r.o_purchase_id, r.o_entry_id, r.o_remaining, r.o_pending_id, "
    "r.o_points, r.o_tier_id, r.o_qualified, "
    + ", ".join(f"(r.o_member).{column}" for column in _MEMBER_COLUMNS)
    + f" FROM {FUNCTION}("
    + ", ".join("%s" if sql_type is None else f"%s::{sql_type}" for _name, sql_type in _ARGUMENTS)
    + ") r"
)


@dataclass(frozen=True)
class _Shape:
    """What the call needs to know about the programme's tiers (one per programme version)."""

    tier_ids: list[int]
    tier_ranks: list[int]
    keys: tuple[tuple[str, int], ...]  # the qualification windows, in the order of ``o_qualified``
    q_kinds: list[str]
    q_highest: list[int]


_shapes: dict[int, tuple[ProgramConfig, _Shape]] = {}


def _shape(program: Program, config: ProgramConfig) -> _Shape:
    # Keyed on the configuration object itself, not on the remembered programme's version: a tier
    # saved or deleted in this process replaces the configuration before the remembered programme
    # learns its new version, and the shape must list the tiers the points are computed for.
    cached = _shapes.get(program.pk)
    if cached is not None and cached[0] is config:
        return cached[1]
    windows = qualification_keys(config)
    shape = _Shape(
        tier_ids=[tier.pk for tier in config.tiers],
        tier_ranks=[tier.rank for tier in config.tiers],
        keys=tuple((kind, days) for kind, days, _rank in windows),
        q_kinds=[kind for kind, _days, _rank in windows],
        q_highest=[rank for _kind, _days, rank in windows],
    )
    _shapes[program.pk] = (config, shape)
    return shape


# --- inline --------------------------------------------------------------------------------------


@dataclass
class InlineAward:
    """What the call did: ``applied`` (rows written) or ``duplicate`` (the event_key existed)."""

    applied: bool
    inbox_id: int | None = None
    purchase_id: int | None = None
    build_inbox_row: Callable[[], InboxEvent] | None = field(default=None, repr=False)


def award_paid_inline(event: OrderEvent, *, payload: dict, now: datetime) -> InlineAward | None:
    """Apply a ``paid`` event with one call of the function; ``None`` when the portable path must.

    Called inside the savepoint of ``order_event_record``; raises what the function raises
    (the unique constraint on ``Purchase`` for a second payment of an order, say), which the
    caller handles as for the portable path.
    """
    key = _program_key(event)
    program = _programs.get(key)
    if program is None or event.discount_codes:
        # Codes the order used (when the adapter reports them) are settled by the portable path.
        return None
    config = program_config(program)  # no query while the programme is unchanged
    guest = event.user_id is None
    at = event.occurred_at
    values = {
        "program_id": program.pk, "slug": key[0], "currency": event.currency,
        "version": program.config_changed_at, "rate": program.points_per_unit,
        "pending_days": program.pending_days, "lifetime": program.points_lifetime_days,
        "expiry_policy": program.expiry_policy, "email_earned": program.email_points_earned,
        "event_key": event.event_id, "kind": event.kind, "reference": event.order_reference,
        "payload": json.dumps(payload), "now": now, "email": event.email, "amount": event.amount, "at": at,
        "category": event.category, "user_id": event.user_id, "candidates": ATTRIBUTION_CANDIDATES,
    }  # fmt: skip
    shape = None
    if not guest:
        shape = _shape(program, config)
        base, by_tier = points_by_tier(program, config, event)
        approve_at = pending_until(program, at)
        values.update(
            points=base, tier_ids=shape.tier_ids, tier_points=[by_tier[tier_id] for tier_id in shape.tier_ids],
            tier_ranks=shape.tier_ranks, held=approve_at is not None, approve_at=approve_at,
            first_pays=first_order_pays(program, event), expires_at=lot_expiry(program, at),
            earn_key=f"purchase:{event.order_reference}:earn", tier_entry=_TIER_ENTRY_PATTERN,
            q_kinds=shape.q_kinds, q_from=[at - timedelta(days=days) for _kind, days in shape.keys],
            q_highest=shape.q_highest,
        )  # fmt: skip
    params = [values.get(name) for name, _sql_type in _ARGUMENTS]  # a guest's: no member arguments
    with connection.cursor() as cursor:
        try:
            cursor.execute(_CALL, params)
        except DatabaseError as exc:
            if not _undefined_function(exc):
                raise
            global _function_missing_until
            _function_missing_until = time.monotonic() + MISSING_FUNCTION_RETRY_SECONDS
            logger.warning(
                "The database has no %s function (run `manage.py migrate`); paid orders take the "
                "portable award path for the next %s seconds.",
                FUNCTION,
                MISSING_FUNCTION_RETRY_SECONDS,
            )
            raise AwardFunctionMissing() from exc
        row = cursor.fetchone()

    outcome, inbox_id, purchase_id, entry_id, remaining, pending_id, points, tier_id, qualified = row[:9]
    if outcome == "portable":
        return None  # not a member yet, a first order with work to do, or the cache is stale
    if outcome == "duplicate":
        return InlineAward(applied=False)
    build = _inbox_builder(event, payload, now, inbox_id)
    if guest:
        return InlineAward(True, inbox_id, purchase_id, build)

    holder = _MemberHolder(row[9:], program)
    if entry_id is not None:
        _points_awarded_on_commit(holder, event, program, entry_id, points, remaining, purchase_id)
    if pending_id is None and points > 0 and program.email_points_earned:
        _points_earned_email(holder.member, event, purchase_id, points)
    if config.tiers:
        before = {
            (kind, days): value if value is None or kind == _SPEND else int(value)
            for (kind, days), value in zip(shape.keys, qualified, strict=True)
        }
        crossed = tier_crossed(
            config,
            tier_id=tier_id,
            before=before,
            at=at,
            spend=event.amount,
            points=points if entry_id is not None else 0,
        )
        if crossed:
            from .tiers import tier_evaluate

            tier_evaluate(member=holder.member, at=event.occurred_at, upgrades_only=True)
    return InlineAward(True, inbox_id, purchase_id, build)


class _MemberHolder:
    """The member as the statement left it, built into a ``Member`` only if something needs one."""

    def __init__(self, values, program: Program) -> None:
        self._values, self._program, self._member = values, program, None

    @property
    def member(self) -> Member:
        if self._member is None:
            member = Member(**dict(zip(_MEMBER_ATTNAMES, self._values, strict=True)))
            member._state.adding, member._state.db = False, connection.alias
            member.program = copy.copy(self._program)
            self._member = member
        return self._member


def _points_awarded_on_commit(holder, event, program, entry_id, points, remaining, purchase_id) -> None:
    """``points_awarded`` on commit, as ``points_credit`` sends it; the instances are built then,
    and only if someone listens."""

    def send() -> None:
        if not signals.points_awarded.has_listeners(Member):
            return
        member = holder.member
        entry = PointsEntry(
            pk=entry_id,
            program_id=program.pk,
            member=member,
            kind=PointsEntry.Kind.EARN,
            points=points,
            remaining=remaining,
            expires_at=lot_expiry(program, event.occurred_at),
            idempotency_key=f"purchase:{event.order_reference}:earn",
            reference=event.order_reference,
            purchase_id=purchase_id,
            created_at=event.occurred_at,
        )
        entry._state.adding, entry._state.db = False, connection.alias
        signals.send_now(signals.points_awarded, sender=Member, member=member, entry=entry)

    transaction.on_commit(send)


def _points_earned_email(member: Member, event: OrderEvent, purchase_id: int, points: int) -> None:
    from .notifications import member_email_queue

    member_email_queue(
        member=member,
        template="points_earned",
        key=f"points-earned:purchase:{purchase_id}",
        context={"points": points, "order": event.order_reference},
    )


def _inbox_builder(event: OrderEvent, payload: dict, now: datetime, inbox_id: int) -> Callable[[], InboxEvent]:
    def build() -> InboxEvent:
        row = InboxEvent(
            pk=inbox_id,
            event_key=event.event_id,
            kind=event.kind,
            order_reference=event.order_reference,
            payload=payload,
            status=InboxEvent.Status.PROCESSED,
            received_at=now,
            processed_at=now,
            attempts=1,
            last_error="",
        )
        row._state.adding, row._state.db = False, connection.alias
        return row

    return build
