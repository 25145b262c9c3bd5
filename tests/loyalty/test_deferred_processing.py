"""EVENT_PROCESSING = "deferred": the shop's transaction only gains an inbox row."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.models import Member, OrderEvent, PointsEntry
from loyalty.services import events_retry_unprocessed, order_event_record
from loyalty.tasks import process_pending_events
from tests.factories import order_event, paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def deferred(settings):
    settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": "deferred"}


def test_recording_is_one_insert_and_the_beat_task_applies_it(deferred, program, customer):
    event = order_event(reference="D-1", amount="40.00", user=customer)
    with CaptureQueriesContext(connection) as ctx:
        order_event_record(event)
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["SAVEPOINT", "INSERT", "RELEASE"]
    assert OrderEvent.objects.get(event_key=event.event_id).status == OrderEvent.Status.PENDING

    assert process_pending_events() == {"processed": 1}
    assert process_pending_events() == {}  # a redelivered task finds nothing to do
    assert Member.objects.get(user=customer).balance == 40
    assert PointsEntry.objects.count() == 1


def test_a_duplicate_event_neither_fails_nor_doubles(deferred, program, customer):
    event = order_event(reference="D-2", amount="10.00", user=customer)
    order_event_record(event)
    order_event_record(event)
    process_pending_events()
    assert OrderEvent.objects.filter(order_reference="D-2").count() == 1
    assert Member.objects.get(user=customer).balance == 10


def test_deferred_recording_touches_no_broker(deferred, program, customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        paid_order(total="12.00", user=customer)
    assert callbacks == []
    assert OrderEvent.objects.get().status == OrderEvent.Status.PENDING


def test_pending_events_are_a_safety_net_of_the_retry_task(deferred, program, customer):
    event = order_event(reference="D-3", amount="15.00", user=customer)
    order_event_record(event)
    assert events_retry_unprocessed() == {}  # still within its grace period
    OrderEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))

    assert events_retry_unprocessed() == {"processed": 1}
    assert Member.objects.get(user=customer).balance == 15


def test_refunds_in_deferred_mode_apply_in_order(deferred, program, customer):
    from shop.services import refund_order

    order = paid_order(total="50.00", user=customer)
    refund_order(order=order, amount=order.total / 2)
    process_pending_events()
    assert Member.objects.get(user=customer).balance == 25
