"""Re-engagement campaigns: who is selected, what is sent (once), incentives, attribution, the report,
the beat schedule and the admin."""

import re
import smtplib
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config.celery import app
from loyalty.adapters.base import EventKind
from loyalty.admin.campaigns import CampaignForm
from loyalty.models import Campaign, Member, Message, OutboundEmail, PointsEntry, Purchase, Redemption, Reward
from loyalty.selectors import campaign_report
from loyalty.services import member_unsubscribe, order_event_record
from loyalty.services.campaigns import (
    campaign_next_send_at,
    campaign_run,
    click_token_load,
    in_control_group,
    message_send,
    purchase_attribute,
)
from loyalty.tasks import run_campaign, run_campaigns
from shop.models import DiscountCode
from tests.factories import CampaignFactory, ProgramFactory, order_event, segment_member

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
Status = Message.Status


@pytest.fixture
def now():
    """Monday 2 March 2026, 10:30 in the project's time zone (Europe/Berlin)."""
    return timezone.make_aware(datetime(2026, 3, 2, 10, 30))


@pytest.fixture
def campaign(program):
    return CampaignFactory(program=program, name="We miss you")


@pytest.fixture
def published():
    """What code under test queued on the in-memory broker (drained first): (task, args, eta) tuples."""

    def drain() -> list[tuple[str, list, datetime | None]]:
        found = []
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            while (message := channel.basic_get(app.conf.task_default_queue, no_ack=True)) is not None:
                eta = message.headers.get("eta")
                found.append((message.headers["task"], message.decode()[0], eta and datetime.fromisoformat(eta)))
        return found

    drain()
    return drain


