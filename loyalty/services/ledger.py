"""The points ledger: the only code that writes ``PointsEntry`` rows and member balances.

Invariants (checked by ``manage.py loyalty_check_ledger``):
- ``member.balance == sum(entry.points)``;
- ``sum(lot.remaining) == max(member.balance, 0)``: debits consume credit lots, and a
  credit first pays back a negative balance.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import signals
from ..exceptions import InsufficientPoints, InvalidAdjustment
from ..models import Member, PointsEntry, Purchase
from .bulk import bulk_set

Kind = PointsEntry.Kind
CREDIT_KINDS = {Kind.EARN, Kind.BONUS, Kind.ADJUST}
DEBIT_KINDS = {Kind.REDEEM, Kind.REVERSE, Kind.EXPIRE, Kind.ADJUST}


def _existing(member: Member, key: str) -> PointsEntry | None:
    return PointsEntry.objects.filter(program_id=member.program_id, idempotency_key=key).first()


def _insert(entry: PointsEntry, *, guarded: bool) -> PointsEntry | None:
    """Insert the row; with ``guarded``, a duplicate key returns ``None`` instead of raising.

    Unguarded inserts are for callers that already hold a unique gate (the order-event
    inbox row), which saves a savepoint on the checkout path.
    """
    if not guarded:
        entry.save(force_insert=True)
        return entry
    try:
        with transaction.atomic():
            entry.save(force_insert=True)
    except IntegrityError:
        return None
    return entry


def _lock(member: Member) -> Member:
    return Member.objects.select_for_update().select_related("program").get(pk=member.pk)


def points_credit(
    *,
    member: Member,
    points: int,
    kind: str,
    idempotency_key: str,
    reference: str = "",
    description: str = "",
    purchase: Purchase | None = None,
    created_by=None,
    at: datetime | None = None,
    locked: bool = False,
    guarded: bool = True,
    member_updates: dict | None = None,
    earned: bool = True,
    expires_at: datetime | None = None,
) -> PointsEntry:
    """Add a lot of ``points`` (> 0). Called twice with the same key, it credits once.

    ``earned=False`` for points given back (an unused reward code): they are spendable
    again but do not count as points ever earned (``lifetime_points``). ``expires_at``
    overrides the programme's lot lifetime (a campaign bonus valid for 30 days).

    ``locked``: the caller already holds ``member`` with ``select_for_update`` and a current
    balance (as order processing does), so no second lock is taken. ``member_updates``:
    more member columns to set in the same ``UPDATE`` (saves a statement on checkout).
    """
    if kind not in CREDIT_KINDS:
        raise ValueError(f"{kind!r} is not a credit kind")
    if not isinstance(points, int) or points <= 0:
        raise ValueError("a credit needs a positive whole number of points")
    with transaction.atomic(savepoint=guarded):
        if not locked:
            member = _lock(member)
        if guarded and (entry := _existing(member, idempotency_key)) is not None:
            return entry
        at = at or timezone.now()
        per_lot = member.program.expiry_policy == member.program.ExpiryPolicy.PER_LOT
        lifetime = member.program.points_lifetime_days if per_lot else None
        entry = PointsEntry(
            program_id=member.program_id,
            member=member,
            kind=kind,
            points=points,
            # A negative balance (points spent, then refunded) is paid back first.
            remaining=max(0, min(points, points + member.balance)),
            expires_at=expires_at or (at + timedelta(days=lifetime) if lifetime else None),
            idempotency_key=idempotency_key,
            reference=reference,
            description=description,
            purchase=purchase,
            created_by=created_by,
            created_at=at,
        )
        if _insert(entry, guarded=guarded) is None:
            return _existing(member, idempotency_key)
        Member.objects.filter(pk=member.pk).update(
            balance=F("balance") + points,
            lifetime_points=F("lifetime_points") + (points if earned else 0),
            **(member_updates or {}),
        )
        member.balance += points
        member.lifetime_points += points if earned else 0
        signals.send_on_commit(signals.points_awarded, sender=Member, member=member, entry=entry)
        return entry


def points_debit(
    *,
    member: Member,
    points: int,
    kind: str,
    idempotency_key: str,
    reference: str = "",
    description: str = "",
    purchase: Purchase | None = None,
    created_by=None,
    at: datetime | None = None,
    allow_negative: bool = False,
    prefer_lot: PointsEntry | None = None,
    reduces_lifetime: bool = False,
    locked: bool = False,
    guarded: bool = True,
) -> PointsEntry:
    """Take ``points`` (> 0) from the member, consuming lots soonest-to-expire first.

    ``prefer_lot`` is consumed first (a refund takes back the order's own points before
    older ones). Without ``allow_negative`` a debit larger than the balance raises
    :class:`InsufficientPoints` and writes nothing.
    """
    if kind not in DEBIT_KINDS:
        raise ValueError(f"{kind!r} is not a debit kind")
    if not isinstance(points, int) or points <= 0:
        raise ValueError("a debit needs a positive whole number of points")
    with transaction.atomic(savepoint=guarded):
        if not locked:
            member = _lock(member)
        if guarded and (entry := _existing(member, idempotency_key)) is not None:
            return entry
        if points > member.balance and not allow_negative:
            raise InsufficientPoints(
                f"{member} has {member.balance} points, {points} were asked for.",
                extra={"balance": member.balance, "requested": points},
            )
        _consume_lots(member, min(points, max(member.balance, 0)), prefer_lot)
        entry = PointsEntry(
            program_id=member.program_id,
            member=member,
            kind=kind,
            points=-points,
            remaining=0,
            idempotency_key=idempotency_key,
            reference=reference,
            description=description,
            purchase=purchase,
            created_by=created_by,
            created_at=at or timezone.now(),
        )
        if _insert(entry, guarded=guarded) is None:
            # Lost a race with the same key: undo this attempt's lot updates.
            transaction.set_rollback(True)
            raise IntegrityError(f"points entry {idempotency_key!r} was written concurrently")
        lifetime_delta = points if reduces_lifetime else 0
        Member.objects.filter(pk=member.pk).update(
            balance=F("balance") - points, lifetime_points=F("lifetime_points") - lifetime_delta
        )
        member.balance -= points
        member.lifetime_points -= lifetime_delta
        signals.send_on_commit(signals.points_debited, sender=Member, member=member, entry=entry)
        return entry


def _consume_lots(member: Member, points: int, prefer_lot: PointsEntry | None) -> None:
    """Lower ``remaining`` on the member's open lots by ``points`` in total (a per-member walk)."""
    if points <= 0:
        return
    lots = list(PointsEntry.objects.filter(member=member).open_lots().only("id", "remaining"))
    if prefer_lot is not None:
        lots.sort(key=lambda lot: lot.pk != prefer_lot.pk)
    for lot in lots:
        take = min(lot.remaining, points)
        PointsEntry.objects.filter(pk=lot.pk).update(remaining=F("remaining") - take)
        points -= take
        if points == 0:
            return
    raise AssertionError(f"ledger of member {member.pk} has fewer open points than its balance")


