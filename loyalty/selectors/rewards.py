"""Rewards a member may have now and the reward codes they hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import Member, Redemption, Reward


@dataclass(frozen=True)
class RewardOption:
    reward: Reward
    missing_points: int  # 0: affordable now
    unavailable_because: str  # empty when the member may redeem it

    @property
    def redeemable(self) -> bool:
        return not self.missing_points and not self.unavailable_because


def reward_options(member: Member, *, at: datetime | None = None) -> list[RewardOption]:
    """The programme's rewards on offer now, each with what stands between the member and it (one query)."""
    at = at or timezone.now()
    rewards = (
        Reward.objects.filter(program_id=member.program_id, is_active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=at))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=at))
        .exclude(stock=0)
        .exclude(kind=Reward.Kind.POINTS_DISCOUNT)  # chosen in the cart, not redeemed for a code
        .select_related("min_tier")
        .order_by("points_cost", "name")
    )
    member_rank = member.tier.rank if member.tier_id and member.tier else 0
    options = []
    for reward in rewards:
        reason = ""
        if reward.min_tier_id and member_rank < reward.min_tier.rank:
            reason = _("For %(tier)s members and above") % {"tier": reward.min_tier.name}
        options.append(RewardOption(reward, max(reward.points_cost - max(member.balance, 0), 0), reason))
    return options


def member_codes(member: Member, *, limit: int = 10) -> list[Redemption]:
    """The member's latest reward codes, newest first (one query)."""
    # Points used at checkout have codes too, but the customer never sees or types them.
    codes = (
        Redemption.objects.filter(member=member)
        .exclude(reward__kind=Reward.Kind.POINTS_DISCOUNT)
        .select_related("reward")
        .order_by("-created_at", "-id")
    )
    return list(codes[:limit])
