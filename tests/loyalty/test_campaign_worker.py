"""A campaign end to end through a real Celery worker and a real broker: run_campaign -> send_message -> email."""

import pytest

from loyalty.models import Member, Message, PointsEntry
from loyalty.tasks import run_campaign
from tests.factories import CampaignFactory, segment_member
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_worker_runs_the_campaign_and_sends_its_email(program, mailoutbox, celery_worker):
    campaign = CampaignFactory(program=program, incentive_points=120)
    member = segment_member(program, email="ann@example.com", first_name="Ann")
    segment_member(program, email="loyal@example.com", segment="loyal")

    run_campaign.delay(campaign.pk)  # what the campaign's beat entry sends

    assert wait_for(lambda: Message.objects.filter(status=Message.Status.SENT).exists()), "no email was sent"
    campaign_emails = lambda: [m for m in mailoutbox if "List-Unsubscribe" in m.extra_headers]  # noqa: E731 (not the welcome emails)
    assert wait_for(lambda: len(campaign_emails()) == 1)
    [email] = campaign_emails()
    assert email.to == ["ann@example.com"]
    assert "We have added 120 bonus points to your account" in email.body
    message = Message.objects.get()
    assert (message.member_id, message.attempts, message.to_email) == (member.pk, 1, "ann@example.com")
    assert Member.objects.get(pk=member.pk).balance == 120
    assert PointsEntry.objects.filter(member=member, idempotency_key=f"campaign:{message.pk}:bonus").count() == 1
