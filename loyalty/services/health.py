"""Customer health: who is thriving, who is drifting away, and what they are likely worth.

The refresh is set-based. One SQL statement per chunk of member ids aggregates purchases
(first and last purchase, orders, purchase days, spend) and finds each member's latest
detractor survey answer within `detractor_days`; RFM quintile breakpoints come
from one ``NTILE(5)`` statement over the whole programme; scoring is numpy over the
chunk's arrays; the rows are written in bulk (``COPY`` + ``INSERT ... ON CONFLICT`` on
PostgreSQL, ``bulk_create(update_conflicts=True)`` elsewhere). No query runs per member.

Large programmes refresh in chunks by member id range: :func:`health_refresh` runs them
one after the other, the ``refresh_health`` task fans them out to Celery workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q
from django.utils import timezone
from threadpoolctl import threadpool_limits

from .. import signals
from ..conf import loyalty_settings
from ..health import bgnbd, gamma_gamma, rfm, risk
from ..models import (
    CustomerHealth,
    HealthModelFit,
    HealthRun,
    HealthSettings,
    Member,
    Message,
    Program,
    Purchase,
    Redemption,
    Segment,
    SegmentChange,
    SurveyResponse,
)

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


def health_settings_for(program: Program) -> HealthSettings:
    found = HealthSettings.objects.filter(program=program).first()
    if found is not None:
        return found
    settings_row, _ = HealthSettings.objects.get_or_create(program=program)
    return settings_row


# --- SQL -------------------------------------------------------------------------------------


def _epoch_days(column: str) -> str:
    if connection.vendor == "postgresql":  # float, and once per member: numeric epochs per purchase cost 3x
        return f"(CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION) / 86400.0)"
    if connection.vendor == "sqlite":
        return f"(julianday({column}) - 2440587.5)"
    return f"(UNIX_TIMESTAMP({column}) / 86400.0)"


def _day(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"CAST({column} AT TIME ZONE 'UTC' AS DATE)"
    return f"DATE({column})"


def _purchases_sql(where: str) -> str:
    """Per-member purchase aggregates: first/last purchase (epoch days), orders, purchase days, net spend."""
    occurred = "p.occurred_at"
    return f"""
        SELECT p.member_id AS member_id,
               {_epoch_days(f"MIN({occurred})")} AS first_day,
               {_epoch_days(f"MAX({occurred})")} AS last_day,
               COUNT(*) AS orders,
               COUNT(DISTINCT {_day(occurred)}) AS days,
               CAST(SUM(p.amount - p.refunded_amount) AS DOUBLE PRECISION) AS spent
          FROM {Purchase._meta.db_table} p
         WHERE p.program_id = %s AND p.member_id IS NOT NULL AND p.status IN (%s, %s)
           AND p.occurred_at <= %s {where}
         GROUP BY p.member_id
    """


def _status_params() -> list[str]:
    return [str(status) for status in COUNTED_STATUSES]


def _floor(expression: str) -> str:
    return f"FLOOR({expression})" if connection.vendor != "sqlite" else f"CAST({expression} AS INTEGER)"


def _cutpoints(program: Program, now: datetime) -> dict:
    """Per RFM dimension, the smallest value that earns each score 1-5, and the median gap between orders.

    Window functions over the programme's buyers: a value's score is the quintile of the middle
    of the rank span its ties occupy (see ``rfm.midpoint_quintile``). Recency is compared by day
    and spend by whole currency units, so chunks scored later agree exactly.
    """
    gap = "CASE WHEN days > 1 THEN (last_day - first_day) / (days - 1) END"
    score = _floor("5.0 * (le - cnt / 2.0) / n")
    sql = f"""
        WITH agg AS ({_purchases_sql("")}),
        dims AS (
            SELECT 'r' AS dim, {_floor("last_day")} AS v FROM agg
            UNION ALL SELECT 'f', orders FROM agg
            UNION ALL SELECT 'm', {_floor("spent")} FROM agg
        ),
        counts AS (SELECT dim, v, COUNT(*) AS cnt FROM dims GROUP BY dim, v),
        ranked AS (
            SELECT dim, v, cnt,
                   SUM(cnt) OVER (PARTITION BY dim ORDER BY v) AS le,
                   SUM(cnt) OVER (PARTITION BY dim) AS n
              FROM counts
        ),
        gaps AS (SELECT {gap} AS gap FROM agg),
        halves AS (SELECT gap, NTILE(2) OVER (ORDER BY gap) AS half FROM gaps WHERE gap IS NOT NULL)
        SELECT dim, 1 + {score} AS score, MIN(v) FROM ranked GROUP BY dim, 1 + {score}
        UNION ALL SELECT 'g', half, MAX(gap) FROM halves GROUP BY half
    """
    bounds: dict[str, dict[str, float]] = {"r": {}, "f": {}, "m": {}, "g": {}}
    with connection.cursor() as cursor:
        cursor.execute(sql, [program.pk, *_status_params(), now])
        for dim, tile, value in cursor.fetchall():
            bounds[dim][str(min(int(tile), 5))] = float(value)
    result: dict = {dim: bounds[dim] for dim in ("r", "f", "m")}
    result["median_gap_days"] = bounds["g"].get("1")
    return result


@dataclass
class ChunkData:
    member_ids: np.ndarray
    first_day: np.ndarray  # NaN for members who never bought
    last_day: np.ndarray
    orders: np.ndarray
    days: np.ndarray
    spent: np.ndarray
    detractor_day: np.ndarray | None = None  # latest recent detractor answer (epoch days), NaN: none

    @property
    def buyers(self) -> np.ndarray:
        return self.orders > 0


def _detractors_sql() -> str:
    """Per member, the latest detractor answer (epoch days) in ``(since, now]``.

    Uses the (member, -submitted_at) index: the chunk's id range, newest first.
    """
    return f"""
        SELECT r.member_id AS member_id, {_epoch_days("MAX(r.submitted_at)")} AS detractor_day
          FROM {SurveyResponse._meta.db_table} r
         WHERE r.program_id = %s AND r.is_detractor = %s AND r.member_id BETWEEN %s AND %s
           AND r.submitted_at > %s AND r.submitted_at <= %s
         GROUP BY r.member_id
    """


def _load_chunk(program: Program, now: datetime, lo: int, hi: int, *, detractor_days: int = 0) -> ChunkData:
    sql = f"""
        SELECT m.id, agg.first_day, agg.last_day, agg.orders, agg.days, agg.spent, d.detractor_day
          FROM {Member._meta.db_table} m
          LEFT JOIN ({_purchases_sql("AND p.member_id BETWEEN %s AND %s")}) agg ON agg.member_id = m.id
          LEFT JOIN ({_detractors_sql()}) d ON d.member_id = m.id
         WHERE m.program_id = %s AND m.id BETWEEN %s AND %s
         ORDER BY m.id
    """
    since = now - timedelta(days=detractor_days)
    params = [program.pk, *_status_params(), now, lo, hi, program.pk, True, lo, hi, since, now, program.pk, lo, hi]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        empty = np.empty(0)
        return ChunkData(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty, empty)
    ids, first, last, orders, days, spent, detractor = zip(*rows, strict=True)
    as_float = lambda values: np.array([np.nan if v is None else float(v) for v in values])  # noqa: E731
    return ChunkData(
        member_ids=np.array(ids, dtype=np.int64),
        first_day=as_float(first),
        last_day=as_float(last),
        orders=np.nan_to_num(as_float(orders)).astype(np.int64),
        days=np.nan_to_num(as_float(days)).astype(np.int64),
        spent=np.nan_to_num(as_float(spent)),
        detractor_day=as_float(detractor),
    )


# --- the model fit (weekly) --------------------------------------------------------------------


def _buyer_arrays(program: Program, now: datetime) -> ChunkData:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT member_id, first_day, last_day, orders, days, spent FROM ({_purchases_sql('')}) agg",
            [program.pk, *_status_params(), now],
        )
        rows = cursor.fetchall()
    if not rows:
        empty = np.empty(0)
        return ChunkData(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
    columns = [np.array(col, dtype=float) for col in zip(*rows, strict=True)]
    return ChunkData(
        columns[0].astype(np.int64),
        columns[1],
        columns[2],
        columns[3].astype(np.int64),
        columns[4].astype(np.int64),
        columns[5],
    )


def _model_inputs(data: ChunkData, now_day: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD's (x, t_x, T) in weeks: repeat purchase days, time of the last one, age."""
    x = np.maximum(data.days - 1, 0).astype(float)
    t_x = np.maximum(data.last_day - data.first_day, 0.0) / WEEK_DAYS
    age = np.maximum(now_day - data.first_day, 0.0) / WEEK_DAYS
    return x, np.minimum(t_x, age), age


