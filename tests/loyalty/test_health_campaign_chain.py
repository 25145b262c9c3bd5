"""The whole chain through real processes' parts: beat (database schedules) sends the nightly
health refresh and the campaign run to a real broker, a real worker scores the members, picks
the drifting one, sends the win-back email; then a purchase counts as its conversion."""

import threading
from datetime import timedelta

import pytest
from celery.beat import Service
from django.db import connections
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from loyalty.models import Campaign, CustomerHealth, Message, Segment
from tests.factories import paid_order
from tests.loyalty.test_health_refresh import buyer
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_beat_and_worker_win_back_a_drifting_customer(program, celery_worker, mailoutbox):
    now = timezone.now()
    steady = buyer(program, "steady", orders=8, last_days_ago=3, gap_days=20, spent="400", now=now)
    drifting = buyer(program, "marco", orders=8, last_days_ago=70, gap_days=20, spent="400", now=now)
    for member in (steady, drifting):
        member.marketing_consent = True
        member.save(update_fields=["marketing_consent"])
    campaign = Campaign.objects.create(
        program=program, name="We miss you", incentive_points=250, control_percent=0, is_active=True
    )
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="test: refresh health", task="loyalty.tasks.refresh_health", interval=every_second)
    schedule = PeriodicTask.objects.get(name=f"loyalty-campaign-{campaign.pk}")  # made with the campaign
    schedule.crontab, schedule.interval = None, every_second  # staff edit the schedule in admin
    schedule.save()

    beat = Service(celery_worker, scheduler_cls="django_celery_beat.schedulers:DatabaseScheduler", max_interval=1)

    def run_beat() -> None:
        try:
            beat.start(embedded_process=True)
        finally:
            connections.close_all()  # the scheduler's own connection, or the test database can't be dropped

    thread = threading.Thread(target=run_beat, daemon=True)
    thread.start()
    try:
        sent = wait_for(lambda: Message.objects.filter(status=Message.Status.SENT).exists(), timeout=45)
        assert sent, "no email was sent"
    finally:
        beat.stop()
        thread.join(timeout=10)

    assert CustomerHealth.objects.get(member=drifting).segment == Segment.AT_RISK
    assert CustomerHealth.objects.get(member=steady).segment != Segment.AT_RISK
    message = Message.objects.get()
    assert message.member == drifting
    win_back = [m for m in mailoutbox if "we miss you" in m.subject]  # other member emails may go out too
    assert [m.to for m in win_back] == [["marco@example.com"]]
    assert "List-Unsubscribe" in win_back[0].extra_headers
    drifting.refresh_from_db()
    assert drifting.balance == 250  # the incentive, credited with the email

    paid_order(total="42.00", user=drifting.user, at=timezone.now() + timedelta(minutes=1))

    message.refresh_from_db()
    assert message.converted_at is not None and str(message.revenue) == "42.00"
