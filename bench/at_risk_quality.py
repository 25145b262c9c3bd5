"""How well the BG/NBD at-risk score predicts lapse, measured on the CDNOW data, and how fast it runs.

    .venv/bin/python -m bench.at_risk_quality

CDNOW (Fader & Hardie) is the record of every CD purchase, January 1997 to June 1998, by the 23,570
customers who first bought in Q1 1997; the "sample" is a 1/10 random subset of 2,357 of them. Both files
ship with the ``lifetimes`` package and are read by path (``lifetimes.datasets`` needs the removed
``pkg_resources``). Purchases are counted once per customer-day and time is measured in weeks, as in the
published BG/NBD fit.

For each data set the model is fitted on a calibration period and judged on the holdout that follows:

- sample: calibration 1997-01-01..1997-09-30 (39 weeks), holdout 1997-10-01..1998-06-30 (39 weeks);
  this is the setup of Fader, Hardie & Lee (2005), whose r, alpha, a, b and log-likelihood it reproduces;
- master: calibration 1997-01-01..1997-12-31, holdout 1998-01-01..1998-06-30 (25.9 weeks).

"Lapsed" means no purchase in the holdout. Scores compared (higher = more at risk):

- at-risk (ours): the score a shop stores, computed by the same functions the weekly fit and the nightly
  refresh call (``score_cut``: ``risk.backtest_days``, ``risk.learn``, ``risk.carried_to_today``,
  ``risk.lapse_probability``): BG/NBD's lapse probability sharpened and calibrated by a backtest inside the
  calibration period (cut w days before its end, w = the holdout length when 60 days stay before the cut;
  fit BG/NBD before the cut; a logistic regression on who bought nothing after it, with the customer's age
  and the first order's value; Platt calibration on out-of-fold scores; the level carried from the
  backtest's customers to today's), carried to the holdout length by BG/NBD's ratio when w is shorter;
- BG/NBD P(no purchase): ``p_no_purchase`` over the holdout length on its own, a calibrated probability;
- -E[purchases]: BG/NBD's conditional expected purchases over the holdout, fewest first;
- recency: weeks since the last purchase at the end of calibration (``T - t_x``);
- RFM: the sum of three quintile scores within the calibration table, each 1..5 with 5 = most at risk:
  recency (longer since last purchase = riskier), frequency (fewer purchases = riskier) and monetary
  (lower mean spend per purchase, over all calibration purchases = riskier); ties share a quintile;
- 1 - P(alive): the trap; P(alive) is 1 for every one-time buyer, the most likely group to lapse.

Recency and RFM are rankings, not probabilities, so only the ranking metrics apply to them.
CDNOW has no survey answers: its results do not depend on the detractor feature.

Then a SYNTHETIC feedback experiment (``feedback_report``; made-up customers, not data): BG/NBD customers
some of whom are unhappy; unhappy customers drop out more readily after each purchase and, when they
answer a post-purchase survey, mostly answer as detractors (happy ones sometimes do too). The nightly
score (BG/NBD + backtest) gets the detractor feature as the refresh applies it, a weight added to the
log-odds of lapsing: several fixed weights (0.5 is the setting's default, the fallback) and the weight the
weekly fit learns from its backtest with the production function ``risk.fit_offset`` (when the backtest has
``risk.MIN_DETRACTORS_TO_LEARN`` detractors). It shows how the score responds; the numbers depend entirely on the
made-up effect sizes.
Finally a synthetic population of 1,000,000 customers drawn from the master fit times fitting and scoring.

``--all-cuts`` instead scores the master at every month end from 1997-03-31 to 1998-03-31, with the horizon
equal to the rest of the holdout and with a fixed 90 days, and prints one table row per cut and a summary line
(docs/health.md, "Every calibration cut"). Everything runs with one BLAS thread (threadpoolctl).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from importlib.resources import files

import numpy as np
from threadpoolctl import threadpool_limits

from loyalty.health import bgnbd, gamma_gamma, risk
from loyalty.health.metrics import average_ranks, brier_score, precision_at_top, roc_auc

WEEK = 7.0
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}  # FHL 2005 "RFM and CLV", sample, 946 repeaters


@dataclass(frozen=True)
class Transactions:
    """One row per customer-day: same-day purchases are summed into one transaction."""

    customer: np.ndarray
    day: np.ndarray  # datetime64[D]
    amount: np.ndarray


@dataclass(frozen=True)
class Summary:
    """Per-customer calibration summary (times in weeks) and holdout outcome."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    repeat_value: np.ndarray  # mean value of the repeat purchases (Gamma-Gamma's m); 0 when x == 0
    mean_value: np.ndarray  # mean value of all calibration purchases (for RFM)
    spent: np.ndarray  # total value of the calibration purchases (one-time buyers: their order's value)
    holdout_purchases: np.ndarray
    holdout_value: np.ndarray
    horizon: float  # holdout length in weeks

    @property
    def lapsed(self) -> np.ndarray:
        return (self.holdout_purchases == 0).astype(int)


