"""EVENT_PROCESSING = "deferred": the shop's transaction only gains an inbox row."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.models import Member, OrderEvent, PointsEntry
from loyalty.services import events_retry_unprocessed, record_order_event
from loyalty.tasks import process_order_event
from tests.factories import order_event, paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def deferred(settings):
    settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": "deferred"}


def test_recording_is_one_insert_and_the_task_applies_it(deferred, program, customer):
    event = order_event(reference="D-1", amount="40.00", user=customer)
    with CaptureQueriesContext(connection) as ctx:
        record_order_event(event)
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["INSERT"]
    assert OrderEvent.objects.get(event_key=event.event_id).status == OrderEvent.Status.PENDING

    assert process_order_event(event.event_id) == OrderEvent.Status.PROCESSED
    assert process_order_event(event.event_id) == OrderEvent.Status.PROCESSED  # a redelivered task
    assert Member.objects.get(user=customer).balance == 40
    assert PointsEntry.objects.count() == 1


def test_a_duplicate_event_neither_fails_nor_doubles(deferred, program, customer):
    event = order_event(reference="D-2", amount="10.00", user=customer)
    record_order_event(event)
    record_order_event(event)
    process_order_event(event.event_id)
    assert OrderEvent.objects.filter(order_reference="D-2").count() == 1
    assert Member.objects.get(user=customer).balance == 10


def test_the_task_is_enqueued_on_commit_only(deferred, program, customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        paid_order(total="12.00", user=customer)
    assert len(callbacks) == 1


def test_a_lost_task_is_picked_up_by_the_retry_task(deferred, program, customer):
    event = order_event(reference="D-3", amount="15.00", user=customer)
    record_order_event(event)
    assert events_retry_unprocessed() == {}  # still within its grace period
    OrderEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))

    assert events_retry_unprocessed() == {"processed": 1}
    assert Member.objects.get(user=customer).balance == 15


def test_a_task_for_a_vanished_event_does_nothing(deferred, program):
    assert process_order_event("order:nope:paid") is None
