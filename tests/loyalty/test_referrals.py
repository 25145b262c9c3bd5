"""Referrals: a friend who signs up through a member's link and pays a first order rewards both, once."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from loyalty.models import EarningRule, Member, PointsEntry, Referral
from loyalty.receivers import connect_referrals
from loyalty.services import member_enroll
from loyalty.services.referrals import (
    CODE_ALPHABET,
    SESSION_KEY,
    referral_code_for,
    referral_record,
)
from shop import signals as shop_signals
from shop.models import Order
from tests.factories import UserFactory, paid_order

pytestmark = pytest.mark.django_db
Status = Referral.Status
PASSWORD = "a-long-Secret-42"


@pytest.fixture(autouse=True)
def referrals_connected():
    connect_referrals()  # apps.ready() does this; idempotent (dispatch_uid)


@pytest.fixture(autouse=True)
def ledger_stays_consistent(db):
    yield
    call_command("loyalty_check_ledger", verbosity=0)


@pytest.fixture
def referral_rules(program):
    return (
        EarningRule.objects.create(
            program=program, kind=EarningRule.Kind.REFERRER, name="Thanks for sharing", points=500
        ),
        EarningRule.objects.create(program=program, kind=EarningRule.Kind.REFEREE, name="Welcome, friend", points=200),
    )


@pytest.fixture
def emails_sent_at_once(emails_sent_on_commit):
    """The outbox sends in-process on commit instead of asking a worker."""


def register(client: Client, email: str, first_name: str = "Luca"):
    response = client.post(reverse("shop:register"), {"email": email, "first_name": first_name, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return Member.objects.get(user__email=email)


def balance(member) -> int:
    return Member.objects.get(pk=member.pk).balance


def bonus_keys(member) -> list[str]:
    return list(
        PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.BONUS)
        .order_by("id")
        .values_list("idempotency_key", flat=True)
    )


# --- codes ------------------------------------------------------------------------------------


def test_every_new_member_gets_a_unique_unambiguous_code(program):
    codes = [member_enroll(program=program, user=UserFactory())[0].referral_code for _ in range(20)]
    assert len(set(codes)) == 20
    assert all(len(code) == 8 and set(code) <= set(CODE_ALPHABET) for code in codes)
    assert not set(CODE_ALPHABET) & set("01IOL")


def test_members_from_before_codes_get_one_on_first_use(member):
    Member.objects.filter(pk=member.pk).update(referral_code=None)
    member.referral_code = None

    code = referral_code_for(member)

    assert len(code) == 8
    assert Member.objects.get(pk=member.pk).referral_code == code
    assert referral_code_for(Member.objects.get(pk=member.pk)) == code


# --- the link ---------------------------------------------------------------------------------


def test_the_link_remembers_the_code_and_goes_home(client, member):
    response = client.get(reverse("loyalty:referral", args=[member.referral_code.lower()]))
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session[SESSION_KEY] == member.referral_code


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/products/olive-oil/", "/products/olive-oil/"), ("https://evil.example/", "/"), ("//evil.example/", "/")],
)
def test_the_link_follows_only_local_next_urls(client, member, target, expected):
    response = client.get(reverse("loyalty:referral", args=[member.referral_code]), {"next": target})
    assert response["Location"] == expected


def test_an_unknown_code_is_ignored(client, program):
    response = client.get(reverse("loyalty:referral", args=["NOPE2345"]))
    assert response.status_code == 302
    assert SESSION_KEY not in client.session


def test_the_link_accepts_only_get(client, member):
    assert client.post(reverse("loyalty:referral", args=[member.referral_code])).status_code == 405


# --- end to end -------------------------------------------------------------------------------


def test_a_referred_friend_and_the_referrer_are_rewarded_once(
    client, program, member, referral_rules, django_capture_on_commit_callbacks, mailoutbox, emails_sent_at_once
):
    referrer_rule, referee_rule = referral_rules
    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    with django_capture_on_commit_callbacks(execute=True):
        friend = register(client, "luca@example.com")

    referral = Referral.objects.get(friend=friend)
    assert (referral.referrer, referral.status) == (member, Status.PENDING)
    assert friend.referred_by == member
    assert SESSION_KEY not in client.session  # used once
    assert balance(member) == balance(friend) == 0  # nothing before a paid order

    with django_capture_on_commit_callbacks(execute=True):
        order = paid_order(total="30.00", user=friend.user)
    with django_capture_on_commit_callbacks(execute=True):
        shop_signals.order_paid.send(sender=Order, order=order)  # a replayed payment notification
        paid_order(total="20.00", user=friend.user)  # a second order

    referral.refresh_from_db()
    assert referral.status == Status.REWARDED
    assert referral.rewarded_at == order.paid_at
    assert bonus_keys(member) == [f"referral:{referral.pk}:referrer"]
    assert bonus_keys(friend) == [f"referral:{referral.pk}:friend"]
    assert balance(member) == 500
    assert balance(friend) == 30 + 20 + 200
    assert PointsEntry.objects.get(member=member).description == referrer_rule.name
    assert PointsEntry.objects.get(member=friend, kind=PointsEntry.Kind.BONUS).description == referee_rule.name

    referral_emails = [m for m in mailoutbox if "invited" in m.subject]  # the friend also gets a welcome email
    assert [m.to for m in referral_emails] == [["maria@example.com"]]
    assert "500" in referral_emails[0].subject
    assert "500 bonus points" in referral_emails[0].body


def test_a_referral_completes_with_the_rules_active_at_the_first_order(
    client, program, member, referral_rules, django_capture_on_commit_callbacks
):
    referrer_rule, referee_rule = referral_rules
    referee_rule.is_active = False
    referee_rule.save()
    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    with django_capture_on_commit_callbacks(execute=True):
        friend = register(client, "luca@example.com")

    paid_order(total="30.00", user=friend.user)

    assert balance(member) == 500
    assert balance(friend) == 30
    assert Referral.objects.get(friend=friend).status == Status.REWARDED


def test_a_referral_below_the_minimum_order_pays_nothing(
    client, program, member, referral_rules, django_capture_on_commit_callbacks
):
    EarningRule.objects.filter(program=program).update(min_order_amount="50.00")
    program.refresh_from_db()
    EarningRule.objects.first().save()  # bumps the programme's configuration
    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    with django_capture_on_commit_callbacks(execute=True):
        friend = register(client, "luca@example.com")

    paid_order(total="30.00", user=friend.user)

    referral = Referral.objects.get(friend=friend)
    assert referral.status == Status.REWARDED
    assert "No referral bonus" in referral.note
    assert (balance(member), balance(friend)) == (0, 30)


def test_signing_in_twice_with_the_code_records_one_referral(
    client, program, member, django_capture_on_commit_callbacks
):
    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    with django_capture_on_commit_callbacks(execute=True):
        friend = register(client, "luca@example.com")
    client.logout()
    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    client.post(reverse("shop:login"), {"username": "luca@example.com", "password": PASSWORD})

    assert Referral.objects.filter(friend=friend).count() == 1


# --- abuse ------------------------------------------------------------------------------------


def test_self_referral_by_the_same_user_is_refused(client, program, customer, referral_rules):
    customer.set_password(PASSWORD)
    customer.save()
    member, _ = member_enroll(program=program, user=customer)

    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    client.post(reverse("shop:login"), {"username": "maria@example.com", "password": PASSWORD})

    referral = Referral.objects.get(friend=member)
    assert referral.status == Status.REFUSED
    assert "Self-referral" in referral.note
    paid_order(total="30.00", user=customer)
    assert balance(member) == 30
    assert Member.objects.get(pk=member.pk).referred_by is None


def test_self_referral_with_the_same_email_is_refused(client, program, member, referral_rules):
    twin = UserFactory(username="maria-again", email="MARIA@Example.com")

    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    client.force_login(twin)

    referral = Referral.objects.get(friend__user=twin)
    assert referral.status == Status.REFUSED
    assert "Self-referral" in referral.note
    paid_order(total="30.00", user=twin)
    assert balance(member) == 0
    assert balance(referral.friend) == 30


def test_an_existing_customer_cannot_be_referred(client, program, member, referral_rules):
    regular = UserFactory(email="regular@example.com")
    paid_order(total="10.00", user=regular)  # enrols them, with an order

    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    client.force_login(regular)

    referral = Referral.objects.get(friend__user=regular)
    assert referral.status == Status.REFUSED
    assert "Existing customer" in referral.note
    paid_order(total="30.00", user=regular)
    assert balance(member) == 0


def test_a_member_who_joined_earlier_cannot_be_referred(client, program, member, referral_rules):
    old_user = UserFactory(email="old@example.com")
    friend, _ = member_enroll(program=program, user=old_user, at=timezone.now() - timedelta(days=30))

    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    client.force_login(old_user)

    referral = Referral.objects.get(friend=friend)
    assert referral.status == Status.REFUSED
    assert "joined the programme before" in referral.note
    paid_order(total="30.00", user=old_user)
    assert (balance(member), balance(friend)) == (0, 30)


def test_a_guest_who_ordered_before_registering_cannot_be_referred(
    client, program, member, referral_rules, django_capture_on_commit_callbacks
):
    paid_order(total="15.00", email="luca@example.com")  # as a guest
    client.get(reverse("loyalty:referral", args=[member.referral_code]))
    with django_capture_on_commit_callbacks(execute=True):
        friend = register(client, "luca@example.com")

    referral = Referral.objects.get(friend=friend)
    assert referral.status == Status.REFUSED
    assert "guest" in referral.note


def test_an_old_account_without_membership_is_not_recorded(program, member):
    old_user = UserFactory(email="old@example.com")
    type(old_user).objects.filter(pk=old_user.pk).update(date_joined=timezone.now() - timedelta(days=400))
    old_user.refresh_from_db()

    assert referral_record(code=member.referral_code, user=old_user) is None
    assert not Member.objects.filter(user=old_user).exists()


def test_a_friend_cannot_refer_their_own_referrer(program, member):
    friend, _ = member_enroll(program=program, user=UserFactory())
    assert referral_record(code=member.referral_code, user=friend.user).status == Status.PENDING

    refused = referral_record(code=friend.referral_code, user=member.user)
    assert refused.status == Status.REFUSED
    assert "Circular" in refused.note


# --- admin ------------------------------------------------------------------------------------


def test_referrals_are_read_only_in_admin_and_searchable_by_email(admin_client, program, member):
    friend, _ = member_enroll(program=program, user=UserFactory(email="luca@example.com"))
    referral = referral_record(code=member.referral_code, user=friend.user)
    url = reverse("admin:loyalty_referral_changelist")

    found = admin_client.get(url, {"q": "luca@"}).content.decode()
    missing = admin_client.get(url, {"q": "nobody@"}).content.decode()
    by_referrer = admin_client.get(url, {"q": "maria@example.com"}).content.decode()

    assert "luca@example.com" in found and "luca@example.com" not in missing
    assert "luca@example.com" in by_referrer
    detail = admin_client.get(reverse("admin:loyalty_referral_change", args=[referral.pk]))
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert admin_client.get(reverse("admin:loyalty_referral_add")).status_code == 403
