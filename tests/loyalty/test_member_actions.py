"""The member page in admin: issuing a reward, resending a campaign email, the history it shows."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty.exceptions import LoyaltyError
from loyalty.models import (
    Campaign,
    Member,
    Message,
    OutboundEmail,
    PointsEntry,
    Program,
    Redemption,
    Reward,
    SegmentChange,
    TierChange,
)
from loyalty.services import member_unsubscribe, message_resend, order_event_record, points_credit
from loyalty.services.campaigns import message_send
from loyalty.services.outbox import email_queue
from tests.factories import CampaignFactory, UserFactory, order_event, segment_member
from tests.loyalty.test_admin_permissions import SUPPORT, groups, in_group  # noqa: F401  (groups: a fixture)

pytestmark = pytest.mark.django_db

Status = Message.Status


def url(view: str, *args) -> str:
    return reverse(f"admin:loyalty_member_{view}", args=args)


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def member(program):
    member = segment_member(program, email="ann@example.com")
    points_credit(member=member, points=300, kind=PointsEntry.Kind.BONUS, idempotency_key="seed")
    member.refresh_from_db()
    return member


@pytest.fixture
def reward(program):
    return Reward.objects.create(program=program, name="5 EUR off", kind=Reward.Kind.FIXED, value=5, points_cost=500)


@pytest.fixture
def queued():
    """Message ids of the campaign emails waiting in the outbox."""

    def waiting() -> list[int]:
        rows = OutboundEmail.objects.filter(kind="campaign", status="queued").order_by("pk")
        return list(rows.values_list("message_id", flat=True))

    return waiting


# --- issuing a reward ---------------------------------------------------------------------------------


def issue(client, member, reward, *, token=None, note="Parcel lost"):
    return client.post(
        url("issue_reward", member.pk), {"reward": reward.pk, "note": note, "token": token or uuid.uuid4().hex}
    )


def test_issue_reward_page_lists_the_programmes_rewards_available_now(admin_client, program, member, reward):
    now = timezone.now()
    Reward.objects.create(program=program, name="Switched off", kind="fixed", value=1, points_cost=1, is_active=False)
    Reward.objects.create(
        program=program, name="Later", kind="fixed", value=1, points_cost=1, active_from=now + timedelta(days=1)
    )
    Reward.objects.create(program=program, name="Sold out", kind="fixed", value=1, points_cost=1, stock=0)
    other = Program.objects.create(name="Other", slug="other")
    Reward.objects.create(program=other, name="Elsewhere", kind="fixed", value=1, points_cost=1)

    page = admin_client.get(url("issue_reward", member.pk))

    assert page.status_code == 200
    assert [r.name for r in page.context["form"].fields["reward"].queryset] == ["5 EUR off"]
    assert "5 EUR off (worth 500 points)" in page.text


def test_issue_reward_gives_the_code_free_of_points(
    admin_client, admin_user, member, reward, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        response = issue(admin_client, member, reward)

    assert response.status_code == 302
    redemption = Redemption.objects.get()
    assert (redemption.member, redemption.reward, redemption.points, redemption.entry) == (member, reward, 0, None)
    assert redemption.code
    assert redemption.idempotency_key.startswith("staff-issue:")
    assert Member.objects.get(pk=member.pk).balance == 300  # no points taken
    assert messages_of(response) == [
        ("success", f"Issued “5 EUR off” to {member} free of points: code {redemption.code}.")
    ]
    log = LogEntry.objects.get(object_id=str(member.pk))
    assert (log.user, log.is_change()) == (admin_user, True)
    assert "Parcel lost" in log.get_change_message()
    assert redemption.code in log.get_change_message()


def test_issue_reward_sent_twice_issues_once(admin_client, member, reward):
    token = uuid.uuid4().hex

    issue(admin_client, member, reward, token=token)
    second = issue(admin_client, member, reward, token=token)

    assert Redemption.objects.count() == 1
    assert messages_of(second)[-1] == ("warning", "This reward had been issued already (the form was sent twice).")


def test_a_refusal_is_shown_on_the_form(admin_client, program, member, reward):
    Program.objects.filter(pk=program.pk).update(is_active=False)

    response = issue(admin_client, member, reward)

    assert response.status_code == 200
    assert "is closed" in response.text
    assert not Redemption.objects.exists()


def test_support_agent_issues_a_reward_within_the_limit_only(client, groups, member, reward):  # noqa: F811
    client.force_login(in_group(groups, SUPPORT))
    small = Reward.objects.create(program=member.program, name="Coffee", kind="fixed", value=1, points_cost=100)
    reward.points_cost = 501
    reward.save()

    refused = issue(client, member, reward)
    allowed = issue(client, member, small)

    assert refused.status_code == 200
    assert "Support agents can issue rewards worth at most 500 points; ask a loyalty manager." in refused.text
    assert allowed.status_code == 302
    assert list(Redemption.objects.values_list("reward__name", flat=True)) == ["Coffee"]


def test_view_only_staff_cannot_issue_rewards(client, member, reward):
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(user)

    assert client.get(url("issue_reward", member.pk)).status_code == 403
    assert issue(client, member, reward).status_code == 403
    assert url("issue_reward", member.pk) not in client.get(url("change", member.pk)).text
    assert not Redemption.objects.exists()


# --- resending a message ---------------------------------------------------------------------------------


def message_of(member, *, status=Status.SENT, incentive=Campaign.Incentive.NONE, reference="", cycle="2026-03-02"):
    campaign = CampaignFactory(program=member.program, incentive=incentive)
    now = timezone.now()
    message = Message.objects.create(
        campaign=campaign,
        program=member.program,
        member=member,
        cycle=cycle,
        status=status,
        segment="at_risk",
        to_email=member.user.email,
        created_at=now - timedelta(days=2),
        sent_at=now - timedelta(days=2) if status == Status.SENT else None,
        incentive_reference=reference,
    )
    if status == Status.QUEUED:
        email_queue(key=f"campaign:test:{message.pk}", kind="campaign", member=member, message_id=message.pk)
    return message


@pytest.mark.parametrize("status", [Status.SENT, Status.FAILED])
def test_resend_queues_a_new_message_of_the_same_campaign(member, queued, status, django_capture_on_commit_callbacks):
    original = message_of(member, status=status)

    with django_capture_on_commit_callbacks(execute=True):
        resent = message_resend(message=original, by=None)

    assert resent.pk != original.pk
    assert (resent.campaign_id, resent.member_id, resent.status) == (original.campaign_id, member.pk, Status.QUEUED)
    assert resent.cycle.startswith("resend-") and len(resent.cycle) == len("resend-") + 8
    assert queued() == [resent.pk]
    original.refresh_from_db()
    assert original.status == status  # the old one is left as it was


def test_resend_with_the_same_token_twice_makes_one_message(member, queued, django_capture_on_commit_callbacks):
    original = message_of(member)
    token = uuid.uuid4().hex

    with django_capture_on_commit_callbacks(execute=True):
        first = message_resend(message=original, by=None, token=token)
        second = message_resend(message=original, by=None, token=token)

    assert first.pk == second.pk
    assert Message.objects.count() == 2
    assert queued() == [first.pk]


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ({"status": Status.QUEUED}, "message_not_resendable"),
        ({"status": Status.CONTROL}, "message_not_resendable"),
    ],
)
def test_resend_refuses(member, queued, setup, code):
    original = message_of(member, **setup)

    with pytest.raises(LoyaltyError) as refused:
        message_resend(message=original, by=None)

    assert refused.value.code == code
    assert Message.objects.count() == 1
    assert queued() == ([original.pk] if original.status == Status.QUEUED else [])  # nothing new


def test_resend_refuses_when_the_member_withdrew_consent(member, queued):
    original = message_of(member)
    member_unsubscribe(member=member)

    with pytest.raises(LoyaltyError, match="withdrawn marketing consent"):
        message_resend(message=original, by=None)
    assert Message.objects.count() == 1


def test_a_failed_message_whose_incentive_was_never_issued_can_be_resent(member, queued):
    original = message_of(member, status=Status.FAILED, incentive=Campaign.Incentive.POINTS, reference="")

    resent = message_resend(message=original, by=None)

    assert resent.status == Status.QUEUED


def test_resend_from_the_member_page(admin_client, member, queued, django_capture_on_commit_callbacks):
    original = message_of(member)
    page = admin_client.get(url("change", member.pk))
    resend_url = url("resend_message", member.pk, original.pk)
    assert resend_url in page.text
    assert admin_client.get(resend_url).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(resend_url, {"token": uuid.uuid4().hex})

    assert response.status_code == 302
    resent = Message.objects.exclude(pk=original.pk).get()
    assert queued() == [resent.pk]
    assert messages_of(response) == [
        ("success", f"The email of campaign “{original.campaign}” is queued to be sent to {member} again.")
    ]


def test_resend_page_shows_a_refusal(admin_client, member, queued):
    original = message_of(member, status=Status.CONTROL)

    response = admin_client.post(url("resend_message", member.pk, original.pk), {"token": uuid.uuid4().hex})

    assert response.status_code == 200
    assert "Only a sent or failed message can be resent" in response.text
    assert Message.objects.count() == 1


def test_a_resend_carries_the_original_incentive_and_issues_nothing_new(member, queued, mailoutbox):
    original = message_of(member, status=Status.QUEUED, incentive=Campaign.Incentive.POINTS)
    original.campaign.incentive_points = 200
    original.campaign.save()
    assert message_send(message_id=original.pk) == "sent"
    member.refresh_from_db()
    balance = member.balance

    resent = message_resend(message=original, by=None)
    assert message_send(message_id=resent.pk) == "sent"
    assert message_send(message_id=resent.pk) == "not_queued"  # a duplicate task

    member.refresh_from_db()
    assert member.balance == balance  # the 200 points were credited once, with the first email
    assert PointsEntry.objects.filter(member=member, reference=f"campaign:{original.campaign_id}").count() == 1
    emails = [m for m in mailoutbox if "bonus points" in m.body]
    assert len(emails) == 2 and "200 bonus points" in emails[1].body
    resent.refresh_from_db()
    assert resent.incentive_reference == f"resend-of:{original.pk}"


def test_resend_of_another_members_message_is_not_found(admin_client, program, member, queued):
    other = segment_member(program, email="bob@example.com")
    message = message_of(other)

    assert admin_client.get(url("resend_message", member.pk, message.pk)).status_code == 404
    assert admin_client.post(url("resend_message", member.pk, message.pk), {"token": "x"}).status_code == 404


def test_resend_needs_the_change_permission(client, groups, member, queued):  # noqa: F811
    from django.contrib.auth.models import Permission

    original = message_of(member)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(viewer)

    assert client.post(url("resend_message", member.pk, original.pk), {"token": "x"}).status_code == 403
    assert url("resend_message", member.pk, original.pk) not in client.get(url("change", member.pk)).text

    client.force_login(in_group(groups, SUPPORT))
    assert client.post(url("resend_message", member.pk, original.pk), {"token": "y"}).status_code == 302
    assert Message.objects.count() == 2


# --- what the member page shows -------------------------------------------------------------------------


def test_member_page_shows_purchases_messages_and_history(admin_client, program, member):
    order_event_record(order_event(reference="A-77", amount="42.00", user=member.user))
    message_of(member)
    now = timezone.now()
    TierChange.objects.create(member=member, reason=TierChange.Reason.STAFF, note="VIP by hand", created_at=now)
    SegmentChange.objects.create(
        program=program, member=member, from_segment="loyal", to_segment="at_risk", changed_at=now
    )

    page = admin_client.get(url("change", member.pk))

    assert "A-77" in page.text and "42.00 EUR" in page.text
    assert "We miss you" in page.text
    assert "VIP by hand" in page.text
    assert "Loyal" in page.text and "At risk" in page.text
    ledger = reverse("admin:loyalty_pointsentry_changelist") + f"?member__id__exact={member.pk}"
    assert ledger in page.text


def test_the_full_ledger_link_shows_only_the_members_entries(admin_client, program, member):
    other = segment_member(program, email="bob@example.com")
    points_credit(member=other, points=5, kind=PointsEntry.Kind.BONUS, idempotency_key="other")

    response = admin_client.get(reverse("admin:loyalty_pointsentry_changelist"), {"member__id__exact": member.pk})

    assert response.status_code == 200
    assert [e.member_id for e in response.context["cl"].result_list] == [member.pk]


def test_member_page_queries_do_not_grow_with_history(admin_client, program, member):
    page = url("change", member.pk)
    admin_client.get(page)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(page)

    for i in range(30):
        order_event_record(order_event(reference=f"B-{i}", amount="10.00", user=member.user))
        message_of(member, cycle=f"c{i}")
        TierChange.objects.create(member=member, reason=TierChange.Reason.STAFF, created_at=timezone.now())
        SegmentChange.objects.create(
            program=program, member=member, from_segment="new", to_segment="loyal", changed_at=timezone.now()
        )
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(page)

    assert len(many.captured_queries) == len(few.captured_queries)
    assert len(response.context["member_purchases"]) == 20
    assert len(response.context["member_messages"]) == 10


def test_members_are_found_by_referral_code_and_name(admin_client, program, member):
    segment_member(program, email="bob@example.com", first_name="Bob")
    changelist = reverse("admin:loyalty_member_changelist")

    by_code = admin_client.get(changelist, {"q": member.referral_code})
    by_name = admin_client.get(changelist, {"q": "Bob"})

    assert [m.pk for m in by_code.context["cl"].result_list] == [member.pk]
    assert [m.user.email for m in by_name.context["cl"].result_list] == ["bob@example.com"]
