"""BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While active, a customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)``; after each repeat purchase
they drop out for good with probability ``p ~ Beta(a, b)``. A customer is summarised by

- ``x`` (frequency): repeat purchases, i.e. purchases after the first one;
- ``t_x`` (recency): time of the last purchase, measured from the first purchase (0 when ``x == 0``);
- ``T`` (age): time from the first purchase to the end of the observation period,

all in one time unit of the caller's choice (days, weeks...). ``alpha`` is expressed in that unit; the
other three parameters are unit free.

Ranking customers for lapse risk: use :func:`p_no_purchase` over the horizon you care about, never
``1 - p_alive``. The model cannot drop a customer out before their first repeat purchase, so ``p_alive``
is exactly 1 for every one-time buyer, who are the customers most likely to lapse.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1, roots_jacobi

__all__ = [
    "BGNBDFit",
    "BGNBDParams",
    "expected_purchases",
    "expected_purchases_new",
    "fit",
    "individual_log_likelihood",
    "log_likelihood",
    "p_alive",
    "p_no_purchase",
]

ArrayLike = np.ndarray | float | int | list

_LOG_BOUND = 30.0  # log-parameters stay in [-30, 30]: keeps exp() finite without restricting sensible fits
_QUADRATURE_NODES = 96
# Converged when the gradient of the mean per-customer objective, in log-parameters, is below this: moving a
# log-parameter by 1 would then change the mean log-likelihood by less than 1e-5.
_GRADIENT_TOLERANCE = 1e-5
_SIMPLEX_EVALUATIONS = 2000  # caps the Nelder-Mead fallback: each evaluation is a pass over the data


@dataclass(frozen=True)
class BGNBDParams:
    """The four population parameters; ``alpha`` is in the caller's time unit."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def as_array(self) -> np.ndarray:
        return np.array([self.r, self.alpha, self.a, self.b], dtype=float)


@dataclass(frozen=True)
class BGNBDFit:
    """Result of :func:`fit`; ``log_likelihood`` is the unpenalised total over all customers."""

    params: BGNBDParams
    log_likelihood: float
    n_customers: int
    converged: bool
    iterations: int
    seconds: float


# --------------------------------------------------------------------------------------------------------------
# Likelihood
# --------------------------------------------------------------------------------------------------------------


