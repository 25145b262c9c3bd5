"""The lean award path: a paid order's points in one statement on PostgreSQL.

``record_order_event`` (inline, the default) first offers a ``paid`` event to
:func:`award_paid_inline`. On PostgreSQL, a returning member's payment (or a guest's) is then
applied with **one statement** of data-modifying CTEs, inside the caller's savepoint:

- lock the member (``FOR UPDATE``);
- insert the inbox row (``ON CONFLICT (event_key) DO NOTHING``: a second delivery writes nothing);
- insert the purchase, then the earn lot (or the pending points of an approval period);
- update the member's balance, lifetime points (or pending points) and activity counters;
- credit the campaign message that brought the order, if one did (attribution);
- read what tier evaluation needs: the member's qualifying spend or points in each window,
  only for members below the top tier.

What the statement needs to know about the programme (its rate, multipliers, tiers, approval
period, lot lifetime) comes from the per-process config cache (``config_cache``), and the
statement checks that this knowledge is current (``config_changed_at`` and the fields it uses):
when it is not, or when the order needs work that is not in the statement (a customer who is
not a member yet, a first order that pays a bonus or completes a referral), it writes nothing
and returns ``None``; the caller then takes the portable path (``events._apply``), which writes
the same rows with the ORM on any database. Tier changes are made by ``tier_evaluate``, called
only when the order's spend or points cross a threshold of a higher tier.

Deferred events are applied in batches by :mod:`loyalty.services.award_batch`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction

from .. import signals
from ..adapters.base import OrderEvent
from ..conf import loyalty_settings
from ..config_cache import ProgramConfig, paying_rules, program_config
from ..models import EarningRule, Member, PointsEntry, Program, Tier
from ..models import OrderEvent as InboxEvent
from ..selectors import TIER_ENTRY_KEY_PREFIX
from .campaigns import ATTRIBUTION_CANDIDATES
from .pending import pending_until
from .tiers import _decide

#: Vendors with the one-statement path; others take the portable path (same rows).
FAST_VENDORS = frozenset({"postgresql"})

_SPEND, _POINTS = Tier.QualifiesBy.SPEND, Tier.QualifiesBy.POINTS
_MEMBER_COLUMNS = tuple(f.column for f in Member._meta.concrete_fields)
_MEMBER_ATTNAMES = tuple(f.attname for f in Member._meta.concrete_fields)


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


def fast_path_available() -> bool:
    return connection.vendor in FAST_VENDORS


# --- what a paid order earns (shared by the inline statement and the deferred batches) --------


def points_by_tier(program: Program, config: ProgramConfig, event: OrderEvent) -> tuple[int, dict[int, int]]:
    """Points of the order without a tier, and for a member of each tier (tier and campaign
    multipliers, rounded down once: ``Program.points_for``, as the portable path computes them)."""
    campaign = config.campaign_multiplier(amount=event.amount, at=event.occurred_at)
    base = program.points_for(event.amount, multiplier=Decimal("1") * campaign)
    return base, {
        tier.pk: program.points_for(event.amount, multiplier=tier.multiplier * campaign) for tier in config.tiers
    }


def lot_expiry(program: Program, at: datetime) -> datetime | None:
    """``expires_at`` of a lot credited at ``at`` (as ``points_credit`` sets it)."""
    if program.expiry_policy != Program.ExpiryPolicy.PER_LOT or not program.points_lifetime_days:
        return None
    return at + timedelta(days=program.points_lifetime_days)


def first_order_pays(program: Program, event: OrderEvent) -> bool:
    """Whether a member's first order would pay a first-purchase bonus rule."""
    return bool(paying_rules(program, EarningRule.Kind.FIRST_PURCHASE, event.occurred_at, event.amount))


def qualification_keys(config: ProgramConfig) -> list[tuple[str, int, int]]:
    """``(qualifies_by, window_days, highest rank using it)`` for each window the tiers use."""
    best: dict[tuple[str, int], int] = {}
    for tier in config.tiers:
        key = (tier.qualifies_by, tier.window_days)
        best[key] = max(best.get(key, tier.rank), tier.rank)
    return [(kind, days, rank) for (kind, days), rank in sorted(best.items())]


