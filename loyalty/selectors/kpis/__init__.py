"""Loyalty KPIs for the staff dashboard and the REST API (``GET /api/.../kpis/``): reads only, set-based.

Every selector takes keyword-only ``program``, ``start`` and ``end`` (aware datetimes; the
period is ``[start, end)``) and runs a fixed number of aggregate queries, whatever the
number of orders, members or ledger rows. Money is ``Decimal`` (2 places) in the
programme's currency, counts are ``int``, ratios are ``float`` fractions (0.25 = 25 %) and
``None`` when their denominator is 0. Definitions: ``docs/dashboard.md``.

What counts as an order: a :class:`~loyalty.models.Purchase` of the programme, paid or
partially refunded, paid in the period. Its revenue is ``amount - refunded_amount``; fully
refunded and cancelled orders are left out. A *customer* is a member, or for a guest order
the lower-cased email (a guest order without an email is a customer of its own).

What lives here: ``common`` (counted orders, the customer key, rounding), ``orders`` (orders,
customers, retention, lifetime value), ``points``, ``members`` (tiers, segments, moves into at
risk), ``voice`` (NPS and CSAT), ``months`` (the monthly chart series) and ``dashboard`` (all
of them for a period and the one before). Callers use ``from loyalty.selectors import kpis``
and ``kpis.dashboard(...)``.
"""

from .common import AT_RISK, CENT, COUNTED_STATUSES, DAYS_PER_YEAR, RECENT_MOVES, ZERO, customer_key
from .dashboard import CampaignResult, Dashboard, PeriodKpis, campaign_kpis, dashboard
from .members import MemberKpis, SegmentCount, TierCount, member_kpis
from .months import MonthPoints, MonthRevenue, months_between, points_by_month, revenue_by_month
from .orders import (
    CLV_WINDOW,
    MAX_EXPECTED_YEARS,
    LifetimeValue,
    OrderKpis,
    Retention,
    customer_lifetime_value,
    order_kpis,
    retention,
)
from .points import PointsKpis, points_kpis, points_liability
from .voice import CSAT_SATISFIED_MIN, MonthNps, NpsSummary, nps_summary, nps_trend

__all__ = [
    "AT_RISK",
    "CENT",
    "CLV_WINDOW",
    "COUNTED_STATUSES",
    "CSAT_SATISFIED_MIN",
    "DAYS_PER_YEAR",
    "MAX_EXPECTED_YEARS",
    "RECENT_MOVES",
    "ZERO",
    "CampaignResult",
    "Dashboard",
    "LifetimeValue",
    "MemberKpis",
    "MonthNps",
    "MonthPoints",
    "MonthRevenue",
    "NpsSummary",
    "OrderKpis",
    "PeriodKpis",
    "PointsKpis",
    "Retention",
    "SegmentCount",
    "TierCount",
    "campaign_kpis",
    "customer_key",
    "customer_lifetime_value",
    "dashboard",
    "member_kpis",
    "months_between",
    "nps_summary",
    "nps_trend",
    "order_kpis",
    "points_by_month",
    "points_kpis",
    "points_liability",
    "retention",
    "revenue_by_month",
]