class DisconnectedBackend(BaseEmailBackend):
    """A mail server that hangs up (a Django mail backend, configured through EMAIL_BACKEND)."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


DISCONNECTED = f"{__name__}.DisconnectedBackend"


def queued(campaign) -> list[Message]:
    return list(Message.objects.filter(campaign=campaign, status=Status.QUEUED).order_by("pk"))


def send_all(campaign, *, at=None) -> list[str]:
    return [message_send(message_id=m.pk, now=at) for m in queued(campaign)]


def make_message(campaign, member, *, status, at, cycle=None, **fields) -> Message:
    return Message.objects.create(
        campaign=campaign,
        program=campaign.program,
        member=member,
        cycle=cycle or timezone.localdate(at).isoformat(),
        status=status,
        created_at=at,
        **fields,
    )


# --- selection -----------------------------------------------------------------------------------


def test_members_of_the_target_segments_are_selected_with_their_segment(program, now):
    campaign = CampaignFactory(program=program, segments=["at_risk", "almost_lost"])
    risky = segment_member(program, email="risky@example.com", segment="at_risk")
    lost = segment_member(program, email="lost@example.com", segment="almost_lost")
    segment_member(program, email="loyal@example.com", segment="loyal")
    segment_member(program, email="unscored@example.com", segment=None)

    counts = campaign_run(campaign=campaign, now=now)

    assert counts == {"eligible": 2, "queued": 2, "control": 0}
    rows = Message.objects.filter(campaign=campaign).values_list("member_id", "segment", "status", "cycle")
    assert sorted(rows) == sorted(
        [(risky.pk, "at_risk", Status.QUEUED, "2026-03-02"), (lost.pk, "almost_lost", Status.QUEUED, "2026-03-02")]
    )
    campaign.refresh_from_db()
    assert campaign.last_run_at == now


def test_only_members_with_consent_an_address_and_an_active_account_are_selected(program, campaign, now):
    keen = segment_member(program, email="keen@example.com")
    segment_member(program, email="never@example.com", consent=False)
    left = segment_member(program, email="left@example.com")
    member_unsubscribe(member=left)
    no_address = segment_member(program, email="blank@example.com")
    get_user_model().objects.filter(pk=no_address.user_id).update(email="")
    closed = segment_member(program, email="closed@example.com")
    get_user_model().objects.filter(pk=closed.user_id).update(is_active=False)
    other_programme = ProgramFactory(name="Other", slug="other")
    segment_member(other_programme, email="elsewhere@example.com")

    assert campaign_run(campaign=campaign, now=now)["eligible"] == 1
    assert list(Message.objects.values_list("member_id", flat=True)) == [keen.pk]


def test_a_rerun_the_same_day_sends_nothing_twice(program, campaign, now, mailoutbox):
    segment_member(program, email="a@example.com")
    segment_member(program, email="b@example.com")

    assert campaign_run(campaign=campaign, now=now)["queued"] == 2
    assert send_all(campaign, at=now) == ["sent", "sent"]
    again = campaign_run(campaign=campaign, now=now + timedelta(hours=3))
    assert send_all(campaign, at=now) == []

    assert again == {"eligible": 0, "queued": 0, "control": 0}
    assert Message.objects.count() == 2
    assert sorted(m.to[0] for m in mailoutbox) == ["a@example.com", "b@example.com"]


def test_the_next_day_respects_the_cooldown_until_it_is_over(program, now):
    campaign = CampaignFactory(program=program, cooldown_days=30)
    segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    send_all(campaign, at=now)

    assert campaign_run(campaign=campaign, now=now + DAY)["eligible"] == 0
    assert campaign_run(campaign=campaign, now=now + 30 * DAY - timedelta(seconds=1))["eligible"] == 0
    assert campaign_run(campaign=campaign, now=now + 30 * DAY)["eligible"] == 1
    assert list(Message.objects.order_by("pk").values_list("cycle", flat=True)) == ["2026-03-02", "2026-04-01"]


def test_the_cooldown_spans_every_campaign_of_the_programme(program, now):
    first = CampaignFactory(program=program, name="First")
    second = CampaignFactory(program=program, name="Second", segments=["at_risk"])
    mailed = segment_member(program, email="mailed@example.com")
    waiting = segment_member(program, email="waiting@example.com")
    not_mailed = segment_member(program, email="not-mailed@example.com")
    make_message(first, mailed, status=Status.SENT, at=now - 3 * DAY, sent_at=now - 3 * DAY)
    make_message(first, waiting, status=Status.QUEUED, at=now - DAY)
    for i, status in enumerate([Status.FAILED, Status.SKIPPED, Status.CONTROL]):
        make_message(first, not_mailed, status=status, at=now - DAY, cycle=f"old-{i}")

    campaign_run(campaign=second, now=now)

    assert list(Message.objects.filter(campaign=second).values_list("member_id", flat=True)) == [not_mailed.pk]


@pytest.mark.parametrize("switched_off", ["campaign", "programme"])
def test_a_switched_off_campaign_or_programme_runs_nothing(program, campaign, now, switched_off):
    segment_member(program, email="a@example.com")
    if switched_off == "campaign":
        Campaign.objects.filter(pk=campaign.pk).update(is_active=False)
    else:
        type(program).objects.filter(pk=program.pk).update(is_active=False)

    assert campaign_run(campaign=campaign, now=now) == {"eligible": 0, "queued": 0, "control": 0}
    assert not Message.objects.exists()


def test_the_control_group_is_stable_and_gets_no_email(
    program, now, mailoutbox, published, django_capture_on_commit_callbacks
):
    campaign = CampaignFactory(program=program, control_percent=30, cooldown_days=1)
    members = [segment_member(program, email=f"c{i}@example.com") for i in range(40)]
    expected = {m.pk for m in members if in_control_group(campaign_id=campaign.pk, member_id=m.pk, percent=30)}
    assert 0 < len(expected) < 40  # the hash splits this set; otherwise the test proves nothing

    with django_capture_on_commit_callbacks(execute=True):
        counts = campaign_run(campaign=campaign, now=now)

    control = set(Message.objects.filter(status=Status.CONTROL).values_list("member_id", flat=True))
    assert control == expected
    assert counts == {"eligible": 40, "queued": 40 - len(expected), "control": len(expected)}
    emailed = OutboundEmail.objects.filter(message__campaign=campaign).values_list("message_id", flat=True)
    assert sorted(emailed) == [m.pk for m in queued(campaign)]
    for message in Message.objects.filter(status=Status.CONTROL):
        assert message_send(message_id=message.pk, now=now) == "not_queued"
    send_all(campaign, at=now)
    assert len(mailoutbox) == 40 - len(expected)
    assert campaign_report(campaign=campaign)["control"]["members"] == len(expected)

    campaign_run(campaign=campaign, now=now + 2 * DAY)  # the next cycle holds out the same members
    later = Message.objects.filter(cycle="2026-03-04", status=Status.CONTROL).values_list("member_id", flat=True)
    assert set(later) == expected


def test_each_queued_message_gets_its_outbox_email_in_the_run_and_one_nudge_after_commit(
    program, campaign, now, published, django_capture_on_commit_callbacks, monkeypatch
):
    from loyalty.services.outbox import queue as outbox_queue

    monkeypatch.setattr(outbox_queue, "_nudge_registered", lambda: False)  # the test is one transaction
    segment_member(program, email="a@example.com")
    segment_member(program, email="b@example.com")
    published()  # the members' welcome emails' nudges

    with django_capture_on_commit_callbacks() as callbacks:
        campaign_run(campaign=campaign, now=now)
    rows = OutboundEmail.objects.filter(kind="campaign").order_by("message_id")
    assert [(r.message_id, r.member_id, r.status) for r in rows] == [
        (m.pk, m.member_id, "queued") for m in queued(campaign)
    ]
    assert [r.key for r in rows] == [f"campaign:{campaign.pk}:{m.member_id}:2026-03-02" for m in queued(campaign)]
    assert published() == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert published() == [("loyalty.tasks.dispatch_emails", [], None)]  # one nudge, not one task per email


def test_outside_the_send_window_the_tasks_wait_for_its_opening(
    program, now, published, django_capture_on_commit_callbacks
):
    campaign = CampaignFactory(program=program, send_after=time(9), send_before=time(12))
    segment_member(program, email="a@example.com")
    evening = now.replace(hour=20)

    published()
    with django_capture_on_commit_callbacks(execute=True):
        campaign_run(campaign=campaign, now=evening)

    [email] = OutboundEmail.objects.filter(kind="campaign")
    assert email.due_at == timezone.make_aware(datetime(2026, 3, 3, 9, 0))
    assert published() == []  # no nudge: the sweep sends it when the window opens
    [message] = queued(campaign)
    assert message_send(message_id=message.pk, now=evening) == "not_queued"  # not due yet


@pytest.mark.parametrize(
    ("after", "before", "at", "opens"),
    [
        (None, None, datetime(2026, 3, 2, 3, 0), None),
        (time(9), time(17), datetime(2026, 3, 2, 9, 0), None),
        (time(9), time(17), datetime(2026, 3, 2, 7, 0), datetime(2026, 3, 2, 9, 0)),
        (time(9), time(17), datetime(2026, 3, 2, 17, 0), datetime(2026, 3, 3, 9, 0)),
        (time(22), time(6), datetime(2026, 3, 2, 23, 30), None),  # wraps midnight
        (time(22), time(6), datetime(2026, 3, 2, 5, 59), None),
        (time(22), time(6), datetime(2026, 3, 2, 12, 0), datetime(2026, 3, 2, 22, 0)),
        (time(9), None, datetime(2026, 3, 2, 8, 0), datetime(2026, 3, 2, 9, 0)),
        (None, time(12), datetime(2026, 3, 2, 13, 0), datetime(2026, 3, 3, 0, 0)),
    ],
)
def test_the_send_window_in_local_time(after, before, at, opens):
    campaign = Campaign(send_after=after, send_before=before)
    result = campaign_next_send_at(campaign=campaign, now=timezone.make_aware(at))
    assert result == (timezone.make_aware(opens) if opens else None)


# --- sending ---------------------------------------------------------------------------------------


def test_the_email_has_both_parts_unsubscribe_headers_and_tracked_links(program, now, mailoutbox):
    campaign = CampaignFactory(
        program=program,
        subject="{{ first_name }}, 200 points for you",
        text_template="Hi {{ first_name }}. {{ incentive }} (until {{ incentive_expires_on|date:'Y-m-d' }}). "
        "Balance {{ balance }}. {{ shop_url }} {{ unsubscribe_url }}",
        html_template='<p>Hi {{ first_name }}</p><a href="{{ shop_url }}products/soap/?a=1&amp;b=2">Soap</a>'
        '<a href="https://elsewhere.example/x">Out</a><a href="mailto:help@example.com">Mail</a>'
        '<a href="{{ unsubscribe_url }}">Stop</a>',
    )
    member = segment_member(program, email="ann@example.com", first_name="<b>Ann</b>")
    campaign_run(campaign=campaign, now=now)
    [message] = queued(campaign)

    assert message_send(message_id=message.pk, now=now) == "sent"

    [email] = mailoutbox
    assert email.subject == "<b>Ann</b>, 200 points for you"
    assert email.to == ["ann@example.com"]
    assert email.body.startswith(
        "Hi <b>Ann</b>. We have added 200 bonus points to your account (until 2026-04-01). Balance 200."
    )
    unsubscribe = email.extra_headers["List-Unsubscribe"]
    assert re.fullmatch(r"<http://localhost:8000/loyalty/unsubscribe/[^/]+/>", unsubscribe)
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [(html, mimetype)] = email.alternatives
    assert mimetype == "text/html"
    assert "&lt;b&gt;Ann&lt;/b&gt;" in html and "<b>Ann</b>" not in html  # autoescaped in HTML only
    tracked = re.findall(r'href="http://localhost:8000/loyalty/m/([^/"]+)/click/"', html)
    assert [click_token_load(token) for token in tracked] == [
        (message.pk, "http://localhost:8000/products/soap/?a=1&b=2")
    ]
    assert 'href="https://elsewhere.example/x"' in html
    assert 'href="mailto:help@example.com"' in html
    assert html.count(f'href="{unsubscribe[1:-1]}"') == 2  # the body's link and the footer's, untracked
    assert re.search(r'<img src="http://localhost:8000/loyalty/m/[^/"]+/open\.gif"', html)

    message.refresh_from_db()
    assert (message.status, message.to_email, message.attempts, message.sent_at) == (
        Status.SENT,
        "ann@example.com",
        1,
        now,
    )
    assert Member.objects.get(pk=member.pk).balance == 200


def test_the_email_is_rendered_in_the_campaigns_language(program, now, mailoutbox, settings):
    settings.LOYALTY = {**settings.LOYALTY, "SHOP_NAME": "Bottega", "SITE_URL": "https://shop.example/"}
    campaign = CampaignFactory(
        program=program,
        language="de",
        subject="[{{ True|yesno }}] {{ shop_name }}",  # a built-in filter that speaks the active language
        text_template="{{ shop_url }}",
    )
    segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    send_all(campaign, at=now)

    assert mailoutbox[0].subject == "[Ja] Bottega"
    assert mailoutbox[0].body == "https://shop.example/"


def test_sending_twice_sends_once_and_credits_the_bonus_once(program, now, mailoutbox):
    campaign = CampaignFactory(program=program, incentive_points=150, incentive_valid_days=21)
    member = segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    [message] = queued(campaign)

    assert message_send(message_id=message.pk, now=now) == "sent"
    assert message_send(message_id=message.pk, now=now + DAY) == "not_queued"

    assert len(mailoutbox) == 1
    [bonus] = PointsEntry.objects.filter(member=member)
    message.refresh_from_db()
    assert (bonus.kind, bonus.points, bonus.idempotency_key) == ("bonus", 150, f"campaign:{message.pk}:bonus")
    assert bonus.expires_at == message.sent_at + 21 * DAY
    assert message.incentive_reference == f"points:150:entry:{bonus.pk}"
    assert Member.objects.get(pk=member.pk).balance == 150


def test_a_member_who_unsubscribes_after_queueing_is_skipped(program, campaign, now, mailoutbox):
    member = segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    member_unsubscribe(member=member)

    [message] = queued(campaign)
    assert message_send(message_id=message.pk, now=now) == "skipped"

    message.refresh_from_db()
    assert message.status == Status.SKIPPED
    assert "consent" in message.last_error
    assert mailoutbox == []
    assert not PointsEntry.objects.exists()  # no incentive for an email that is not sent


def test_a_vanished_message_is_ignored(db, mailoutbox):
    assert message_send(message_id=987654) == "missing"
    assert mailoutbox == []


def test_smtp_failures_are_retried_then_recorded_as_failed(program, campaign, now, settings, mailoutbox):
    settings.EMAIL_BACKEND = DISCONNECTED
    settings.LOYALTY = {**settings.LOYALTY, "CAMPAIGN_MAX_ATTEMPTS": 3}
    member = segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    [message] = queued(campaign)

    at = now
    for attempt, wait in ((1, 1), (2, 2)):
        assert message_send(message_id=message.pk, now=at) == "queued"  # again later
        message.refresh_from_db()
        assert (message.status, message.attempts) == (Status.QUEUED, attempt)
        assert message.email.due_at == at + timedelta(minutes=wait)  # 1, 2, 4... minutes apart
        assert message_send(message_id=message.pk, now=at) == "not_queued"  # not due yet
        at += timedelta(minutes=wait)
    assert message_send(message_id=message.pk, now=at) == "failed"

    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.FAILED, 3)
    assert message.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert message.email.status == "failed" and message.email.last_error == message.last_error
    assert message_send(message_id=message.pk, now=at + DAY) == "not_queued"
    assert not PointsEntry.objects.filter(member=member).exists()  # no bonus for an email that never went


def test_a_retried_send_credits_the_incentive_once(program, campaign, now, settings, mailoutbox):
    member = segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    [message] = queued(campaign)
    settings.EMAIL_BACKEND = DISCONNECTED
    assert message_send(message_id=message.pk, now=now) == "queued"
    assert not PointsEntry.objects.filter(member=member).exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    assert message_send(message_id=message.pk, now=now + timedelta(minutes=2)) == "sent"

    [bonus] = PointsEntry.objects.filter(member=member)
    assert bonus.expires_at == now + timedelta(minutes=2) + 30 * DAY  # credited with the sent mark
    assert Member.objects.get(pk=member.pk).balance == 200
    assert "200 bonus points" in mailoutbox[0].body
    message.refresh_from_db()
    assert (message.attempts, message.status) == (2, Status.SENT)


def test_a_reward_incentive_issues_a_code_in_the_shop(program, now, mailoutbox):
    reward = Reward.objects.create(
        program=program, name="5 off", kind=Reward.Kind.FIXED, value=Decimal("5.00"), points_cost=500, stock=3
    )
    campaign = CampaignFactory(
        program=program, incentive=Campaign.Incentive.REWARD, incentive_reward=reward, incentive_valid_days=14
    )
    member = segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    [message] = queued(campaign)

    assert message_send(message_id=message.pk, now=now) == "sent"

    redemption = Redemption.objects.get(member=member)
    assert (redemption.points, redemption.idempotency_key) == (0, f"campaign:{message.pk}")
    assert redemption.expires_at == now + 14 * DAY
    code = DiscountCode.objects.get(code=redemption.code)
    assert (code.value, code.valid_until) == (Decimal("5.00"), now + 14 * DAY)
    assert [m.subject for m in mailoutbox] == [mailoutbox[0].subject]  # no separate "reward issued" email
    assert f"Your code {redemption.code}: 5.00 EUR off" in mailoutbox[0].body
    message.refresh_from_db()
    assert message.incentive_reference == f"code:{redemption.code}"
    assert Member.objects.get(pk=member.pk).balance == 0
    assert Reward.objects.get(pk=reward.pk).stock == 2


def test_a_reward_that_cannot_be_issued_fails_the_message(program, now, mailoutbox):
    reward = Reward.objects.create(program=program, name="Sold out", kind="fixed", value=5, points_cost=500, stock=0)
    campaign = CampaignFactory(program=program, incentive=Campaign.Incentive.REWARD, incentive_reward=reward)
    segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)
    [message] = queued(campaign)

    assert message_send(message_id=message.pk, now=now) == "failed"

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.last_error.startswith("Incentive not issued (reward_out_of_stock)")
    assert mailoutbox == []
    assert not Redemption.objects.exists()


def test_a_template_that_does_not_compile_fails_the_message_without_incentive(program, now, mailoutbox):
    campaign = CampaignFactory(program=program, text_template="{% if %}")
    segment_member(program, email="a@example.com")
    campaign_run(campaign=campaign, now=now)

    assert send_all(campaign, at=now) == ["failed"]
    assert "does not compile" in Message.objects.get().last_error
    assert not PointsEntry.objects.exists()
    assert mailoutbox == []


# --- attribution ----------------------------------------------------------------------------------


def _pay(member, *, reference: str, at, amount: str = "40.00") -> Purchase:
    order_event_record(order_event(reference=reference, amount=amount, user=member.user, at=at))
    return Purchase.objects.get(order_reference=reference)


@pytest.mark.parametrize(
    ("offset", "counts"),
    [
        (timedelta(0), True),
        (timedelta(days=14), True),  # exactly at the window's end
        (timedelta(days=14, seconds=1), False),
        (timedelta(seconds=-1), False),  # before the email
    ],
)
def test_the_attribution_window_edges(program, now, offset, counts):
    campaign = CampaignFactory(program=program, attribution_days=14)
    member = segment_member(program, email="a@example.com")
    message = make_message(campaign, member, status=Status.SENT, at=now - DAY, sent_at=now)

    purchase = _pay(member, reference="A-1", at=now + offset)

    message.refresh_from_db()
    if counts:
        assert (message.converted_at, message.conversion_purchase, message.revenue) == (
            now + offset,
            purchase,
            Decimal("40.00"),
        )
    else:
        assert (message.converted_at, message.conversion_purchase, message.revenue) == (None, None, Decimal("0"))


def test_control_rows_convert_from_when_they_were_selected(program, now):
    campaign = CampaignFactory(program=program, attribution_days=7)
    member = segment_member(program, email="a@example.com")
    control = make_message(campaign, member, status=Status.CONTROL, at=now)
    skipped = segment_member(program, email="b@example.com")
    not_sent = make_message(campaign, skipped, status=Status.SKIPPED, at=now)

    _pay(member, reference="A-1", at=now + 7 * DAY, amount="25.50")
    _pay(skipped, reference="B-1", at=now + DAY)

    control.refresh_from_db()
    not_sent.refresh_from_db()
    assert (control.converted_at, control.revenue) == (now + 7 * DAY, Decimal("25.50"))
    assert not_sent.converted_at is None


def test_a_purchase_converts_the_latest_message_and_a_message_converts_once(program, now):
    older = CampaignFactory(program=program, name="Older", attribution_days=30)
    newer = CampaignFactory(program=program, name="Newer", attribution_days=30)
    member = segment_member(program, email="a@example.com")
    first = make_message(older, member, status=Status.SENT, at=now - 5 * DAY, sent_at=now - 5 * DAY)
    latest = make_message(newer, member, status=Status.SENT, at=now - 2 * DAY, sent_at=now - 2 * DAY)

    order = _pay(member, reference="A-1", at=now)
    _pay(member, reference="A-2", at=now + DAY, amount="99.00")

    latest.refresh_from_db()
    first.refresh_from_db()
    assert (latest.conversion_purchase, latest.revenue) == (order, Decimal("40.00"))
    assert (first.conversion_purchase.order_reference, first.revenue) == ("A-2", Decimal("99.00"))


def test_attribution_is_one_query_for_a_member_without_messages(program, now, django_assert_num_queries):
    member = segment_member(program, email="a@example.com")
    purchase = _pay(member, reference="A-1", at=now)

    with django_assert_num_queries(1):
        assert purchase_attribute(purchase=purchase) is None


def test_guest_purchases_are_not_attributed(program, campaign, now):
    order_event_record(order_event(EventKind.PAID, reference="G-1", email="guest@example.com", at=now))
    assert purchase_attribute(purchase=Purchase.objects.get(order_reference="G-1")) is None


# --- the report ------------------------------------------------------------------------------------


def test_the_report_on_a_hand_made_set(program, campaign, now, django_assert_num_queries):
    member = segment_member(program, email="a@example.com")
    rows = iter(range(100))

    def add(status, n, **fields):
        for _ in range(n):
            make_message(campaign, member, status=status, at=now, cycle=f"c{next(rows)}", **fields)

    sent = {"sent_at": now}
    add(Status.SENT, 1, **sent, opened_at=now, clicked_at=now, converted_at=now, revenue=Decimal("50.00"))
    add(Status.SENT, 1, **sent, opened_at=now, converted_at=now, revenue=Decimal("30.25"))
    add(Status.SENT, 2, **sent, opened_at=now)
    add(Status.SENT, 5, **sent)
    add(Status.SENT, 1, **sent, unsubscribed_at=now)
    add(Status.FAILED, 1)
    add(Status.SKIPPED, 2)
    add(Status.QUEUED, 1)
    add(Status.CONTROL, 1, converted_at=now, revenue=Decimal("20.00"))
    add(Status.CONTROL, 9)

    with django_assert_num_queries(1):
        report = campaign_report(campaign=campaign)

    assert report == {
        "eligible": 24,
        "queued": 1,
        "sent": 10,
        "failed": 1,
        "skipped": 2,
        "opened": 4,
        "clicked": 1,
        "unsubscribed": 1,
        "converted": 2,
        "revenue": Decimal("80.25"),
        "conversion_rate": Decimal("20.00"),
        "control": {"members": 10, "converted": 1, "revenue": Decimal("20.00"), "conversion_rate": Decimal("10.00")},
        "uplift": Decimal("10.00"),
        "relative_uplift": Decimal("100.00"),
    }


def test_the_report_has_no_rates_without_a_denominator(program, campaign, now):
    member = segment_member(program, email="a@example.com")
    make_message(campaign, member, status=Status.SENT, at=now, sent_at=now, converted_at=now, revenue=Decimal("9"))

    report = campaign_report(campaign=campaign)

    assert report["conversion_rate"] == Decimal("100.00")
    assert report["control"] == {"members": 0, "converted": 0, "revenue": Decimal("0.00"), "conversion_rate": None}
    assert (report["uplift"], report["relative_uplift"]) == (None, None)
    empty = campaign_report(campaign=CampaignFactory(program=program))
    assert (empty["eligible"], empty["conversion_rate"], empty["uplift"]) == (0, None, None)


# --- the schedule (django-celery-beat) and the tasks --------------------------------------------------


def test_the_beat_schedule_follows_the_campaign(program, settings):
    campaign = CampaignFactory(program=program, is_active=False)
    name = f"loyalty-campaign-{campaign.pk}"

    periodic = PeriodicTask.objects.get(name=name)
    assert (periodic.task, periodic.args, periodic.enabled) == ("loyalty.tasks.run_campaign", f"[{campaign.pk}]", False)
    assert (periodic.crontab.hour, periodic.crontab.minute, str(periodic.crontab.timezone)) == (
        "10",
        "0",
        settings.TIME_ZONE,
    )

    campaign.is_active = True
    campaign.save()
    assert PeriodicTask.objects.get(name=name).enabled is True

    early = CrontabSchedule.objects.create(minute="30", hour="7", timezone=settings.TIME_ZONE)
    PeriodicTask.objects.filter(name=name).update(crontab=early)  # staff moved it in the beat admin
    campaign.name = "Renamed"
    campaign.save()
    periodic = PeriodicTask.objects.get(name=name)
    assert (periodic.crontab_id, "Renamed" in periodic.description) == (early.pk, True)

    campaign.delete()
    assert not PeriodicTask.objects.filter(name=name).exists()
    first, second = CampaignFactory(program=program), CampaignFactory(program=program)
    assert PeriodicTask.objects.get(name=f"loyalty-campaign-{first.pk}").crontab_id == (
        PeriodicTask.objects.get(name=f"loyalty-campaign-{second.pk}").crontab_id
    )  # one shared "daily 10:00" schedule, not one per campaign


def test_the_run_campaign_task_runs_it_and_shrugs_at_a_vanished_one(program, campaign, caplog):
    segment_member(program, email="a@example.com")

    assert run_campaign(campaign.pk)["queued"] == 1
    assert run_campaign(987654) is None
    assert "Campaign 987654 does not exist" in caplog.text


def test_run_campaigns_runs_every_active_campaign(program):
    active = CampaignFactory(program=program)
    CampaignFactory(program=program, is_active=False)
    segment_member(program, email="a@example.com")

    assert run_campaigns() == {active.pk: {"eligible": 1, "queued": 1, "control": 0}}


# --- admin ------------------------------------------------------------------------------------------------


def test_the_admin_lists_campaigns_with_their_counts(admin_client, program, campaign, now):
    member = segment_member(program, email="a@example.com")
    make_message(campaign, member, status=Status.SENT, at=now, sent_at=now, converted_at=now, cycle="c1")
    make_message(campaign, member, status=Status.SENT, at=now, sent_at=now, cycle="c2")
    make_message(campaign, member, status=Status.CONTROL, at=now, cycle="c3")

    response = admin_client.get(reverse("admin:loyalty_campaign_changelist"))

    assert response.status_code == 200
    row = response.context["cl"].result_list.get(pk=campaign.pk)
    assert (row.sent_count, row.converted_count) == (2, 1)
    assert "At risk" in response.text and "200 bonus points" in response.text


def test_the_campaign_list_costs_the_same_queries_for_more_campaigns(admin_client, program, now):
    member = segment_member(program, email="a@example.com")

    def listing_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(reverse("admin:loyalty_campaign_changelist")).status_code == 200
        return len(ctx)

    make_message(CampaignFactory(program=program), member, status=Status.SENT, at=now, sent_at=now)
    small = listing_queries()
    for _ in range(3):
        make_message(CampaignFactory(program=program), member, status=Status.SENT, at=now, sent_at=now)
    assert listing_queries() == small


def test_the_admin_run_now_action_queues_messages(admin_client, program, campaign):
    segment_member(program, email="a@example.com")
    inactive = CampaignFactory(program=program, name="Paused", is_active=False)

    response = admin_client.post(
        reverse("admin:loyalty_campaign_changelist"),
        {"action": "run_now", "_selected_action": [campaign.pk, inactive.pk]},
        follow=True,
    )

    assert response.status_code == 200
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert "“We miss you”: 1 email queued, 0 member(s) held out as the control group." in texts
    assert "“Paused” is not active, or its programme is switched off: nothing was run." in texts
    assert Message.objects.filter(campaign=campaign, status=Status.QUEUED).count() == 1


def test_the_admin_change_page_shows_the_report_and_schedule(admin_client, program, campaign, now):
    member = segment_member(program, email="a@example.com")
    make_message(campaign, member, status=Status.SENT, at=now, sent_at=now, converted_at=now, revenue=Decimal("12"))

    response = admin_client.get(reverse("admin:loyalty_campaign_change", args=[campaign.pk]))

    assert response.status_code == 200
    assert 'class="loyalty-campaign-report"' in response.text
    assert "12.00 EUR" in response.text and "100.00 %" in response.text
    assert f"loyalty-campaign-{campaign.pk}" in response.text


def test_the_admin_add_form_creates_a_campaign_and_its_schedule(admin_client, program):
    data = {
        "program": program.pk,
        "name": "Winback",
        "is_active": "on",
        "segments": ["at_risk", "dormant"],
        "cooldown_days": 30,
        "incentive": "points",
        "incentive_points": 300,
        "incentive_valid_days": 30,
        "language": "",
        "subject": "Hello {{ first_name }}",
        "text_template": "{{ incentive }}",
        "html_template": "",
        "control_percent": 10,
        "attribution_days": 14,
    }

    assert admin_client.get(reverse("admin:loyalty_campaign_add")).status_code == 200
    response = admin_client.post(reverse("admin:loyalty_campaign_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(name="Winback")
    assert campaign.segments == ["at_risk", "dormant"]
    assert PeriodicTask.objects.get(name=f"loyalty-campaign-{campaign.pk}").enabled is True


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"segments": ["at_risk", "vip"]}, "segments", "Select a valid choice"),
        ({"incentive": "points", "incentive_points": 0}, "incentive_points", "above 0"),
        ({"incentive": "reward"}, "incentive_reward", "Choose the reward"),
        ({"text_template": "{% if %}"}, "text_template", "does not compile"),
        ({"html_template": "{{ name|nosuchfilter }}"}, "html_template", "does not compile"),
        ({"send_after": "09:00", "send_before": "09:00"}, "send_before", "same time"),
    ],
)
def test_the_campaign_form_refuses_what_cannot_work(program, changes, field, error):
    data = {
        "program": program.pk,
        "name": "Winback",
        "segments": ["at_risk"],
        "cooldown_days": 30,
        "incentive": "none",
        "incentive_points": 0,
        "incentive_valid_days": 30,
        "subject": "Hello",
        "text_template": "Text",
        "html_template": "",
        "control_percent": 10,
        "attribution_days": 14,
        **changes,
    }

    form = CampaignForm(data=data)

    assert not form.is_valid()
    assert error in " ".join(form.errors[field])


def test_messages_are_read_only_in_the_admin(admin_client, program, campaign, now):
    member = segment_member(program, email="findme@example.com")
    message = make_message(campaign, member, status=Status.SENT, at=now, sent_at=now)

    listing = admin_client.get(reverse("admin:loyalty_message_changelist"), {"q": "findme"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [message]
    assert admin_client.get(reverse("admin:loyalty_message_add")).status_code == 403
    assert admin_client.get(reverse("admin:loyalty_message_change", args=[message.pk])).status_code == 200
    posted = admin_client.post(reverse("admin:loyalty_message_change", args=[message.pk]), {"status": "failed"})
    assert posted.status_code == 403
    assert Message.objects.get(pk=message.pk).status == Status.SENT
