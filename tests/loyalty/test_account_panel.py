"""Customers see their balance and history on the shop's account page; queries stay bounded."""

from decimal import Decimal

import pytest
from django.urls import reverse

from loyalty.models import PointsEntry
from loyalty.services import points_adjust
from tests.factories import UserFactory, paid_order

pytestmark = pytest.mark.django_db


def add_history(member, rows: int) -> None:
    """Bulk-write ``rows`` ledger rows (test data only; real writes go through services)."""
    from django.db.models import F, Sum
    from django.utils import timezone

    now = timezone.now()
    start = PointsEntry.objects.filter(member=member).count()
    PointsEntry.objects.bulk_create(
        PointsEntry(
            program=member.program,
            member=member,
            kind=PointsEntry.Kind.BONUS,
            points=1,
            remaining=1,
            idempotency_key=f"bulk:{member.pk}:{start + n}",
            created_at=now,
        )
        for n in range(rows)
    )
    total = PointsEntry.objects.filter(member=member).aggregate(s=Sum("points"))["s"]
    type(member).objects.filter(pk=member.pk).update(balance=total, lifetime_points=F("lifetime_points") + rows)


def test_the_account_page_shows_balance_value_and_history(client, program, customer):
    order = paid_order(total="123.45", user=customer)
    client.force_login(customer)

    page = client.get(reverse("shop:account")).content.decode()

    assert "Rewards" in page
    assert "<strong>123</strong>" in page
    assert "Worth" not in page  # points are spent through rewards here, not as money
    assert f"Order #{order.number}" in page
    assert "+123" in page


def test_the_balance_says_what_it_buys_or_what_is_missing(client, program, customer):
    from loyalty.models import Reward

    Reward.objects.create(program=program, name="Tote bag", kind="free_shipping", points_cost=100)
    Reward.objects.create(program=program, name="10 EUR off", kind="fixed", value=Decimal("10"), points_cost=1000)
    paid_order(total="120.00", user=customer)
    client.force_login(customer)
    assert "Enough for “Tote bag”: redeem it below." in client.get(reverse("shop:account")).content.decode()

    Reward.objects.filter(name="Tote bag").update(is_active=False)
    assert "880 more points for “10 EUR off”." in client.get(reverse("shop:account")).content.decode()


def test_a_cancelled_order_shows_as_cancelled_in_the_history(client, program, customer):
    from shop import services as shop

    order = paid_order(total="40.00", user=customer)
    shop.cancel_order(order=order)
    client.force_login(customer)

    page = client.get(reverse("shop:account")).content.decode()

    assert f"Order #{order.number} cancelled" in page
    assert "Refund of order" not in page


def test_a_customer_never_sees_another_customers_points(client, program, customer):
    paid_order(total="77.00", user=customer)
    other = UserFactory()
    paid_order(total="5.00", user=other)
    client.force_login(other)

    page = client.get(reverse("shop:account")).content.decode()

    assert "<strong>5</strong>" in page
    assert "+77" not in page


def test_a_visitor_who_is_not_a_member_sees_no_panel(client, program, customer):
    client.force_login(customer)
    page = client.get(reverse("shop:account")).content.decode()
    assert "loyalty-panel" not in page


def test_history_shows_adjustment_reasons(client, member, customer):
    points_adjust(member=member, points=20, reason="Sorry about the broken jar")
    client.force_login(customer)
    assert "Sorry about the broken jar" in client.get(reverse("shop:account")).content.decode()


def test_the_account_page_query_count_does_not_grow_with_history(client, member, customer, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(customer)
    add_history(member, 10)
    with CaptureQueriesContext(connection) as small:
        assert client.get(reverse("shop:account")).status_code == 200
    add_history(member, 5000)
    with django_assert_num_queries(len(small)):
        response = client.get(reverse("shop:account"))
    assert response.content.decode().count('class="num points-plus"') == 20
