"""The at-risk score: BG/NBD's lapse probability, sharpened and calibrated by a backtest on the shop's own history.

BG/NBD cannot let a customer drop out before their first repeat purchase, so on its own it
under-rates one-time buyers' risk and over-rates repeat buyers': ranked by P(no purchase),
it falls just short of plain recency on CDNOW. The fix uses only the past, as a nightly job can
(:func:`learn` is the weekly fit's whole backtest, :func:`carried_to_today` sets its level for today's
customers, :func:`lapse_probability` is the nightly score; ``bench/at_risk_quality.py`` calls the same three):

1. **Backtest**: cut the history ``w`` days before today, ``w`` = the horizon when it fits in
   the history with at least :data:`MIN_DAYS_BEFORE_CUT` (60) days left before the cut, else what
   fits (:func:`backtest_days`); fit BG/NBD on the part before the cut, and label who bought nothing
   after it.
2. **Learn** a small logistic regression from the backtest: the model's lapse logit over ``w``, one-time
   buyer, log weeks since the last purchase, log repeat purchases, the customer's age (log weeks since the
   first purchase, and the same for one-time buyers alone: :data:`AGE_FEATURES`), and the optional features
   a shop has (:data:`OPTIONAL_FEATURES`: for one-time buyers the order's value and category, a loyalty code
   used, weeks between enrolment and the first order; for everyone campaign emails opened, clicked,
   unsubscribed and a recent survey answer that was not a detractor's). A feature counts only when at least
   :data:`MIN_FEATURE_ROWS` backtest customers have it and as many do not.
3. **Calibrate** on the backtest's outcomes (Platt scaling of out-of-fold scores: the regression is
   fitted on one half and scores the other), which also gives the reliability curve and the expected
   calibration error shown in admin.
4. **Carry the level to today** (:func:`carried_to_today`): the backtest's customers were ``w`` days
   younger than today's, so the score's mean over ``w`` is set, for the customers the backtest saw, to the
   average (in log-odds) of the learnt relation's mean and the backtest's lapse rate moved by the change
   BG/NBD predicts for them since, and for customers who came after its cut to the learnt relation's mean.
   The ranking does not change.
5. **Score** today's customers over ``w`` with today's BG/NBD and, when ``w`` is shorter than the
   horizon, extend to the horizon with BG/NBD's own ratio P(none in horizon) / P(none in ``w``): the
   backtest's calibration holds where it was observed and the purchase model carries it further.

6. **Detractor offset** (:func:`fit_offset`): on the same backtest, the weight a recent
   detractor survey answer adds to the log-odds of lapsing, learnt as a one-parameter logistic
   offset on top of the fitted score, when there are enough detractors to learn from.

Pure numpy/scipy; no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from . import bgnbd, metrics
from .logistic import logistic_weights, sigmoid

FEATURES = ("intercept", "lapse_logit", "one_time", "log_weeks_since_last", "log_repeat")
#: Customer age, so that what the backtest learns on customers one window younger carries to today's: log weeks
#: since the first purchase, and for one-time buyers the same again (their own slope: it is also their recency).
AGE_FEATURES = ("log_weeks_since_first", "one_time_log_weeks")
#: What every backtest learns; the first model had :data:`FEATURES` only (fits stored by it still score).
BASE_FEATURES = FEATURES + AGE_FEATURES
#: Optional features, each counted only when the backtest has enough customers with and without it.
#: ``category:<name>`` features (one per frequent first-order category) are added by :func:`present_features`.
OPTIONAL_FEATURES = (
    "first_value",  # one-time buyers: log(1 + their order's value)
    "used_code",  # one-time buyers: used a loyalty reward code
    "enrolled_before",  # one-time buyers: log(1 + weeks between enrolment and the first order)
    "opened",  # a campaign email opened
    "clicked",  # a campaign email clicked
    "unsubscribed",  # unsubscribed from a campaign email
    "survey_answered",  # answered a survey recently, not as a detractor (detractors: fit_offset)
)
CATEGORY_PREFIX = "category:"
MAX_CATEGORIES = 8
MIN_FEATURE_ROWS = 30
MIN_BACKTEST_DAYS = 14
MIN_DAYS_BEFORE_CUT = 60
RELIABILITY_BINS = 10
MAX_FIT_ROWS = 200_000


@dataclass(frozen=True)
class Customers:
    """Per-customer inputs at one moment: BG/NBD's (x, t_x, T) in weeks and the optional features' raw values.

    An optional array left ``None`` means the shop does not have that information.
    """

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    value: np.ndarray | None = None  # net spend so far (for one-time buyers: their order's value)
    category: np.ndarray | None = None  # first order's category ("" unknown)
    used_code: np.ndarray | None = None
    enrolled_weeks: np.ndarray | None = None  # weeks since enrolment (NaN unknown)
    opened: np.ndarray | None = None
    clicked: np.ndarray | None = None
    unsubscribed: np.ndarray | None = None
    survey_answered: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("x", "t_x", "T"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        n = self.x.shape[0]
        if self.t_x.shape[0] != n or self.T.shape[0] != n:
            raise ValueError("x, t_x and T must have the same length")
        for name in ("value", "category", "used_code", "enrolled_weeks", "opened", "clicked", "unsubscribed",
                     "survey_answered"):  # fmt: skip
            values = getattr(self, name)
            if values is not None:
                values = np.asarray(values, dtype=object if name == "category" else float)
                if values.shape[0] != n:
                    raise ValueError(f"{name} must have one value per customer")
                object.__setattr__(self, name, values)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: np.ndarray) -> Customers:
        return Customers(**{k: (None if v is None else v[index]) for k, v in vars(self).items()})


def _column(name: str, c: Customers) -> np.ndarray | None:
    """The design-matrix column of an optional feature, or None when the shop lacks the data."""
    one = (c.x == 0).astype(float)
    if name.startswith(CATEGORY_PREFIX):
        return None if c.category is None else one * (c.category == name[len(CATEGORY_PREFIX) :])
    if name == "first_value":
        return None if c.value is None else one * np.log1p(np.maximum(np.nan_to_num(c.value), 0.0))
    if name == "used_code":
        return None if c.used_code is None else one * np.nan_to_num(c.used_code)
    if name == "enrolled_before":
        if c.enrolled_weeks is None:
            return None
        return one * np.log1p(np.maximum(np.nan_to_num(c.enrolled_weeks - c.T), 0.0))
    if name in ("opened", "clicked", "unsubscribed", "survey_answered"):
        values = getattr(c, name)
        return None if values is None else np.nan_to_num(values).astype(float)
    raise ValueError(f"unknown at-risk feature {name!r}")


def present_features(c: Customers) -> tuple[str, ...]:
    """The optional features this data can support: at least ``MIN_FEATURE_ROWS`` customers with and without."""
    names: list[str] = []
    candidates = list(OPTIONAL_FEATURES)
    if c.category is not None:
        one_time = c.x == 0
        labels, counts = np.unique(c.category[one_time & (c.category != "")].astype(str), return_counts=True)
        frequent = [str(label) for label, n in sorted(zip(labels, counts, strict=True), key=lambda t: (-t[1], t[0]))]
        candidates[1:1] = [CATEGORY_PREFIX + label for label in frequent[:MAX_CATEGORIES]]
    for name in candidates:
        column = _column(name, c)
        if column is None:
            continue
        with_it = int((column != 0).sum())
        if with_it >= MIN_FEATURE_ROWS and len(c) - with_it >= MIN_FEATURE_ROWS and np.ptp(column) > 0:
            names.append(name)
    return tuple(names)


def design(params: bgnbd.BGNBDParams, c: Customers, horizon: float, names: Sequence[str] = FEATURES) -> np.ndarray:
    """The design matrix, one column per name: :data:`BASE_FEATURES` (BG/NBD's lapse logit over ``horizon``
    weeks, ...) and the optional features (:func:`_column`), in the order of ``names``."""
    lapse = np.clip(bgnbd.p_no_purchase(params, horizon, c.x, c.t_x, c.T), 1e-6, 1 - 1e-6)
    one = (c.x == 0).astype(float)
    log_age = np.log1p(np.maximum(c.T, 0.0))
    base = {
        "intercept": lambda: np.ones_like(lapse),
        "lapse_logit": lambda: np.log(lapse / (1 - lapse)),
        "one_time": lambda: one,
        "log_weeks_since_last": lambda: np.log1p(np.maximum(c.T - c.t_x, 0.0)),
        "log_repeat": lambda: np.log1p(c.x),
        "log_weeks_since_first": lambda: log_age,
        "one_time_log_weeks": lambda: one * log_age,
    }
    columns = []
    for name in names:
        column = base[name]() if name in base else _column(name, c)
        columns.append(np.zeros_like(lapse) if column is None else column)
    return np.column_stack(columns)


def features(params: bgnbd.BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, horizon: float) -> np.ndarray:
    """The five base features (kept for callers of the first model)."""
    return design(params, Customers(x, t_x, T), horizon)


LEVEL_KEYS = ("backtest", "relation", "drift", "today", "seen", "newer")


def _stored_level(stored: dict | None) -> tuple[float, ...]:
    """A stored level; one stored before the ``seen`` share applied BG/NBD's change to every customer (share 1,
    no newer customers: their mean is the relation's)."""
    if not stored:
        return ()
    known = {"seen": 1.0, "newer": stored.get("relation"), **stored}
    return tuple(float(known[key]) for key in LEVEL_KEYS)