#: BLAS threads inside the fit and the scoring: scipy's L-BFGS-B does small matrix products where
#: OpenBLAS threads only fight each other (10 ms with one thread, 1.4 s with two on a busy 2-core machine).
BLAS_THREADS = 1


def health_fit_model(*, program: Program, now: datetime | None = None) -> HealthModelFit:
    """Fit BG/NBD and Gamma-Gamma on the programme's buyers, or record why there is too little history."""
    with threadpool_limits(limits=BLAS_THREADS):
        return _fit_model(program=program, now=now)


def _fit_model(*, program: Program, now: datetime | None) -> HealthModelFit:
    now = now or timezone.now()
    policy = health_settings_for(program)
    started = time.perf_counter()
    data = _buyer_arrays(program, now)
    now_day = now.timestamp() / DAY
    buyers = len(data.member_ids)
    frequent = int((data.days >= 3).sum())
    history_days = int(now_day - np.nanmin(data.first_day)) if buyers else 0
    fit = HealthModelFit(
        program=program, fitted_at=now, buyers=buyers, frequent_buyers=frequent, history_days=history_days
    )
    missing = []
    if buyers < policy.min_buyers_for_model:
        missing.append(f"{buyers} buyers of {policy.min_buyers_for_model} needed")
    if history_days < policy.min_history_days:
        missing.append(f"{history_days} days of history of {policy.min_history_days} needed")
    if frequent < policy.min_frequent_buyers:
        missing.append(f"{frequent} customers with 3+ orders of {policy.min_frequent_buyers} needed")
    if missing:
        fit.status, fit.reason = HealthModelFit.Status.INSUFFICIENT, "; ".join(missing)[:255]
    else:
        x, t_x, age = _model_inputs(data, now_day)
        try:
            result = bgnbd.fit(x, t_x, age, penalizer=0.0)
            fit.r, fit.alpha, fit.a, fit.b = (result.params.r, result.params.alpha, result.params.a, result.params.b)
            fit.log_likelihood = result.log_likelihood
            fit.status = HealthModelFit.Status.FITTED
            if not result.converged:
                fit.reason = "The optimiser stopped before converging; the parameters are its best estimate."
            _fit_spend(fit, data, x)
            _fit_risk(
                fit, program, data, now=now, horizon_days=policy.horizon_days, detractor_days=policy.detractor_days
            )
        except (ValueError, FloatingPointError, ArithmeticError, np.linalg.LinAlgError) as exc:
            logger.exception("Health model fit failed for programme %s.", program.pk)
            fit.status, fit.reason = HealthModelFit.Status.FAILED, f"{type(exc).__name__}: {exc}"[:255]
            fit.r = fit.alpha = fit.a = fit.b = fit.log_likelihood = None
    fit.seconds = time.perf_counter() - started
    fit.save()
    return fit


