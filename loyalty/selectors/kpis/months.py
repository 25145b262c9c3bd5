"""Monthly series for the charts: revenue (members and guests) and points (issued and redeemed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import DateField, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from ...models import PointsEntry, Program
from .common import _ISSUED, _MONEY, _NET, _SPENT, _counted_purchases, _money


@dataclass(frozen=True)
class MonthRevenue:
    month: date  # the first of the month, in the current time zone
    member: Decimal
    guest: Decimal

    @property
    def total(self) -> Decimal:
        return self.member + self.guest


@dataclass(frozen=True)
class MonthPoints:
    month: date
    issued: int
    redeemed: int


def months_between(start: datetime, end: datetime) -> list[date]:
    """First days of the months ``[start, end)`` touches, in the current time zone."""
    first = timezone.localtime(start).date().replace(day=1)
    last = timezone.localtime(end - timedelta(microseconds=1)).date().replace(day=1)
    months = []
    while first <= last:
        months.append(first)
        first = (first + timedelta(days=32)).replace(day=1)
    return months


def _month(field_name: str) -> TruncMonth:
    # Truncated in the current time zone (SQLite and PostgreSQL alike), returned as a date.
    return TruncMonth(field_name, output_field=DateField(), tzinfo=timezone.get_current_timezone())


def revenue_by_month(*, program: Program, start: datetime, end: datetime) -> list[MonthRevenue]:
    """Net revenue per month, members' orders and guest orders apart; every month, zeros included. One query."""
    rows = (
        _counted_purchases(program, start, end)
        .annotate(month=_month("occurred_at"))
        .values("month")
        .annotate(
            member_revenue=Sum(_NET, filter=Q(member__isnull=False), output_field=_MONEY),
            guest_revenue=Sum(_NET, filter=Q(member__isnull=True), output_field=_MONEY),
        )
    )
    found = {row["month"]: row for row in rows}
    return [
        MonthRevenue(
            month,
            _money(found.get(month, {}).get("member_revenue")),
            _money(found.get(month, {}).get("guest_revenue")),
        )
        for month in months_between(start, end)
    ]


def points_by_month(*, program: Program, start: datetime, end: datetime) -> list[MonthPoints]:
    """Points issued and redeemed per month; every month, zeros included. One query."""
    rows = (
        PointsEntry.objects.filter(program=program, created_at__gte=start, created_at__lt=end)
        .order_by()
        .annotate(month=_month("created_at"))
        .values("month")
        .annotate(issued=Sum("points", filter=_ISSUED), redeemed=Sum("points", filter=_SPENT))
    )
    found = {row["month"]: row for row in rows}
    return [
        MonthPoints(month, found.get(month, {}).get("issued") or 0, -(found.get(month, {}).get("redeemed") or 0))
        for month in months_between(start, end)
    ]
