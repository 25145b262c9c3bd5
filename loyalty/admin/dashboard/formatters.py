"""How the dashboard writes numbers, money, rates and periods: localised, rounded half up, "–" for none."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.formats import number_format


def _number(value, places: int = 0) -> str:
    """Localised, grouped, rounded half up (144.375 -> "144.4")."""
    exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return number_format(exact, places, force_grouping=True)


def money(value: Decimal | None, currency: str) -> str:
    return "–" if value is None else f"{_number(value, 2)}\u00a0{currency}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{_number(value * 100, 1)}\u00a0%"


def decimal(value, places: int = 2) -> str:
    return "–" if value is None else _number(value, places)


def count(value: int | None) -> str:
    return "–" if value is None else _number(value)


def _day(value: date) -> str:
    return date_format(value, "j M Y")


def period_label(start: datetime, end: datetime) -> str:
    """ "1 Dec 2025 – 30 Nov 2026": the period's first and last day (``end`` is exclusive)."""
    first = timezone.localtime(start).date()
    last = timezone.localtime(end - timedelta(microseconds=1)).date()
    return f"{_day(first)} – {_day(last)}"