MIN_BACKTEST_DAYS = risk.MIN_BACKTEST_DAYS
MIN_DETRACTORS_TO_LEARN = risk.MIN_DETRACTORS_TO_LEARN


def _detractors_at(program: Program, cut: datetime, detractor_days: int) -> np.ndarray:
    """Ids of the members with a detractor answer in ``(cut - detractor_days, cut]`` (one query)."""
    ids = SurveyResponse.objects.filter(
        program=program,
        is_detractor=True,
        member__isnull=False,
        submitted_at__gt=cut - timedelta(days=detractor_days),
        submitted_at__lte=cut,
    ).values_list("member_id", flat=True)
    return np.fromiter(ids.order_by().distinct().iterator(), dtype=np.int64)


def _fit_risk(
    fit: HealthModelFit,
    program: Program,
    data: ChunkData,
    *,
    now: datetime,
    horizon_days: int,
    detractor_days: int = 0,
) -> None:
    """Learn the at-risk score from a backtest: cut the history, see who bought nothing after the cut.

    See ``loyalty.health.risk``: :func:`risk.backtest_days` chooses the window, :func:`risk.learn` fits
    BG/NBD at the cut, the weights (with the optional features this shop has) and their calibration,
    :func:`risk.carried_to_today` moves the calibration's level from the backtest's customers to today's;
    ``bench/at_risk_quality.py`` calls the same functions. Without a usable backtest the score is
    BG/NBD's lapse probability alone. With at least ``MIN_DETRACTORS_TO_LEARN`` backtest buyers who answered
    as detractors within ``detractor_days`` before the cut, also learn the detractor weight
    (``risk.fit_offset``) on top of the backtest's own score, and store it in the risk model as
    ``detractor_weight`` / ``detractor_n``.
    """
    days = risk.backtest_days(fit.history_days, horizon_days)
    if days is None:
        return
    cut = now - timedelta(days=days)
    before = _buyer_arrays(program, cut)
    if len(before.member_ids) < 50:
        return
    bought_after = Purchase.objects.filter(
        program=program,
        member__isnull=False,
        status__in=COUNTED_STATUSES,
        occurred_at__gt=cut,
        occurred_at__lte=now,
    ).values_list("member_id", flat=True)
    lapsed = ~np.isin(before.member_ids, np.fromiter(bought_after.distinct().iterator(), dtype=np.int64))
    if lapsed.all() or not lapsed.any():
        return
    customers = health_customers(program=program, data=before, now=cut)
    params = bgnbd.BGNBDParams(r=fit.r, alpha=fit.alpha, a=fit.a, b=fit.b)
    try:
        backtest = risk.learn(customers, lapsed, window_days=days, horizon_days=horizon_days)
        # today's buyers (the ones the refresh will score) set the level the model starts the week at
        today = health_customers(program=program, data=data, now=now, features=backtest.model.features)
        model = risk.carried_to_today(backtest, params, today)
    except (ValueError, FloatingPointError, ArithmeticError):
        logger.warning("At-risk backtest failed for programme %s; using BG/NBD alone.", program.pk, exc_info=True)
        return
    fit.risk_model = model.as_dict()
    if detractor_days > 0:
        detractor = np.isin(before.member_ids, _detractors_at(program, cut, detractor_days))
        if detractor.sum() >= MIN_DETRACTORS_TO_LEARN:
            fit.risk_model["detractor_weight"] = round(risk.fit_offset(backtest.scores, detractor, lapsed), 4)
            fit.risk_model["detractor_n"] = int(detractor.sum())
    fit.backtest_days = days
    fit.backtest_auc = backtest.auc
    fit.backtest_recency_auc = backtest.recency_auc


#: A survey answer (not a detractor's: those have their own weight) within this many days is the
#: ``survey_answered`` feature of the at-risk score.
SURVEY_FEATURE_DAYS = 180