def _yyyymmdd(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)
    months = np.array((values // 10000 - 1970) * 12 + (values // 100 % 100 - 1), dtype="datetime64[M]")
    return months.astype("datetime64[D]") + (values % 100 - 1).astype("timedelta64[D]")


def cdnow_path(name: str):
    """Path of a CDNOW file inside the installed ``lifetimes`` package, without importing its datasets module."""
    return files("lifetimes") / "datasets" / name


def load_cdnow(which: str = "sample") -> Transactions:
    """Read ``CDNOW_sample.txt`` (master id, sample id, date, CDs, dollars; no header) or ``CDNOW_master.txt``
    (id, date, CDs, dollars; one header line), and aggregate same-day purchases."""
    if which == "sample":
        raw = np.loadtxt(cdnow_path("CDNOW_sample.txt"), usecols=(0, 2, 4))
    elif which == "master":
        raw = np.loadtxt(cdnow_path("CDNOW_master.txt"), skiprows=1, usecols=(0, 1, 3))
    else:
        raise ValueError(f"unknown CDNOW data set {which!r}")
    customer = raw[:, 0].astype(np.int64)
    day = _yyyymmdd(raw[:, 1])
    order = np.lexsort((day, customer))
    customer, day, amount = customer[order], day[order], raw[order, 2]
    new = np.r_[True, (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])]
    group = np.cumsum(new) - 1
    return Transactions(customer[new], day[new], np.bincount(group, weights=amount))


def summarise(tx: Transactions, calibration_end: str, holdout_end: str) -> Summary:
    """Calibration (x, t_x, T) in weeks for every customer whose first purchase is in the calibration period.

    ``T`` runs from the first purchase to ``calibration_end`` (a purchase on Jan 1 gives T = 272/7 = 38.86
    weeks to Sep 30, exactly the published CDNOW summary); the holdout is ``(calibration_end, holdout_end]``.
    """
    cal_end, hold_end = np.datetime64(calibration_end, "D"), np.datetime64(holdout_end, "D")
    ids, first_index = np.unique(tx.customer, return_index=True)  # rows are sorted by (customer, day)
    index = np.searchsorted(ids, tx.customer)
    first = tx.day[first_index]
    in_cal = tx.day <= cal_end
    in_hold = (tx.day > cal_end) & (tx.day <= hold_end)
    n = ids.size
    cal_count = np.bincount(index, weights=in_cal, minlength=n)
    cal_value = np.bincount(index, weights=in_cal * tx.amount, minlength=n)
    last = np.full(n, np.datetime64("NaT", "D"))
    last_days = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_days, index[in_cal], (tx.day[in_cal] - first[index[in_cal]]).astype(np.int64))
    last = first + last_days.astype("timedelta64[D]")
    first_value = tx.amount[first_index]
    keep = first <= cal_end
    x = cal_count - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        repeat_value = np.where(x > 0, (cal_value - first_value) / np.maximum(x, 1), 0.0)
    summary = Summary(
        x=x,
        t_x=(last - first).astype(float) / WEEK,
        T=(cal_end - first).astype(float) / WEEK,
        repeat_value=repeat_value,
        mean_value=cal_value / np.maximum(cal_count, 1),
        spent=cal_value,
        holdout_purchases=np.bincount(index, weights=in_hold, minlength=n),
        holdout_value=np.bincount(index, weights=in_hold * tx.amount, minlength=n),
        horizon=float((hold_end - cal_end).astype(float)) / WEEK,
    )
    return Summary(**{k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in vars(summary).items()})


def quintile_score(values: np.ndarray) -> np.ndarray:
    """1..5 by quintile of the average rank (ties share a quintile)."""
    ranks = average_ranks(values)
    return np.minimum(5, 1 + np.floor(5 * (ranks - 0.5) / values.size)).astype(int)


def rfm_risk(s: Summary) -> np.ndarray:
    """RFM lapse-risk score 3..15: recency quintile + reversed frequency and monetary quintiles."""
    weeks_since_last = s.T - s.t_x
    return quintile_score(weeks_since_last) + (6 - quintile_score(s.x)) + (6 - quintile_score(s.mean_value))


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fit_lifetimes(s: Summary) -> tuple[dict[str, float] | None, float, str]:
    """lifetimes' own BetaGeoFitter on the same arrays, as an independent reference."""
    try:
        import pandas as pd  # noqa: F401  (lifetimes needs it; fail early with a clear reason)
        from lifetimes import BetaGeoFitter

        start = time.perf_counter()
        model = BetaGeoFitter(penalizer_coef=0.0).fit(s.x, s.t_x, s.T)
        seconds = time.perf_counter() - start
        params = {k: float(model.params_[k]) for k in ("r", "alpha", "a", "b")}
        ll = bgnbd.log_likelihood(bgnbd.BGNBDParams(**params), s.x, s.t_x, s.T)
        return {**params, "log_likelihood": ll}, seconds, ""
    except Exception as exc:  # noqa: BLE001 - a third-party fitter on newer numpy/scipy may fail in any way
        return None, 0.0, f"{type(exc).__name__}: {exc}"


