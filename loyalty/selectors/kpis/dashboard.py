"""The whole dashboard in one call: every KPI of a period and the one before, campaign results, monthly series."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ...models import Campaign, Program
from ..campaigns import campaign_report
from .members import MemberKpis, member_kpis
from .months import MonthPoints, MonthRevenue, points_by_month, revenue_by_month
from .orders import CLV_WINDOW, LifetimeValue, OrderKpis, customer_lifetime_value, order_kpis
from .points import PointsKpis, points_kpis
from .voice import MonthNps, NpsSummary, nps_summary, nps_trend


@dataclass(frozen=True)
class CampaignResult:
    campaign_id: int
    name: str
    is_active: bool
    report: dict  # selectors.campaign_report: all-time figures against the control group


def campaign_kpis(
    *, program: Program, start: datetime | None = None, end: datetime | None = None
) -> list[CampaignResult]:
    """Each campaign's report (:func:`loyalty.selectors.campaign_report`, all-time, not per period):
    one query for the campaigns and one per campaign."""
    campaigns = Campaign.objects.filter(program=program).only("name", "is_active").order_by("name", "pk")
    return [CampaignResult(c.pk, c.name, c.is_active, campaign_report(campaign=c)) for c in campaigns]


@dataclass(frozen=True)
class PeriodKpis:
    start: datetime
    end: datetime
    orders: OrderKpis
    lifetime_value: LifetimeValue
    points: PointsKpis
    members: MemberKpis
    voice: NpsSummary | None = None  # survey answers submitted in the period


@dataclass(frozen=True)
class Dashboard:
    program: Program
    current: PeriodKpis
    previous: PeriodKpis | None  # the equal-length period just before, for deltas
    campaigns: list[CampaignResult]
    revenue_by_month: list[MonthRevenue]
    points_by_month: list[MonthPoints]
    nps_by_month: list[MonthNps] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.current.start

    @property
    def end(self) -> datetime:
        return self.current.end


def _period_kpis(program: Program, start: datetime, end: datetime, *, current: bool) -> PeriodKpis:
    orders = order_kpis(program=program, start=start, end=end)
    # CLV is estimated over the year up to the period's end, whatever the period's length:
    # a month's purchase frequency and churn say little about years.
    clv_start = end - CLV_WINDOW
    clv = customer_lifetime_value(
        program=program, start=clv_start, end=end, orders=orders if clv_start == start else None
    )
    return PeriodKpis(
        start=start,
        end=end,
        orders=orders,
        lifetime_value=clv,
        points=points_kpis(program=program, start=start, end=end, with_liability=current),
        members=member_kpis(program=program, start=start, end=end, with_breakdown=current),
        voice=nps_summary(program=program, start=start, end=end),
    )


def dashboard(*, program: Program, start: datetime, end: datetime, compare: bool = True) -> Dashboard:
    """Every KPI of ``[start, end)``, and with ``compare`` the same for ``[start - (end - start), start)``.

    At most 25 queries plus one per campaign, however much data there is (21 plus one per
    campaign for a 365-day period, whose CLV window is the period itself): NPS and CSAT add one
    per period and one for the monthly series.
    """
    if end <= start:
        raise ValueError("the period must end after it starts")
    previous = None
    if compare:
        previous = _period_kpis(program, start - (end - start), start, current=False)
    return Dashboard(
        program=program,
        current=_period_kpis(program, start, end, current=True),
        previous=previous,
        campaigns=campaign_kpis(program=program, start=start, end=end),
        revenue_by_month=revenue_by_month(program=program, start=start, end=end),
        points_by_month=points_by_month(program=program, start=start, end=end),
        nps_by_month=nps_trend(program=program, start=start, end=end),
    )
