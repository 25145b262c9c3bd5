"""A campaign end to end through a real Celery worker and a real broker: run_campaign -> send_message -> email."""

import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app
from loyalty.models import Member, Message, PointsEntry
from loyalty.tasks import run_campaign
from tests.factories import CampaignFactory, segment_member

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def celery_worker(broker_url):
    """A worker thread on a queue of its own, so parallel test processes sharing one Redis
    never take each other's tasks."""
    previous = app.conf.broker_url, app.conf.task_default_queue
    _reset_connections()
    app.conf.broker_url = broker_url
    app.conf.task_default_queue = f"tests-{uuid.uuid4().hex}"
    app.amqp.queues = app.amqp.Queues(())  # rebuilt from task_default_queue
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield app
    finally:
        app.conf.broker_url, app.conf.task_default_queue = previous
        _reset_connections()


def _reset_connections() -> None:
    """Forget pooled connections and producers, which stay bound to the broker they were made for."""
    app._pool = None
    app.amqp._producer_pool = None


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_runs_the_campaign_and_sends_its_email(program, mailoutbox, celery_worker):
    campaign = CampaignFactory(program=program, incentive_points=120)
    member = segment_member(program, email="ann@example.com", first_name="Ann")
    segment_member(program, email="loyal@example.com", segment="loyal")

    run_campaign.delay(campaign.pk)  # what the campaign's beat entry sends

    assert wait_for(lambda: Message.objects.filter(status=Message.Status.SENT).exists()), "no email was sent"
    assert wait_for(lambda: len(mailoutbox) == 1)
    [email] = mailoutbox
    assert email.to == ["ann@example.com"]
    assert "We have added 120 bonus points to your account" in email.body
    message = Message.objects.get()
    assert (message.member_id, message.attempts, message.to_email) == (member.pk, 1, "ann@example.com")
    assert Member.objects.get(pk=member.pk).balance == 120
    assert PointsEntry.objects.filter(member=member, idempotency_key=f"campaign:{message.pk}:bonus").count() == 1
