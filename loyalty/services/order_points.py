"""What a paid order earns and whether it moves the member up a tier: shared by the one-statement
path (:mod:`loyalty.services.award`) and the deferred batches (:mod:`loyalty.services.award_batch`),
so both compute what the portable path (``events._apply``) writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from ..adapters.base import OrderEvent
from ..config_cache import ProgramConfig, paying_rules
from ..models import EarningRule, Program, Tier
from .tiers import _decide

_SPEND = Tier.QualifiesBy.SPEND


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