def _as_float(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_customers(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, ...]:
    """Validate and broadcast (x, t_x, T); bad inputs silently bias a fit, so they are refused."""
    x, t_x, age = np.broadcast_arrays(
        _as_float("frequency", frequency), _as_float("recency", recency), _as_float("T", T)
    )
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be non-negative whole numbers (repeat purchases)")
    if np.any(t_x < 0) or np.any(age < 0):
        raise ValueError("recency and T must be non-negative")
    if np.any(t_x > age * (1 + 1e-9) + 1e-12):
        raise ValueError("recency (time of last purchase) cannot exceed T (customer age)")
    return x, np.minimum(t_x, age), age


def _terms(
    theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, x_values: np.ndarray, x_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log-likelihood ``A1 + A2 + log(exp(A3) + delta(x>0) exp(A4))`` and the share ``w4`` of the
    second branch (dropped out right after the last purchase), which the gradient needs.

    Terms that only depend on ``x`` (the gamma functions) are computed once per distinct ``x``.
    """
    r, alpha, a, b = theta
    a1_a2 = (
        gammaln(r + x_values) - gammaln(r) + r * np.log(alpha)
        + gammaln(a + b) + gammaln(b + x_values) - gammaln(b) - gammaln(a + b + x_values)
    )  # fmt: skip
    rx = r + x
    a3 = -rx * np.log(alpha + T)
    repeat = x > 0
    with np.errstate(divide="ignore"):
        a4 = np.where(repeat, np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - rx * np.log(alpha + t_x), -np.inf)
    a34 = np.logaddexp(a3, a4)
    ll = a1_a2[x_index] + a34
    w4 = np.exp(a4 - a34)
    return ll, w4


def individual_log_likelihood(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Log-likelihood of each customer's (x, t_x, T), eq. (6) of the paper in log space."""
    x, t_x, age = _check_customers(frequency, recency, T)
    shape = x.shape
    x, t_x, age = x.ravel(), t_x.ravel(), age.ravel()
    x_values, x_index = np.unique(x, return_inverse=True)
    ll, _ = _terms(params.as_array(), x, t_x, age, x_values, x_index)
    return ll.reshape(shape)


def log_likelihood(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """Total log-likelihood; ``weights`` counts how many customers share each row."""
    ll = individual_log_likelihood(params, frequency, recency, T)
    if weights is None:
        return float(ll.sum())
    return float(np.sum(np.broadcast_to(_as_float("weights", weights), ll.shape) * ll))


# --------------------------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------------------------


def _compress(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Collapse identical (x, t_x, T) rows into one row with a count.

    Purchase data is recorded per day, so a million customers share far fewer distinct histories; the
    likelihood is then evaluated once per history. Same result as ``np.unique(..., axis=0,
    return_inverse=True, return_counts=True)`` on the stacked columns, about five times faster.
    """
    n = x.size
    order = np.lexsort((T, t_x, x))
    xs, ts, Ts = x[order], t_x[order], T[order]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    new[1:] = (xs[1:] != xs[:-1]) | (ts[1:] != ts[:-1]) | (Ts[1:] != Ts[:-1])
    group = np.cumsum(new) - 1
    counts = np.bincount(group, weights=weights[order])
    return xs[new], ts[new], Ts[new], counts


@dataclass(frozen=True)
class _CompressedData:
    """Distinct (x, t_x, T) rows with their customer counts, plus per-distinct-x bookkeeping."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    counts: np.ndarray
    x_values: np.ndarray
    x_index: np.ndarray
    count_per_x: np.ndarray

    @classmethod
    def build(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, counts: np.ndarray) -> _CompressedData:
        keep = counts > 0
        x, t_x, T, counts = x[keep], t_x[keep], T[keep], counts[keep]
        x_values, x_index = np.unique(x, return_inverse=True)
        return cls(x, t_x, T, counts, x_values, x_index, np.bincount(x_index, weights=counts))


def _objective(log_theta: np.ndarray, data: _CompressedData, penalizer: float) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood plus the L2 penalty, and its gradient in log-parameters."""
    theta = np.exp(log_theta)
    r, alpha, a, b = theta
    x, t_x, age, counts, x_values = data.x, data.t_x, data.T, data.counts, data.x_values
    total = counts.sum()
    ll, w4 = _terms(theta, x, t_x, age, x_values, data.x_index)
    value = -float(counts @ ll) / total + penalizer * float(theta @ theta)
    if not np.isfinite(value):
        return np.inf, np.zeros(4)
    cw4 = counts * w4
    cw3 = counts - cw4
    rx = r + x
    # d/dtheta of the summed log-likelihood: digamma terms once per distinct x, the rest per row.
    d_r = data.count_per_x @ (digamma(r + x_values) - digamma(r)) + total * np.log(alpha)
    d_r -= cw3 @ np.log(alpha + age) + cw4 @ np.log(alpha + t_x)
    d_alpha = total * r / alpha - (cw3 @ (rx / (alpha + age)) + cw4 @ (rx / (alpha + t_x)))
    psi_ab, psi_abx = digamma(a + b), digamma(a + b + x_values)
    d_a = data.count_per_x @ (psi_ab - psi_abx) + cw4.sum() / a
    d_b = data.count_per_x @ (psi_ab + digamma(b + x_values) - digamma(b) - psi_abx)
    d_b -= cw4 @ (1.0 / (b + np.maximum(x, 1.0) - 1.0))  # cw4 is 0 where x == 0
    grad = np.array([d_r, d_alpha, d_a, d_b]) * theta  # chain rule for log-parameters
    return value, -grad / total + 2.0 * penalizer * theta * theta


def _initial_guess(x: np.ndarray, T: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Start at r=1 with the population's mean purchase rate, and a=b=1 (uniform dropout)."""
    rate = max(float(np.sum(w * x)) / max(float(np.sum(w * T)), 1e-12), 1e-6)
    return np.array([1.0, 1.0 / rate, 1.0, 1.0])


def fit(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
    initial: BGNBDParams | None = None,
) -> BGNBDFit:
    """Maximum-likelihood fit over log-parameters (so they stay positive), with an analytic gradient.

    The objective is the mean negative log-likelihood per customer plus ``penalizer * sum(params**2)``,
    as in ``lifetimes``. L-BFGS-B is tried first; if it does not converge, Nelder-Mead restarts from its
    best point (at most 2,000 evaluations) and L-BFGS-B polishes the result. ``converged`` is true when the
    gradient of the mean objective is negligible (below 1e-5 per log-parameter), whatever the optimiser's
    own verdict: L-BFGS-B stops "abnormally" at machine precision, and on data without dropout signal the
    optimum lies at infinity along a flat ridge (``a``, ``b`` growing together), where the fit is as good
    as it gets.
    """
    start = time.perf_counter()
    x, t_x, age = _check_customers(frequency, recency, T)
    x, t_x, age = x.ravel(), t_x.ravel(), age.ravel()
    if x.size == 0:
        raise ValueError("no customers to fit")
    w = np.ones_like(x) if weights is None else np.broadcast_to(_as_float("weights", weights), x.shape).ravel()
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    if penalizer < 0:
        raise ValueError("penalizer must be non-negative")

    data = _CompressedData.build(*_compress(x, t_x, age, w))

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        return _objective(log_theta, data, penalizer)

    guess = initial.as_array() if initial is not None else _initial_guess(data.x, data.T, data.counts)
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
    lbfgs_options = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10}
    result = minimize(objective, np.log(guess), jac=True, method="L-BFGS-B", bounds=bounds, options=lbfgs_options)
    iterations = int(result.nit)

    def is_converged(res) -> bool:
        return bool(np.isfinite(res.fun)) and float(np.max(np.abs(res.jac))) < _GRADIENT_TOLERANCE

    if not is_converged(result):
        simplex = minimize(
            lambda v: objective(np.clip(v, -_LOG_BOUND, _LOG_BOUND))[0],
            result.x if np.isfinite(result.fun) else np.log(guess),
            method="Nelder-Mead",
            options={"maxfev": _SIMPLEX_EVALUATIONS, "xatol": 1e-8, "fatol": 1e-12},
        )
        iterations += int(simplex.nit)
        polish = minimize(
            objective, np.clip(simplex.x, -_LOG_BOUND, _LOG_BOUND), jac=True, method="L-BFGS-B", bounds=bounds,
            options=lbfgs_options,
        )  # fmt: skip
        iterations += int(polish.nit)
        result = polish if polish.fun <= simplex.fun else simplex
        if not hasattr(result, "jac"):
            result.jac = objective(result.x)[1]

    theta = np.exp(np.clip(result.x, -_LOG_BOUND, _LOG_BOUND))
    params = BGNBDParams(*(float(v) for v in theta))
    ll, _ = _terms(theta, data.x, data.t_x, data.T, data.x_values, data.x_index)
    return BGNBDFit(
        params=params,
        log_likelihood=float(data.counts @ ll),
        n_customers=int(round(float(w.sum()))),
        converged=is_converged(result),
        iterations=iterations,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------------------------------------------
# Predictions (vectorised; arguments broadcast against each other)
# --------------------------------------------------------------------------------------------------------------


def p_alive(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(still active at T | x, t_x, T), eq. (11); exactly 1 when x == 0 (see the module docstring)."""
    x, t_x, age = _check_customers(x, t_x, T)
    r, alpha, a, b = params.as_array()
    repeat = x > 0
    log_odds_dead = (
        np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    )
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def p_no_purchase(params: BGNBDParams, tau: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(no purchase in (T, T + tau] | x, t_x, T): the lapse-risk score.

    Either the customer has dropped out (``1 - p_alive``), or they are active but their Poisson rate, whose
    posterior given survival is Gamma(r + x, alpha + T), produces no purchase within ``tau``:
    ``1 - pa + pa * ((alpha + T) / (alpha + T + tau)) ** (r + x)``.
    """
    tau = _as_float("tau", tau)
    if np.any(tau < 0):
        raise ValueError("tau must be non-negative")
    x, t_x, age, tau = np.broadcast_arrays(*_check_customers(x, t_x, T), tau)
    r, alpha = params.r, params.alpha
    pa = p_alive(params, x, t_x, age)
    buys_if_alive = -np.expm1(-(r + x) * np.log1p(tau / (alpha + age)))
    return np.clip(1.0 - pa * buys_if_alive, 0.0, 1.0)


def _expected_if_alive_quadrature(
    r_: np.ndarray, alpha_: np.ndarray, a: float, b_: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """E[purchases in t | active now] by Gauss-Jacobi quadrature over the dropout probability ``p``.

    ``E = E_p[(1 - (1 + p t / alpha_) ** -r_) / p]`` with ``p ~ Beta(a, b_)``. Slower than the closed form
    but valid for every parameter value (including ``a == 1`` and ``a + b_ <= 1``); used as a fallback.
    """
    out = np.empty_like(t)
    for b_value in np.unique(b_):
        rows = b_ == b_value
        nodes, weights = roots_jacobi(_QUADRATURE_NODES, b_value - 1.0, a - 1.0)  # (1-u)^(b_-1) (1+u)^(a-1)
        p = (1.0 + nodes) / 2.0
        weights = weights / weights.sum()
        scaled = t[rows, None] / alpha_[rows, None] * p[None, :]
        per_node = -np.expm1(-r_[rows, None] * np.log1p(scaled)) / p[None, :]
        out[rows] = per_node @ weights
    return out


def _expected_if_alive(r_: np.ndarray, alpha_: np.ndarray, a: float, b_: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E[purchases in the next t | active now, lambda ~ Gamma(r_, alpha_), p ~ Beta(a, b_)].

    Closed form ``(a+b_-1)/(a-1) * [1 - (alpha_/(alpha_+t))**r_ * 2F1(r_, b_; a+b_-1; t/(alpha_+t))]``,
    with Euler's transformation when 2F1 overflows, and quadrature where the closed form is unusable.
    """
    c = a + b_ - 1.0
    z = t / (alpha_ + t)
    with np.errstate(all="ignore"):
        log_h = np.log(hyp2f1(r_, b_, c, z))
        euler = np.log(hyp2f1(c - r_, c - b_, c, z)) + (c - r_ - b_) * np.log1p(-z)
        log_h = np.where(np.isfinite(log_h), log_h, euler)
        remaining = np.exp(log_h - r_ * np.log1p(t / alpha_))
        out = c / (a - 1.0) * (1.0 - remaining)
    bad = ~np.isfinite(out) | (out < 0) | (c <= 0) | (abs(a - 1.0) < 1e-6)
    if np.any(bad):
        out = np.array(out, dtype=float)
        out[bad] = _expected_if_alive_quadrature(r_[bad], alpha_[bad], a, b_[bad], t[bad])
    return np.where(t > 0, out, 0.0)


def expected_purchases(params: BGNBDParams, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T], eq. (10): p_alive times the expectation for an active customer."""
    t = _as_float("t", t)
    if np.any(t < 0):
        raise ValueError("t must be non-negative")
    x, t_x, age, t = np.broadcast_arrays(*_check_customers(x, t_x, T), t)
    r, alpha, a, b = params.as_array()
    shape = x.shape
    x, t_x, age, t = (np.ravel(v) for v in (x, t_x, age, t))
    alive = _expected_if_alive(r + x, alpha + age, a, b + x, t)
    return (p_alive(params, x, t_x, age) * alive).reshape(shape)


def expected_purchases_new(params: BGNBDParams, t: ArrayLike) -> np.ndarray:
    """E[X(t)]: expected repeat purchases within t of a new customer's first purchase, eq. (9).

    Summed over a cohort's first-purchase dates this gives the unconditional (aggregate) sales forecast.
    """
    t = _as_float("t", t)
    if np.any(t < 0):
        raise ValueError("t must be non-negative")
    r, alpha, a, b = params.as_array()
    flat = np.ravel(t)
    ones = np.ones_like(flat)
    return _expected_if_alive(r * ones, alpha * ones, a, b * ones, flat).reshape(t.shape)
