"""Members: totals, new in the period, per tier and per segment, moves into at risk."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q

from ...models import CustomerHealth, Member, Program, Segment, SegmentChange, Tier
from .common import AT_RISK, RECENT_MOVES


@dataclass(frozen=True)
class TierCount:
    tier_id: int | None  # None: members without a tier
    name: str
    colour: str
    members: int


@dataclass(frozen=True)
class SegmentCount:
    segment: str  # a Segment value, or "" for members not scored yet
    label: str
    members: int


@dataclass(frozen=True)
class MemberKpis:
    total: int  # members who joined before the end of the period
    new: int  # ... of whom joined in the period
    moved_into_at_risk: int  # members who entered "at risk" in the 7 days before the end
    current: int | None = None  # members now (what tiers and segments add up to)
    tiers: list[TierCount] = field(default_factory=list)  # now, lowest rank first, "no tier" last
    segments: list[SegmentCount] = field(default_factory=list)  # now, in Segment order, "not scored" last


def member_kpis(*, program: Program, start: datetime, end: datetime, with_breakdown: bool = True) -> MemberKpis:
    """Member counts for the period (two queries) and, with ``with_breakdown``, today's members
    per tier and per segment (two more)."""
    counts = Member.objects.filter(program=program).aggregate(
        current=Count("pk"),
        total=Count("pk", filter=Q(joined_at__lt=end)),
        new=Count("pk", filter=Q(joined_at__gte=start, joined_at__lt=end)),
        no_tier=Count("pk", filter=Q(tier__isnull=True)),
    )
    moved = SegmentChange.objects.filter(
        program=program, to_segment=AT_RISK, changed_at__gte=end - RECENT_MOVES, changed_at__lt=end
    ).aggregate(members=Count("member", distinct=True))["members"]
    if not with_breakdown:
        return MemberKpis(total=counts["total"], new=counts["new"], moved_into_at_risk=moved)
    tiers = [
        TierCount(tier.pk, tier.name, tier.colour, tier.n)
        for tier in Tier.objects.filter(program=program)
        .annotate(n=Count("members"))
        .only("name", "colour", "rank")
        .order_by("rank")
    ]
    tiers.append(TierCount(None, "", "", counts["no_tier"]))
    per_segment = dict(
        CustomerHealth.objects.filter(program=program)
        .order_by()
        .values("segment")
        .annotate(n=Count("pk"))
        .values_list("segment", "n")
    )
    segments = [SegmentCount(value, str(label), per_segment.get(value, 0)) for value, label in Segment.choices]
    segments.append(SegmentCount("", "", max(counts["current"] - sum(per_segment.values()), 0)))
    return MemberKpis(
        total=counts["total"],
        new=counts["new"],
        moved_into_at_risk=moved,
        current=counts["current"],
        tiers=tiers,
        segments=segments,
    )
