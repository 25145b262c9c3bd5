"""Customer health: who is thriving, who is drifting away, and what they are likely worth.

The refresh is set-based. One SQL statement per chunk of member ids aggregates purchases
(first and last purchase, orders, purchase days, spend) and finds each member's latest
detractor survey answer within `detractor_days`; RFM quintile breakpoints come
from one ``NTILE(5)`` statement over the whole programme; scoring is numpy over the
chunk's arrays; the rows are written in bulk (``COPY`` + ``INSERT ... ON CONFLICT`` on
PostgreSQL, ``bulk_create(update_conflicts=True)`` elsewhere). No query runs per member.

Large programmes refresh in chunks by member id range: :func:`health_refresh` runs them
one after the other, the ``refresh_health`` task fans them out to Celery workers.

What lives here, in the order a run uses it: ``policy`` (the programme's health settings and the
limits every stage shares), ``load`` (the SQL: :func:`health_load` for a chunk of the refresh,
:func:`health_load_buyers` for the fit, :func:`health_cutpoints`, :func:`health_customers`),
``fit`` (:func:`health_fit`, and :func:`health_fit_model` which loads, fits and saves), ``score``
(:func:`health_score`, numpy), ``store`` (:func:`health_store`: bulk writes, segment changes,
``members_at_risk``) and ``refresh`` (the runs: start, :func:`health_refresh_range` = load ->
score -> store, finish). ``bench/health_refresh.py`` times the public stages by calling them.
"""

from .fit import health_fit, health_fit_model
from .load import ChunkData, health_customers, health_cutpoints, health_load, health_load_buyers
from .policy import (
    BLAS_THREADS,
    CLV_HORIZON_DAYS,
    COUNTED_STATUSES,
    DAY,
    FIT_MAX_AGE,
    MIN_BACKTEST_DAYS,
    MIN_DETRACTORS_TO_LEARN,
    OVERRIDABLE,
    SURVEY_FEATURE_DAYS,
    THRESHOLD_PREVIEW,
    VOICE_OVERRIDABLE,
    WEEK_DAYS,
    health_settings_for,
)
from .refresh import (
    health_chunk_done,
    health_fit_all,
    health_refresh,
    health_refresh_all,
    health_refresh_finish,
    health_refresh_range,
    health_refresh_start,
)
from .score import DetractorWeight, Scores, detractor_weight_in_use, health_score, with_added_log_odds
from .store import FIELDS, RAW_COLUMNS, RAW_TYPES, health_store

__all__ = [
    "BLAS_THREADS",
    "CLV_HORIZON_DAYS",
    "COUNTED_STATUSES",
    "ChunkData",
    "DAY",
    "DetractorWeight",
    "FIELDS",
    "FIT_MAX_AGE",
    "MIN_BACKTEST_DAYS",
    "MIN_DETRACTORS_TO_LEARN",
    "OVERRIDABLE",
    "RAW_COLUMNS",
    "RAW_TYPES",
    "SURVEY_FEATURE_DAYS",
    "Scores",
    "THRESHOLD_PREVIEW",
    "VOICE_OVERRIDABLE",
    "WEEK_DAYS",
    "detractor_weight_in_use",
    "health_chunk_done",
    "health_customers",
    "health_cutpoints",
    "health_fit",
    "health_fit_all",
    "health_fit_model",
    "health_load",
    "health_load_buyers",
    "health_refresh",
    "health_refresh_all",
    "health_refresh_finish",
    "health_refresh_range",
    "health_refresh_start",
    "health_score",
    "health_settings_for",
    "health_store",
    "with_added_log_odds",
]
