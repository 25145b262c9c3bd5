"""Points wait out the approval period; refunds inside it cancel them instead of reversing."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from loyalty.models import Member, PendingPoints, PointsEntry
from loyalty.tasks import approve_pending_points
from shop import services as shop_services
from tests.factories import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def fourteen_days(program):
    program.pending_days = 14
    program.save()
    return program


def member_of(user) -> Member:
    return Member.objects.get(user=user)


def test_points_are_pending_and_not_spendable(fourteen_days, customer):
    paid_order(total="40.00", user=customer)
    member = member_of(customer)
    assert (member.balance, member.pending_points, member.orders_count) == (0, 40, 1)
    assert not PointsEntry.objects.exists()


def test_the_task_approves_them_once_the_period_is_over(fourteen_days, customer):
    paid_order(total="40.00", user=customer, at=timezone.now() - timedelta(days=13))
    paid_order(total="10.00", user=customer)
    PendingPoints.objects.filter(points=40).update(approve_at=timezone.now() - timedelta(minutes=1))

    assert approve_pending_points() == 1
    assert approve_pending_points() == 0

    member = member_of(customer)
    assert (member.balance, member.pending_points) == (40, 10)
    assert PendingPoints.objects.get(points=40).status == PendingPoints.Status.APPROVED
    call_command("loyalty_check_ledger", stdout=StringIO())


def test_orders_older_than_the_period_are_approved_at_once(fourteen_days, customer):
    paid_order(total="40.00", user=customer, at=timezone.now() - timedelta(days=30))
    assert member_of(customer).balance == 40


def test_a_refund_inside_the_period_cancels_instead_of_reversing(fourteen_days, customer):
    order = paid_order(total="40.00", user=customer)
    shop_services.refund_order(order=order, amount=Decimal("10.00"))
    assert member_of(customer).pending_points == 30
    shop_services.refund_order(order=order)

    member = member_of(customer)
    assert (member.balance, member.pending_points) == (0, 0)
    assert not PointsEntry.objects.exists()
    assert PendingPoints.objects.get().status == PendingPoints.Status.CANCELLED


def test_a_refund_after_approval_reverses_what_was_approved(fourteen_days, customer):
    order = paid_order(total="100.00", user=customer, at=timezone.now() - timedelta(days=20))
    # paid 20 days ago but only now processed: approved at once; refund as usual
    shop_services.refund_order(order=order, amount=Decimal("30.00"))
    assert member_of(customer).balance == 70


def test_partial_refund_while_pending_then_the_rest_after_approval(fourteen_days, customer):
    order = paid_order(total="100.00", user=customer, at=timezone.now() - timedelta(days=1))
    shop_services.refund_order(order=order, amount=Decimal("30.00"))
    PendingPoints.objects.update(approve_at=timezone.now())
    approve_pending_points()
    assert member_of(customer).balance == 70

    shop_services.refund_order(order=order)

    assert member_of(customer).balance == 0
    call_command("loyalty_check_ledger", stdout=StringIO())


def test_order_bonuses_wait_for_approval_and_a_refund_inside_the_period_cancels_them(fourteen_days, customer):
    from loyalty.models import EarningRule

    EarningRule.objects.create(program=fourteen_days, name="First order", kind="first_purchase", points=100)
    order = paid_order(total="40.00", user=customer)
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.BONUS).exists()

    shop_services.refund_order(order=order)  # returned inside the window: no bonus, ever
    approve_pending_points()
    assert member_of(customer).balance == 0

    second = paid_order(total="30.00", user=customer, at=timezone.now() - timedelta(days=1))
    PendingPoints.objects.filter(purchase__order_reference=second.number).update(approve_at=timezone.now())
    approve_pending_points()

    bonus = PointsEntry.objects.get(kind=PointsEntry.Kind.BONUS)
    assert (bonus.points, bonus.reference) == (100, second.number)
    assert member_of(customer).balance == 130