def tier_crossed(
    config: ProgramConfig,
    *,
    tier_id: int | None,
    before: dict[tuple[str, int], Decimal | int],
    at: datetime,
    spend: Decimal,
    points: int,
) -> bool:
    """Whether adding this order (``spend``, approved ``points``) to the qualifying values
    ``before`` it reaches a higher tier (the decision ``tier_evaluate`` would take)."""
    current = config.tier_by_id(tier_id)
    higher = [t for t in config.tiers if current is None or t.rank > current.rank]
    if not higher:
        return False
    values: dict[tuple[str, int], Decimal | int] = {}
    for tier in higher:
        key = (tier.qualifies_by, tier.window_days)
        if key in values:
            continue
        value = before.get(key)
        if value is None:
            return True  # not measured: let tier_evaluate decide
        if tier.window_days > 0:  # the order is inside its own window (at - days, at]
            value = value + (spend if tier.qualifies_by == _SPEND else points)
        values[key] = value
    return _decide(tiers=higher, current=current, values=values, upgrades_only=True) is not None


# --- the statement ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    sql: str
    keys: tuple[tuple[str, int], ...] = ()  # the qualification columns q0, q1... in order


_statements: dict[tuple, _Statement] = {}


def _guard(by_slug: bool) -> str:
    resolution = (
        "p.slug = %(slug)s"
        if by_slug
        else (
            "p.id = (SELECT q.id FROM loyalty_program q WHERE q.is_active AND q.currency = %(currency)s "
            "ORDER BY q.id LIMIT 1)"
        )
    )
    return f"""ok AS (
    SELECT p.id FROM loyalty_program p
    WHERE p.id = %(program_id)s AND p.is_active AND p.currency = %(currency)s
      AND p.config_changed_at = %(version)s AND p.points_per_unit = %(rate)s
      AND p.pending_days = %(pending_days)s AND p.points_lifetime_days IS NOT DISTINCT FROM %(lifetime)s
      AND p.expiry_policy = %(expiry_policy)s AND p.email_points_earned = %(email_earned)s
      AND {resolution}
)"""


_INBOX_INSERT = """ins_event AS (
    INSERT INTO loyalty_orderevent
        (event_key, kind, order_reference, payload, status, received_at, processed_at, attempts, last_error)
    SELECT %(event_key)s, %(kind)s, %(reference)s, %(payload)s::jsonb, 'processed', %(now)s, %(now)s, 1, ''
    FROM {source}
    ON CONFLICT (event_key) DO NOTHING
    RETURNING id
)"""

_PURCHASE_INSERT = """ins_purchase AS (
    INSERT INTO loyalty_purchase
        (program_id, member_id, email, order_reference, amount, refunded_amount, currency, status,
         points_earned, points_reversed, occurred_at, category)
    SELECT %(program_id)s, {member}, %(email)s, %(reference)s, %(amount)s, 0, %(currency)s, 'paid',
           {points}, 0, %(at)s, %(category)s
    FROM {source}
    RETURNING id
)"""


def _guest_statement(by_slug: bool) -> _Statement:
    key = ("guest", by_slug)
    if (cached := _statements.get(key)) is None:
        sql = (
            f"WITH {_guard(by_slug)},\n"
            f"{_INBOX_INSERT.format(source='ok')},\n"
            f"{_PURCHASE_INSERT.format(member='NULL', points='0', source='ins_event')}\n"
            "SELECT (SELECT count(*) FROM ok), (SELECT id FROM ins_event), (SELECT id FROM ins_purchase)"
        )
        cached = _statements[key] = _Statement(sql)
    return cached


