"""Rewards and redemption.

CONTRACT (keep these signatures):
- ``redeem(*, member, reward, idempotency_key=None, free=False, at=None) -> Redemption``:
  ``free=True`` issues without points (tier entry rewards), still idempotent by key.
- ``redemptions_expire_due(*, now=None) -> int``: daily task.
"""

from __future__ import annotations

from datetime import datetime

from ..models import Member, Redemption, Reward


def redeem(
    *,
    member: Member,
    reward: Reward,
    idempotency_key: str | None = None,
    free: bool = False,
    at: datetime | None = None,
) -> Redemption:
    raise NotImplementedError


def redemptions_expire_due(*, now: datetime | None = None) -> int:
    return 0
