"""Stage *fit* (weekly): BG/NBD and Gamma-Gamma on the programme's buyers, and the at-risk score
learnt from a backtest of the shop's own history."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
from django.utils import timezone
from threadpoolctl import threadpool_limits

from ...health import bgnbd, gamma_gamma, risk
from ...models import HealthModelFit, HealthSettings, Program, Purchase, SurveyResponse
from .load import ChunkData, _model_inputs, health_customers, health_load_buyers
from .policy import (
    BLAS_THREADS,
    COUNTED_STATUSES,
    DAY,
    FIT_MAX_AGE,
    MIN_DETRACTORS_TO_LEARN,
    health_settings_for,
    logger,
)


def health_fit_model(*, program: Program, now: datetime | None = None) -> HealthModelFit:
    """The weekly fit, saved: load the programme's buyers, fit, store the fit (or why there is too little history)."""
    now = now or timezone.now()
    started = time.perf_counter()
    data = health_load_buyers(program=program, now=now)
    fit = health_fit(program=program, data=data, now=now)
    fit.seconds = time.perf_counter() - started
    fit.save()
    return fit


def health_fit(
    *, program: Program, data: ChunkData, now: datetime, policy: HealthSettings | None = None
) -> HealthModelFit:
    """Stage *fit*: BG/NBD and Gamma-Gamma on ``data`` (the buyers as of ``now``) and the at-risk
    backtest, or why there is too little history. Returns the fit unsaved."""
    policy = policy or health_settings_for(program)
    with threadpool_limits(limits=BLAS_THREADS):
        return _fit(program=program, data=data, now=now, policy=policy)


def _fit(*, program: Program, data: ChunkData, now: datetime, policy: HealthSettings) -> HealthModelFit:
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
    return fit


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
    before = health_load_buyers(program=program, now=cut)
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