def _member_statement(program: Program, config: ProgramConfig, by_slug: bool) -> _Statement:
    key = ("member", program.pk, program.config_changed_at, by_slug)
    if (cached := _statements.get(key)) is not None:
        return cached
    tiers = config.tiers
    if tiers:
        whens = " ".join(f"WHEN {int(t.pk)} THEN %(points_{int(t.pk)})s" for t in tiers)
        points = f"CASE m.tier_id {whens} ELSE %(points)s END"
        ranks = " ".join(f"WHEN {int(t.pk)} THEN {int(t.rank)}" for t in tiers)
        rank = f"COALESCE(CASE m.tier_id {ranks} END, -1)"
    else:
        points, rank = "%(points)s", "-1"
    columns, keys = [], []
    for index, (kind, days, highest) in enumerate(qualification_keys(config)):
        if kind == _SPEND:
            total = (
                "SELECT COALESCE(SUM(pu.amount - pu.refunded_amount), 0) FROM loyalty_purchase pu "
                f"WHERE pu.member_id = m.id AND pu.occurred_at > %(from_{index})s AND pu.occurred_at <= %(at)s "
                "AND pu.status <> 'cancelled'"
            )
        else:
            total = (
                "SELECT COALESCE(SUM(en.points), 0) FROM loyalty_pointsentry en "
                f"WHERE en.member_id = m.id AND en.created_at > %(from_{index})s AND en.created_at <= %(at)s "
                "AND en.kind IN ('earn', 'bonus', 'reverse') AND en.idempotency_key NOT LIKE %(tier_entry)s"
            )
        # Measured only when a tier using this window ranks above the member's current one.
        columns.append(f"CASE WHEN {rank} < {int(highest)} THEN ({total}) END AS q{index}")
        keys.append((kind, days))
    qualification = "".join(f", {column}" for column in columns)
    # With tiers: the member as the statement's snapshot saw it, to notice a payment of the same
    # member that committed while this one waited for the lock (its rows are not in the sums).
    if tiers:
        seen, seen_join = (
            "s.orders_count AS seen_orders, s.balance AS seen_balance",
            " JOIN loyalty_member s ON s.id = m.id",
        )
    else:
        seen, seen_join = "NULL AS seen_orders, NULL AS seen_balance", ""
    member_columns = ", ".join(f"u.{column}" for column in _MEMBER_COLUMNS)
    returning = ", ".join(f"mb.{column}" for column in _MEMBER_COLUMNS)
    sql = f"""WITH {_guard(by_slug)},
m AS (
    SELECT mb.id, mb.balance, mb.tier_id, mb.orders_count FROM loyalty_member mb
    WHERE mb.program_id = (SELECT id FROM ok) AND mb.user_id = %(user_id)s
    FOR UPDATE
),
go AS (
    SELECT m.id, m.balance, m.tier_id, m.orders_count, {points} AS points,
           {seen}{qualification}
    FROM m{seen_join}
    WHERE NOT (m.orders_count = 0 AND NOT ({points} > 0 AND %(held)s)
               AND (%(first_pays)s OR EXISTS (
                   SELECT 1 FROM loyalty_referral r WHERE r.friend_id = m.id AND r.status = 'pending')))
),
{_INBOX_INSERT.format(source="go")},
{_PURCHASE_INSERT.format(member="go.id", points="go.points", source="go, ins_event")},
ins_entry AS (
    INSERT INTO loyalty_pointsentry
        (program_id, member_id, kind, points, remaining, expires_at, idempotency_key, reference,
         description, purchase_id, created_at)
    SELECT %(program_id)s, go.id, 'earn', go.points, GREATEST(0, LEAST(go.points, go.points + go.balance)),
           %(expires_at)s, %(earn_key)s, %(reference)s, '', p.id, %(at)s
    FROM go, ins_purchase p
    WHERE go.points > 0 AND NOT %(held)s
    RETURNING id, remaining
),
ins_pending AS (
    INSERT INTO loyalty_pendingpoints (program_id, member_id, purchase_id, points, approve_at, status)
    SELECT %(program_id)s, go.id, p.id, go.points, %(approve_at)s, 'pending'
    FROM go, ins_purchase p
    WHERE go.points > 0 AND %(held)s
    RETURNING id
),
upd_member AS (
    UPDATE loyalty_member mb SET
        balance = mb.balance + d.earned,
        lifetime_points = mb.lifetime_points + d.earned,
        pending_points = mb.pending_points + d.held,
        orders_count = mb.orders_count + 1,
        last_purchase_at = GREATEST(COALESCE(mb.last_purchase_at, %(at)s), %(at)s)
    FROM (
        SELECT go.id,
               CASE WHEN go.points > 0 AND NOT %(held)s THEN go.points ELSE 0 END AS earned,
               CASE WHEN go.points > 0 AND %(held)s THEN go.points ELSE 0 END AS held
        FROM go, ins_purchase
    ) d
    WHERE mb.id = d.id
    RETURNING {returning}
),
attributed AS (
    UPDATE loyalty_message msg
    SET converted_at = %(at)s, conversion_purchase_id = p.id, revenue = %(amount)s
    FROM go, ins_purchase p
    WHERE msg.converted_at IS NULL AND msg.id = (
        SELECT c.id FROM (
            SELECT mm.id, CASE WHEN mm.status = 'sent' THEN mm.sent_at ELSE mm.created_at END AS started,
                   cp.attribution_days
            FROM loyalty_message mm JOIN loyalty_campaign cp ON cp.id = mm.campaign_id
            WHERE mm.member_id = go.id AND mm.status IN ('sent', 'control') AND mm.converted_at IS NULL
              AND CASE WHEN mm.status = 'sent' THEN mm.sent_at ELSE mm.created_at END <= %(at)s
            ORDER BY started DESC, mm.id DESC
            LIMIT {int(ATTRIBUTION_CANDIDATES)}
        ) c
        WHERE %(at)s <= c.started + c.attribution_days * INTERVAL '1 day'
        ORDER BY c.started DESC, c.id DESC
        LIMIT 1
    )
    RETURNING msg.id
)
SELECT go.id, e.id, p.id, en.id, en.remaining, pp.id, go.points, go.tier_id, go.orders_count, go.balance,
       go.seen_orders, go.seen_balance{"".join(f", go.q{i}" for i in range(len(keys)))}, {member_columns}
FROM (SELECT 1) one
LEFT JOIN go ON true
LEFT JOIN ins_event e ON true
LEFT JOIN ins_purchase p ON true
LEFT JOIN ins_entry en ON true
LEFT JOIN ins_pending pp ON true
LEFT JOIN upd_member u ON true"""
    cached = _statements[key] = _Statement(sql, tuple(keys))
    return cached


