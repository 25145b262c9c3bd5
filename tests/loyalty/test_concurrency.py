"""Concurrent debits never overspend (row locks: PostgreSQL only)."""

import threading

import pytest
from django.db import close_old_connections

from loyalty.exceptions import InsufficientPoints
from loyalty.models import Member, PointsEntry
from loyalty.services import adjust_points, points_debit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_concurrent_debits_never_overspend(postgres_only, member):
    adjust_points(member=member, points=100, reason="start")
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
    from loyalty.services import record_order_event
    from tests.factories import order_event

    event = order_event(reference="C-1", amount="50.00", user=customer)
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        try:
            record_order_event(event)
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
    from loyalty.services import events_process_pending, member_enroll, record_order_event
    from tests.factories import UserFactory, order_event

    settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": "deferred"}
    users = [UserFactory(email=f"w{n}@example.com") for n in range(6)]
    for user in users:
        Member.objects.filter(pk=member_enroll(program=program, user=user)[0].pk).update(orders_count=1)
    for n in range(60):
        record_order_event(order_event(reference=f"W-{n}", amount="10.00", user=users[n % 6]))
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
