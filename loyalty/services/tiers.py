"""Tiers: evaluation on purchase (upgrades), nightly recomputation (downgrades after retention).

CONTRACT (wired by services/events.py and tasks.py; keep these signatures):
- ``tier_evaluate(*, member, at, upgrades_only=False) -> TierChange | None``: member is
  locked and carries ``member.program``; use ``program_config(member.program)`` for tiers.
- ``tiers_recompute(*, at=None) -> int``: nightly; returns the number of changes.
- ``tier_multiplier(member) -> Decimal``: the member's current earn multiplier (no query).

Rules:
- A member qualifies for the highest-rank tier whose threshold they meet: spend (purchases
  net of refunds, cancelled ones left out) or approved points (earn + bonus - reversals,
  tier entry bonuses left out) within that tier's rolling window ending at ``at``.
- Upgrades apply at once (``tier_since = at``); a member who skips tiers gets the entry
  bonus and entry reward of every tier passed, each once per member ever (idempotency keys).
- Downgrades only when ``at >= tier_since + program.tier_retention_days``, to the highest
  tier still qualified (or none). Every change is a ``TierChange`` and an email on commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..config_cache import program_config
from ..exceptions import LoyaltyError
from ..models import Member, PointsEntry, Program, Reward, Tier, TierChange
from ..selectors import (
    QualificationKey,
    members_with_tier_qualification,
    tier_qualification,
    tier_qualification_alias,
    tier_qualification_keys,
)
from . import rewards
from .ledger import points_credit
from .notifications import member_email_queue

logger = logging.getLogger("loyalty.tiers")
Reason = TierChange.Reason


def tier_multiplier(member: Member) -> Decimal:
    tier = program_config(member.program).tier_by_id(member.tier_id)
    return tier.multiplier if tier else Decimal("1")


def tier_entry_bonus_key(tier: Tier, member: Member) -> str:
    return f"tier-entry:{tier.pk}:{member.pk}"


def tier_entry_reward_key(tier: Tier, member: Member) -> str:
    return f"tier-entry-reward:{tier.pk}:{member.pk}"


# --- deciding (pure: no queries) --------------------------------------------------------------


@dataclass(frozen=True)
class _Decision:
    tier: Tier | None
    reason: str


def _highest_qualified(tiers, values: dict[QualificationKey, Decimal | int]) -> Tier | None:
    best = None
    for tier in tiers:
        value = values.get((tier.qualifies_by, tier.window_days))
        if value is not None and value >= tier.threshold and (best is None or tier.rank > best.rank):
            best = tier
    return best


def _retained(tier_since: datetime | None, at: datetime, program: Program) -> bool:
    return tier_since is not None and at < tier_since + timedelta(days=program.tier_retention_days)


def _decide(*, tiers, current: Tier | None, values, upgrades_only: bool) -> _Decision | None:
    qualified = _highest_qualified(tiers, values)
    if qualified is not None and (current is None or qualified.rank > current.rank):
        return _Decision(qualified, Reason.QUALIFIED)
    if upgrades_only or current is None or qualified == current:
        return None
    return _Decision(qualified, Reason.EXPIRED)


# --- applying ---------------------------------------------------------------------------------


def tier_evaluate(*, member: Member, at: datetime, upgrades_only: bool = False) -> TierChange | None:
    """Re-evaluate the (locked) member's tier as of ``at``; the change made, if any.

    No query when the programme has no tiers, or when only an upgrade is possible and the
    member already holds the top tier; otherwise one aggregate query per kind of tier
    (spend, points) that could apply.
    """
    program = member.program
    config = program_config(program)
    if not config.tiers:
        return None
    current = config.tier_by_id(member.tier_id)
    # Inside the retention period (or without a tier) only an upgrade can happen.
    only_up = upgrades_only or current is None or _retained(member.tier_since, at, program)
    tiers = [t for t in config.tiers if current is None or t.rank > current.rank] if only_up else config.tiers
    if not tiers:
        return None
    values = tier_qualification(member.pk, at=at, keys=tier_qualification_keys(tiers))
    decision = _decide(tiers=tiers, current=current, values=values, upgrades_only=only_up)
    if decision is None:
        return None
    return _change(member, current=current, decision=decision, at=at, values=values, tiers=config.tiers)


def _change(member: Member, *, current, decision: _Decision, at: datetime, values, tiers) -> TierChange:
    new = decision.tier
    since = at if new is not None else None
    Member.objects.filter(pk=member.pk).update(tier=new, tier_since=since)
    member.tier, member.tier_since = new, since
    change = TierChange.objects.create(
        member=member,
        from_tier=current,
        to_tier=new,
        reason=decision.reason,
        note=_note(new if decision.reason == Reason.QUALIFIED else current, values, member.program)[:255],
        created_at=at,
    )
    up = new is not None and (current is None or new.rank > current.rank)
    if up:
        passed = [t for t in tiers if (current is None or t.rank > current.rank) and t.rank <= new.rank]
        _grant_entry_rewards(member, passed, at)
    member_email_queue(
        member=member,
        template="tier_changed",
        key=f"tier-change:{change.pk}",
        context={
            "change_id": change.pk,
            "direction": "up" if up else "down",
            "tier": new.name if new else "",
            "tier_id": new.pk if new else None,
            "previous_tier": current.name if current else "",
        },
    )
    signals.send_on_commit(signals.tier_changed, sender=Member, member=member, change=change)
    logger.info("Member %s: tier %s -> %s (%s).", member.pk, current or "-", new or "-", decision.reason)
    return change


def _note(tier: Tier | None, values, program: Program) -> str:
    """What the decision was based on, for staff: "52.00 EUR in 365 days (Silver from 50.00)"."""
    if tier is None:
        return ""
    value = values.get((tier.qualifies_by, tier.window_days))
    unit = program.currency if tier.qualifies_by == Tier.QualifiesBy.SPEND else "points"
    return f"{value} {unit} in {tier.window_days} days ({tier.name} from {tier.threshold})"


def _grant_entry_rewards(member: Member, tiers, at: datetime) -> None:
    """Entry bonus and reward of every tier passed; the keys make each one once per member ever."""
    for tier in tiers:
        if tier.entry_bonus_points:
            points_credit(
                member=member,
                points=tier.entry_bonus_points,
                kind=PointsEntry.Kind.BONUS,
                idempotency_key=tier_entry_bonus_key(tier, member),
                reference=f"tier:{tier.pk}",
                description=f"Entry bonus: {tier.name}"[:255],
                at=at,
                locked=True,  # the caller holds the member's lock and current balance
            )
        if tier.entry_reward_id:
            _issue_entry_reward(member, tier, at)


def _issue_entry_reward(member: Member, tier: Tier, at: datetime) -> None:
    # Loaded fresh: the tier comes from the per-process config cache, the reward's stock does not.
    reward = Reward.objects.filter(pk=tier.entry_reward_id).first()
    if reward is None:
        return
    try:
        with transaction.atomic():
            rewards.reward_redeem(
                member=member, reward=reward, free=True, idempotency_key=tier_entry_reward_key(tier, member), at=at
            )
    except (NotImplementedError, LoyaltyError) as exc:
        # Never fails the order: the tier change stands, staff can issue the reward by hand.
        logger.warning("Entry reward %s of tier %s not issued to member %s: %r", reward.pk, tier, member.pk, exc)


# --- nightly ----------------------------------------------------------------------------------


def tiers_recompute(*, at: datetime | None = None, chunk_size: int = 2000) -> int:
    """Re-evaluate every member of every active programme with tiers; the number of changes.

    Per programme, one set-based query computes every member's qualifying values; only the
    members whose tier would change are then locked and passed to :func:`tier_evaluate`,
    each in a transaction of their own. Running it twice changes nothing the second time.
    """
    at = at or timezone.now()
    changes = 0
    for program in Program.objects.filter(is_active=True).order_by("pk"):
        tiers = program_config(program).tiers
        if not tiers:
            continue
        for member_id in _members_due(program, tiers, at=at, chunk_size=chunk_size):
            changes += _reevaluate(member_id, at=at)
    return changes


def _members_due(program: Program, tiers, *, at: datetime, chunk_size: int) -> list[int]:
    keys = sorted(tier_qualification_keys(tiers))
    aliases = [tier_qualification_alias(key) for key in keys]
    by_id = {tier.pk: tier for tier in tiers}
    rows = (
        members_with_tier_qualification(program, at=at, keys=keys)
        .order_by("pk")
        .values_list("pk", "tier_id", "tier_since", *aliases)
        .iterator(chunk_size=chunk_size)
    )
    due = []
    for member_id, tier_id, tier_since, *totals in rows:
        current = by_id.get(tier_id)
        only_up = current is None or _retained(tier_since, at, program)
        if _decide(tiers=tiers, current=current, values=dict(zip(keys, totals, strict=True)), upgrades_only=only_up):
            due.append(member_id)
    return due


def _reevaluate(member_id: int, *, at: datetime) -> int:
    try:
        with transaction.atomic():
            member = (
                Member.objects.select_for_update(of=("self",)).select_related("program").filter(pk=member_id).first()
            )
            if member is None:
                return 0
            return int(tier_evaluate(member=member, at=at) is not None)
    except Exception:
        # One member's failure (say, a broken entry reward) must not stop the nightly run.
        logger.exception("Tier recomputation failed for member %s.", member_id)
        return 0
