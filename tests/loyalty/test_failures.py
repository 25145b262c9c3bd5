"""A loyalty failure never breaks the shop: the event waits in the inbox and is retried."""

import logging

import pytest

from loyalty.models import Member, OrderEvent, PointsEntry
from loyalty.services import events as event_services
from loyalty.services import events_retry_unprocessed
from loyalty.tasks import retry_unprocessed_events
from shop.models import Order
from tests.factories import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken_processing(monkeypatch):
    def explode(event, program):
        raise RuntimeError("points service is down")

    monkeypatch.setitem(event_services.__dict__, "_paid", explode)
    return monkeypatch


def test_a_failure_leaves_the_order_paid_and_the_event_stored(program, customer, broken_processing, caplog):
    with caplog.at_level(logging.ERROR, logger="loyalty.events"):
        order = paid_order(total="20.00", user=customer)

    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    event = OrderEvent.objects.get(order_reference=order.number)
    assert event.status == OrderEvent.Status.FAILED
    assert event.processed_at is None
    assert "points service is down" in event.last_error
    assert event.payload["amount"] == "20.00"
    assert not PointsEntry.objects.exists()
    assert "stored for retry" in caplog.text


def test_the_retry_task_processes_a_failed_event_later(program, customer, broken_processing):
    order = paid_order(total="20.00", user=customer)
    broken_processing.undo()

    retry_unprocessed_events()

    event = OrderEvent.objects.get(order_reference=order.number)
    assert event.status == OrderEvent.Status.PROCESSED
    assert event.attempts == 2
    assert Member.objects.get(user=customer).balance == 20


def test_retrying_twice_awards_once(program, customer, broken_processing):
    order = paid_order(total="20.00", user=customer)
    broken_processing.undo()

    events_retry_unprocessed()
    events_retry_unprocessed()
    event_services.event_retry(event=OrderEvent.objects.get(order_reference=order.number))

    assert Member.objects.get(user=customer).balance == 20
    assert PointsEntry.objects.count() == 1


def test_an_event_that_keeps_failing_is_given_up_after_the_configured_attempts(
    program, customer, broken_processing, settings
):
    settings.LOYALTY = {**settings.LOYALTY, "EVENT_MAX_ATTEMPTS": 3}
    order = paid_order(total="20.00", user=customer)

    assert events_retry_unprocessed() == {"failed": 1}
    assert events_retry_unprocessed() == {"gave_up": 1}
    assert events_retry_unprocessed() == {}

    event = OrderEvent.objects.get(order_reference=order.number)
    assert (event.status, event.attempts) == (OrderEvent.Status.GAVE_UP, 3)


def test_a_failure_sends_event_failed_on_commit(
    program, customer, broken_processing, django_capture_on_commit_callbacks
):
    from loyalty.signals import event_failed

    seen = []
    event_failed.connect(lambda sender, event, error, **kw: seen.append((event.event_key, error)), weak=False)
    with django_capture_on_commit_callbacks(execute=True):
        order = paid_order(total="20.00", user=customer)
    assert seen == [(f"order:{order.number}:paid", "RuntimeError: points service is down")]


def test_an_adapter_that_raises_does_not_break_checkout(program, customer, monkeypatch, caplog):
    from config.loyalty_adapter import ShopAdapter

    def broken(self, sender, order, **kwargs):
        raise KeyError("total")

    monkeypatch.setattr(ShopAdapter, "order_paid", broken)
    from loyalty.receivers import connect_adapter

    connect_adapter()
    try:
        with caplog.at_level(logging.ERROR, logger="loyalty.receivers"):
            order = paid_order(total="20.00", user=customer)
    finally:
        monkeypatch.undo()
        connect_adapter()
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    assert "loyalty adapter failed" in caplog.text


def test_a_signal_with_missing_data_is_rejected_with_a_clear_log_line(program, customer, caplog):
    from shop import signals

    order = paid_order(total="20.00", user=customer)
    order.paid_at = None  # e.g. a shop that forgot to set it
    order.number = "X-1"
    with caplog.at_level(logging.ERROR, logger="loyalty.receivers"):
        signals.order_paid.send(sender=Order, order=order)

    assert "occurred_at must be an aware datetime" in caplog.text
    assert not OrderEvent.objects.filter(order_reference="X-1").exists()


def test_retry_of_a_vanished_event_is_harmless(program):
    ghost = OrderEvent(pk=987654)
    assert event_services.event_retry(event=ghost) is ghost


@pytest.fixture
def inbox_table_gone(db):
    """A real broken deployment: the inbox table is missing (renamed inside the test's transaction)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE loyalty_orderevent RENAME TO loyalty_orderevent_elsewhere")


@pytest.mark.parametrize("processing", ["inline", "deferred"])
def test_a_broken_loyalty_schema_never_breaks_payment(
    program, customer, settings, inbox_table_gone, processing, caplog
):
    settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": processing}
    with caplog.at_level(logging.ERROR, logger="loyalty.events"):
        order = paid_order(total="20.00", user=customer)
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    assert order.number in caplog.text


def test_a_failing_receiver_of_a_loyalty_signal_does_not_reach_the_shop(
    program, customer, django_capture_on_commit_callbacks, caplog
):
    from loyalty.signals import points_awarded

    def broken(sender, **kwargs):
        raise RuntimeError("newsletter service down")

    points_awarded.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="loyalty.events"), django_capture_on_commit_callbacks(execute=True):
            order = paid_order(total="20.00", user=customer)
    finally:
        points_awarded.disconnect(broken)
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    assert "receiver of a loyalty signal failed" in caplog.text


def test_retrying_a_second_payment_event_skips_it_instead_of_failing(program, customer):
    from loyalty.services import order_event_record
    from tests.factories import order_event

    order_event_record(order_event(reference="S-1", amount="20.00", user=customer, event_id="pay-1"))
    second = order_event_record(order_event(reference="S-1", amount="20.00", user=customer, event_id="pay-2"))

    retried = event_services.event_retry(event=second.event)

    assert retried.status == OrderEvent.Status.SKIPPED
    assert Member.objects.get(user=customer).balance == 20


def test_an_event_id_too_long_for_derived_ledger_keys_is_rejected():
    from loyalty.exceptions import InvalidEvent
    from tests.factories import order_event

    with pytest.raises(InvalidEvent, match="at most 180"):
        order_event(event_id="x" * 181)


def test_a_misconfigured_adapter_is_logged_and_left_for_the_system_check(settings, caplog):
    from loyalty.receivers import connect_adapter

    settings.LOYALTY = {"ADAPTER": "nowhere.Adapter"}
    try:
        with caplog.at_level(logging.ERROR, logger="loyalty.receivers"):
            assert connect_adapter() == []
        assert "not connected to the shop" in caplog.text
    finally:
        settings.LOYALTY = {"ADAPTER": "config.loyalty_adapter.ShopAdapter"}
        connect_adapter()
