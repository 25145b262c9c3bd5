"""The load stage's per-member purchase aggregates (first and last purchase, orders, purchase days,
net spend), pinned on a hand-made history: several purchases on one UTC day, refunds, statuses that
do not count, purchases after the run, a guest and members without counted purchases. The same
numbers come out of the weekly fit's load, a refresh chunk's load and the run's RFM bounds."""

from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection

from loyalty.models import Purchase
from loyalty.services import member_enroll
from loyalty.services.health import health_cutpoints, health_load, health_load_buyers, health_refresh_start
from tests.factories import UserFactory

UTC = timezone.utc
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
DAY = 86400.0


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def epoch_days(moment: datetime) -> float:
    return moment.timestamp() / DAY


def same(expected: float):
    """PostgreSQL's epochs and spend are exact: the very double Python computes. SQLite's julianday()
    keeps milliseconds and it sums amounts as floats."""
    return pytest.approx(expected, rel=0, abs=0 if connection.vendor == "postgresql" else 1e-8)


@pytest.fixture
def history(program):
    """Ann: five counted purchases on three UTC days (three on 1 June, one a second before and one just
    after it), besides a refunded, a cancelled and a later one. Ben: two purchases at the very moment of
    the run. Cid: only a refunded and a cancelled purchase. Dee: no purchase. A guest buys on 1 June."""
    members = {
        name: member_enroll(program=program, user=UserFactory(username=name, email=f"{name}@example.com"))[0]
        for name in ("ann", "ben", "cid", "dee")
    }
    paid, partly = Purchase.Status.PAID, Purchase.Status.PARTIALLY_REFUNDED
    refunded, cancelled = Purchase.Status.REFUNDED, Purchase.Status.CANCELLED
    rows = [
        ("ann", "2026-05-31 23:59:59", "10.00", "0.00", paid),  # 1 June in Berlin, 31 May in UTC
        ("ann", "2026-06-01 08:00:00", "25.50", "0.00", paid),
        ("ann", "2026-06-01 13:30:00", "50.00", "20.00", partly),
        ("ann", "2026-06-01 17:00:00", "99.00", "99.00", refunded),
        ("ann", "2026-06-01 23:59:59.999999", "4.99", "0.00", paid),
        ("ann", "2026-06-02 00:00:00", "7.25", "0.00", paid),
        ("ann", "2026-06-10 09:00:00", "15.00", "0.00", cancelled),
        ("ann", "2026-06-30 12:00:01", "60.00", "0.00", paid),  # after the run's moment
        ("ben", "2026-06-30 12:00:00", "12.00", "0.00", paid),
        ("ben", "2026-06-30 12:00:00", "8.00", "2.50", partly),
        ("cid", "2026-06-01 10:00:00", "30.00", "30.00", refunded),
        ("cid", "2026-06-05 10:00:00", "30.00", "0.00", cancelled),
        (None, "2026-06-01 11:00:00", "40.00", "0.00", paid),
    ]
    for number, (name, moment, amount, refund, status) in enumerate(rows):
        Purchase.objects.create(
            program=program,
            member=members[name] if name else None,
            email="" if name else "guest@example.com",
            order_reference=f"o{number}",
            amount=Decimal(amount),
            refunded_amount=Decimal(refund),
            status=status,
            currency=program.currency,
            occurred_at=at(moment),
        )
    return members


ANN = {
    "first_day": epoch_days(at("2026-05-31 23:59:59")),
    "last_day": epoch_days(at("2026-06-02 00:00:00")),
    "orders": 5,
    "days": 3,
    "spent": float(Decimal("10.00") + Decimal("25.50") + Decimal("30.00") + Decimal("4.99") + Decimal("7.25")),
}
BEN = {"first_day": epoch_days(NOW), "last_day": epoch_days(NOW), "orders": 2, "days": 1, "spent": 17.5}


def aggregates(data, index: int) -> dict:
    return {field: getattr(data, field)[index] for field in ("first_day", "last_day", "orders", "days", "spent")}


def assert_aggregates(actual: dict, expected: dict) -> None:
    assert (actual["orders"], actual["days"]) == (expected["orders"], expected["days"])
    for field in ("first_day", "last_day", "spent"):
        assert actual[field] == same(expected[field]), field


def test_the_weekly_fit_loads_each_buyers_counted_purchases(program, history):
    data = health_load_buyers(program=program, now=NOW)

    ids = data.member_ids.tolist()
    assert sorted(ids) == sorted([history["ann"].pk, history["ben"].pk])  # Cid's purchases do not count
    assert_aggregates(aggregates(data, ids.index(history["ann"].pk)), ANN)
    assert_aggregates(aggregates(data, ids.index(history["ben"].pk)), BEN)


def test_a_refresh_chunk_loads_every_member_with_the_same_aggregates(program, history):
    run, ranges = health_refresh_start(program=program, now=NOW)
    (lo, hi) = ranges[0]

    data = health_load(run=run, lo=lo, hi=hi)

    ids = data.member_ids.tolist()
    assert ids == sorted(member.pk for member in history.values())
    assert_aggregates(aggregates(data, ids.index(history["ann"].pk)), ANN)
    assert_aggregates(aggregates(data, ids.index(history["ben"].pk)), BEN)
    for name in ("cid", "dee"):
        at_index = ids.index(history[name].pk)
        assert np.isnan(data.first_day[at_index]) and np.isnan(data.last_day[at_index])
        assert (data.orders[at_index], data.days[at_index], data.spent[at_index]) == (0, 0, 0.0)
    assert dict(zip(ids, data.buyers.tolist(), strict=True)) == {
        history["ann"].pk: True,
        history["ben"].pk: True,
        history["cid"].pk: False,
        history["dee"].pk: False,
    }


def test_the_rfm_bounds_use_the_same_aggregates(program, history):
    bounds = health_cutpoints(program=program, now=NOW)

    # Two buyers: the lower value scores 2, the higher 4 (midpoint quintiles), each bound its own value.
    assert bounds["r"] == {"2": float(int(ANN["last_day"])), "4": float(int(BEN["last_day"]))}
    assert bounds["f"] == {"2": 2.0, "4": 5.0}
    assert bounds["m"] == {"2": 17.0, "4": 77.0}
    # Only Ann bought on more than one day: her gap is the median, over purchase days, not orders.
    assert bounds["median_gap_days"] == same((ANN["last_day"] - ANN["first_day"]) / (ANN["days"] - 1))
