"""The at-risk score's optional features: learnt when the shop has the data, absent when it has not."""

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest

from loyalty.health import risk
from loyalty.models import CustomerHealth, Message, Purchase
from loyalty.services.health import (
    health_customers,
    health_fit_model,
    health_load_buyers,
    health_refresh,
    health_settings_for,
)
from tests.factories import CampaignFactory
from tests.loyalty.test_health_refresh import NOW, _simulated_history, buyer

CUT = NOW - timedelta(days=90)  # the backtest's cut: the 90-day horizon fits in the history


@pytest.fixture
def modelled(program):
    policy = health_settings_for(program)
    policy.min_buyers_for_model, policy.min_frequent_buyers = 100, 10
    policy.save()
    _simulated_history(program, 150, np.random.default_rng(7), NOW)
    return policy


def _one_timers(program, prefix: str, n: int, *, category: str, come_back: int, opened: bool = False) -> list:
    """``n`` customers with one order 40 days before the backtest's cut, in ``category``; ``come_back`` of them
    buy again after the cut. With ``opened``, each opened a campaign email before the cut."""
    campaign = CampaignFactory(program=program) if opened else None
    members = []
    for i in range(n):
        member = buyer(program, f"{prefix}{i}", orders=1, last_days_ago=130, gap_days=0, spent="40")
        Purchase.objects.filter(member=member).update(category=category)
        if i < come_back:
            Purchase.objects.create(
                program=program,
                member=member,
                order_reference=f"{prefix}{i}-again",
                amount=Decimal("30"),
                currency=program.currency,
                occurred_at=CUT + timedelta(days=20),
                category=category,
            )
        if campaign is not None:
            Message.objects.create(
                campaign=campaign,
                program=program,
                member=member,
                cycle=f"c{i}",
                status=Message.Status.SENT,
                created_at=CUT - timedelta(days=30),
                sent_at=CUT - timedelta(days=30),
                opened_at=CUT - timedelta(days=29),
            )
        members.append(member)
    return members


def test_a_shop_without_the_data_gets_the_base_model(program, modelled):
    fit = health_fit_model(program=program, now=NOW)

    assert fit.usable and fit.risk_model
    optional = set(fit.risk_model["features"]) - set(risk.BASE_FEATURES)
    assert optional <= {"first_value"}  # no categories, codes, enrolment gaps, emails or surveys here
    assert fit.risk_model["features"][: len(risk.BASE_FEATURES)] == list(risk.BASE_FEATURES)


def test_categories_and_email_engagement_are_learnt_and_change_the_score(program, modelled):
    # In the backtest, one-time wine buyers (who opened an email) mostly came back; pasta buyers did not.
    _one_timers(program, "wine", 40, category="wine", come_back=30, opened=True)
    _one_timers(program, "pasta", 40, category="pasta", come_back=4)

    fit = health_fit_model(program=program, now=NOW)

    features = dict(zip(fit.risk_model["features"], fit.risk_model["weights"], strict=True))
    assert "opened" in features and "category:wine" in features and "category:pasta" in features
    assert features["category:wine"] < features["category:pasta"]  # lower log-odds of lapsing

    # Twins today, one order each on the same day for the same amount, differing only in the category.
    twins = [buyer(program, name, orders=1, last_days_ago=20, gap_days=0, spent="40") for name in ("tw", "tp")]
    Purchase.objects.filter(member=twins[0]).update(category="wine")
    Purchase.objects.filter(member=twins[1]).update(category="pasta")
    health_refresh(program=program, now=NOW)
    wine, pasta = (CustomerHealth.objects.get(member=m).p_lapse for m in twins)
    assert wine < pasta


def test_health_customers_reads_each_kind_of_data_for_the_members(program, modelled):
    opened = _one_timers(program, "op", 3, category="wine", come_back=0, opened=True)

    data = health_load_buyers(program=program, now=NOW)
    customers = health_customers(program=program, data=data, now=NOW)

    index = {member_id: i for i, member_id in enumerate(data.member_ids.tolist())}
    for member in opened:
        assert customers.opened[index[member.pk]] == 1 and customers.clicked[index[member.pk]] == 0
        assert customers.category[index[member.pk]] == "wine"
    assert customers.opened.sum() == 3 and customers.used_code.sum() == 0 and customers.survey_answered.sum() == 0
    joined = opened[0].joined_at
    expected = (NOW - joined).total_seconds() / 86400 / 7
    assert customers.enrolled_weeks[index[opened[0].pk]] == pytest.approx(expected, abs=1e-6)
    earlier = CUT - timedelta(days=40)
    before = health_customers(program=program, data=health_load_buyers(program=program, now=earlier), now=earlier)
    assert before.opened.sum() == 0  # the emails were opened after that moment


def test_fitted_model_and_its_dict_round_trip():
    model = risk.RiskModel(
        weights=(0.1, 0.5, 0.3, 0.2, -0.4, -0.1),
        horizon=8.0,
        features=(*risk.FEATURES, "first_value"),
        platt=(0.05, 0.9),
        target=13.0,
        reliability=((0.2, 0.25, 10), (0.8, 0.7, 10)),
        ece=3.5,
    )
    assert risk.RiskModel.from_dict(model.as_dict()) == model
    first = risk.RiskModel.from_dict({"weights": [0.5, 0.4, 0.2, 0.2, -0.7], "horizon": 13.0, "shift": 0.1})
    assert first.features == risk.FEATURES and first.platt == (0.0, 1.0) and first.target is None


def test_the_backtest_window_fits_the_horizon_in_the_history():
    assert risk.backtest_days(400, 90) == 90
    assert risk.backtest_days(120, 90) == 60  # 60 days stay before the cut
    assert risk.backtest_days(70, 90) is None  # 10 days: too short a backtest


def test_a_score_beyond_the_window_is_carried_by_the_purchase_models_ratio():
    params = risk.bgnbd.BGNBDParams(r=0.25, alpha=4.0, a=0.8, b=2.4)
    c = risk.Customers([0, 2, 5], [0, 10, 20], [20, 30, 40])
    model = risk.RiskModel(weights=(0.2, 1.0, 0.1, 0.1, -0.1), horizon=4.0, target=12.0)
    within = risk.lapse_probability(risk.RiskModel(**{**vars(model), "target": None}), params, customers=c)
    beyond = risk.lapse_probability(model, params, customers=c)
    ratio = risk.bgnbd.p_no_purchase(params, 12.0, c.x, c.t_x, c.T) / risk.bgnbd.p_no_purchase(
        params, 4.0, c.x, c.t_x, c.T
    )
    np.testing.assert_allclose(beyond, within * ratio)
    assert np.all(beyond <= within)


def test_reliability_curve_and_calibration_error():
    labels = np.tile([0, 1], 50)
    probs = np.repeat([0.1, 0.9], 50)
    curve, ece = risk.reliability(labels, probs, bins=2)
    assert curve == ((0.1, 0.5, 50), (0.9, 0.5, 50))
    assert ece == pytest.approx(40.0)  # half the customers 40 points too low, half 40 too high
    curve, ece = risk.reliability(labels, np.full(100, 0.5))
    assert ece == pytest.approx(0.0) and len(curve) == 10
