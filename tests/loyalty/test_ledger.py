"""The ledger: lots, oldest-first debits, idempotent writes, staff adjustments, the check command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.exceptions import InsufficientPoints, InvalidAdjustment
from loyalty.models import Member, PointsEntry
from loyalty.services import member_enroll, order_event_record, points_adjust, points_credit, points_debit
from tests.factories import UserFactory, order_event

pytestmark = pytest.mark.django_db
Kind = PointsEntry.Kind


def credit(member, points, key, **kw):
    return points_credit(member=member, points=points, kind=Kind.BONUS, idempotency_key=key, **kw)


def test_debits_consume_the_soonest_expiring_lots_first(member):
    now = timezone.now()
    late = credit(member, 50, "late", at=now)
    early = credit(member, 30, "early", at=now - timedelta(days=200))

    points_debit(member=member, points=40, kind=Kind.REDEEM, idempotency_key="spend")

    early.refresh_from_db()
    late.refresh_from_db()
    assert (early.remaining, late.remaining) == (0, 40)
    assert Member.objects.get(pk=member.pk).balance == 40


def test_a_credit_called_twice_with_one_key_credits_once(member):
    first = credit(member, 25, "welcome")
    second = credit(member, 25, "welcome")

    assert first.pk == second.pk
    assert Member.objects.get(pk=member.pk).balance == 25
    assert PointsEntry.objects.count() == 1


def test_a_debit_called_twice_with_one_key_debits_once(member):
    credit(member, 100, "c")
    points_debit(member=member, points=30, kind=Kind.REDEEM, idempotency_key="r1")
    points_debit(member=member, points=30, kind=Kind.REDEEM, idempotency_key="r1")
    assert Member.objects.get(pk=member.pk).balance == 70


def test_a_debit_beyond_the_balance_is_refused_and_writes_nothing(member):
    credit(member, 10, "c")
    with pytest.raises(InsufficientPoints):
        points_debit(member=member, points=11, kind=Kind.REDEEM, idempotency_key="r")
    assert PointsEntry.objects.count() == 1
    assert PointsEntry.objects.get().remaining == 10


def test_zero_points_cannot_be_written(member):
    with pytest.raises(ValueError):
        credit(member, 0, "zero")


class TestStaffAdjustments:
    def test_an_adjustment_records_reason_and_staff_user(self, member, admin_user):
        entry = points_adjust(member=member, points=15, reason="Parcel arrived late", by=admin_user)
        assert (entry.kind, entry.points, entry.description, entry.created_by) == (
            Kind.ADJUST,
            15,
            "Parcel arrived late",
            admin_user,
        )

    def test_an_adjustment_needs_a_reason(self, member):
        with pytest.raises(InvalidAdjustment, match="reason"):
            points_adjust(member=member, points=5, reason="   ")
        assert not PointsEntry.objects.exists()

    @pytest.mark.parametrize("points", [0, 1.5, "7", True])
    def test_an_adjustment_needs_a_whole_non_zero_number(self, member, points):
        with pytest.raises(InvalidAdjustment):
            points_adjust(member=member, points=points, reason="typo")

    def test_a_negative_adjustment_cannot_go_below_zero(self, member):
        points_adjust(member=member, points=5, reason="goodwill")
        with pytest.raises(InsufficientPoints, match="below zero"):
            points_adjust(member=member, points=-6, reason="correction")
        assert Member.objects.get(pk=member.pk).balance == 5

    def test_the_same_adjustment_submitted_twice_counts_once(self, member):
        points_adjust(member=member, points=5, reason="goodwill", idempotency_key="form-abc")
        points_adjust(member=member, points=5, reason="goodwill", idempotency_key="form-abc")
        assert Member.objects.get(pk=member.pk).balance == 5


class TestCheckLedger:
    def test_it_passes_on_a_consistent_ledger(self, member):
        credit(member, 40, "c")
        points_debit(member=member, points=15, kind=Kind.REDEEM, idempotency_key="r")
        out = StringIO()
        call_command("loyalty_check_ledger", stdout=out)
        assert "Ledger consistent" in out.getvalue()

    def test_it_fails_when_a_balance_was_tampered_with(self, member):
        credit(member, 40, "c")
        Member.objects.filter(pk=member.pk).update(balance=1000)
        out = StringIO()
        with pytest.raises(CommandError, match="1 member"):
            call_command("loyalty_check_ledger", stdout=out)
        assert "balance 1000, ledger sum 40" in out.getvalue()

    def test_it_fails_when_lots_do_not_add_up(self, member):
        credit(member, 40, "c")
        PointsEntry.objects.update(remaining=3)
        with pytest.raises(CommandError):
            call_command("loyalty_check_ledger", stdout=StringIO())


operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(min_value=1, max_value=50_000)),  # cents
        st.tuples(st.just("refund"), st.integers(min_value=0, max_value=20), st.integers(min_value=1, max_value=100)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("adjust"), st.integers(min_value=-300, max_value=300).filter(bool)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_any_sequence_of_earns_refunds_and_adjustments_keeps_the_ledger_consistent(program, ops):
    """Property: balance == sum(ledger) and open lots == max(balance, 0), whatever happens."""
    from decimal import Decimal

    user = UserFactory()
    member, _ = member_enroll(program=program, user=user)
    orders: list[tuple[str, Decimal]] = []
    for n, op in enumerate(ops):
        if op[0] == "pay":
            ref = f"{user.pk}-{n}"
            amount = Decimal(op[1]) / 100
            order_event_record(order_event(reference=ref, amount=str(amount), user=user))
            orders.append((ref, amount))
        elif op[0] == "refund" and orders:
            ref, amount = orders[op[1] % len(orders)]
            part = (amount * op[2] / 100).quantize(Decimal("0.01"))
            order_event_record(
                order_event("refunded", reference=ref, amount=str(part), user=user, event_id=f"{ref}:refund:{n}")
            )
        elif op[0] == "cancel" and orders:
            ref, _ = orders[op[1] % len(orders)]
            order_event_record(order_event("cancelled", reference=ref, user=user))
        elif op[0] == "adjust":
            try:
                points_adjust(member=member, points=op[1], reason="property test", idempotency_key=f"{user.pk}:{n}")
            except InsufficientPoints:
                pass

    from loyalty.models import OrderEvent

    assert not OrderEvent.objects.filter(status=OrderEvent.Status.FAILED).exists()
    call_command("loyalty_check_ledger", stdout=StringIO())
    member.refresh_from_db()
    entries = PointsEntry.objects.filter(member=member)
    assert member.balance == sum(entries.values_list("points", flat=True))
    assert sum(entries.filter(points__gt=0).values_list("remaining", flat=True)) == max(member.balance, 0)