def report(name: str, tx: Transactions, calibration_end: str, holdout_end: str, targets: dict) -> dict:
    s = summarise(tx, calibration_end, holdout_end)
    print(f"\n=== CDNOW {name}: {s.x.size:,} customers, {tx.customer.size:,} customer-day transactions ===")
    print(f"calibration to {calibration_end}, holdout to {holdout_end} ({s.horizon:.2f} weeks); time unit: weeks")

    result = bgnbd.fit(s.x, s.t_x, s.T)
    ours = {**result.params.as_dict(), "log_likelihood": result.log_likelihood}
    theirs, lifetimes_seconds, why = fit_lifetimes(s)
    published = PUBLISHED_BGNBD if name == "sample" else None
    print(f"\nBG/NBD fit: {result.seconds * 1000:.1f} ms, converged={result.converged}, {result.iterations} iterations")
    header = f"{'':16}{'ours':>14}"
    header += f"{'published':>14}{'':>6}" if published else ""
    header += f"{'lifetimes':>14}" if theirs else ""
    print(header)
    for key in ("r", "alpha", "a", "b", "log_likelihood"):
        line = f"{key:16}{ours[key]:14.4f}"
        if published:
            tolerance = 0.1 if key == "log_likelihood" else 0.001
            line += f"{published[key]:14.3f}  {mark(abs(ours[key] - published[key]) <= tolerance)}"
        if theirs:
            line += f"{theirs[key]:14.4f}"
        print(line)
    if theirs:
        print(f"lifetimes BetaGeoFitter took {lifetimes_seconds:.2f} s")
    else:
        print(f"lifetimes fit unavailable: {why}")

    params = result.params
    conditional = bgnbd.expected_purchases(params, s.horizon, s.x, s.t_x, s.T)
    new = bgnbd.expected_purchases_new(params, s.T + s.horizon) - bgnbd.expected_purchases_new(params, s.T)
    actual = s.holdout_purchases.sum()
    print(
        f"\nholdout repeat purchases: actual {actual:,.0f}; forecast {conditional.sum():,.1f} conditional on each "
        f"history ({conditional.sum() / actual - 1:+.1%}), {new.sum():,.1f} unconditional (cohort model)"
    )

    model_lapse = bgnbd.p_no_purchase(params, s.horizon, s.x, s.t_x, s.T)
    ours, backtest = backtest_risk(tx, calibration_end, s, params)
    print(
        f"\nbacktest: cut {backtest['days']} days before the end of calibration, {backtest['n']:,} customers, "
        f"{backtest['lapsed']:.1%} lapsed after the cut; weights "
        + ", ".join(f"{name} {w:+.3f}" for name, w in backtest["model"].named_weights)
        + f"; Platt {backtest['model'].platt[0]:+.3f}, {backtest['model'].platt[1]:.3f}; "
        f"backtest ECE {backtest['model'].ece:.2f} points; {backtest['seconds'] * 1000:.0f} ms"
    )
    alive = bgnbd.p_alive(params, s.x, s.t_x, s.T)
    y = s.lapsed
    rows = {
        "at-risk (ours)": (ours, True),
        "BG/NBD P(no purch.)": (model_lapse, True),
        "-E[purchases]": (-conditional, False),
        "recency": (s.T - s.t_x, False),
        "RFM": (rfm_risk(s), False),
        "1 - P(alive)": (1.0 - alive, True),
    }
    metrics = {}
    print(f"\nlapse (no purchase in holdout): actual rate {y.mean():.3f}")
    print(f"{'score':20}{'AUC':>8}{'top-20% prec':>14}{'mean pred':>11}{'Brier':>8}")
    for label, (score, is_probability) in rows.items():
        m = {"auc": roc_auc(y, score), "top": precision_at_top(y, score, 0.2)}
        line = f"{label:20}{m['auc']:8.3f}{m['top']:14.3f}"
        if is_probability:
            m["mean"], m["brier"] = float(score.mean()), brier_score(y, score)
            line += f"{m['mean']:11.3f}{m['brier']:8.3f}"
        else:
            line += f"{'-':>11}{'-':>8}"
        metrics[label] = m
        print(line)

    at_risk, recency = metrics["at-risk (ours)"], metrics["recency"]
    print("\ntargets:")
    print(f"  at-risk AUC {at_risk['auc']:.3f} >= {targets['auc']:.2f}: {mark(at_risk['auc'] >= targets['auc'])}")
    print(f"  at-risk AUC >= recency AUC ({recency['auc']:.3f}): {mark(at_risk['auc'] >= recency['auc'])}")
    gap = at_risk["mean"] - y.mean()
    print(f"  mean predicted lapse within 3 points of actual ({gap * 100:+.1f} points): {mark(abs(gap) <= 0.03)}")
    print(f"  top-20% precision {at_risk['top']:.3f} >= 0.85: {mark(at_risk['top'] >= 0.85)}")
    if name == "master":
        print(f"  fit of {s.x.size:,} customers {result.seconds:.3f} s < 1 s: {mark(result.seconds < 1.0)}")
    ranking_diagnosis(s, ours)
    return {"summary": s, "fit": result}