def health_customers(
    *, program: Program, data: ChunkData, now: datetime, features: tuple[str, ...] | None = None
) -> risk.Customers:
    """The at-risk model's inputs for ``data``'s buyers as of ``now``: BG/NBD's (x, t_x, T) and the optional
    features (``risk.OPTIONAL_FEATURES``) from the shop's own tables, one query per kind over the members'
    id range. ``features``: only load what a fitted model uses (None: everything, for the weekly fit).
    A shop without a kind of data gets zeros, and the fit leaves that feature out."""
    buyers = data.buyers
    ids = data.member_ids[buyers]
    sub = ChunkData(*(getattr(data, f)[buyers] for f in ("member_ids", "first_day", "last_day", "orders", "days",
                                                         "spent")))  # fmt: skip
    x, t_x, age = _model_inputs(sub, now.timestamp() / DAY)
    wanted = set(risk.OPTIONAL_FEATURES) | {"category"} if features is None else set(features)
    if any(name.startswith(risk.CATEGORY_PREFIX) for name in wanted):
        wanted.add("category")
    extras: dict[str, np.ndarray] = {}
    if not len(ids):
        return risk.Customers(x, t_x, age, value=sub.spent)
    lo, hi = int(ids.min()), int(ids.max())

    def flags(member_ids) -> np.ndarray:
        return np.isin(ids, np.fromiter(member_ids, dtype=np.int64))

    if "category" in wanted:
        firsts = dict(
            Purchase.objects.filter(
                program=program, member_id__gte=lo, member_id__lte=hi, status__in=COUNTED_STATUSES, occurred_at__lte=now
            )
            .exclude(category="")
            .values("member_id")
            .annotate(category=Min("category"))
            .order_by()
            .values_list("member_id", "category")
        )
        extras["category"] = np.array([firsts.get(i, "") for i in ids.tolist()], dtype=object)
    if "used_code" in wanted:
        used = Redemption.objects.filter(program=program, member_id__gte=lo, member_id__lte=hi, used_at__lte=now)
        extras["used_code"] = flags(used.values_list("member_id", flat=True).distinct().order_by())
    if "enrolled_before" in wanted:  # epoch days straight from SQL: no datetime object per member
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {_epoch_days('joined_at')} FROM {Member._meta.db_table}"
                " WHERE id BETWEEN %s AND %s ORDER BY id",
                [lo, hi],
            )
            rows = cursor.fetchall()
        member_ids = np.array([row[0] for row in rows], dtype=np.int64)
        joined_day = np.array([np.nan if row[1] is None else float(row[1]) for row in rows])
        at = np.minimum(np.searchsorted(member_ids, ids), max(len(member_ids) - 1, 0))
        known = (member_ids[at] == ids) if len(member_ids) else np.zeros(len(ids), dtype=bool)
        now_day = now.timestamp() / DAY
        extras["enrolled_weeks"] = np.where(known, (now_day - joined_day[at]) / WEEK_DAYS, np.nan)
    email = [name for name in ("opened", "clicked", "unsubscribed") if name in wanted]
    if email:
        rows = (
            Message.objects.filter(program=program, member_id__gte=lo, member_id__lte=hi)
            .values("member_id")
            .annotate(**{name: Count("pk", filter=Q(**{f"{name}_at__lte": now})) for name in email})
            .order_by()
        )
        counts = {row["member_id"]: row for row in rows}
        for name in email:
            extras[name] = flags(i for i, row in counts.items() if row[name])
    if "survey_answered" in wanted:
        answered = SurveyResponse.objects.filter(  # detractors have their own learnt weight (fit_offset)
            program=program,
            is_detractor=False,
            member_id__gte=lo,
            member_id__lte=hi,
            submitted_at__gt=now - timedelta(days=SURVEY_FEATURE_DAYS),
            submitted_at__lte=now,
        )
        extras["survey_answered"] = flags(answered.values_list("member_id", flat=True).distinct().order_by())
    return risk.Customers(x, t_x, age, value=sub.spent, **extras)


def _fit_spend(fit: HealthModelFit, data: ChunkData, x: np.ndarray) -> None:
    """Gamma-Gamma on repeat buyers' average order value; without it CLV falls back to their own average."""
    aov = np.where(data.orders > 0, data.spent / np.maximum(data.orders, 1), 0.0)
    usable = (x > 0) & (aov > 0)
    if usable.sum() < 20:
        return
    try:
        spend = gamma_gamma.fit(x[usable], aov[usable])
    except (ValueError, FloatingPointError, ArithmeticError):
        logger.warning("Gamma-Gamma fit failed for programme %s; CLV uses plain averages.", fit.program_id)
        return
    params = getattr(spend, "params", spend)
    fit.gg_p, fit.gg_q, fit.gg_v = params.p, params.q, params.v


def _current_fit(program: Program, now: datetime) -> HealthModelFit:
    latest = HealthModelFit.objects.filter(program=program, fitted_at__lte=now).order_by("-fitted_at", "-id").first()
    if latest is None or now - latest.fitted_at > FIT_MAX_AGE:
        latest = health_fit_model(program=program, now=now)
    return latest


# --- the refresh (nightly) ---------------------------------------------------------------------


def health_refresh_start(*, program: Program, now: datetime | None = None, chunk_size: int | None = None):
    """Open a run: breakpoints and model for the whole programme, and the member id ranges to score."""
    now = now or timezone.now()
    fit = _current_fit(program, now)
    run = HealthRun.objects.create(
        program=program,
        started_at=now,
        fit=fit,
        scored_by="bgnbd" if fit.usable else "rules",
        cutpoints=_cutpoints(program, now),
    )
    ranges = list(_id_ranges(program, chunk_size or loyalty_settings.HEALTH_CHUNK_SIZE))
    HealthRun.objects.filter(pk=run.pk).update(chunks=len(ranges))
    run.chunks = len(ranges)
    return run, ranges


