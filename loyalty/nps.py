"""Net Promoter Score and the detractor rule, defined once for models, services, selectors and
admin (this module imports no other part of loyalty, so any layer may use it).

- The answer to "How likely are you to recommend us?" is a score from 0 to 10.
- Bands: promoters answer 9-10, passives 7-8, detractors 0-6.
- NPS = 100 x (promoters - detractors) / answers, from -100 to +100, rounded to a whole number
  half away from zero (12.5 -> 13, -12.5 -> -13): one rule, so the dashboard, the API and the
  survey admin show the same number.
- A survey response is a detractor's when its NPS is 0-6 or its CSAT (1-5) is 1-2: staff
  alerts and the health model's feature read that flag.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q

NPS_MIN, NPS_MAX = 0, 10
PROMOTER_MIN = 9
PASSIVE_MIN = 7
#: The highest score of a detractor (``PASSIVE_MIN - 1``).
DETRACTOR_MAX = PASSIVE_MIN - 1
#: A CSAT answer at or below this makes the response a detractor's too.
CSAT_DETRACTOR_MAX = 2

PROMOTER, PASSIVE, DETRACTOR = "promoter", "passive", "detractor"
BANDS = (PROMOTER, PASSIVE, DETRACTOR)
#: The scores of each band, both ends included.
BAND_SCORES = {
    PROMOTER: (PROMOTER_MIN, NPS_MAX),
    PASSIVE: (PASSIVE_MIN, PROMOTER_MIN - 1),
    DETRACTOR: (NPS_MIN, DETRACTOR_MAX),
}


def nps_scale() -> list[int]:
    """Every score a customer may give, lowest first."""
    return list(range(NPS_MIN, NPS_MAX + 1))


def nps_band(score: int | None) -> str | None:
    """``"promoter"``, ``"passive"``, ``"detractor"``, or ``None`` without a score."""
    if score is None:
        return None
    if score >= PROMOTER_MIN:
        return PROMOTER
    return PASSIVE if score >= PASSIVE_MIN else DETRACTOR


def nps_band_q(band: str, field: str = "nps") -> Q:
    """The band as a filter on the score field ``field`` (``"responses__nps"`` across a relation)."""
    low, high = BAND_SCORES[band]
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})


def nps_score(*, promoters: int, detractors: int, answers: int) -> int | None:
    """The Net Promoter Score of ``answers`` NPS answers, or ``None`` without any."""
    if not answers:
        return None
    exact = Decimal(100 * (promoters - detractors)) / Decimal(answers)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))  # ROUND_HALF_UP: half away from zero


def nps_text(value: int | None) -> str:
    """An NPS as staff read it: ``+13``, ``0``, ``-5``; ``–`` without answers."""
    return "–" if value is None else f"{'+' if value > 0 else ''}{value}"


def is_detractor(*, nps: int | None, csat: int | None) -> bool:
    """NPS 0-6 or CSAT 1-2."""
    return (nps is not None and nps <= DETRACTOR_MAX) or (csat is not None and csat <= CSAT_DETRACTOR_MAX)
