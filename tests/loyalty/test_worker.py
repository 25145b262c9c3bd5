"""End to end through a real Celery worker and a real broker (Redis, or a bundled redis-server)."""

import pytest

from loyalty.models import Member, OrderEvent
from loyalty.services import events as event_services
from loyalty.tasks import process_pending_events, retry_unprocessed_events
from tests.factories import paid_order
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_real_worker_retries_failed_events(program, customer, monkeypatch, celery_worker):
    monkeypatch.setitem(event_services.__dict__, "_paid", lambda event, program: 1 / 0)
    order = paid_order(total="33.00", user=customer)
    assert OrderEvent.objects.get(order_reference=order.number).status == OrderEvent.Status.FAILED
    monkeypatch.undo()

    retry_unprocessed_events.delay()

    assert wait_for(
        lambda: OrderEvent.objects.filter(order_reference=order.number, status=OrderEvent.Status.PROCESSED).exists()
    ), "the worker did not process the task"
    assert Member.objects.get(user=customer).balance == 33


def test_deferred_events_are_applied_by_the_worker(program, customer, settings, celery_worker):
    settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": "deferred"}

    order = paid_order(total="21.00", user=customer)
    assert OrderEvent.objects.get(order_reference=order.number).status == OrderEvent.Status.PENDING
    process_pending_events.delay()  # what beat sends every few seconds

    assert wait_for(lambda: Member.objects.filter(user=customer, balance=21).exists()), "not applied by the worker"
    assert OrderEvent.objects.get(order_reference=order.number).status == OrderEvent.Status.PROCESSED