@dataclass(frozen=True)
class RiskModel:
    """Logistic weights over ``features`` for lapse within ``horizon`` (model time units, the backtest window),
    Platt-calibrated on the backtest, extended by BG/NBD to ``target`` (the configured horizon) if longer."""

    weights: tuple[float, ...]
    horizon: float
    shift: float = 0.0
    features: tuple[str, ...] = FEATURES
    platt: tuple[float, float] = (0.0, 1.0)
    target: float | None = None
    reliability: tuple[tuple[float, float, int], ...] = field(default=())
    ece: float | None = None
    #: How :func:`carried_to_today` set ``shift``, over the window: the backtest's lapse rate; for today's
    #: customers the backtest saw, their mean by the learnt relation and by BG/NBD's predicted change; the mean
    #: used for everyone; the share the backtest saw; the newer customers' mean by the learnt relation. () when
    #: not carried.
    level: tuple[float, ...] = field(default=())

    def as_dict(self) -> dict:
        return {
            "weights": list(self.weights),
            "horizon": self.horizon,
            "shift": self.shift,
            "features": list(self.features),
            "platt": list(self.platt),
            "target": self.target,
            "reliability": [list(row) for row in self.reliability],
            "ece": self.ece,
            "level": dict(zip(LEVEL_KEYS, self.level, strict=True)) if self.level else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> RiskModel:
        weights = tuple(float(w) for w in data["weights"])
        return cls(
            weights=weights,
            horizon=float(data["horizon"]),
            shift=float(data.get("shift") or 0),
            features=tuple(data.get("features") or FEATURES[: len(weights)]),
            platt=tuple(float(v) for v in (data.get("platt") or (0.0, 1.0))),
            target=None if data.get("target") is None else float(data["target"]),
            reliability=tuple((float(p), float(o), int(n)) for p, o, n in data.get("reliability") or ()),
            ece=None if data.get("ece") is None else float(data["ece"]),
            level=_stored_level(data.get("level")),
        )

    @property
    def named_weights(self) -> list[tuple[str, float]]:
        return list(zip(self.features, self.weights, strict=True))


def fit(
    params: bgnbd.BGNBDParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    lapsed: ArrayLike,
    *,
    horizon: float,
    customers: Customers | None = None,
    names: Sequence[str] = FEATURES,
) -> RiskModel:
    """Learn the weights from a backtest: ``params`` fitted on the history before the cut,
    (x, t_x, T) as of the cut, ``lapsed`` = no purchase in the ``horizon`` after it."""
    c = customers if customers is not None else Customers(x, t_x, T)
    X = design(params, c, horizon, names)
    y = np.asarray(lapsed, dtype=float)
    if X.shape[0] != y.shape[0] or not X.shape[0]:
        raise ValueError("features and labels must be non-empty and of the same length")
    weights = logistic_weights(X, y)
    return RiskModel(weights=tuple(float(w) for w in weights), horizon=float(horizon), features=tuple(names))


def calibrated_to(model: RiskModel, z: np.ndarray, target_mean: float) -> RiskModel:
    """The same model with the intercept shifted so its mean probability is ``target_mean``."""
    target = float(np.clip(target_mean, 1e-4, 1 - 1e-4))
    shift = brentq(lambda c: float(sigmoid(z + c).mean()) - target, -30.0, 30.0)
    return replace(model, shift=float(shift))


def linear_score(model: RiskModel, params: bgnbd.BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *,
                 customers: Customers | None = None) -> np.ndarray:  # fmt: skip
    c = customers if customers is not None else Customers(x, t_x, T)
    return design(params, c, model.horizon, model.features) @ np.asarray(model.weights)


def lapse_probability(
    model: RiskModel,
    params: bgnbd.BGNBDParams,
    x: ArrayLike | None = None,
    t_x: ArrayLike | None = None,
    T: ArrayLike | None = None,
    *,
    customers: Customers | None = None,
) -> np.ndarray:
    """The at-risk score: P(no purchase within the horizon), vectorised (the nightly refresh's score)."""
    c = customers if customers is not None else Customers(x, t_x, T)
    a, b = model.platt
    p = sigmoid(a + b * linear_score(model, params, c.x, c.t_x, c.T, customers=c) + model.shift)
    if model.target is not None and model.target > model.horizon + 1e-9:
        # beyond the backtest window: BG/NBD's ratio P(none in the horizon) / P(none in the window)
        longer = bgnbd.p_no_purchase(params, model.target, c.x, c.t_x, c.T)
        window = np.maximum(bgnbd.p_no_purchase(params, model.horizon, c.x, c.t_x, c.T), 1e-12)
        p = np.clip(p * np.minimum(longer / window, 1.0), 0.0, 1.0)
    return p


def reliability(labels: ArrayLike, probs: ArrayLike, bins: int = RELIABILITY_BINS) -> tuple[tuple, float]:
    """Predicted vs observed rate per decile of the prediction, and the expected calibration error (points).

    ECE = sum over bins of (share of customers) x |mean predicted - observed|, in percentage points.
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probs, dtype=float)
    order = np.argsort(p, kind="mergesort")
    curve = []
    ece = 0.0
    for part in np.array_split(order, min(bins, max(len(p), 1))):
        if not part.size:
            continue
        predicted, observed = float(p[part].mean()), float(y[part].mean())
        curve.append((round(predicted, 4), round(observed, 4), int(part.size)))
        ece += part.size / len(p) * abs(predicted - observed)
    return tuple(curve), 100.0 * ece


def backtest_days(history_days: int, horizon_days: int) -> int | None:
    """The backtest window: the horizon when it fits in the history with ``MIN_DAYS_BEFORE_CUT`` days left
    before the cut, else what fits; None below ``MIN_BACKTEST_DAYS``.

    On CDNOW, keeping 60 days before the cut beat keeping a third of the history (worst calibration error
    5.3 vs 5.8 points, mean AUC margin over recency +0.016 vs +0.015 over 26 cuts)."""
    days = min(int(horizon_days), int(history_days) - MIN_DAYS_BEFORE_CUT)
    return days if days >= MIN_BACKTEST_DAYS else None


@dataclass(frozen=True)
class Backtest:
    """What :func:`learn` found: the model, BG/NBD fitted at the cut, and the backtest's out-of-fold scores."""

    model: RiskModel
    cut_params: bgnbd.BGNBDParams
    scores: np.ndarray  # calibrated out-of-fold P(no purchase in the window) of each backtest customer
    auc: float
    recency_auc: float
    customers: Customers | None = None  # the backtest's customers as of the cut
    lapse_rate: float | None = None  # the share of them who bought nothing in the window


def learn(before: Customers, lapsed: ArrayLike, *, window_days: int, horizon_days: int) -> Backtest:
    """The weekly fit's backtest: ``before`` = customers as of the cut, ``lapsed`` = no purchase in the
    ``window_days`` after it. Fits BG/NBD at the cut, the logistic weights (with the features present),
    Platt calibration on out-of-fold scores (two halves, each scored by a model fitted on the other), and
    the reliability curve; the model scores lapse within ``horizon_days`` (see :func:`lapse_probability`)."""
    y = np.asarray(lapsed, dtype=float)
    if len(before) != y.shape[0] or not y.shape[0]:
        raise ValueError("features and labels must be non-empty and of the same length")
    if y.all() or not y.any():
        raise ValueError("the backtest needs customers who lapsed and customers who did not")
    window = window_days / 7.0
    cut_params = bgnbd.fit(before.x, before.t_x, before.T).params
    names = BASE_FEATURES + present_features(before)
    X = design(cut_params, before, window, names)
    # The weights are learnt on at most MAX_FIT_ROWS customers (every k-th, in the caller's order):
    # plenty for a dozen weights, and the rest are scored out of sample.
    n = y.shape[0]
    fitted = np.arange(n) % max(1, -(-n // MAX_FIT_ROWS)) == 0
    weights = logistic_weights(X[fitted], y[fitted])
    z_out = X @ weights  # out of sample for the customers the weights were not fitted on
    halves = fitted & (np.cumsum(fitted) % 2 == 0)
    for part, other in ((halves, fitted & ~halves), (fitted & ~halves, halves)):
        if y[other].all() or not y[other].any():
            continue
        z_out[part] = X[part] @ logistic_weights(X[other], y[other], start=weights)  # warm start: a few steps
    a, b = logistic_weights(np.column_stack([np.ones_like(z_out), z_out]), y, l2=0.0)
    scores = sigmoid(a + b * z_out)
    curve, ece = reliability(y, scores)
    model = RiskModel(
        weights=tuple(float(w) for w in weights),
        horizon=window,
        features=tuple(names),
        platt=(float(a), float(b)),
        target=horizon_days / 7.0,
        reliability=curve,
        ece=round(ece, 3),
    )
    labels = y.astype(int)
    return Backtest(
        model=model,
        cut_params=cut_params,
        scores=scores,
        auc=metrics.roc_auc(labels, scores),
        recency_auc=metrics.roc_auc(labels, before.T - before.t_x),
        customers=before,
        lapse_rate=float(y.mean()),
    )


#: How much today's level leans on BG/NBD's predicted change rather than on the learnt relation (see
#: :func:`carried_to_today`). Equal weights, not tuned: each estimate fails where the other holds.
DRIFT_WEIGHT = 0.5


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def carried_to_today(backtest: Backtest, params: bgnbd.BGNBDParams, today: Customers) -> RiskModel:
    """The backtest's model with its level (mean lapse over the window) carried from the backtest's customers to
    ``today``'s, scored with today's BG/NBD ``params``; the ranking is untouched (only ``shift`` changes).

    The backtest learnt from customers one window younger than today's, so its calibration drifts as the
    customers age. Two estimates of today's mean lapse, in log-odds: the learnt relation applied to today's
    customers (right while the relation holds; on CDNOW, one ageing cohort, 2 to 3 points low on the late cuts),
    and the backtest's observed rate moved by the change BG/NBD predicts between the backtest's customers and
    the same customers today (right while BG/NBD's own bias holds; 3 to 5 points high where the backtest saw
    only customers a few weeks old). The second only speaks for the customers the backtest observed (today's
    customers who had bought by its cut: first purchase at least a window ago); for them the level is the
    average of the two (:data:`DRIFT_WEIGHT`), for customers who came later the learnt relation alone.
    Without today's customers or the backtest's, the model is returned as learnt."""
    model = backtest.model
    before = backtest.customers
    if not len(today) or before is None or not len(before) or backtest.lapse_rate is None:
        return model
    a, b = model.platt
    z = a + b * linear_score(model, params, today.x, today.t_x, today.T, customers=today)
    learnt = sigmoid(z + model.shift)
    seen = today.T >= model.horizon - 1e-9  # bought by the backtest's cut: the customers it observed
    share = float(seen.mean())
    relation = float(learnt[seen].mean()) if share > 0 else float(learnt.mean())
    newer = float(learnt[~seen].mean()) if share < 1 else relation
    if share > 0:
        was = float(np.mean(bgnbd.p_no_purchase(params, model.horizon, before.x, before.t_x, before.T)))
        now = float(np.mean(bgnbd.p_no_purchase(params, model.horizon, today.x[seen], today.t_x[seen],
                                                today.T[seen])))  # fmt: skip
        drift = float(sigmoid(np.array(_logit(backtest.lapse_rate) + _logit(now) - _logit(was))))
        mean_seen = float(sigmoid(np.array((1 - DRIFT_WEIGHT) * _logit(relation) + DRIFT_WEIGHT * _logit(drift))))
        target = share * mean_seen + (1 - share) * newer
    else:
        drift, target = relation, relation
    target = min(max(target, 1e-4), 1 - 1e-4)
    shift = brentq(lambda s: float(sigmoid(z + s).mean()) - target, -30.0, 30.0)
    level = (backtest.lapse_rate, relation, drift, target, share, newer)
    return replace(model, shift=float(shift), level=tuple(round(v, 6) for v in level))


def with_added_log_odds(p: ArrayLike, weight: float) -> np.ndarray:
    """``p`` with ``weight`` added to its log-odds: 1 / (1 + exp(-(log(p / (1 - p)) + weight))).

    How a recent detractor survey answer raises the at-risk score (``HealthSettings.detractor_weight``).
    """
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return 1.0 / (1.0 + np.exp(-(np.log(p / (1.0 - p)) + weight)))


#: The weekly fit learns the detractor weight once at least this many backtest buyers had a detractor
#: answer within the memory before the cut; with fewer the refresh uses ``HealthSettings.detractor_weight``.
MIN_DETRACTORS_TO_LEARN = 30
#: The learnt detractor weight is kept within these bounds (log-odds): never negative (an unhappy
#: answer does not make a customer safer), and never more than 3 (0.3 becomes 0.9).
OFFSET_BOUNDS = (0.0, 3.0)


def fit_offset(
    p: ArrayLike, flag: ArrayLike, lapsed: ArrayLike, *, bounds: tuple[float, float] = OFFSET_BOUNDS
) -> float:
    """The maximum-likelihood weight *w* for ``flag`` on top of the score ``p``: the labels ``lapsed``
    modelled as Bernoulli(``with_added_log_odds(p, w * flag)``), *w* clipped to ``bounds``.

    The log-likelihood is concave in *w* and only the flagged rows depend on it, so its derivative
    ``sum over flagged (lapsed - p')`` falls monotonically: the answer is a bound when the derivative
    does not change sign between them, else its root. Used by the weekly fit (the backtest's
    detractors) and by ``bench/at_risk_quality.py``.
    """
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    flag = np.asarray(flag, dtype=bool)
    y = np.asarray(lapsed, dtype=float)
    if not (p.shape == flag.shape == y.shape):
        raise ValueError("scores, flags and labels must have the same length")
    logit = np.log(p[flag] / (1.0 - p[flag]))
    y = y[flag]
    if not logit.size:
        raise ValueError("no flagged rows to learn the offset from")
    lo, hi = bounds

    def slope(w: float) -> float:
        return float(np.sum(y - sigmoid(logit + w)))

    if slope(lo) <= 0:
        return float(lo)
    if slope(hi) >= 0:
        return float(hi)
    return float(brentq(slope, lo, hi, xtol=1e-6))