def _id_ranges(program: Program, size: int) -> Iterator[tuple[int, int]]:
    """Member id ranges of about ``size`` members each (one indexed query per boundary)."""
    members = Member.objects.filter(program=program).order_by("pk").values_list("pk", flat=True)
    bounds = members.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return
    lo = bounds["lo"]
    while lo is not None and lo <= bounds["hi"]:
        last = members.filter(pk__gte=lo)[size - 1 : size].first()
        hi = last if last is not None else bounds["hi"]
        yield lo, hi
        lo = members.filter(pk__gt=hi).first()


def health_refresh_range(*, run: HealthRun, lo: int, hi: int) -> int:
    """Score members ``lo``..``hi`` of the run's programme and write their health. Returns members scored."""
    program = run.program
    now = run.started_at
    policy = health_settings_for(program)
    data = _load_chunk(program, now, lo, hi, detractor_days=policy.detractor_days)
    if not len(data.member_ids):
        return 0
    customers = None
    fit = run.fit
    if fit is not None and fit.usable and fit.risk_model and data.buyers.any():
        features = risk.RiskModel.from_dict(fit.risk_model).features
        customers = health_customers(program=program, data=data, now=now, features=features)
    with threadpool_limits(limits=BLAS_THREADS):
        scores = _score(data, now=now, run=run, policy=policy, customers=customers)
    with transaction.atomic():
        moved_to_risk = _write(program=program, now=now, scores=scores)
    if moved_to_risk:
        signals.send_on_commit(signals.members_at_risk, sender=Program, program=program, member_ids=moved_to_risk)
    return len(data.member_ids)


def health_refresh_finish(*, run: HealthRun) -> HealthRun:
    """Sum up what the run found (one aggregate query) and close it."""
    rows = CustomerHealth.objects.filter(program=run.program)
    policy = health_settings_for(run.program)
    eligible = (
        Q(orders__gte=policy.min_orders) | Q(m_score=5)
        if policy.high_value_spend is None
        else (Q(orders__gte=policy.min_orders) | Q(total_spent__gte=policy.high_value_spend))
    )
    aggregates = {
        "members": Count("pk"),
        "at_risk": Count("pk", filter=Q(at_risk=True)),
        "flagged_by_model": Count("pk", filter=Q(risk_reason__in=["model", "both"])),
        "flagged_by_gap": Count("pk", filter=Q(risk_reason__in=["gap", "both"])),
        "eligible": Count("pk", filter=eligible),
        **{
            f"t{threshold}": Count("pk", filter=eligible & Q(p_lapse__gt=threshold))
            for threshold in (*THRESHOLD_PREVIEW, float(policy.lapse_threshold))
        },
    }
    totals = rows.aggregate(**aggregates)
    counts = dict(rows.values_list("segment").annotate(n=Count("pk")).values_list("segment", "n"))
    run.members = totals["members"]
    run.at_risk = totals["at_risk"]
    run.flagged_by_model = totals["flagged_by_model"]
    run.flagged_by_gap = totals["flagged_by_gap"]
    run.eligible = totals["eligible"]
    if run.scored_by == "bgnbd" and run.eligible:
        run.threshold_shares = {
            f"{threshold:.3f}": round(totals[f"t{threshold}"] / run.eligible, 4)
            for threshold in sorted({*THRESHOLD_PREVIEW, float(policy.lapse_threshold)})
        }
    run.segment_counts = {segment: counts.get(segment, 0) for segment in Segment.values}
    run.finished_at = timezone.now()
    run.seconds = (run.finished_at - run.started_at).total_seconds()
    run.save()
    return run


def health_refresh(*, program: Program, now: datetime | None = None, chunk_size: int | None = None) -> HealthRun:
    """Refresh every member's health in this process, chunk after chunk."""
    clock = time.perf_counter()
    run, ranges = health_refresh_start(program=program, now=now, chunk_size=chunk_size)
    for lo, hi in ranges:
        health_refresh_range(run=run, lo=lo, hi=hi)
    HealthRun.objects.filter(pk=run.pk).update(chunks_done=len(ranges))
    run.chunks_done = len(ranges)
    run = health_refresh_finish(run=run)
    if now is not None:  # a backdated run: report wall time, not "now minus the chosen date"
        run.seconds = time.perf_counter() - clock
        HealthRun.objects.filter(pk=run.pk).update(seconds=run.seconds)
    return run


def health_chunk_done(*, run_id: int) -> HealthRun | None:
    """Count a finished chunk; the last one closes the run. Row-locked so exactly one caller finishes."""
    with transaction.atomic():
        run = HealthRun.objects.select_for_update().select_related("program").filter(pk=run_id).first()
        if run is None:
            return None
        run.chunks_done += 1
        HealthRun.objects.filter(pk=run.pk).update(chunks_done=F("chunks_done") + 1)
        if run.chunks_done < run.chunks:
            return None
    return health_refresh_finish(run=run)


def health_refresh_all(*, now: datetime | None = None) -> list[HealthRun]:
    return [health_refresh(program=program, now=now) for program in Program.objects.filter(is_active=True)]


def health_fit_all(*, now: datetime | None = None) -> list[HealthModelFit]:
    return [health_fit_model(program=program, now=now) for program in Program.objects.filter(is_active=True)]


