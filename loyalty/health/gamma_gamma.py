"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves").

Each transaction value is ``z ~ Gamma(p, nu)`` around a customer's own mean ``p / nu``, and the customer's
``nu ~ Gamma(q, v)`` across the population, so the population mean transaction value is ``p v / (q - 1)``.
The model is fitted on the *repeat* transactions of customers with ``frequency > 0``: ``monetary_value`` is
the mean value of those repeat transactions (``x`` of them). It assumes spend is independent of purchase
frequency, so it pairs with BG/NBD for a customer lifetime value.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from loyalty.health import bgnbd

__all__ = [
    "GammaGammaFit",
    "GammaGammaParams",
    "conditional_expected_average_value",
    "customer_lifetime_value",
    "fit",
    "individual_log_likelihood",
]

ArrayLike = np.ndarray | float | int | list


@dataclass(frozen=True)
class GammaGammaParams:
    """Shape ``p`` of a transaction's value, shape ``q`` and scale ``v`` of the spread across customers."""

    p: float
    q: float
    v: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def population_mean(self) -> float:
        """Mean transaction value across customers; infinite when ``q <= 1``."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else float("inf")


@dataclass(frozen=True)
class GammaGammaFit:
    """Result of :func:`fit`; ``n_customers`` counts the repeat customers actually used."""

    params: GammaGammaParams
    log_likelihood: float
    n_customers: int
    converged: bool
    iterations: int
    seconds: float


def _repeaters(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, m = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(monetary_value, dtype=float))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(m))):
        raise ValueError("frequency and monetary_value must be finite")
    if np.any(x < 0):
        raise ValueError("frequency must be non-negative")
    if np.any((x > 0) & (m <= 0)):
        raise ValueError("monetary_value must be positive for customers with frequency > 0")
    return x, m


def individual_log_likelihood(params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
    """Log density of each customer's mean repeat-transaction value given x of them (x > 0 only)."""
    x, m = _repeaters(frequency, monetary_value)
    if np.any(x <= 0):
        raise ValueError("the Gamma-Gamma likelihood is defined for frequency > 0 only")
    p, q, v = params.p, params.q, params.v
    px = p * x
    return (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
        + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v)
    )  # fmt: skip


def fit(
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
    initial: GammaGammaParams | None = None,
) -> GammaGammaFit:
    """Maximum-likelihood fit on the customers with ``frequency > 0`` (one-time buyers carry no spend signal).

    Same objective as ``lifetimes``: mean negative log-likelihood plus ``penalizer * (p^2 + q^2 + v^2)``,
    minimised over log-parameters with L-BFGS-B and an analytic gradient (Nelder-Mead fallback, at most 2,000
    evaluations). ``converged`` means the gradient of the mean objective is below 1e-5 per log-parameter.
    """
    start = time.perf_counter()
    x, m = _repeaters(frequency, monetary_value)
    w = np.ones_like(x) if weights is None else np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    keep = (x > 0) & (w > 0)
    x, m, w = x[keep], m[keep], w[keep]
    if x.size == 0:
        raise ValueError("no customers with frequency > 0 to fit")
    total = w.sum()
    log_xm, log_m = np.log(x), np.log(m)

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        p, q, v = theta
        px = p * x
        log_sum = np.log(x * m + v)
        ll = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1.0) * log_m + px * log_xm
        ll -= (px + q) * log_sum
        value = -float(w @ ll) / total + penalizer * float(theta @ theta)
        if not np.isfinite(value):
            return np.inf, np.zeros(3)
        psi = digamma(px + q)
        d_p = w @ (x * (psi - digamma(px) + log_m + log_xm - log_sum))
        d_q = w @ (psi - digamma(q) + np.log(v) - log_sum)
        d_v = w @ (q / v - (px + q) / (x * m + v))
        grad = -np.array([d_p, d_q, d_v]) * theta / total + 2.0 * penalizer * theta * theta
        return value, grad

    guess = np.array([initial.p, initial.q, initial.v]) if initial is not None else np.array([1.0, 1.0, 1.0])
    result = minimize(
        objective, np.log(guess), jac=True, method="L-BFGS-B", bounds=[(-30.0, 30.0)] * 3,
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10},
    )  # fmt: skip
    iterations = int(result.nit)
    if not (np.isfinite(result.fun) and float(np.max(np.abs(result.jac))) < 1e-5):
        simplex = minimize(
            lambda v: objective(v)[0], result.x, method="Nelder-Mead",
            options={"maxfev": 2000, "xatol": 1e-8, "fatol": 1e-12},
        )  # fmt: skip
        iterations += int(simplex.nit)
        if simplex.fun < result.fun:
            result = simplex
            result.jac = objective(result.x)[1]
    theta = np.exp(result.x)
    params = GammaGammaParams(*(float(t) for t in theta))
    return GammaGammaFit(
        params=params,
        log_likelihood=float(w @ individual_log_likelihood(params, x, m)),
        n_customers=int(x.size),
        converged=bool(np.isfinite(result.fun)) and float(np.max(np.abs(result.jac))) < 1e-5,
        iterations=iterations,
        seconds=time.perf_counter() - start,
    )


def conditional_expected_average_value(
    params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
) -> np.ndarray:
    """E[transaction value | x, mean value m] = (p v + p x m) / (p x + q - 1).

    A credibility-weighted mix of the population mean ``p v / (q - 1)`` and the customer's own mean, moving
    towards the latter as ``x`` grows. With ``x == 0`` it is the population mean. NaN where ``p x + q <= 1``
    (the posterior mean does not exist; only possible when ``q <= 1``).
    """
    x, m = _repeaters(frequency, monetary_value)
    p, q, v = params.p, params.q, params.v
    denominator = p * x + q - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (p * v + p * x * np.where(x > 0, m, 0.0)) / denominator
    return np.where(denominator > 0, value, np.nan)


def customer_lifetime_value(
    bgnbd_params: bgnbd.BGNBDParams,
    gg_params: GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    horizon: float,
    discount_rate_per_period: float = 0.0,
    periods: int = 1,
) -> np.ndarray:
    """Expected value of each customer's repeat purchases over the next ``horizon`` (same unit as T).

    ``CLV = E[value] * sum_{k=1..K} (E[X(T, T + k h)] - E[X(T, T + (k-1) h)]) / (1 + d) ** k``

    with ``h = horizon / periods``, ``K = periods``, ``d = discount_rate_per_period`` and ``E[X(...)]`` the
    BG/NBD conditional expected purchases; purchases in period ``k`` are discounted as if paid at its end.
    With ``d = 0`` it is just expected purchases over the horizon times the expected average value. It is
    a revenue figure: apply your margin to it.
    """
    if horizon < 0:
        raise ValueError("horizon must be non-negative")
    if periods < 1:
        raise ValueError("periods must be at least 1")
    if discount_rate_per_period <= -1.0:
        raise ValueError("discount_rate_per_period must be greater than -1")
    value = conditional_expected_average_value(gg_params, x, monetary_value)
    step = horizon / periods
    previous = bgnbd.expected_purchases(bgnbd_params, 0.0, x, t_x, T)
    discounted = np.zeros_like(previous)
    for k in range(1, periods + 1):
        cumulative = bgnbd.expected_purchases(bgnbd_params, k * step, x, t_x, T)
        discounted = discounted + (cumulative - previous) / (1.0 + discount_rate_per_period) ** k
        previous = cumulative
    return value * discounted