def customers(s: Summary, *, with_value: bool = True) -> risk.Customers:
    """The at-risk model's inputs from a CDNOW summary: what a shop's ``Purchase`` rows give the weekly fit
    (CDNOW has each purchase's value; no categories, codes, enrolments, emails or surveys)."""
    return risk.Customers(s.x, s.t_x, s.T, value=s.spent if with_value else None)


def score_cut(tx: Transactions, cut: str, end: str, horizon_days: int, *, with_value: bool = True) -> dict:
    """The at-risk score at ``cut`` for lapse within ``horizon_days``, exactly as the product computes it:
    ``health_fit_model`` fits BG/NBD on everyone, runs the backtest through ``risk.backtest_days`` and
    ``risk.learn`` and carries its level to today's customers with ``risk.carried_to_today``; the nightly
    refresh scores with ``risk.lapse_probability``. Outcomes: ``(cut, end]``."""
    started = time.perf_counter()
    s = summarise(tx, cut, end)
    params = bgnbd.fit(s.x, s.t_x, s.T).params
    history_days = int((np.datetime64(cut, "D") - tx.day.min()).astype(int))
    days = risk.backtest_days(history_days, horizon_days)
    if days is None:
        raise ValueError(f"{history_days} days of history at {cut}: too short for a backtest")
    before = summarise(tx, str(np.datetime64(cut, "D") - np.timedelta64(days, "D")), cut)
    backtest = risk.learn(
        customers(before, with_value=with_value), before.lapsed, window_days=days, horizon_days=horizon_days
    )
    today = customers(s, with_value=with_value)
    model = risk.carried_to_today(backtest, params, today)
    scores = risk.lapse_probability(model, params, customers=today)
    return {
        "summary": s,
        "params": params,
        "scores": scores,
        "backtest": backtest,
        "model": model,
        "days": days,
        "n": before.x.size,
        "lapsed": float(before.lapsed.mean()),
        "seconds": time.perf_counter() - started,
    }


def backtest_risk(
    tx: Transactions, calibration_end: str, s: Summary, params: bgnbd.BGNBDParams
) -> tuple[np.ndarray, dict]:
    """Our at-risk score, learnt only from the calibration period (as the weekly fit does)."""
    horizon_days = int(round(s.horizon * WEEK))
    end = str(np.datetime64(calibration_end, "D") + np.timedelta64(horizon_days, "D"))
    result = score_cut(tx, calibration_end, end, horizon_days)
    info = {k: result[k] for k in ("days", "n", "lapsed", "seconds")}
    info["model"] = result["model"]
    return result["scores"], info


def ranking_diagnosis(s: Summary, risk: np.ndarray) -> None:
    """Where BG/NBD and recency rank differently: within one-time buyers, within repeaters, or between them."""
    y, weeks_since_last = s.lapsed, s.T - s.t_x
    print("diagnosis (AUC within each group; mean predicted vs actual lapse):")
    for label, group in (("one-time buyers", s.x == 0), ("repeat buyers", s.x > 0)):
        print(
            f"  {label:16}n={group.sum():6,}  at-risk AUC {roc_auc(y[group], risk[group]):.3f}, "
            f"recency {roc_auc(y[group], weeks_since_last[group]):.3f};  "
            f"predicted {risk[group].mean():.3f} vs actual {y[group].mean():.3f}"
        )


def gamma_gamma_report(s: Summary, params: bgnbd.BGNBDParams) -> None:
    """Spend model on the sample, and a holdout revenue check of the (undiscounted) CLV formula."""
    result = gamma_gamma.fit(s.x, s.repeat_value)
    print(f"\nGamma-Gamma on the sample's {result.n_customers} repeat customers ({result.seconds * 1000:.1f} ms):")
    for key, value in result.params.as_dict().items():
        published = PUBLISHED_GAMMA_GAMMA[key]
        print(f"  {key}: ours {value:.4f}, published {published:.2f} ({value / published - 1:+.2%})")
    clv = gamma_gamma.customer_lifetime_value(params, result.params, s.x, s.t_x, s.T, s.repeat_value, horizon=s.horizon)
    print(
        f"  holdout revenue: actual ${s.holdout_value.sum():,.0f}, CLV forecast ${clv.sum():,.0f} "
        f"({clv.sum() / s.holdout_value.sum() - 1:+.1%})"
    )


