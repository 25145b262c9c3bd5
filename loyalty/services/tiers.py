"""Tiers: evaluation on purchase (upgrades), nightly recomputation (downgrades after retention).

CONTRACT (wired by services/events.py and tasks.py; keep these signatures):
- ``tier_evaluate(*, member, at, upgrades_only=False) -> TierChange | None``: member is
  locked and carries ``member.program``; use ``program_config(member.program)`` for tiers.
- ``tiers_recompute(*, at=None) -> int``: nightly; returns the number of changes.
- ``tier_multiplier(member) -> Decimal``: the member's current earn multiplier (no query).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ..config_cache import program_config
from ..models import Member, TierChange


def tier_multiplier(member: Member) -> Decimal:
    tier = program_config(member.program).tier_by_id(member.tier_id)
    return tier.multiplier if tier else Decimal("1")


def tier_evaluate(*, member: Member, at: datetime, upgrades_only: bool = False) -> TierChange | None:
    return None


def tiers_recompute(*, at: datetime | None = None) -> int:
    return 0