def points_adjust(
    *,
    member: Member,
    points: int,
    reason: str,
    by=None,
    idempotency_key: str | None = None,
) -> PointsEntry:
    """A staff correction: ``points`` may be positive or negative, ``reason`` is required.

    A negative adjustment cannot take the balance below zero. ``by`` (the staff user) is held to
    the staff policy (``services.staff``): never their own membership, support agents within the
    per-adjustment limit and their daily total; refusals are ``StaffPolicyRefused`` errors. The
    same ``idempotency_key`` again returns the first entry with ``entry.replayed`` set, decided
    under the locks, so concurrent replays write once and each learns it was a replay.
    """
    from .staff import staff_check_daily_total, staff_check_member, staff_check_points, staff_lock_for_daily_total

    reason = (reason or "").strip()
    if not reason:
        raise InvalidAdjustment(_("Give a reason for the adjustment."))
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidAdjustment(_("Points must be a whole number other than zero."))
    if abs(points) > 10_000_000:
        raise InvalidAdjustment(_("That is more points than one adjustment may move."))
    staff_check_member(user=by, member=member)
    key = idempotency_key or f"adjust:{member.pk}:{timezone.now().timestamp():.6f}:{points}"
    common = {
        "kind": Kind.ADJUST,
        "idempotency_key": key,
        "description": reason[:255],
        "created_by": by if by is not None and getattr(by, "is_authenticated", False) else None,
    }
    with transaction.atomic():
        staff_lock_for_daily_total(by)  # lock order: the agent, then the member
        member = _lock(member)
        if (entry := _existing(member, key)) is not None:
            entry.replayed = True
            return entry
        staff_check_points(user=by, points=points)
        staff_check_daily_total(user=by, points=points)
        if points > 0:
            entry = points_credit(member=member, points=points, locked=True, **common)
        else:
            try:
                entry = points_debit(member=member, points=-points, locked=True, **common)
            except InsufficientPoints as exc:
                raise InsufficientPoints(
                    _("The balance is %(balance)d points; an adjustment cannot take it below zero.")
                    % {"balance": exc.extra["balance"]},
                    extra=exc.extra,
                ) from None
        entry.replayed = False
        return entry