def simulate(params: bgnbd.BGNBDParams, T_days: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Draw n BG/NBD customers with ages resampled from ``T_days``; purchases are recorded per day, like CDNOW.

    While alive a customer buys at rate lambda; after each repeat purchase they drop out with probability p,
    so they survive a Geometric(p) number of repeat purchases. With N ~ Poisson(lambda A) purchases in the
    customer's (continuous) age A, x = min(N, survived) and the x-th purchase comes at A times a
    Beta(x, N - x + 1) draw. The first purchase falls at a uniform time u within its day and the period ends
    with day ``T_days``, so A = T_days + 1 - u and a purchase at time t is recorded on day floor(u + t).
    """
    rng = np.random.default_rng(seed)
    T = rng.choice(T_days, n).astype(float)
    u = rng.uniform(0.0, 1.0, n)
    age = T + 1.0 - u
    lam = rng.gamma(params.r, 1.0 / (params.alpha * WEEK), n)  # per day
    p = rng.beta(params.a, params.b, n)
    purchases = rng.poisson(lam * age)
    x = np.minimum(purchases, rng.geometric(np.clip(p, 1e-12, 1.0)))
    t_x = np.zeros(n)
    repeat = x > 0
    last = age[repeat] * rng.beta(x[repeat], purchases[repeat] - x[repeat] + 1)
    t_x[repeat] = np.minimum(np.floor(u[repeat] + last), T[repeat])
    return x.astype(float), t_x / WEEK, T / WEEK


def scale_report(params: bgnbd.BGNBDParams, master: Summary, horizon: float, n: int) -> None:
    T_days = np.round(master.T * WEEK)
    x, t_x, T = simulate(params, T_days, n)
    result = bgnbd.fit(x, t_x, T)
    start = time.perf_counter()
    bgnbd.p_no_purchase(result.params, horizon, x, t_x, T)
    model_seconds = time.perf_counter() - start
    # the at-risk score the refresh stores (weights as learnt on the master; their values don't change the cost)
    model = risk.RiskModel(weights=(0.447, 0.416, 0.232, 0.187, -0.697), horizon=horizon)
    start = time.perf_counter()
    risk.lapse_probability(model, result.params, x, t_x, T)
    score_seconds = time.perf_counter() - start
    start = time.perf_counter()
    bgnbd.expected_purchases(result.params, horizon, x, t_x, T)
    expected_seconds = time.perf_counter() - start
    distinct = np.unique(np.column_stack([x, t_x, T]), axis=0).shape[0]
    print(f"\n=== synthetic {n:,} customers drawn from the master fit (purchase days recorded per day) ===")
    print(f"{distinct:,} distinct (x, t_x, T) histories")
    truth = params.as_dict()
    print("recovered: " + ", ".join(f"{k}={v:.3f} (true {truth[k]:.3f})" for k, v in result.params.as_dict().items()))
    print(f"fit:   {result.seconds:6.2f} s, converged={result.converged}  (target < 20 s): {mark(result.seconds < 20)}")
    print(f"score: {score_seconds:6.2f} s at-risk score (target about 1 s, <= 1.5 s): {mark(score_seconds <= 1.5)}")
    print(f"       {model_seconds:6.2f} s BG/NBD p_no_purchase alone")
    print(f"       {expected_seconds:6.2f} s expected_purchases (hyp2f1; for forecasts and CLV)")
    jitter = np.random.default_rng(1).uniform(0, 1 / WEEK, n)
    t_x_cont = np.where(x > 0, np.minimum(t_x + jitter, T), 0.0)
    worst = bgnbd.fit(x, t_x_cont, T)
    print(
        f"fit without any shared histories (times jittered within the day): {worst.seconds:.2f} s, "
        f"converged={worst.converged}"
    )


# --- synthetic feedback (not data: made-up customers) -------------------------------------------


CDNOW_LIKE = bgnbd.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
FALLBACK_WEIGHT = 0.5  # HealthSettings.detractor_weight's default: used until the backtest has enough detractors


@dataclass(frozen=True)
class FeedbackWorld:
    """Synthetic customers: purchase times (weeks, NaN padded), who is unhappy, and survey answers."""

    times: np.ndarray  # (n, k) purchase times in weeks, ascending, NaN after the last
    unhappy: np.ndarray
    answer_time: np.ndarray  # (n, k) when the purchase was answered in a survey, NaN: not answered
    detractor: np.ndarray  # (n, k) the answer was a detractor's


def simulate_feedback(
    n: int,
    *,
    seed: int = 8,
    weeks: float = 78.0,
    params: bgnbd.BGNBDParams = CDNOW_LIKE,
    unhappy_share: float = 0.25,
    unhappy_dropout_log_odds: float = 1.5,
    answer_rate: float = 0.3,
    detractor_if_unhappy: float = 0.7,
    detractor_if_happy: float = 0.1,
) -> FeedbackWorld:
    """BG/NBD customers (first purchase in the first 12 weeks, like the CDNOW cohort): while alive they buy at
    rate lambda ~ Gamma(r, alpha); after each purchase they drop out with probability p ~ Beta(a, b), raised by
    ``unhappy_dropout_log_odds`` on the log-odds scale for unhappy customers. A survey goes out a week after
    each purchase; ``answer_rate`` of them are answered, as a detractor with the given probabilities."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    unhappy = rng.uniform(size=n) < unhappy_share
    p = np.where(unhappy, risk.with_added_log_odds(p, unhappy_dropout_log_odds), p)
    t = rng.uniform(0, 12, n)
    alive = np.ones(n, dtype=bool)
    columns = []
    while alive.any() and len(columns) < 400:
        columns.append(np.where(alive, t, np.nan))
        alive &= rng.uniform(size=n) >= p  # dropout after a purchase
        t = t + rng.exponential(1.0, n) / np.maximum(lam, 1e-12)
        alive &= t <= weeks
    times = np.column_stack(columns)
    answered = ~np.isnan(times) & (rng.uniform(size=times.shape) < answer_rate)
    chance = np.where(unhappy, detractor_if_unhappy, detractor_if_happy)[:, None]
    detractor = answered & (rng.uniform(size=times.shape) < chance)
    return FeedbackWorld(times, unhappy, np.where(answered, times + 1.0, np.nan), detractor)


def feedback_summary(world: FeedbackWorld, cut: float, end: float, memory: float) -> dict:
    """BG/NBD inputs at ``cut``, who bought in ``(cut, end]``, and a detractor answer in ``(cut - memory, cut]``."""
    before = np.where(world.times <= cut, world.times, np.nan)
    count = (~np.isnan(before)).sum(axis=1)
    known = count > 0
    first, last = np.nanmin(before[known], axis=1), np.nanmax(before[known], axis=1)
    after = ((world.times > cut) & (world.times <= end)).any(axis=1)[known]
    recent = world.detractor & (world.answer_time > cut - memory) & (world.answer_time <= cut)
    return {
        "x": (count[known] - 1).astype(float),
        "t_x": last - first,
        "T": cut - first,
        "lapsed": ~after,
        "detractor": recent.any(axis=1)[known],
        "unhappy": world.unhappy[known],
    }


FEEDBACK_SCENARIOS = {
    "moderate": {"unhappy_dropout_log_odds": 1.5, "answer_rate": 0.3},
    "strong": {"unhappy_dropout_log_odds": 3.0, "answer_rate": 0.5},
}


def feedback_report(
    n: int = 20_000, weights: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0), scenario: str = "moderate"
) -> None:
    """How the at-risk score responds to the detractor feature, on synthetic customers."""
    started = time.perf_counter()
    knobs = FEEDBACK_SCENARIOS[scenario]
    world = simulate_feedback(n, **knobs)
    calibration, holdout, memory = 52.0, 26.0, 90 / WEEK  # weeks; memory: the default 90 days
    now = feedback_summary(world, calibration, calibration + holdout, memory)
    cut = feedback_summary(world, calibration - holdout, calibration, memory)  # the nightly fit's backtest
    params = bgnbd.fit(now["x"], now["t_x"], now["T"]).params
    window = int(round(holdout * WEEK))  # the weekly fit's backtest and score: risk.learn, risk.lapse_probability
    backtest = risk.learn(
        risk.Customers(cut["x"], cut["t_x"], cut["T"]), cut["lapsed"], window_days=window, horizon_days=window
    )
    today = risk.Customers(now["x"], now["t_x"], now["T"])
    base = risk.lapse_probability(risk.carried_to_today(backtest, params, today), params, customers=today)
    # The weight the weekly fit learns from this backtest: the one-parameter logistic offset for
    # detractors on top of the backtest's own score (``risk.fit_offset``, the production function).
    cut_base = backtest.scores
    n_learn = int(cut["detractor"].sum())
    learnt = (
        risk.fit_offset(cut_base, cut["detractor"], cut["lapsed"]) if n_learn >= risk.MIN_DETRACTORS_TO_LEARN else None
    )
    y, d = now["lapsed"].astype(int), now["detractor"]
    print(
        f"\n=== SYNTHETIC feedback experiment, {scenario} effect (made-up customers, not data): {d.size:,} "
        f"buyers, 52 weeks calibration, 26 weeks holdout ==="
    )
    print(
        f"25 % unhappy (dropout log-odds +{knobs['unhappy_dropout_log_odds']}); "
        f"{knobs['answer_rate']:.0%} of purchases answered, detractor 70 % if unhappy, 10 % if "
        f"happy; {d.mean():.1%} have a detractor answer in the last 90 days; lapsed {y.mean():.1%} "
        f"(detractors {y[d].mean():.1%}, others {y[~d].mean():.1%})"
    )
    if learnt is None:
        print(
            f"the weekly fit would learn no weight: {n_learn} backtest detractors, "
            f"{risk.MIN_DETRACTORS_TO_LEARN} needed"
        )
    else:
        print(f"weight the weekly fit learns from its backtest ({n_learn:,} detractors, risk.fit_offset): {learnt:.2f}")
    print(
        f"{'detractor weight':>22}  {'ROC AUC':>7}  {'top-20% prec':>12}  {'mean pred':>9}  {'actual':>6}  "
        f"{'Brier':>6}  {'detractors: pred / actual':>25}"
    )
    rows = [
        (weight, "(fallback)" if weight == FALLBACK_WEIGHT else "") for weight in sorted({*weights, FALLBACK_WEIGHT})
    ]
    if learnt is not None:
        rows.append((learnt, "(learnt, used)"))
    for weight, note in rows:
        score = np.where(d, risk.with_added_log_odds(base, weight), base)
        label = f"{weight:.2f} {note}".strip()
        print(
            f"{label:>22}  {roc_auc(y, score):7.3f}  {precision_at_top(y, score, 0.2):12.3f}  {score.mean():9.3f}  "
            f"{y.mean():6.3f}  {brier_score(y, score):6.3f}  {score[d].mean():12.3f} / {y[d].mean():.3f}"
        )
    print(f"({time.perf_counter() - started:.1f} s)")


