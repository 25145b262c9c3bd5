"""The email outbox: claiming (SKIP LOCKED, leases), batching, staff actions and the admin list."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty.models import Member, Message, OutboundEmail, PointsEntry
from loyalty.services.campaigns import campaign_run
from loyalty.services.outbox import dispatch as outbox_dispatching
from loyalty.services.outbox import email_queue, emails_cancel, emails_retry, outbox_claim, outbox_dispatch
from loyalty.services.outbox import queue as outbox_queue
from tests.factories import CampaignFactory, segment_member
from tests.loyalty.test_admin_permissions import SUPPORT, groups, in_group  # noqa: F401  (groups: a fixture)

pytestmark = pytest.mark.django_db


def queue_hello(member, n: int) -> None:
    for i in range(n):
        email_queue(key=f"hello:{member.pk}:{i}", kind="welcome", member=member)


def test_a_batch_of_campaign_emails_costs_a_few_statements_not_a_few_per_email(program, mailoutbox, monkeypatch):
    monkeypatch.setattr(outbox_dispatching, "FLUSH_SECONDS", 60.0)  # one flush for the batch, however slow the machine
    campaign = CampaignFactory(program=program, incentive_points=50)
    for n in range(60):
        segment_member(program, email=f"b{n}@example.com")
    outbox_dispatch()  # the welcome emails
    mailoutbox.clear()
    campaign_run(campaign=campaign)

    with CaptureQueriesContext(connection) as queries:
        counts = outbox_dispatch()

    assert counts["sent"] == 60 and len(mailoutbox) == 60
    assert len(queries) <= 15  # claim, load, bonuses, marks (savepoints included): not one per email
    assert PointsEntry.objects.filter(kind="bonus").count() == 60
    assert set(Member.objects.values_list("balance", flat=True)) == {50}
    assert set(Message.objects.values_list("status", flat=True)) == {"sent"}


def test_a_row_held_by_a_live_worker_is_left_alone_and_a_lapsed_lease_is_claimed_again(member):
    OutboundEmail.objects.all().delete()
    queue_hello(member, 2)
    now = timezone.now()
    held, lease = outbox_claim(now=now, limit=1)
    assert len(held) == 1 and OutboundEmail.objects.get(pk=held[0]).status == "sending"

    others, _lease = outbox_claim(now=now, limit=10)
    assert held[0] not in others and len(others) == 1  # the live lease is respected

    after_lease, _lease = outbox_claim(now=lease + timedelta(seconds=1), limit=10)
    assert held[0] in after_lease  # its worker died: the row is claimed again
    assert OutboundEmail.objects.get(pk=held[0]).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_claim_disjoint_batches(member, postgres_only):
    OutboundEmail.objects.all().delete()
    queue_hello(member, 40)
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            claimed.append(outbox_claim(now=timezone.now(), limit=15)[0])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [pk for batch in claimed for pk in batch]
    assert len(every) == len(set(every)) == 40  # nobody took a row twice, nobody waited for another


def test_a_nudge_to_a_dead_broker_gives_up_fast_and_pauses(settings, member):
    from config.celery import app
    from tests.loyalty.test_outbox_faults import free_port
    from tests.workers import _reset_connections

    previous = app.conf.broker_url
    _reset_connections()
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    outbox_queue._nudge_paused_until = 0.0
    try:
        assert outbox_queue.outbox_nudge() is False
        started = time.monotonic()
        assert outbox_queue.outbox_nudge() is False  # paused: not even tried
        assert time.monotonic() - started < 0.1
        assert outbox_queue._nudge_paused_until > time.monotonic() + 20
    finally:
        _reset_connections()
        app.conf.broker_url = previous
        outbox_queue._nudge_paused_until = 0.0


def test_staff_send_failed_emails_again_and_cancel_queued_ones(member, mailoutbox):
    OutboundEmail.objects.all().delete()
    queue_hello(member, 3)
    first, second, third = OutboundEmail.objects.order_by("pk")
    OutboundEmail.objects.filter(pk=first.pk).update(status="failed", attempts=5, last_error="SMTP said no")

    assert emails_retry(ids=[first.pk, second.pk]) == 1  # only the failed one: the other is queued
    assert emails_cancel(ids=[second.pk, first.pk]) == 2
    assert OutboundEmail.objects.get(pk=second.pk).last_error == "Cancelled by staff."
    assert emails_retry(ids=[second.pk]) == 1  # a cancelled email can go after all

    outbox_dispatch()

    statuses = dict(OutboundEmail.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "cancelled", second.pk: "sent", third.pk: "sent"}
    assert len(mailoutbox) == 2


def test_the_emails_admin_lists_previews_and_acts(admin_client, member, mailoutbox):
    OutboundEmail.objects.all().delete()
    queue_hello(member, 1)
    email = OutboundEmail.objects.get()
    OutboundEmail.objects.filter(pk=email.pk).update(status="failed", last_error="SMTPServerDisconnected")

    listing = admin_client.get(reverse("admin:loyalty_outboundemail_changelist") + "?status__exact=failed")
    assert listing.status_code == 200 and "SMTPServerDisconnected" in listing.text
    preview = admin_client.get(reverse("admin:loyalty_outboundemail_preview", args=[email.pk]))
    assert preview.status_code == 200 and "maria@example.com" in preview.text and "Welcome" in preview.text
    response = admin_client.post(
        reverse("admin:loyalty_outboundemail_changelist"),
        {"action": "retry", "_selected_action": [email.pk]},
        follow=True,
    )
    assert "1 email is queued again." in response.text
    assert OutboundEmail.objects.get(pk=email.pk).status == "queued"
    page = admin_client.get(reverse("admin:loyalty_member_change", args=[member.pk]))
    assert reverse("admin:loyalty_outboundemail_change", args=[email.pk]) in page.text  # the member's emails


def test_support_agents_see_the_emails_but_cannot_act(client, member, groups):  # noqa: F811
    client.force_login(in_group(groups, SUPPORT))
    OutboundEmail.objects.all().delete()
    queue_hello(member, 1)
    email = OutboundEmail.objects.get()

    listing = client.get(reverse("admin:loyalty_outboundemail_changelist"))
    assert listing.status_code == 200
    assert 'value="retry"' not in listing.text and 'value="cancel"' not in listing.text
    response = client.post(
        reverse("admin:loyalty_outboundemail_changelist"), {"action": "cancel", "_selected_action": [email.pk]}
    )
    assert OutboundEmail.objects.get(pk=email.pk).status == "queued"
    assert response.status_code in (200, 302)


def test_a_preview_of_an_email_whose_member_is_gone_says_so(admin_client, member):
    OutboundEmail.objects.all().delete()
    queue_hello(member, 1)
    email = OutboundEmail.objects.get()
    Member.objects.filter(pk=member.pk).delete()

    preview = admin_client.get(reverse("admin:loyalty_outboundemail_preview", args=[email.pk]))
    assert preview.status_code == 200 and "The member no longer exists." in preview.text
