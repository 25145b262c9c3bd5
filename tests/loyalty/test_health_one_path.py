"""One code path: the score a shop stores is the score the bench reports.

The CDNOW sample is loaded into the database as members and purchases (one purchase per
customer-day, at noon UTC); the weekly fit and the nightly refresh score it at a cut, and
``bench.at_risk_quality.score_cut`` scores the same customers from the text file. They must
agree to the six decimals ``CustomerHealth.p_lapse`` keeps, on the common setting (a 90-day
horizon that fits in the history) and on a horizon longer than the history allows a backtest
for (the backtest window is shorter and BG/NBD carries the score to the horizon).
"""

from datetime import datetime, time, timezone
from decimal import Decimal

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from loyalty.models import CustomerHealth, Member, Purchase
from loyalty.services.health import health_fit_model, health_refresh, health_settings_for

pytest.importorskip("lifetimes")

from bench.at_risk_quality import load_cdnow, score_cut

CUT = "1997-09-30"


def _noon(day: np.datetime64) -> datetime:
    return datetime.combine(day.astype(object), time(12), tzinfo=timezone.utc)


@pytest.fixture
def cdnow_shop(program):
    """The CDNOW sample as a shop: a member per customer (enrolled at the first order), a purchase per day."""
    tx = load_cdnow("sample")
    ids, first_index = np.unique(tx.customer, return_index=True)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"c{i}", email=f"c{i}@example.com") for i in ids.tolist()]
    )
    first = {i: _noon(tx.day[k]) for i, k in zip(ids.tolist(), first_index.tolist(), strict=True)}
    members = Member.objects.bulk_create(
        [Member(program=program, user=user, joined_at=first[i]) for i, user in zip(ids.tolist(), users, strict=True)]
    )
    member_of = {i: m.pk for i, m in zip(ids.tolist(), members, strict=True)}
    Purchase.objects.bulk_create(
        [
            Purchase(
                program=program,
                member_id=member_of[c],
                order_reference=f"cd{n}",
                amount=Decimal(f"{a:.2f}"),
                currency=program.currency,
                occurred_at=_noon(d),
            )
            for n, (c, d, a) in enumerate(zip(tx.customer.tolist(), tx.day, tx.amount.tolist(), strict=True))
        ],
        batch_size=2000,
    )
    order = np.argsort(ids)
    return tx, ids[order], np.array([member_of[i] for i in ids[order].tolist()])


@pytest.mark.parametrize("horizon_days", [90, 273])
def test_product_and_bench_store_the_same_scores(program, cdnow_shop, horizon_days):
    tx, ids, member_ids = cdnow_shop
    policy = health_settings_for(program)
    policy.horizon_days = horizon_days
    policy.save()
    now = _noon(np.datetime64(CUT))

    fit = health_fit_model(program=program, now=now)
    health_refresh(program=program, now=now)

    end = str(np.datetime64(CUT) + np.timedelta64(horizon_days, "D"))
    bench = score_cut(tx, CUT, end, horizon_days)
    assert fit.usable and fit.backtest_days == bench["days"]
    assert fit.risk_model["features"] == list(bench["backtest"].model.features)
    assert "first_value" in fit.risk_model["features"]  # an optional feature, through both paths
    stored = dict(CustomerHealth.objects.filter(program=program).values_list("member_id", "p_lapse"))
    product = np.array([float(stored[m]) for m in member_ids.tolist()])
    assert product.shape == bench["scores"].shape == (2357,)
    np.testing.assert_allclose(product, bench["scores"], rtol=0, atol=1.5e-6)