# --- every calibration cut (the issue #17 targets) ------------------------------------------------------------

HOLDOUT_END = "1998-06-30"
FIXED_HORIZON_DAYS = 90


def month_end_cuts(first: str = "1997-03-31", last: str = "1998-03-31") -> list[str]:
    months = np.arange(np.datetime64(first, "M"), np.datetime64(last, "M") + 1)
    return [str((month + 1).astype("datetime64[D]") - np.timedelta64(1, "D")) for month in months]


def cut_metrics(tx: Transactions, cut: str, horizon_days: int, *, with_value: bool = True) -> dict:
    """One row of the all-cuts table: the product's score at ``cut`` judged on the following ``horizon_days``."""
    end = str(np.datetime64(cut, "D") + np.timedelta64(horizon_days, "D"))
    result = score_cut(tx, cut, end, horizon_days, with_value=with_value)  # without: what the value adds
    s, p = result["summary"], result["scores"]
    y = s.lapsed
    bg = bgnbd.p_no_purchase(result["params"], horizon_days / WEEK, s.x, s.t_x, s.T)
    recency = s.T - s.t_x
    one = s.x == 0
    return {
        "cut": cut,
        "horizon": horizon_days,
        "window": result["days"],
        "n": s.x.size,
        "actual": float(y.mean()),
        "auc": roc_auc(y, p),
        "recency": roc_auc(y, recency),
        "bgnbd": roc_auc(y, bg),
        "calibration": 100.0 * float(p.mean() - y.mean()),
        "brier": brier_score(y, p),
        "bgnbd_brier": brier_score(y, bg),
        "one_time": roc_auc(y[one], p[one]),
        "one_time_recency": roc_auc(y[one], recency[one]),
        "ece": result["backtest"].model.ece,
        "features": result["backtest"].model.features[len(risk.BASE_FEATURES) :],
    }


