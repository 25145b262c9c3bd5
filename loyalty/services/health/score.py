"""Stage *score*: numpy over a chunk's arrays: RFM scores and segment, BG/NBD's and the at-risk
model's probabilities, expected purchases, CLV, the gap rule and the customer's voice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from threadpoolctl import threadpool_limits

from ...health import bgnbd, gamma_gamma, rfm, risk
from ...models import CustomerHealth, HealthModelFit, HealthRun, HealthSettings, Segment
from .load import ChunkData, _model_inputs
from .policy import BLAS_THREADS, CLV_HORIZON_DAYS, DAY, OVERRIDABLE, VOICE_OVERRIDABLE, WEEK_DAYS


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


def health_score(*, data: ChunkData, run: HealthRun, policy: HealthSettings) -> Scores:
    """Stage *score*: every member of ``data`` scored as of the run's start (numpy, no query), with the
    run's RFM breakpoints and model; the at-risk model's features from ``data.customers``."""
    with threadpool_limits(limits=BLAS_THREADS):
        return _score(data, now=run.started_at, run=run, policy=policy, customers=data.customers)


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
