"""Customer-health models: BG/NBD, Gamma-Gamma and the ranking metrics (pure numpy; no database)."""

import math
from importlib.resources import files

import numpy as np
import pytest

from loyalty.health import bgnbd, gamma_gamma, risk
from loyalty.health.metrics import brier_score, precision_at_top, roc_auc

PARAMS = bgnbd.BGNBDParams(r=0.5, alpha=3.0, a=0.8, b=2.5)

# (x, t_x, T): a one-time buyer, and two repeat buyers
TINY = [(0, 0.0, 10.0), (2, 5.0, 12.0), (5, 20.0, 25.0)]


def _lbeta(u: float, v: float) -> float:
    return math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v)


def _paper_likelihood(p: bgnbd.BGNBDParams, x: int, t_x: float, T: float) -> float:
    """Eq. (6) of Fader, Hardie & Lee (2005), written out term by term, not in log space."""
    r, alpha, a, b = p.r, p.alpha, p.a, p.b
    gamma_part = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r
    still_active = math.exp(_lbeta(a, b + x) - _lbeta(a, b)) * gamma_part / (alpha + T) ** (r + x)
    if x == 0:
        return still_active
    dropped = math.exp(_lbeta(a + 1, b + x - 1) - _lbeta(a, b)) * gamma_part / (alpha + t_x) ** (r + x)
    return still_active + dropped