def all_cuts_report(tx: Transactions, cuts: list[str], *, label: str = "master") -> list[dict]:
    """The table for every cut, with the horizon equal to the rest of the holdout and with a fixed 90 days."""
    print(
        f"\n=== CDNOW {label}: the at-risk score at every calibration cut "
        "(risk.learn, carried_to_today, lapse_probability) ==="
    )
    print(
        f"{'cut':>10} {'horizon':>7} {'window':>6} {'customers':>9} {'lapsed':>6}  {'AUC ours':>8} {'recency':>7} "
        f"{'BG/NBD':>6}  {'cal. err':>8}  {'Brier ours':>10} {'BG/NBD':>6}  {'1-time AUC':>10} {'recency':>7}"
    )
    rows = []
    for kind in ("rest", "fixed"):
        for cut in cuts:
            rest = int((np.datetime64(HOLDOUT_END) - np.datetime64(cut)).astype(int))
            horizon = rest if kind == "rest" else FIXED_HORIZON_DAYS
            r = cut_metrics(tx, cut, horizon)
            rows.append(r)
            print(
                f"{r['cut']:>10} {r['horizon']:>7} {r['window']:>6} {r['n']:>9,} {r['actual']:>6.3f}  {r['auc']:>8.3f} "
                f"{r['recency']:>7.3f} {r['bgnbd']:>6.3f}  {r['calibration']:>+8.1f}  {r['brier']:>10.4f} "
                f"{r['bgnbd_brier']:>6.4f}  {r['one_time']:>10.3f} {r['one_time_recency']:>7.3f}"
            )
    return rows


