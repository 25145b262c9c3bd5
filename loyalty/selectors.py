"""Reads: what pages, admin, API and commands show. Query counts do not grow with history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from django.db.models import Count, DecimalField, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from .conf import loyalty_settings
from .models import (
    CustomerHealth,
    HealthModelFit,
    HealthRun,
    Member,
    Message,
    PointsEntry,
    Purchase,
    Redemption,
    Reward,
    SegmentChange,
    Tier,
)


@dataclass(frozen=True)
class RewardOption:
    reward: Reward
    missing_points: int  # 0: affordable now
    unavailable_because: str  # empty when the member may redeem it

    @property
    def redeemable(self) -> bool:
        return not self.missing_points and not self.unavailable_because


@dataclass(frozen=True)
class MemberSummary:
    member: Member
    history: list[PointsEntry]
    progress: TierProgress | None = None
    rewards: list[RewardOption] = field(default_factory=list)
    codes: list[Redemption] = field(default_factory=list)

    @property
    def program(self):
        return self.member.program


def memberships_for_user(user) -> QuerySet[Member]:
    if not getattr(user, "is_authenticated", False):
        return Member.objects.none()
    return (
        Member.objects.filter(user=user, program__is_active=True)
        .select_related("program", "tier")
        .order_by("program_id")
    )


def points_history(member: Member, *, limit: int | None = None) -> list[PointsEntry]:
    """The member's newest ledger rows (one query, whatever the ledger's length)."""
    limit = limit or loyalty_settings.ACCOUNT_HISTORY_SIZE
    return list(
        PointsEntry.objects.filter(member=member)
        .only("kind", "points", "reference", "description", "created_at", "expires_at", "purchase_id")
        .order_by("-created_at", "-id")[:limit]
    )


def reward_options(member: Member, *, at: datetime | None = None) -> list[RewardOption]:
    """The programme's rewards on offer now, each with what stands between the member and it (one query)."""
    at = at or timezone.now()
    rewards = (
        Reward.objects.filter(program_id=member.program_id, is_active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=at))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=at))
        .exclude(stock=0)
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
    codes = Redemption.objects.filter(member=member).select_related("reward").order_by("-created_at", "-id")
    return list(codes[:limit])


def account_summaries(user) -> list[MemberSummary]:
    """What the account panel shows; a constant number of queries per programme."""
    return [
        MemberSummary(
            member=member,
            history=points_history(member),
            progress=tier_progress(member),
            rewards=reward_options(member),
            codes=member_codes(member),
        )
        for member in memberships_for_user(user)
    ]


def _sum_of(field: str, **filters) -> Coalesce:
    rows = (
        PointsEntry.objects.filter(member=OuterRef("pk"), **filters)
        .order_by()
        .values("member")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def ledger_mismatches() -> QuerySet[Member]:
    """Members whose cached balance or open lots disagree with their ledger (one query)."""
    return (
        Member.objects.annotate(
            ledger_sum=_sum_of("points"),
            open_points=_sum_of("remaining", points__gt=0),
        )
        .filter(~Q(balance=F("ledger_sum")) | ~Q(open_points=Greatest(F("balance"), Value(0))))
        .select_related("program", "user")
        .order_by("pk")
    )


# --- tiers ---------------------------------------------------------------------------------

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


# --- campaigns -------------------------------------------------------------------------------

_PERCENT = Decimal("0.01")


def _rate(part: int, whole: int) -> Decimal | None:
    """``part / whole`` in percent (exact Decimal), ``None`` when ``whole`` is 0."""
    return Decimal(part) * 100 / Decimal(whole) if whole else None


def _rounded(value: Decimal | None) -> Decimal | None:
    return value.quantize(_PERCENT) if value is not None else None


def campaign_report(*, campaign) -> dict:
    """What a campaign achieved against its control group: one aggregate query over its messages.

    Counts are messages (one per member and cycle). ``eligible``: every row, control included;
    ``opened``/``clicked``/``converted``/``revenue`` of sent messages. Rates are percentages
    (``conversion_rate`` = converted / sent); ``uplift`` = treatment rate - control rate in
    percentage points, ``relative_uplift`` = uplift / control rate in percent. ``None`` when a
    rate's denominator is 0. Money is Decimal in the programme's currency.
    """
    status = Message.Status
    sent, control = Q(status=status.SENT), Q(status=status.CONTROL)
    totals = Message.objects.filter(campaign=campaign).aggregate(
        eligible=Count("pk"),
        queued=Count("pk", filter=Q(status=status.QUEUED)),
        sent=Count("pk", filter=sent),
        failed=Count("pk", filter=Q(status=status.FAILED)),
        skipped=Count("pk", filter=Q(status=status.SKIPPED)),
        opened=Count("pk", filter=sent & Q(opened_at__isnull=False)),
        clicked=Count("pk", filter=sent & Q(clicked_at__isnull=False)),
        unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
        converted=Count("pk", filter=sent & Q(converted_at__isnull=False)),
        sent_revenue=Sum("revenue", filter=sent & Q(converted_at__isnull=False)),
        control=Count("pk", filter=control),
        control_converted=Count("pk", filter=control & Q(converted_at__isnull=False)),
        control_revenue=Sum("revenue", filter=control & Q(converted_at__isnull=False)),
    )
    treatment_rate = _rate(totals["converted"], totals["sent"])
    control_rate = _rate(totals["control_converted"], totals["control"])
    uplift = treatment_rate - control_rate if treatment_rate is not None and control_rate is not None else None
    relative = uplift * 100 / control_rate if uplift is not None and control_rate else None
    return {
        **{key: totals[key] for key in ("eligible", "queued", "sent", "failed", "skipped", "opened", "clicked")},
        "unsubscribed": totals["unsubscribed"],
        "converted": totals["converted"],
        "revenue": (totals["sent_revenue"] or Decimal("0")).quantize(_CENT),
        "conversion_rate": _rounded(treatment_rate),
        "control": {
            "members": totals["control"],
            "converted": totals["control_converted"],
            "revenue": (totals["control_revenue"] or Decimal("0")).quantize(_CENT),
            "conversion_rate": _rounded(control_rate),
        },
        "uplift": _rounded(uplift),
        "relative_uplift": _rounded(relative),
    }


# --- customer health --------------------------------------------------------------------------


def latest_health_fit(*, program) -> HealthModelFit | None:
    return HealthModelFit.objects.filter(program=program).order_by("-fitted_at", "-id").first()


def latest_health_run(*, program) -> HealthRun | None:
    return HealthRun.objects.filter(program=program).order_by("-started_at", "-id").first()


def default_health_program():
    """The programme whose health admin pages describe when none is chosen: the oldest active one."""
    from .models import Program

    return Program.objects.filter(is_active=True).order_by("created_at", "pk").first()


def members_moved_into(*, program, segment: str, since: datetime) -> QuerySet[SegmentChange]:
    """Who entered ``segment`` since ``since`` (e.g. "at risk this week"), newest first."""
    return (
        SegmentChange.objects.filter(program=program, to_segment=segment, changed_at__gte=since)
        .select_related("member__user")
        .order_by("-changed_at", "-id")
    )


def at_risk_members(*, program) -> QuerySet[CustomerHealth]:
    """Members flagged at risk, most likely to lapse first."""
    return (
        CustomerHealth.objects.filter(program=program, at_risk=True)
        .select_related("member__user")
        .order_by(F("p_lapse").desc(nulls_last=True), "-recency_days")
    )
