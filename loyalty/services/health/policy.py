"""What the health stages share: the programme's health settings, the segments the detector may
override, time units and limits."""

from __future__ import annotations

import logging
from datetime import timedelta

from ...health import risk
from ...models import HealthSettings, Program, Purchase, Segment

logger = logging.getLogger("loyalty.health")


DAY = 86400.0


WEEK_DAYS = 7.0


# Members in these groups still look fine to RFM; the detector can move them to "at risk"
# before their recency score drops. Groups further gone keep their RFM name.
OVERRIDABLE = {
    Segment.CHAMPIONS,
    Segment.LOYAL,
    Segment.ACTIVE,
    Segment.PROMISING,
    Segment.NEW,
    Segment.NEEDS_ATTENTION,
}


#: A repeat customer in one of these groups who answered a survey as a detractor (NPS 0-6 or
#: CSAT 1-2) within `detractor_days` moves to "needs attention" (reason "voice"): they
#: still buy, but said they are unhappy. Members flagged at risk for other reasons, and
#: groups further gone, keep their segment. The same groups the detector may override.
VOICE_OVERRIDABLE = OVERRIDABLE


THRESHOLD_PREVIEW = (0.5, 0.6, 0.7, 0.8, 0.9)


FIT_MAX_AGE = timedelta(days=8)


CLV_HORIZON_DAYS = 365


COUNTED_STATUSES = Purchase.KEPT_STATUSES


#: BLAS threads inside the fit and the scoring: scipy's L-BFGS-B does small matrix products where
#: OpenBLAS threads only fight each other (10 ms with one thread, 1.4 s with two on a busy 2-core machine).
BLAS_THREADS = 1


MIN_BACKTEST_DAYS = risk.MIN_BACKTEST_DAYS


MIN_DETRACTORS_TO_LEARN = risk.MIN_DETRACTORS_TO_LEARN


#: A survey answer (not a detractor's: those have their own weight) within this many days is the
#: ``survey_answered`` feature of the at-risk score.
SURVEY_FEATURE_DAYS = 180


def health_settings_for(program: Program) -> HealthSettings:
    found = HealthSettings.objects.filter(program=program).first()
    if found is not None:
        return found
    settings_row, _ = HealthSettings.objects.get_or_create(program=program)
    return settings_row