def _cdnow_sample() -> dict[str, np.ndarray]:
    """The 2,357-customer CDNOW sample summarised as in the paper: 39 weeks to 1997-09-30, one purchase a day."""
    pytest.importorskip("lifetimes")  # only to locate its data files
    raw = np.loadtxt(files("lifetimes") / "datasets" / "CDNOW_sample.txt", usecols=(0, 2, 4))
    dates = raw[:, 1].astype(np.int64)
    month = np.array((dates // 10000 - 1970) * 12 + dates // 100 % 100 - 1, dtype="datetime64[M]")
    day = (month.astype("datetime64[D]") + (dates % 100 - 1).astype("timedelta64[D]")).astype(np.int64)
    customer = raw[:, 0].astype(np.int64)
    end = np.datetime64("1997-09-30").astype(np.int64)
    cal = day <= end
    keys, amount_per_day = np.unique(np.column_stack([customer[cal], day[cal]]), axis=0, return_inverse=True)
    amounts = np.bincount(amount_per_day.ravel(), weights=raw[cal, 2])
    ids, start, count = np.unique(keys[:, 0], return_index=True, return_counts=True)  # keys sorted by (id, day)
    first, last = keys[start, 1], keys[start + count - 1, 1]
    x = count - 1.0
    repeat_total = np.add.reduceat(amounts, start) - amounts[start]
    return {
        "x": x,
        "t_x": (last - first) / 7.0,
        "T": (end - first) / 7.0,
        "m": np.where(x > 0, repeat_total / np.maximum(x, 1), 0.0),
    }


@pytest.fixture(scope="module")
def cdnow():
    return _cdnow_sample()


# --- BG/NBD likelihood ------------------------------------------------------------------------------------------


def test_log_likelihood_matches_the_closed_form_by_hand():
    x, t_x, T = (np.array(col, dtype=float) for col in zip(*TINY, strict=True))
    by_hand = [math.log(_paper_likelihood(PARAMS, *row)) for row in TINY]

    np.testing.assert_allclose(bgnbd.individual_log_likelihood(PARAMS, x, t_x, T), by_hand, rtol=0, atol=1e-9)
    assert bgnbd.log_likelihood(PARAMS, x, t_x, T) == pytest.approx(sum(by_hand), abs=1e-9)
    weighted = 2 * by_hand[0] + by_hand[1] + 3 * by_hand[2]
    assert bgnbd.log_likelihood(PARAMS, x, t_x, T, weights=[2, 1, 3]) == pytest.approx(weighted, abs=1e-9)


def test_analytic_gradient_matches_finite_differences():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 8, 400).astype(float)
    T = rng.uniform(1, 40, 400)
    t_x = np.where(x > 0, rng.uniform(0, 1, 400) * T, 0.0)
    data = bgnbd._CompressedData.build(*bgnbd._compress(x, t_x, T, np.ones_like(x)))
    log_theta = np.log([0.4, 3.0, 0.7, 2.2])
    for penalizer in (0.0, 0.3):
        _, grad = bgnbd._objective(log_theta, data, penalizer)
        step = 1e-6
        numeric = [
            (bgnbd._objective(log_theta + e, data, penalizer)[0] - bgnbd._objective(log_theta - e, data, penalizer)[0])
            / (2 * step)
            for e in np.eye(4) * step
        ]
        np.testing.assert_allclose(grad, numeric, atol=1e-7)


def test_fit_with_weights_equals_fit_on_repeated_rows(cdnow):
    x, t_x, T = cdnow["x"], cdnow["t_x"], cdnow["T"]
    counts = np.random.default_rng(3).integers(1, 4, x.size)

    weighted = bgnbd.fit(x, t_x, T, weights=counts)
    repeated = bgnbd.fit(np.repeat(x, counts), np.repeat(t_x, counts), np.repeat(T, counts))

    assert weighted.converged and repeated.converged
    assert weighted.n_customers == repeated.n_customers == counts.sum()
    np.testing.assert_allclose(weighted.params.as_array(), repeated.params.as_array(), rtol=1e-5)
    assert weighted.log_likelihood == pytest.approx(repeated.log_likelihood, abs=1e-4)


def test_fit_on_data_without_dropout_signal_still_ends():
    """Uniformly spread purchases carry no dropout signal: the optimum runs off to a, b -> infinity."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 300).astype(float)
    T = rng.integers(10, 40, 300).astype(float)
    t_x = np.where(x > 0, np.floor(rng.uniform(0, 1, 300) * T), 0.0)

    result = bgnbd.fit(x, t_x, T)

    assert np.isfinite(result.log_likelihood)
    assert result.params.a > 1e3 and result.params.b > 1e3
    assert result.iterations < 5000


def test_penalizer_shrinks_the_parameters(cdnow):
    plain = bgnbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    shrunk = bgnbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"], penalizer=0.1)
    assert np.sum(shrunk.params.as_array() ** 2) < np.sum(plain.params.as_array() ** 2)
    assert shrunk.log_likelihood < plain.log_likelihood


def test_inconsistent_customers_are_refused():
    with pytest.raises(ValueError, match="recency"):
        bgnbd.fit([1, 2], [5.0, 30.0], [10.0, 20.0])
    with pytest.raises(ValueError, match="whole numbers"):
        bgnbd.p_alive(PARAMS, [1.5], [1.0], [2.0])


def test_cdnow_sample_reproduces_the_published_fit(cdnow):
    assert cdnow["x"].size == 2357 and cdnow["x"].sum() == 2457  # customers, repeat purchases in calibration
    result = bgnbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"])

    assert result.converged
    assert result.n_customers == 2357
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert result.params.as_dict()[name] == pytest.approx(value, abs=1e-3), name
    assert result.log_likelihood == pytest.approx(-9582.4, abs=0.1)


# --- BG/NBD predictions -----------------------------------------------------------------------------------------


def test_p_alive_is_one_for_one_time_buyers_and_falls_with_silence():
    assert bgnbd.p_alive(PARAMS, 0, 0.0, 30.0) == 1.0
    recent, silent = bgnbd.p_alive(PARAMS, [3, 3], [29.0, 5.0], [30.0, 30.0])
    assert 0 < silent < recent < 1


def test_p_no_purchase_is_a_probability_decreasing_in_the_horizon():
    tau = np.array([0.0, 1.0, 5.0, 20.0, 100.0, 1e4])[:, None]
    x, t_x, T = (np.array(col, dtype=float) for col in zip(*TINY, strict=True))
    risk = bgnbd.p_no_purchase(PARAMS, tau, x, t_x, T)

    assert risk.shape == (6, 3)
    assert np.all((risk >= 0) & (risk <= 1))
    np.testing.assert_allclose(risk[0], 1.0)
    assert np.all(np.diff(risk, axis=0) < 0)
    # the formula from the brief, for one customer
    pa = bgnbd.p_alive(PARAMS, 2, 5.0, 12.0)
    expected = 1 - pa + pa * ((PARAMS.alpha + 12.0) / (PARAMS.alpha + 12.0 + 5.0)) ** (PARAMS.r + 2)
    assert risk[2, 1] == pytest.approx(expected, rel=1e-12)


def test_expected_purchases_increase_with_time_and_broadcast():
    t = np.array([0.0, 1.0, 10.0, 39.0, 200.0])[:, None]
    x, t_x, T = (np.array(col, dtype=float) for col in zip(*TINY, strict=True))
    expected = bgnbd.expected_purchases(PARAMS, t, x, t_x, T)

    assert expected.shape == (5, 3)
    np.testing.assert_allclose(expected[0], 0.0)
    assert np.all(np.diff(expected, axis=0) > 0)
    new = bgnbd.expected_purchases_new(PARAMS, t.ravel())
    assert new.shape == (5,) and new[0] == 0 and np.all(np.diff(new) > 0)
    # a brand-new customer is a customer with no history and no age
    np.testing.assert_allclose(new, bgnbd.expected_purchases(PARAMS, t.ravel(), 0, 0.0, 0.0), rtol=1e-12)


def test_expected_purchases_closed_form_agrees_with_quadrature():
    rng = np.random.default_rng(11)
    n = 200
    x = rng.integers(0, 30, n).astype(float)
    T = rng.uniform(0.5, 80, n)
    t = rng.uniform(0.1, 100, n)
    for params in (PARAMS, bgnbd.BGNBDParams(0.243, 4.414, 0.793, 2.426), bgnbd.BGNBDParams(2.0, 0.5, 3.0, 9.0)):
        r, alpha, a, b = params.as_array()
        closed = bgnbd._expected_if_alive(r + x, alpha + T, a, b + x, t)
        quadrature = bgnbd._expected_if_alive_quadrature(r + x, alpha + T, a, b + x, t)
        np.testing.assert_allclose(closed, quadrature, rtol=1e-8)


def test_expected_purchases_is_continuous_through_a_equal_one():
    """(a+b-1)/(a-1) is singular at a = 1 but the expectation is not: the quadrature fallback covers it."""
    values = [
        bgnbd.expected_purchases(bgnbd.BGNBDParams(0.5, 3.0, a, 2.0), 20.0, [0, 4], [0.0, 8.0], [10.0, 10.0])
        for a in (1.0 - 1e-4, 1.0, 1.0 + 1e-4)
    ]
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(values[1], values[0], rtol=1e-3)
    np.testing.assert_allclose(values[1], values[2], rtol=1e-3)


# --- Gamma-Gamma ------------------------------------------------------------------------------------------------


def test_gamma_gamma_reproduces_the_published_fit(cdnow):
    result = gamma_gamma.fit(cdnow["x"], cdnow["m"])

    assert result.converged
    assert result.n_customers == 946  # repeat customers only
    assert result.params.p == pytest.approx(6.25, rel=0.01)
    assert result.params.q == pytest.approx(3.74, rel=0.01)
    assert result.params.v == pytest.approx(15.44, rel=0.01)


def test_conditional_expected_value_lies_between_own_and_population_mean(cdnow):
    params = gamma_gamma.fit(cdnow["x"], cdnow["m"]).params
    value = gamma_gamma.conditional_expected_average_value(params, cdnow["x"], cdnow["m"])
    population = params.p * params.v / (params.q - 1)
    repeat = cdnow["x"] > 0

    low = np.minimum(cdnow["m"], population)[repeat]
    high = np.maximum(cdnow["m"], population)[repeat]
    assert np.all((value[repeat] >= low - 1e-9) & (value[repeat] <= high + 1e-9))
    np.testing.assert_allclose(value[~repeat], population)
    assert params.population_mean == pytest.approx(population)


def test_customer_lifetime_value_is_expected_purchases_times_expected_value():
    gg = gamma_gamma.GammaGammaParams(p=6.25, q=3.74, v=15.44)
    x, t_x, T = (np.array(col, dtype=float) for col in zip(*TINY, strict=True))
    m = np.array([0.0, 20.0, 35.0])
    purchases = bgnbd.expected_purchases(PARAMS, 52.0, x, t_x, T)
    value = gamma_gamma.conditional_expected_average_value(gg, x, m)

    plain = gamma_gamma.customer_lifetime_value(PARAMS, gg, x, t_x, T, m, horizon=52.0)
    np.testing.assert_allclose(plain, purchases * value)
    split = gamma_gamma.customer_lifetime_value(PARAMS, gg, x, t_x, T, m, horizon=52.0, periods=12)
    np.testing.assert_allclose(split, plain)  # without discounting, splitting changes nothing
    discounted = gamma_gamma.customer_lifetime_value(
        PARAMS, gg, x, t_x, T, m, horizon=52.0, periods=12, discount_rate_per_period=0.01
    )
    assert np.all(discounted < plain) and np.all(discounted > plain / 1.01**12)


# --- metrics ----------------------------------------------------------------------------------------------------


def test_roc_auc_on_known_examples():
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(labels, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(labels, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc(labels, [0.1, 0.4, 0.35, 0.8]) == 0.75
    # one tied pair counts one half: (0.5 + 1 + 1 + 1) / 4
    assert roc_auc([0, 1, 0, 1], [1, 1, 0, 2]) == 0.875
    with pytest.raises(ValueError):
        roc_auc([1, 1], [0.2, 0.3])


def test_roc_auc_matches_mann_whitney_with_many_ties():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 2000)
    scores = rng.integers(0, 10, 2000) + labels  # heavily tied, informative
    u = mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert roc_auc(labels, scores) == pytest.approx(u / (labels.sum() * (labels.size - labels.sum())), abs=1e-12)


def test_brier_score():
    assert brier_score([1, 0], [0.8, 0.3]) == pytest.approx((0.2**2 + 0.3**2) / 2)
    assert brier_score([1, 0, 1], [1.0, 0.0, 1.0]) == 0.0
    with pytest.raises(ValueError):
        brier_score([1], [1.2])


def test_precision_at_top():
    labels = [1, 1, 0, 0, 0]
    assert precision_at_top(labels, [5, 4, 3, 2, 1], share=0.4) == 1.0
    assert precision_at_top(labels, [1, 2, 3, 4, 5], share=0.4) == 0.0
    assert precision_at_top(labels, [5, 4, 3, 2, 1], share=0.6) == pytest.approx(2 / 3)
    # ties across the cut-off count at the tied group's positive rate, whatever the row order
    assert precision_at_top(labels, [1, 1, 1, 1, 1], share=0.4) == pytest.approx(0.4)
    assert precision_at_top([0, 1, 1, 0], [9, 5, 5, 5], share=0.5) == pytest.approx((0 + 2 / 3) / 2)


# --- the at-risk score (BG/NBD + backtest) ------------------------------------------------------------------------


def test_at_risk_score_ranks_above_recency_and_stays_calibrated_on_cdnow():
    """The quality targets, on real data nobody here wrote (bench/at_risk_quality.py prints the full table)."""
    pytest.importorskip("lifetimes")
    from bench.at_risk_quality import backtest_risk, load_cdnow, summarise

    tx = load_cdnow("sample")
    s = summarise(tx, "1997-09-30", "1998-06-30")
    params = bgnbd.fit(s.x, s.t_x, s.T).params
    scores, info = backtest_risk(tx, "1997-09-30", s, params)

    y = s.lapsed
    # the 273-day horizon doesn't fit in the 272-day calibration period: 60 days stay before the cut
    assert info["days"] == 212
    assert roc_auc(y, scores) >= 0.77
    assert roc_auc(y, scores) > roc_auc(y, s.T - s.t_x)  # plain recency
    assert roc_auc(y, scores) > roc_auc(y, bgnbd.p_no_purchase(params, s.horizon, s.x, s.t_x, s.T))
    assert abs(scores.mean() - y.mean()) <= 0.03
    assert precision_at_top(y, scores, 0.2) >= 0.85


def test_calibration_shift_hits_the_target_mean_and_keeps_the_ranking():
    params = bgnbd.BGNBDParams(r=0.25, alpha=4.0, a=0.8, b=2.4)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, 500).astype(float)
    T = rng.uniform(10, 40, 500)
    t_x = np.where(x > 0, rng.uniform(0, 1, 500) * T, 0.0)
    model = risk.RiskModel(weights=(0.5, 0.4, 0.2, 0.2, -0.7), horizon=13.0)
    z = risk.linear_score(model, params, x, t_x, T)

    shifted = risk.calibrated_to(model, z, 0.6)
    before = risk.lapse_probability(model, params, x, t_x, T)
    after = risk.lapse_probability(shifted, params, x, t_x, T)

    assert after.mean() == pytest.approx(0.6, abs=1e-6)
    assert np.array_equal(np.argsort(before, kind="stable"), np.argsort(after, kind="stable"))
    assert risk.RiskModel.from_dict(shifted.as_dict()) == shifted


def test_risk_fit_refuses_mismatched_labels():
    params = bgnbd.BGNBDParams(r=0.25, alpha=4.0, a=0.8, b=2.4)
    with pytest.raises(ValueError, match="same length"):
        risk.fit(params, [0, 1], [0, 1], [5, 5], [1], horizon=4.0)