def all_cuts_summary(rows: list[dict]) -> dict:
    margins = np.array([r["auc"] - r["recency"] for r in rows])
    return {
        "worst_margin": float(margins.min()),
        "mean_margin": float(margins.mean()),
        "worst_calibration": float(max(abs(r["calibration"]) for r in rows)),
        "calibrated": sum(abs(r["calibration"]) <= 2 for r in rows),
        "worst_one_time": float(min(r["one_time"] for r in rows)),
        "mean_one_time": float(np.mean([r["one_time"] for r in rows])),
        "brier_worse": sum(r["brier"] > r["bgnbd_brier"] for r in rows),
    }


def all_cuts(tx: Transactions, cuts: list[str], *, label: str = "master", ablation: bool = True) -> dict:
    rows = all_cuts_report(tx, cuts, label=label)
    summary = all_cuts_summary(rows)
    print(
        f"\ntargets: AUC above recency on each cut: {mark(summary['worst_margin'] > 0)}; mean margin "
        f"{summary['mean_margin']:+.4f} >= +0.015: {mark(summary['mean_margin'] >= 0.015)}; calibration within 2 "
        f"points on each cut: {mark(summary['worst_calibration'] <= 2)} ({summary['calibrated']} of {len(rows)}); "
        f"Brier <= BG/NBD's on each cut: "
        f"{mark(summary['brier_worse'] == 0)} ({summary['brier_worse']} of {len(rows)} above); one-time AUC 0.60: "
        f"{mark(summary['worst_one_time'] >= 0.6)} (mean {summary['mean_one_time']:.3f})"
    )
    features = sorted({name for r in rows for name in r["features"]})
    print(f"optional features learnt: {', '.join(features) or 'none'}")
    if ablation:
        base = all_cuts_summary([cut_metrics(tx, r["cut"], r["horizon"], with_value=False) for r in rows])
        print(
            f"without the order-value feature: mean margin {base['mean_margin']:+.4f}, worst "
            f"{base['worst_margin']:+.4f}, mean one-time AUC {base['mean_one_time']:.3f} (worst "
            f"{base['worst_one_time']:.3f}): the value adds {summary['mean_margin'] - base['mean_margin']:+.4f} "
            f"AUC overall and {summary['mean_one_time'] - base['mean_one_time']:+.3f} among one-time buyers"
        )
    print(
        f"at_risk_quality: worst AUC margin over recency {summary['worst_margin']:.4f}, mean margin "
        f"{summary['mean_margin']:.4f}, worst calibration error {summary['worst_calibration']:.2f} points, "
        f"worst one-time AUC {summary['worst_one_time']:.3f}"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="synthetic population for the scale test")
    parser.add_argument("--feedback-only", action="store_true", help="run only the synthetic feedback experiment")
    parser.add_argument("--feedback-customers", type=int, default=20_000, help="synthetic feedback population")
    parser.add_argument("--all-cuts", action="store_true", help="the table for every month-end calibration cut")
    parser.add_argument("--data", choices=("master", "sample"), default="master", help="CDNOW file for --all-cuts")
    parser.add_argument("--cuts", type=int, default=0, help="with --all-cuts: only the last N cuts (0: all)")
    args = parser.parse_args()
    with threadpool_limits(limits=1):  # one BLAS thread: scipy's optimiser is fastest that way (docs/health.md)
        run(args)


def run(args: argparse.Namespace) -> None:
    if args.all_cuts:
        cuts = month_end_cuts()
        all_cuts(load_cdnow(args.data), cuts[-args.cuts :] if args.cuts else cuts, label=args.data)
        return
    if args.feedback_only:
        for scenario in FEEDBACK_SCENARIOS:
            feedback_report(n=args.feedback_customers, scenario=scenario)
        return

    sample_tx = load_cdnow("sample")
    sample = report("sample", sample_tx, "1997-09-30", "1998-06-30", targets={"auc": 0.77})
    full = summarise(sample_tx, "1998-06-30", "1998-06-30")
    full_fit = bgnbd.fit(full.x, full.t_x, full.T)
    print(
        "\nfor reference, calibrating on all 78 weeks instead gives "
        + ", ".join(f"{k}={v:.3f}" for k, v in full_fit.params.as_dict().items())
        + f", LL={full_fit.log_likelihood:.1f}: the published values are the 39-week calibration"
    )
    gamma_gamma_report(sample["summary"], sample["fit"].params)

    master = report("master", load_cdnow("master"), "1997-12-31", "1998-06-30", targets={"auc": 0.80})
    scale_report(master["fit"].params, master["summary"], master["summary"].horizon, args.customers)
    for scenario in FEEDBACK_SCENARIOS:
        feedback_report(n=args.feedback_customers, scenario=scenario)


if __name__ == "__main__":
    main()