@dataclass(frozen=True)
class Credit:
    """One credit for :func:`points_credit_many`."""

    member_id: int
    program_id: int
    points: int
    idempotency_key: str
    kind: str = Kind.BONUS
    reference: str = ""
    description: str = ""
    expires_at: datetime | None = None


def points_credit_many(*, credits: list[Credit], at: datetime | None = None) -> dict[str, PointsEntry]:
    """Credit many lots at once, with the same rules as :func:`points_credit`: a few statements
    whatever the number (lock the members, read the keys already in the ledger, insert, update
    the balances). A key already in the ledger credits nothing. Returns the new entries by key.

    For the outbox, which credits a campaign's bonus points together with the "sent" mark of a
    batch of emails. Members are locked in id order, as everywhere.
    """
    if not credits:
        return {}
    for credit in credits:
        if credit.kind not in CREDIT_KINDS or not isinstance(credit.points, int) or credit.points <= 0:
            raise ValueError(f"not a valid credit: {credit!r}")
    at = at or timezone.now()
    with transaction.atomic(savepoint=False):
        members = {
            m.pk: m
            for m in Member.objects.select_for_update()
            .filter(pk__in={c.member_id for c in credits})
            .order_by("pk")
            .only("pk", "balance", "lifetime_points", "program_id")
        }
        keys = [c.idempotency_key for c in credits]
        taken = set(PointsEntry.objects.filter(idempotency_key__in=keys).values_list("program_id", "idempotency_key"))
        new: dict[str, PointsEntry] = {}
        added: dict[int, int] = defaultdict(int)
        for credit in credits:
            member = members.get(credit.member_id)
            if member is None or (credit.program_id, credit.idempotency_key) in taken or credit.idempotency_key in new:
                continue
            new[credit.idempotency_key] = PointsEntry(
                program_id=credit.program_id,
                member_id=member.pk,
                kind=credit.kind,
                points=credit.points,
                remaining=max(0, min(credit.points, credit.points + member.balance)),
                expires_at=credit.expires_at,
                idempotency_key=credit.idempotency_key,
                reference=credit.reference,
                description=credit.description,
                created_at=at,
            )
            member.balance += credit.points
            added[member.pk] += credit.points
        if not new:
            return {}
        PointsEntry.objects.bulk_create(list(new.values()))
        totals = {pk: {"balance": points, "lifetime_points": points} for pk, points in added.items()}
        bulk_set(Member, totals, ["balance", "lifetime_points"], increment=["balance", "lifetime_points"])
        for entry in new.values():
            member = members[entry.member_id]
            signals.send_on_commit(signals.points_awarded, sender=Member, member=member, entry=entry)
    return new
