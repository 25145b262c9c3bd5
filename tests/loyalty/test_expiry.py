"""Points expire by the programme's policy, exactly, once."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from loyalty.models import Member, PointsEntry, Program
from loyalty.services import points_debit, points_expire_due
from loyalty.services.expiry import expiry_reminders_send
from loyalty.tasks import points_expire, send_member_email
from tests.factories import paid_order

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def balance(user) -> int:
    return Member.objects.get(user=user).balance


def expiries() -> list[int]:
    return list(PointsEntry.objects.filter(kind=PointsEntry.Kind.EXPIRE).values_list("points", flat=True))


def test_earn_100_spend_30_then_70_expire(program, customer):
    paid_order(total="100.00", user=customer, at=NOW - timedelta(days=400))
    paid_order(total="25.00", user=customer, at=NOW - timedelta(days=10))
    member = Member.objects.get(user=customer)
    points_debit(member=member, points=30, kind=PointsEntry.Kind.REDEEM, idempotency_key="spend")  # oldest lot first

    assert points_expire_due() == 1

    assert expiries() == [-70]
    assert balance(customer) == 25
    call_command("loyalty_check_ledger", stdout=StringIO())


def test_running_expiry_twice_changes_nothing_the_second_time(program, customer):
    paid_order(total="50.00", user=customer, at=NOW - timedelta(days=400))
    assert points_expire() == 1
    assert points_expire() == 0
    assert expiries() == [-50]


def test_one_entry_per_member_per_run_whatever_the_number_of_lots(program, customer):
    for n in range(5):
        paid_order(total="10.00", user=customer, at=NOW - timedelta(days=500 + n))
    assert points_expire_due(batch_size=2) == 1
    assert expiries() == [-50]


def test_never_means_never(program, customer):
    program.expiry_policy = Program.ExpiryPolicy.NEVER
    program.save()
    paid_order(total="50.00", user=customer, at=NOW - timedelta(days=4000))
    assert PointsEntry.objects.get().expires_at is None
    assert points_expire_due() == 0
    assert balance(customer) == 50


class TestInactivityPolicy:
    @pytest.fixture
    def program(self, program):
        program.expiry_policy = Program.ExpiryPolicy.INACTIVITY
        program.inactivity_days = 180
        program.save()
        return program

    def test_the_whole_balance_expires_after_the_inactivity_period(self, program, customer):
        paid_order(total="30.00", user=customer, at=NOW - timedelta(days=300))
        paid_order(total="20.00", user=customer, at=NOW - timedelta(days=200))
        assert points_expire_due() == 1
        assert points_expire_due() == 0
        assert expiries() == [-50]
        assert balance(customer) == 0

    def test_a_recent_purchase_keeps_everything(self, program, customer):
        paid_order(total="30.00", user=customer, at=NOW - timedelta(days=300))
        paid_order(total="20.00", user=customer, at=NOW - timedelta(days=20))
        assert points_expire_due() == 0
        assert balance(customer) == 50


def test_members_are_reminded_once_before_points_expire(program, customer, mailoutbox):
    program.expiry_reminder_days = 14
    program.save()
    paid_order(total="40.00", user=customer, at=NOW - timedelta(days=360))  # expires in 5 days
    paid_order(total="10.00", user=customer, at=NOW - timedelta(days=10))  # far from expiry

    assert expiry_reminders_send() == 1
    assert expiry_reminders_send() == 0

    member = Member.objects.get(user=customer)
    send_member_email(member.pk, "points_expiring", {"points": 40, "expires_on": "2026-11-28"})
    assert mailoutbox[0].subject == "40 of your points expire soon"
    assert "40 points in your Rewards account expire on Nov. 28, 2026" in mailoutbox[0].body  # localised
