"""Concurrent debits never overspend (row locks: PostgreSQL only)."""

import threading

import pytest
from django.db import close_old_connections

from loyalty.exceptions import InsufficientPoints
from loyalty.models import Member, PointsEntry
from loyalty.services import points_adjust, points_debit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_concurrent_debits_never_overspend(postgres_only, member):
    points_adjust(member=member, points=100, reason="start")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def spend(n: int) -> None:
        barrier.wait()
        try:
            points_debit(member=member, points=30, kind=PointsEntry.Kind.REDEEM, idempotency_key=f"spend-{n}")
            outcomes.append("ok")
        except InsufficientPoints:
            outcomes.append("refused")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert outcomes.count("ok") == 3
    assert Member.objects.get(pk=member.pk).balance == 10


def test_the_same_order_event_from_two_threads_awards_once(postgres_only, program, customer):
    from loyalty.services import order_event_record
    from tests.factories import order_event

    event = order_event(reference="C-1", amount="50.00", user=customer)
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        try:
            order_event_record(event)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert Member.objects.get(user=customer).balance == 50
    assert PointsEntry.objects.filter(member__user=customer).count() == 1


def test_two_workers_share_a_deferred_backlog_and_apply_each_event_once(postgres_only, program, settings):
    """Batches are claimed with SKIP LOCKED: workers take different events, members locked in
    id order, every event applied once."""
    from loyalty.models import OrderEvent
    from loyalty.services import events_process_pending, member_enroll, order_event_record
    from tests.factories import UserFactory, order_event

    settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": "deferred"}
    users = [UserFactory(email=f"w{n}@example.com") for n in range(6)]
    for user in users:
        Member.objects.filter(pk=member_enroll(program=program, user=user)[0].pk).update(orders_count=1)
    for n in range(60):
        order_event_record(order_event(reference=f"W-{n}", amount="10.00", user=users[n % 6]))
    barrier = threading.Barrier(3)

    def work() -> None:
        barrier.wait()
        try:
            while events_process_pending(limit=7):
                pass
        finally:
            close_old_connections()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert set(OrderEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    assert sorted(Member.objects.values_list("balance", flat=True)) == [100] * 6
    assert PointsEntry.objects.count() == 60


def test_concurrent_checkout_points_never_overspend_and_leave_one_live_code(postgres_only, member):
    """Two sessions of one member press "Use my points" at once, with different amounts, on one
    basket and on two baskets: the balance never goes below zero, one code at most per checkout."""
    from decimal import Decimal

    from loyalty.exceptions import LoyaltyError
    from loyalty.models import Redemption, Reward
    from loyalty.services.checkout_points import checkout_token_issue, points_discount_apply

    Reward.objects.create(
        program=member.program, name="Pay with points", kind="points_discount", points_cost=100, points_step=100
    )
    points_adjust(member=member, points=1000, reason="start")
    jobs = [("cart-1", 600), ("cart-1", 700), ("cart-1", 600), ("cart-2", 800), ("cart-2", 500), ("cart-3", 900)]
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []

    def use(basket: str, points: int) -> None:
        token = checkout_token_issue(member=member, basket=basket)
        barrier.wait()
        try:
            points_discount_apply(
                member=member, checkout_token=token, points=points, order_total=Decimal("50.00"), currency="EUR"
            )
            outcomes.append("ok")
        except LoyaltyError as refusal:
            outcomes.append(refusal.code)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=use, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    live = Redemption.objects.filter(member=member, status__in=["issued", "used"])
    held = sum(live.values_list("points", flat=True))
    balance = Member.objects.get(pk=member.pk).balance
    assert balance >= 0 and balance + held == 1000
    assert set(outcomes) <= {"ok", "insufficient_points"} and "ok" in outcomes
    for basket in ("cart-1", "cart-2", "cart-3"):
        assert live.filter(checkout_key=basket).count() <= 1
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("loyalty_check_ledger", stdout=out)
    assert "Ledger consistent" in out.getvalue()
