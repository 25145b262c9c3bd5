"""Customer voice: NPS and CSAT of survey answers in a period and per month (bands from loyalty.nps)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from ...models import Program, SurveyResponse
from ...nps import DETRACTOR, PASSIVE, PROMOTER, nps_band_q, nps_score
from .common import CENT, _ratio
from .months import _month, months_between

#: CSAT answers of 4 or 5 count as satisfied.
CSAT_SATISFIED_MIN = 4


def _nps_aggregates() -> dict:
    return {
        "responses": Count("pk"),
        "promoters": Count("pk", filter=nps_band_q(PROMOTER)),
        "passives": Count("pk", filter=nps_band_q(PASSIVE)),
        "detractors": Count("pk", filter=nps_band_q(DETRACTOR)),
        "csat_answers": Count("csat"),
        "csat_satisfied": Count("pk", filter=Q(csat__gte=CSAT_SATISFIED_MIN)),
        "csat_sum": Sum("csat"),
    }


@dataclass(frozen=True)
class NpsSummary:
    """Survey answers of a period. NPS and CSAT are ``None`` without answers to their question."""

    responses: int  # responses submitted in the period (any question answered)
    promoters: int
    passives: int
    detractors: int  # by NPS only (the "detractor" flag on a response also counts CSAT 1-2)
    csat_answers: int
    csat_satisfied: int  # CSAT 4-5
    csat_sum: int = 0

    @property
    def nps_answers(self) -> int:
        return self.promoters + self.passives + self.detractors

    def _share(self, part: int) -> float | None:
        return _ratio(part, self.nps_answers)

    @property
    def promoter_share(self) -> float | None:
        return self._share(self.promoters)

    @property
    def passive_share(self) -> float | None:
        return self._share(self.passives)

    @property
    def detractor_share(self) -> float | None:
        return self._share(self.detractors)

    @property
    def nps(self) -> int | None:
        """Net Promoter Score, -100..100, as ``loyalty.nps`` defines it."""
        return nps_score(promoters=self.promoters, detractors=self.detractors, answers=self.nps_answers)

    @property
    def csat(self) -> float | None:
        """CSAT: share of CSAT answers that are 4 or 5, as a fraction (0.8 = 80 %)."""
        return _ratio(self.csat_satisfied, self.csat_answers)

    @property
    def csat_average(self) -> Decimal | None:
        """Average CSAT answer, 1-5, two places."""
        if not self.csat_answers:
            return None
        return (Decimal(self.csat_sum) / Decimal(self.csat_answers)).quantize(CENT, rounding=ROUND_HALF_UP)


def _nps_summary(row: dict) -> NpsSummary:
    return NpsSummary(
        responses=row.get("responses") or 0,
        promoters=row.get("promoters") or 0,
        passives=row.get("passives") or 0,
        detractors=row.get("detractors") or 0,
        csat_answers=row.get("csat_answers") or 0,
        csat_satisfied=row.get("csat_satisfied") or 0,
        csat_sum=row.get("csat_sum") or 0,
    )


def nps_summary(*, program: Program, start: datetime, end: datetime) -> NpsSummary:
    """Promoters, passives, detractors, NPS and CSAT of the responses submitted in ``[start, end)``: one query."""
    row = SurveyResponse.objects.filter(program=program, submitted_at__gte=start, submitted_at__lt=end).aggregate(
        **_nps_aggregates()
    )
    return _nps_summary(row)


@dataclass(frozen=True)
class MonthNps:
    month: date
    summary: NpsSummary


def _months_back(end: datetime, months: int) -> datetime:
    """Midnight of the first day of the month ``months - 1`` months before ``end``'s month (local time)."""
    first = timezone.localtime(end - timedelta(microseconds=1)).date().replace(day=1)
    for _i in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    return timezone.make_aware(datetime.combine(first, datetime.min.time()))


def nps_trend(
    *, program: Program, months: int = 12, end: datetime | None = None, start: datetime | None = None
) -> list[MonthNps]:
    """NPS and CSAT per calendar month, every month (empty ones too): the ``months`` months up to
    ``end`` (default: now), or the months ``[start, end)`` touches when ``start`` is given. One query."""
    end = end or timezone.now()
    start = start or _months_back(end, months)
    rows = (
        SurveyResponse.objects.filter(program=program, submitted_at__gte=start, submitted_at__lt=end)
        .order_by()
        .annotate(month=_month("submitted_at"))
        .values("month")
        .annotate(**_nps_aggregates())
    )
    found = {row["month"]: row for row in rows}
    return [MonthNps(month, _nps_summary(found.get(month, {}))) for month in months_between(start, end)]
