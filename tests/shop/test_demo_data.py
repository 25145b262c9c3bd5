import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from django.db.models import Count, Max, Q

from shop.demo_data import DEMO_CUSTOMER_EMAIL, DEMO_PASSWORD, DRIFTING_CUSTOMER_EMAIL, load_demo_data
from shop.models import Order, Product, Refund

NOW = datetime(2026, 3, 15, 11, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """Load the demo data once for this module, in a transaction rolled back at its end.

    Each test still runs in its own savepoint (the ``db`` fixture), so they stay independent.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        yield load_demo_data(seed=7, now=NOW)
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def _db(db):
    pass


def customers_by_orders():
    return get_user_model().objects.annotate(n_orders=Count("orders"), last_order=Max("orders__created_at"))


def test_summary_matches_the_database(demo):
    assert demo["created"] is True
    assert demo["products"] == Product.objects.count() >= 20
    assert demo["orders"] == Order.objects.count()
    assert 500 <= demo["orders"] <= 800
    assert demo["customers"] >= 75
    assert demo["guests"] == Order.objects.filter(user=None).count() > 0
    assert all(Decimal("4") <= p.price <= Decimal("60") and p.colour.startswith("#") for p in Product.objects.all())


def test_personas(demo):
    users = customers_by_orders()
    half_a_year_ago = NOW - timedelta(days=183)

    regulars = [u for u in users if u.n_orders >= 15 and u.last_order > NOW - timedelta(days=60)]
    assert len(regulars) >= 5

    lapsed = [u for u in users if u.n_orders >= 5 and u.last_order < half_a_year_ago]
    assert lapsed, "a customer who used to order often and stopped over six months ago"

    marco = users.get(email=DRIFTING_CUSTOMER_EMAIL)  # a regular who stopped 2-4 months ago
    assert marco.n_orders >= 10 and NOW - timedelta(days=125) < marco.last_order < NOW - timedelta(days=70)

    assert users.filter(n_orders=1).count() >= 10  # one-time buyers
    assert users.filter(n_orders__gte=2, n_orders__lte=6).count() >= 10  # occasional buyers

    guest_orders = Order.objects.filter(user=None)
    assert guest_orders.count() >= 20
    assert guest_orders.values("email").annotate(n=Count("id")).filter(n__gte=2).exists(), "returning guests"

    # Every order is in the past two years; nothing after "now".
    assert not Order.objects.filter(Q(created_at__gt=NOW) | Q(created_at__lt=NOW - timedelta(days=731))).exists()


def test_order_outcomes_and_totals(demo):
    statuses = set(Order.objects.values_list("status", flat=True))
    assert statuses == set(Order.Status.values)  # paid, pending, cancelled, partially and fully refunded
    assert Order.objects.filter(status=Order.Status.CANCELLED, paid_at__isnull=False).exists()  # after payment
    assert Order.objects.filter(status=Order.Status.CANCELLED, paid_at__isnull=True).exists()  # before payment
    assert not Order.objects.filter(status=Order.Status.PENDING, created_at__lt=NOW - timedelta(days=3)).exists()

    for order in Order.objects.prefetch_related("lines", "refunds"):
        assert order.lines.exists()
        assert order.total == sum(line.line_total for line in order.lines.all())
        assert order.refunded_total == sum((r.amount for r in order.refunds.all()), Decimal("0"))
        if order.paid_at:
            assert order.paid_at > order.created_at
        for refund in order.refunds.all():
            assert refund.created_at > order.paid_at
            assert refund.created_at <= NOW
    assert Refund.objects.exists()


def test_demo_login_is_a_regular_customer(demo):
    anna = customers_by_orders().get(email=DEMO_CUSTOMER_EMAIL)
    assert anna.username == DEMO_CUSTOMER_EMAIL
    assert anna.n_orders >= 15
    assert anna.last_order > NOW - timedelta(days=14)
    assert authenticate(username=DEMO_CUSTOMER_EMAIL, password=DEMO_PASSWORD) == anna
    for user in get_user_model().objects.filter(is_staff=False):
        assert user.username == user.email
        assert user.orders.filter(created_at__lt=user.date_joined).count() == 0  # joined before buying


def test_loading_twice_does_nothing_the_second_time(demo):
    counts = (Product.objects.count(), get_user_model().objects.count(), Order.objects.count())
    out = io.StringIO()

    again = load_demo_data(seed=8, now=NOW, stdout=out)

    assert "not loaded again" in out.getvalue()
    assert again["created"] is False
    assert (Product.objects.count(), get_user_model().objects.count(), Order.objects.count()) == counts
    assert again["orders"] == demo["orders"]