# --- inline --------------------------------------------------------------------------------------


@dataclass
class InlineAward:
    """What the statement did: ``applied`` (rows written) or ``duplicate`` (the event_key existed)."""

    applied: bool
    inbox_id: int | None = None
    purchase_id: int | None = None
    build_inbox_row: Callable[[], InboxEvent] | None = field(default=None, repr=False)


def award_paid_inline(event: OrderEvent, *, payload: dict, now: datetime) -> InlineAward | None:
    """Apply a ``paid`` event with one statement; ``None`` when the portable path must.

    Called inside the savepoint of ``record_order_event``; raises what the statement raises
    (the unique constraint on ``Purchase`` for a second payment of an order, say), which the
    caller handles as for the portable path.
    """
    program = _programs.get(_program_key(event))
    if program is None or getattr(event, "discount_codes", None):
        # Codes the order used (when the adapter reports them) are settled by the portable path.
        return None
    config = program_config(program)  # no query while the programme is unchanged
    by_slug = _program_key(event)[0] is not None
    approve_at = pending_until(program, event.occurred_at)
    params = {
        "program_id": program.pk,
        "currency": event.currency,
        "slug": _program_key(event)[0],
        "version": program.config_changed_at,
        "rate": program.points_per_unit,
        "pending_days": program.pending_days,
        "lifetime": program.points_lifetime_days,
        "expiry_policy": program.expiry_policy,
        "email_earned": program.email_points_earned,
        "event_key": event.event_id,
        "kind": event.kind,
        "reference": event.order_reference,
        "payload": json.dumps(payload),
        "now": now,
        "email": event.email,
        "amount": event.amount,
        "at": event.occurred_at,
        "category": event.category,
    }
    guest = event.user_id is None
    if guest:
        statement = _guest_statement(by_slug)
    else:
        statement = _member_statement(program, config, by_slug)
        base, by_tier = points_by_tier(program, config, event)
        params.update(
            user_id=event.user_id,
            points=base,
            held=approve_at is not None,
            approve_at=approve_at,
            first_pays=first_order_pays(program, event),
            expires_at=lot_expiry(program, event.occurred_at),
            earn_key=f"purchase:{event.order_reference}:earn",
            tier_entry=f"{TIER_ENTRY_KEY_PREFIX}%",
        )
        params.update({f"points_{tier_id}": points for tier_id, points in by_tier.items()})
        for index, (_kind, days) in enumerate(statement.keys):
            params[f"from_{index}"] = event.occurred_at - timedelta(days=days)
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, params)
        row = cursor.fetchone()

    if guest:
        found, inbox_id, purchase_id = row
        if not found:
            return None
        if inbox_id is None:
            return InlineAward(applied=False)
        return InlineAward(True, inbox_id, purchase_id, _inbox_builder(event, payload, now, inbox_id))

    member_id, inbox_id, purchase_id, entry_id, remaining, pending_id, points, tier_id, orders, balance = row[:10]
    seen_orders, seen_balance = row[10:12]
    qualified = row[12 : 12 + len(statement.keys)]
    member_row = row[12 + len(statement.keys) :]
    if member_id is None:
        return None  # not a member yet, a first order with work to do, or the cache is stale
    if inbox_id is None:
        return InlineAward(applied=False)

    holder = _MemberHolder(member_row, program)
    if entry_id is not None:
        _points_awarded_on_commit(holder, event, program, entry_id, points, remaining, purchase_id)
    if pending_id is None and points > 0 and program.email_points_earned:
        _points_earned_email(holder.member, event, purchase_id, points)
    if config.tiers:
        concurrent = (seen_orders, seen_balance) != (orders, balance)
        crossed = concurrent or tier_crossed(
            config,
            tier_id=tier_id,
            before=dict(zip(statement.keys, qualified, strict=True)),
            at=event.occurred_at,
            spend=event.amount,
            points=points if entry_id is not None else 0,
        )
        if crossed:
            from .tiers import tier_evaluate

            tier_evaluate(member=holder.member, at=event.occurred_at, upgrades_only=True)
    return InlineAward(True, inbox_id, purchase_id, _inbox_builder(event, payload, now, inbox_id))


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
