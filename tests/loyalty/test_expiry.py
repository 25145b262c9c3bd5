"""Lots lapse at their expiry date by exactly what is left of them."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from loyalty.models import Member, PointsEntry
from loyalty.services import points_debit, points_expire_due
from loyalty.tasks import expire_points
from tests.factories import paid_order

pytestmark = pytest.mark.django_db


def test_an_expired_lot_lapses_by_what_is_left_of_it(program, customer):
    now = timezone.now()
    old = paid_order(total="50.00", user=customer, at=now - timedelta(days=400))
    paid_order(total="30.00", user=customer, at=now - timedelta(days=10))
    member = Member.objects.get(user=customer)
    points_debit(member=member, points=20, kind=PointsEntry.Kind.REDEEM, idempotency_key="spend")  # from the old lot

    assert points_expire_due() == 1

    expiry = PointsEntry.objects.get(kind=PointsEntry.Kind.EXPIRE)
    assert expiry.points == -30
    assert expiry.reference == old.number
    assert Member.objects.get(pk=member.pk).balance == 30
    call_command("loyalty_check_ledger", stdout=StringIO())


def test_expiring_twice_expires_once(program, customer):
    paid_order(total="50.00", user=customer, at=timezone.now() - timedelta(days=400))
    assert expire_points() == 1
    assert expire_points() == 0
    assert Member.objects.get(user=customer).balance == 0


def test_points_without_a_lifetime_never_expire(program, customer):
    program.points_lifetime_days = None
    program.save()
    paid_order(total="50.00", user=customer, at=timezone.now() - timedelta(days=4000))
    assert points_expire_due() == 0
    assert Member.objects.get(user=customer).balance == 50


def test_expiry_works_through_batches(program, customer):
    for n in range(5):
        paid_order(total="10.00", user=customer, at=timezone.now() - timedelta(days=500 + n))
    assert points_expire_due(batch_size=2) == 5
    assert Member.objects.get(user=customer).balance == 0