# --- scoring (numpy) ---------------------------------------------------------------------------


@dataclass
class Scores:
    data: ChunkData
    columns: dict[str, np.ndarray]


with_added_log_odds = risk.with_added_log_odds


@dataclass(frozen=True)
class DetractorWeight:
    """The weight a recent detractor answer adds to the log-odds of lapsing, and where it comes from."""

    value: float
    learnt_from: int | None = None  # detractors in the backtest it was learnt from; None: the setting
    enabled: bool = True  # False: the setting is 0, feedback changes neither score nor segment

    @property
    def learnt(self) -> bool:
        return self.learnt_from is not None


def detractor_weight_in_use(policy: HealthSettings, fit: HealthModelFit | None) -> DetractorWeight:
    """The fit's learnt weight when it has one, else the setting; a setting of 0 switches feedback off."""
    setting = float(policy.detractor_weight)
    if setting <= 0:
        return DetractorWeight(0.0, enabled=False)
    learnt = (fit.risk_model or {}) if fit is not None and fit.usable else {}
    if learnt.get("detractor_weight") is not None:
        return DetractorWeight(float(learnt["detractor_weight"]), learnt_from=int(learnt.get("detractor_n") or 0))
    return DetractorWeight(setting)


def _score(
    data: ChunkData, *, now: datetime, run: HealthRun, policy: HealthSettings, customers: risk.Customers | None = None
) -> Scores:
    now_day = now.timestamp() / DAY
    buyers = data.buyers
    cut = run.cutpoints
    n = len(data.member_ids)
    detractor_day = data.detractor_day if data.detractor_day is not None else np.full(n, np.nan)
    # A detractor answer within the memory: a feature unless the setting is 0. The score uses the
    # weight learnt by the weekly backtest when it had enough detractors, else the setting's.
    in_use = detractor_weight_in_use(policy, run.fit)
    weight = in_use.value
    detractor = buyers & ~np.isnan(detractor_day) & in_use.enabled

    recency = np.where(buyers, np.floor(np.maximum(now_day - np.nan_to_num(data.last_day), 0)), np.nan)
    age = np.where(buyers, np.floor(np.maximum(now_day - np.nan_to_num(data.first_day), 0)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(data.days > 1, (data.last_day - data.first_day) / (data.days - 1), np.nan)
        aov = np.where(buyers, data.spent / np.maximum(data.orders, 1), 0.0)

    r = np.where(buyers, rfm.quintile_scores(np.floor(np.nan_to_num(data.last_day)), cut.get("r", {})), 0)
    f = np.where(buyers, rfm.quintile_scores(data.orders, cut.get("f", {})), 0)
    m = np.where(buyers, rfm.quintile_scores(np.floor(data.spent), cut.get("m", {})), 0)
    segment = rfm.segments_for(np.where(buyers, r, 0), np.where(buyers, rfm.fm_scores(f, m), 0), policy.rfm_grid)

    high_value = m >= 5 if policy.high_value_spend is None else data.spent >= float(policy.high_value_spend)
    real_history = buyers & ((data.orders >= policy.min_orders) | high_value)
    typical_gap = np.where(np.isnan(gap), cut.get("median_gap_days") or np.nan, gap)
    with np.errstate(invalid="ignore"):
        overdue = real_history & (recency > float(policy.gap_factor) * typical_gap)

    p_alive = np.full(n, np.nan)
    p_lapse = np.full(n, np.nan)
    expected = np.full(n, np.nan)
    clv = np.full(n, np.nan)
    next_order = np.where(np.isnan(gap), np.nan, data.last_day + gap)  # rules: their own rhythm
    fit = run.fit
    model_flag = np.zeros(n, dtype=bool)
    if fit is not None and fit.usable and buyers.any():
        params = bgnbd.BGNBDParams(r=fit.r, alpha=fit.alpha, a=fit.a, b=fit.b)
        x, t_x, age_w = _model_inputs(data, now_day)
        idx = np.flatnonzero(buyers)
        x, t_x, age_w = x[idx], t_x[idx], age_w[idx]
        horizon_w = policy.horizon_days / WEEK_DAYS
        p_alive[idx] = bgnbd.p_alive(params, x, t_x, age_w)
        if fit.risk_model:
            if customers is None:
                customers = risk.Customers(x, t_x, age_w, value=data.spent[idx])
            model = risk.RiskModel.from_dict(fit.risk_model)
            p_lapse[idx] = risk.lapse_probability(model, params, customers=customers)
        else:
            p_lapse[idx] = bgnbd.p_no_purchase(params, horizon_w, x, t_x, age_w)
        if detractor.any() and weight > 0:  # an unhappy customer is likelier to lapse: shift the log-odds
            raised = with_added_log_odds(p_lapse, weight)
            p_lapse = np.where(detractor & ~np.isnan(p_lapse), raised, p_lapse)
        expected[idx] = bgnbd.expected_purchases(params, 90 / WEEK_DAYS, x, t_x, age_w)
        in_horizon = bgnbd.expected_purchases(params, horizon_w, x, t_x, age_w)
        with np.errstate(divide="ignore", invalid="ignore"):
            soon = np.where(in_horizon > 0.05, now_day + policy.horizon_days / in_horizon, np.nan)
        next_order[idx] = np.where(soon - now_day <= 2 * 365, soon, np.nan)
        year = bgnbd.expected_purchases(params, CLV_HORIZON_DAYS / WEEK_DAYS, x, t_x, age_w)
        value = aov[idx]
        if fit.gg_p is not None:
            spend = gamma_gamma.GammaGammaParams(p=fit.gg_p, q=fit.gg_q, v=fit.gg_v)
            value = gamma_gamma.conditional_expected_average_value(spend, x, aov[idx])
        clv[idx] = year * value
        with np.errstate(invalid="ignore"):
            model_flag = real_history & (p_lapse > float(policy.lapse_threshold))

    flagged = model_flag | overdue
    grid_at_risk = segment == Segment.AT_RISK.value
    overridable = np.isin(segment, [s.value for s in OVERRIDABLE])
    segment = np.where(flagged & overridable, Segment.AT_RISK.value, segment)
    at_risk = segment == Segment.AT_RISK.value
    reason = np.full(n, "", dtype=object)
    reason[at_risk & grid_at_risk] = CustomerHealth.Reason.RFM.value
    reason[at_risk & overdue] = CustomerHealth.Reason.GAP.value
    reason[at_risk & model_flag] = CustomerHealth.Reason.MODEL.value
    reason[at_risk & model_flag & overdue] = CustomerHealth.Reason.BOTH.value
    # The customer's voice: a repeat customer who still looks fine but said they are unhappy.
    voice = (
        detractor
        & ~at_risk
        & (data.orders >= policy.min_orders)
        & np.isin(segment, [s.value for s in VOICE_OVERRIDABLE])
    )
    segment = np.where(voice, Segment.NEEDS_ATTENTION.value, segment)
    reason[voice] = CustomerHealth.Reason.VOICE.value
    at_risk = at_risk | voice

    return Scores(
        data=data,
        columns={
            "orders": data.orders,
            "frequency": np.maximum(data.days - 1, 0),
            "first_day": data.first_day,
            "last_day": data.last_day,
            "recency_days": recency,
            "age_days": age,
            "typical_gap_days": gap,
            "total_spent": data.spent,
            "monetary": aov,
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "p_alive": p_alive,
            "p_lapse": p_lapse,
            "expected_purchases": expected,
            "next_order_day": next_order,
            "predicted_clv": clv,
            "segment": segment,
            "at_risk": at_risk,
            "risk_reason": reason,
            "scored_by": np.full(n, run.scored_by, dtype=object),
            "detractor_day": detractor_day,
        },
    )


# --- writing -------------------------------------------------------------------------------------

FIELDS = [
    "orders", "frequency", "first_purchase_at", "last_purchase_at", "recency_days", "age_days", "typical_gap_days",
    "total_spent", "monetary", "r_score", "f_score", "m_score", "p_alive", "p_lapse", "expected_purchases",
    "expected_next_order_on", "predicted_clv", "segment", "segment_since", "at_risk", "risk_reason", "scored_by",
    "computed_at", "detractor_at",
]  # fmt: skip


def _rows(program: Program, now: datetime, scores: Scores) -> Iterator[tuple]:
    """One tuple per member in ``FIELDS`` order (after member_id, program_id); Python values."""
    c = scores.columns
    utc = timezone.get_fixed_timezone(0)

    def when(day: float) -> datetime | None:
        return None if np.isnan(day) else datetime.fromtimestamp(day * DAY, tz=utc)

    def num(value: float, digits: int | None = None):
        if np.isnan(value):
            return None
        return round(float(value), digits) if digits is not None else float(value)

    def money(value: float) -> Decimal | None:
        return None if np.isnan(value) else Decimal(f"{value:.2f}")

    def score(value: int) -> int | None:
        return int(value) or None

    for i, member_id in enumerate(scores.data.member_ids.tolist()):
        next_day = c["next_order_day"][i]
        yield (
            member_id,
            program.pk,
            int(c["orders"][i]),
            int(c["frequency"][i]),
            when(c["first_day"][i]),
            when(c["last_day"][i]),
            None if np.isnan(c["recency_days"][i]) else int(c["recency_days"][i]),
            None if np.isnan(c["age_days"][i]) else int(c["age_days"][i]),
            num(c["typical_gap_days"][i], 2),
            money(c["total_spent"][i]),
            money(c["monetary"][i]),
            score(c["r_score"][i]),
            score(c["f_score"][i]),
            score(c["m_score"][i]),
            num(c["p_alive"][i], 6),
            num(c["p_lapse"][i], 6),
            num(c["expected_purchases"][i], 6),
            None if np.isnan(next_day) else when(next_day).date(),
            money(c["predicted_clv"][i]),
            c["segment"][i],
            now,  # segment_since: kept when the segment did not change (see the writers)
            bool(c["at_risk"][i]),
            c["risk_reason"][i],
            c["scored_by"][i],
            now,
            when(c["detractor_day"][i]),
        )


def _write(*, program: Program, now: datetime, scores: Scores) -> list[int]:
    if connection.vendor == "postgresql":
        return _write_postgresql(program, now, scores)
    return _write_generic(program, now, scores)


def _write_generic(program: Program, now: datetime, scores: Scores) -> list[int]:
    ids = scores.data.member_ids.tolist()
    existing = CustomerHealth.objects.filter(member_id__gte=ids[0], member_id__lte=ids[-1], program=program)
    before = {
        member_id: (segment, since)
        for member_id, segment, since in existing.values_list("member_id", "segment", "segment_since")
    }
    objects, changes, moved_to_risk = [], [], []
    for row in _rows(program, now, scores):
        values = dict(zip(["member_id", "program_id", *FIELDS], row, strict=True))
        old, old_since = before.get(values["member_id"], (None, None))
        if old == values["segment"]:
            values["segment_since"] = old_since
        else:
            changes.append(
                SegmentChange(
                    program_id=program.pk,
                    member_id=values["member_id"],
                    from_segment=old or "",
                    to_segment=values["segment"],
                    changed_at=now,
                )
            )
            if values["segment"] == Segment.AT_RISK:
                moved_to_risk.append(values["member_id"])
        objects.append(CustomerHealth(**values))
    CustomerHealth.objects.bulk_create(
        objects,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["member"],
        update_fields=["program", *FIELDS],
    )
    SegmentChange.objects.bulk_create(changes, batch_size=1000)
    return moved_to_risk


# Raw columns as scored (numpy), in COPY order; the INSERT below converts them to the model's types.
RAW_COLUMNS = [
    ("member_id", "int8"), ("orders", "int8"), ("frequency", "int8"), ("first_day", "float8"),
    ("last_day", "float8"), ("recency_days", "float8"), ("age_days", "float8"), ("typical_gap_days", "float8"),
    ("total_spent", "float8"), ("monetary", "float8"), ("r_score", "int8"), ("f_score", "int8"),
    ("m_score", "int8"), ("p_alive", "float8"), ("p_lapse", "float8"), ("expected_purchases", "float8"),
    ("next_order_day", "float8"), ("predicted_clv", "float8"), ("segment", "text"), ("at_risk", "bool"),
    ("risk_reason", "text"), ("detractor_day", "float8"),
]  # fmt: skip
RAW_TYPES = {"int8": np.int64, "float8": float, "text": object, "bool": bool}


def _write_postgresql(program: Program, now: datetime, scores: Scores) -> list[int]:
    """Binary ``COPY`` of the raw numpy columns into a temporary table, then in SQL: record segment
    changes and upsert, converting types (epoch days to timestamps, floats to rounded decimals).

    No Python work per member beyond handing the values to the driver.
    """
    table = CustomerHealth._meta.db_table
    changes = SegmentChange._meta.db_table
    values = {**scores.columns, "member_id": scores.data.member_ids}
    columns = [np.asarray(values[name]).astype(RAW_TYPES[kind]).tolist() for name, kind in RAW_COLUMNS]
    scored_by = str(scores.columns["scored_by"][0]) if len(scores.data.member_ids) else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS loyalty_health_raw ("
            + ", ".join(f"{name} {kind}" for name, kind in RAW_COLUMNS)
            + ") ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE loyalty_health_raw")
        with cursor.cursor.copy("COPY loyalty_health_raw FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in RAW_COLUMNS])
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        cursor.execute(
            f"""
            INSERT INTO {changes} (program_id, member_id, from_segment, to_segment, changed_at)
            SELECT %s, s.member_id, COALESCE(h.segment, ''), s.segment, %s
              FROM loyalty_health_raw s LEFT JOIN {table} h ON h.member_id = s.member_id
             WHERE h.segment IS DISTINCT FROM s.segment
            RETURNING member_id, to_segment
            """,
            [program.pk, now],
        )
        moved_to_risk = [member_id for member_id, segment in cursor.fetchall() if segment == Segment.AT_RISK]
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in ["program_id", *FIELDS] if name != "segment_since")
        cursor.execute(
            f"""
            INSERT INTO {table} (member_id, program_id, {", ".join(FIELDS)})
            SELECT member_id, %s, orders, frequency,
                   to_timestamp(NULLIF(first_day, 'NaN') * 86400), to_timestamp(NULLIF(last_day, 'NaN') * 86400),
                   CAST(NULLIF(recency_days, 'NaN') AS INTEGER), CAST(NULLIF(age_days, 'NaN') AS INTEGER),
                   round(CAST(NULLIF(typical_gap_days, 'NaN') AS NUMERIC), 2),
                   round(CAST(total_spent AS NUMERIC), 2), round(CAST(monetary AS NUMERIC), 2),
                   NULLIF(r_score, 0), NULLIF(f_score, 0), NULLIF(m_score, 0),
                   round(CAST(NULLIF(p_alive, 'NaN') AS NUMERIC), 6), round(CAST(NULLIF(p_lapse, 'NaN') AS NUMERIC), 6),
                   round(CAST(NULLIF(expected_purchases, 'NaN') AS NUMERIC), 6),
                   CAST(to_timestamp(NULLIF(next_order_day, 'NaN') * 86400) AT TIME ZONE 'UTC' AS DATE),
                   round(CAST(NULLIF(predicted_clv, 'NaN') AS NUMERIC), 2),
                   segment, %s, at_risk, risk_reason, %s, %s,
                   to_timestamp(NULLIF(detractor_day, 'NaN') * 86400)
              FROM loyalty_health_raw
            ON CONFLICT (member_id) DO UPDATE SET {updates},
                segment_since = CASE WHEN {table}.segment = EXCLUDED.segment
                                     THEN {table}.segment_since ELSE EXCLUDED.segment_since END
            """,
            [program.pk, now, scored_by, now],
        )
    return moved_to_risk
