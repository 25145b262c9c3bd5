"""What counts towards a tier (spend or points in a window) and where a member stands on the way to the next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from django.db.models import DecimalField, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import Member, PointsEntry, Purchase, Tier

#: What a tier is measured by and over how many days: tiers sharing both share one sum.
QualificationKey = tuple[str, int]


#: Ledger kinds that count for points-qualified tiers. Pending points are not in the ledger
#: yet, so only approved points count. Tier entry bonuses (keys ``tier-entry:...``) do not:
#: reaching a tier never pays towards the next one.
TIER_POINTS_KINDS = (PointsEntry.Kind.EARN, PointsEntry.Kind.BONUS, PointsEntry.Kind.REVERSE)


TIER_ENTRY_KEY_PREFIX = "tier-entry:"


_SPEND, _POINTS = Tier.QualifiesBy.SPEND, Tier.QualifiesBy.POINTS


_MONEY = DecimalField(max_digits=14, decimal_places=2)


_CENT = Decimal("0.01")


_DATE_FIELD = {_SPEND: "occurred_at", _POINTS: "created_at"}


def tier_qualification_keys(tiers) -> set[QualificationKey]:
    return {(tier.qualifies_by, tier.window_days) for tier in tiers}


def tier_qualification_alias(key: QualificationKey) -> str:
    return f"tier_{key[0]}_{key[1]}d"


def _qualifying_rows(kind: str, *, at: datetime, days: int) -> QuerySet:
    """Purchases (spend) or ledger rows (points) that count, in the window ``(at - days, at]``."""
    window = {f"{_DATE_FIELD[kind]}__gt": at - timedelta(days=days), f"{_DATE_FIELD[kind]}__lte": at}
    if kind == _SPEND:
        return Purchase.objects.filter(**window).exclude(status=Purchase.Status.CANCELLED)
    return PointsEntry.objects.filter(kind__in=TIER_POINTS_KINDS, **window).exclude(
        idempotency_key__startswith=TIER_ENTRY_KEY_PREFIX
    )


def _qualifying_sum(kind: str, **extra) -> Sum:
    if kind == _SPEND:
        return Sum(F("amount") - F("refunded_amount"), output_field=_MONEY, **extra)
    return Sum("points", **extra)


def _zero(kind: str) -> Decimal | int:
    return Decimal("0.00") if kind == _SPEND else 0


def tier_qualification(member_id: int, *, at: datetime, keys) -> dict[QualificationKey, Decimal | int]:
    """The member's qualifying spend or points for each ``(qualifies_by, window_days)`` of ``keys``,
    in windows ending at ``at``: one aggregate query per kind, every window of a kind in it
    (conditional aggregation), so normally one query."""
    values: dict[QualificationKey, Decimal | int] = {}
    for kind in (_SPEND, _POINTS):
        windows = sorted({days for what, days in keys if what == kind})
        if not windows:
            continue
        widest = windows[-1]
        sums = {
            tier_qualification_alias((kind, days)): _qualifying_sum(
                kind,
                filter=None if days == widest else Q(**{f"{_DATE_FIELD[kind]}__gt": at - timedelta(days=days)}),
            )
            for days in windows
        }
        totals = _qualifying_rows(kind, at=at, days=widest).filter(member_id=member_id).aggregate(**sums)
        for days in windows:
            total = totals[tier_qualification_alias((kind, days))]
            if total is None:
                total = _zero(kind)
            values[(kind, days)] = total.quantize(_CENT) if kind == _SPEND else total
    return values


def members_with_tier_qualification(program, *, at: datetime, keys) -> QuerySet[Member]:
    """The programme's members, each annotated (``tier_qualification_alias(key)``) with their
    qualifying value for every key: one query, set-based (a correlated sum per key)."""
    annotations = {}
    for kind, days in keys:
        rows = (
            _qualifying_rows(kind, at=at, days=days)
            .filter(member=OuterRef("pk"))
            .order_by()
            .values("member")
            .annotate(total=_qualifying_sum(kind))
            .values("total")
        )
        field = _MONEY if kind == _SPEND else IntegerField()
        annotations[tier_qualification_alias((kind, days))] = Coalesce(
            Subquery(rows, output_field=field), Value(_zero(kind)), output_field=field
        )
    return Member.objects.filter(program=program).annotate(**annotations)


@dataclass(frozen=True)
class TierProgress:
    """Where a member stands: "spend 42.00 EUR more to reach Gold"."""

    tier: Tier | None
    next_tier: Tier | None
    value: Decimal | int | None  # what counts for ``next_tier`` so far, in its window
    missing: Decimal | int | None  # money (2 places) for spend tiers, whole points for points tiers
    fraction: float  # 0..1, for a progress bar
    currency: str
    tier_kept_until: datetime | None  # the current tier is kept at least until then

    @property
    def qualifies_by(self) -> str | None:
        return self.next_tier.qualifies_by if self.next_tier else None

    @property
    def window_days(self) -> int | None:
        return self.next_tier.window_days if self.next_tier else None


def tier_progress(member: Member, *, at: datetime | None = None) -> TierProgress | None:
    """Progress to the next tier; ``None`` when the programme has no tiers. At most 2 queries."""
    at = at or timezone.now()
    tiers = list(Tier.objects.filter(program_id=member.program_id).select_related("program").order_by("rank"))
    if not tiers:
        return None
    program = tiers[0].program
    current = next((tier for tier in tiers if tier.pk == member.tier_id), None)
    next_tier = next((tier for tier in tiers if current is None or tier.rank > current.rank), None)
    kept_until = (
        member.tier_since + timedelta(days=program.tier_retention_days)
        if current is not None and member.tier_since is not None
        else None
    )
    if next_tier is None:
        return TierProgress(current, None, None, None, 1.0, program.currency, kept_until)
    key = (next_tier.qualifies_by, next_tier.window_days)
    value = tier_qualification(member.pk, at=at, keys={key})[key]
    gap = max(next_tier.threshold - value, Decimal("0"))
    if next_tier.qualifies_by == _SPEND:
        value, missing = value.quantize(_CENT), gap.quantize(_CENT)
    else:
        missing = int(gap.to_integral_value(rounding=ROUND_CEILING))
    fraction = 1.0 if next_tier.threshold <= 0 else min(max(float(value / next_tier.threshold), 0.0), 1.0)
    return TierProgress(current, next_tier, value, missing, fraction, program.currency, kept_until)
