"""Customer pages: how it works, the account panel, email preferences, order confirmation, redeeming."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty.models import EarningRule, Member, PointsEntry, Reward, Tier
from loyalty.selectors import history_row
from loyalty.services import member_enroll, points_adjust
from loyalty.services.campaigns import unsubscribe_token
from loyalty.templatetags.loyalty_tags import contrast_ratio, readable_text_colour, tier_colour
from shop.access import GUEST_ORDERS_SESSION_KEY
from tests.factories import UserFactory, paid_order

pytestmark = pytest.mark.django_db

NUMBER_OF_HISTORY_ROWS = 'class="num points-plus"'


def add_history(member, rows: int, *, description: str = "") -> None:
    """Bulk-write ``rows`` bonus rows (test data only; real writes go through services)."""
    from django.db.models import Sum

    now = timezone.now()
    start = PointsEntry.objects.filter(member=member).count()
    PointsEntry.objects.bulk_create(
        PointsEntry(
            program=member.program,
            member=member,
            kind=PointsEntry.Kind.BONUS,
            points=1,
            remaining=1,
            idempotency_key=f"bulk:{member.pk}:{start + n}",
            description=description,
            created_at=now - timedelta(seconds=n),
        )
        for n in range(rows)
    )
    total = PointsEntry.objects.filter(member=member).aggregate(s=Sum("points"))["s"]
    Member.objects.filter(pk=member.pk).update(balance=total)


@pytest.fixture
def full_program(program):
    """A programme with bonus rules, two tiers and rewards, as a shop would configure it."""
    EarningRule.objects.create(program=program, name="Welcome", kind=EarningRule.Kind.SIGNUP, points=100)
    EarningRule.objects.create(program=program, name="Birthday", kind=EarningRule.Kind.BIRTHDAY, points=250)
    EarningRule.objects.create(
        program=program, name="Double days", kind=EarningRule.Kind.MULTIPLIER, multiplier=Decimal("2.00")
    )
    Tier.objects.create(program=program, name="Silver", rank=1, threshold=0, qualifies_by="spend", colour="#c0c0c0")
    Tier.objects.create(
        program=program,
        name="Gold",
        rank=2,
        threshold=Decimal("500"),
        qualifies_by="spend",
        colour="#8c6d1f",
        benefits="Free shipping on every order",
    )
    Reward.objects.create(program=program, name="5 EUR off", kind="fixed", points_cost=500, value=Decimal("5"))
    Reward.objects.create(program=program, name="Free shipping", kind="free_shipping", points_cost=300)
    return program


# --- how it works -----------------------------------------------------------------------------


def test_how_it_works_needs_no_login_and_explains_rules_tiers_and_rewards(client, full_program):
    response = client.get(reverse("loyalty:how_it_works", args=[full_program.slug]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "How Rewards works" in page
    assert "1 point for every 1.00 EUR you spend." in page
    assert "100 points are worth 1.00 EUR." in page
    assert "100 points when you join." in page
    assert "250 points on your birthday, every year." in page
    assert "2× points on every order." in page
    assert "Silver" in page and "Gold" in page
    assert "Spend 500.00 EUR within 365 days." in page
    assert "Free shipping on every order" in page
    assert "5 EUR off" in page and "Free shipping" in page and "300 points" in page


def test_how_it_works_of_an_unknown_or_closed_programme_is_404(client, program):
    assert client.get(reverse("loyalty:how_it_works", args=["nope"])).status_code == 404
    program.is_active = False
    program.save()
    assert client.get(reverse("loyalty:how_it_works", args=[program.slug])).status_code == 404


# --- account panel ----------------------------------------------------------------------------


def test_the_panel_shows_tier_progress_rewards_expiry_referral_and_links(client, full_program, customer):
    paid_order(total="600.00", user=customer)  # 600 x 2 (double days) = 1200 points, and Gold
    member = Member.objects.get(user=customer)
    client.force_login(customer)

    page = client.get(reverse("shop:account")).content.decode()

    assert "Gold member" in page
    assert "You have reached our highest tier" in page
    # 1,300 points, spent only through rewards: the panel says what they buy, not a money value.
    assert "Worth" not in page and "Enough for “" in page
    assert reverse("loyalty:redeem", args=[Reward.objects.get(name="5 EUR off").pk]) in page
    assert f"/loyalty/r/{member.referral_code}/" in page
    assert 'data-loyalty-copy="loyalty-referral-rewards"' in page and 'aria-live="polite"' in page
    assert reverse("loyalty:how_it_works", args=[full_program.slug]) in page
    assert reverse("loyalty:preferences") in page


def test_progress_says_what_is_missing_in_words(client, full_program, customer):
    Tier.objects.filter(name="Silver").update(threshold=Decimal("100"))
    paid_order(total="58.00", user=customer)
    client.force_login(customer)
    page = client.get(reverse("shop:account")).content.decode()
    assert "Spend 42.00 EUR more to reach Silver." in page
    assert "<progress" in page


def test_points_expiring_soon_are_announced_with_their_date(client, member, customer):
    soon = timezone.now() + timedelta(days=10)
    points_adjust(member=member, points=80, reason="goodwill")
    PointsEntry.objects.filter(member=member).update(expires_at=soon)
    client.force_login(customer)
    page = client.get(reverse("shop:account")).content.decode()
    assert "80 points expire on" in page


def test_history_is_paginated_and_described_in_words(client, member, customer, settings):
    settings.LOYALTY = {**settings.LOYALTY, "ACCOUNT_HISTORY_SIZE": 5}
    add_history(member, 12, description="Birthday")
    client.force_login(customer)

    first = client.get(reverse("shop:account")).content.decode()
    last = client.get(reverse("shop:account"), {"history_page": 3}).content.decode()
    beyond = client.get(reverse("shop:account"), {"history_page": 99}).content.decode()

    assert first.count(NUMBER_OF_HISTORY_ROWS) == 5
    assert "Page 1 of 3" in first and "history_page=2" in first
    assert last.count(NUMBER_OF_HISTORY_ROWS) == 2 and "Page 3 of 3" in last
    assert beyond.count(NUMBER_OF_HISTORY_ROWS) == 2


def test_a_customer_never_sees_another_customers_history_on_any_page(client, member, customer, settings):
    settings.LOYALTY = {**settings.LOYALTY, "ACCOUNT_HISTORY_SIZE": 5}
    other_user = UserFactory()
    other, _ = member_enroll(program=member.program, user=other_user)
    add_history(other, 12, description="Secret bonus of the other customer")
    add_history(member, 6, description="Mine")
    client.force_login(customer)

    for page_number in (1, 2, 3):
        page = client.get(reverse("shop:account"), {"history_page": page_number}).content.decode()
        assert "Secret bonus of the other customer" not in page
        assert other.referral_code not in page
    assert "Page 1 of 2" in client.get(reverse("shop:account")).content.decode()


def test_account_page_query_count_is_identical_for_10_and_5000_rows(
    client, full_program, customer, django_assert_num_queries
):
    paid_order(total="50.00", user=customer)
    member = Member.objects.get(user=customer)
    points_adjust(member=member, points=600, reason="goodwill")
    add_history(member, 10)
    client.force_login(customer)
    client.get(reverse("shop:account"))
    with CaptureQueriesContext(connection) as small:
        assert client.get(reverse("shop:account"), {"history_page": 2}).status_code == 200
    add_history(member, 4990)
    with django_assert_num_queries(len(small)):
        response = client.get(reverse("shop:account"), {"history_page": 2})
    assert response.content.decode().count(NUMBER_OF_HISTORY_ROWS) == 20


def test_history_rows_are_described_in_words(member):
    def row(kind, points, key, reference="", description=""):
        entry = PointsEntry(
            kind=kind,
            points=points,
            idempotency_key=key,
            reference=reference,
            description=description,
            created_at=timezone.now(),
        )
        return history_row(entry)

    kind = PointsEntry.Kind
    assert row(kind.EARN, 10, "purchase:1042:earn", "1042").title == "Order #1042"
    assert row(kind.BONUS, 5, f"rule:1:member:{member.pk}:birthday:2025", "", "Happy day").title == "Birthday bonus"
    assert row(kind.BONUS, 5, "campaign:3:x", "campaign:3", "Campaign “We miss you”").title == "Campaign “We miss you”"
    assert (
        row(kind.REDEEM, -500, "redeem:x", "5 EUR off", "Redeemed for “5 EUR off”").title == "Redeemed for “5 EUR off”"
    )
    assert row(kind.EXPIRE, -3, "expire:1:lots-to:2", "", "2 lot(s) earned since 2024-01-01 expired").title == "Expired"
    assert row(kind.REVERSE, -4, "order:1042:refund:1:reverse", "1042").title == "Refund of order #1042"
    cancelled = row(kind.REVERSE, -6, "order:1042:cancelled:reverse", "1042", "Order cancelled; 2 points forgiven")
    assert (cancelled.title, cancelled.note) == ("Order #1042 cancelled", "Points you had already spent were forgiven.")
    adjusted = row(kind.ADJUST, 20, "adjust:1", "", "Sorry about the jar")
    assert (adjusted.title, adjusted.note) == ("Adjustment by our team", "Sorry about the jar")


# --- tier badge contrast ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "colour", ["#8c6d1f", "#c0c0c0", "#ffd700", "#000000", "#ffffff", "#777777", "#2f5d46", "#e5e4e2"]
)
def test_badge_text_meets_wcag_aa_on_any_colour(colour):
    assert contrast_ratio(colour, readable_text_colour(colour)) >= 4.5


def test_a_badge_colour_that_is_not_a_hex_colour_is_replaced():
    assert tier_colour("red; background-image: url(x)") == "#5f6b73"
    assert tier_colour("#ABC") == "#ABC"


# --- email preferences ------------------------------------------------------------------------


def test_preferences_need_a_login(client):
    response = client.get(reverse("loyalty:preferences"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_preferences_toggle_marketing_consent_and_record_when(client, member, customer):
    client.force_login(customer)
    field = f"marketing-{member.pk}"

    page = client.get(reverse("loyalty:preferences")).content.decode()
    assert f'<label for="id_{field}">Send me offers and news by email</label>' in page

    response = client.post(reverse("loyalty:preferences"), {field: "on"}, follow=True)
    member.refresh_from_db()
    assert member.marketing_consent is True and member.consent_changed_at is not None
    assert "Your email preferences are saved." in response.content.decode()

    client.post(reverse("loyalty:preferences"), {})
    member.refresh_from_db()
    assert member.marketing_consent is False


def test_preferences_never_change_another_customers_consent(client, member, customer):
    other, _ = member_enroll(program=member.program, user=UserFactory())
    client.force_login(customer)

    client.post(reverse("loyalty:preferences"), {"only": other.pk, f"marketing-{other.pk}": "on"})

    other.refresh_from_db()
    assert other.marketing_consent is False
    page = client.get(reverse("loyalty:preferences"), {"only": other.pk}).content.decode()
    assert f"marketing-{other.pk}" not in page


def test_the_unsubscribe_page_offers_to_subscribe_again_when_signed_in(client, member, customer):
    Member.objects.filter(pk=member.pk).update(marketing_consent=True)
    url = reverse("loyalty:unsubscribe", args=[unsubscribe_token(member)])

    anonymous = client.post(url).content.decode()
    assert reverse("loyalty:preferences") in anonymous and "Log in" in anonymous

    client.force_login(customer)
    page = client.get(url).content.decode()
    assert "Subscribe again" in page
    client.post(reverse("loyalty:preferences"), {"only": member.pk, f"marketing-{member.pk}": "on"})
    member.refresh_from_db()
    assert member.marketing_consent is True


# --- order confirmation -----------------------------------------------------------------------


def test_the_order_page_shows_the_points_a_member_earned(client, program, customer):
    order = paid_order(total="64.90", user=customer)
    client.force_login(customer)
    page = client.get(reverse("shop:order_detail", args=[order.number])).content.decode()
    assert "This order earned you 64 points in Rewards." in page


def test_the_order_page_shows_pending_points_with_their_date(client, program, customer):
    program.pending_days = 14
    program.save()
    order = paid_order(total="30.00", user=customer)
    client.force_login(customer)
    page = client.get(reverse("shop:order_detail", args=[order.number])).content.decode()
    assert "30 points from this order" in page and "pending until" in page


def test_a_guest_is_invited_to_join_to_earn_the_orders_points(client, program):
    order = paid_order(total="25.00", email="guest.buyer@example.com")
    session = client.session
    session[GUEST_ORDERS_SESSION_KEY] = [order.number]
    session.save()

    page = client.get(reverse("shop:order_detail", args=[order.number])).content.decode()

    assert "Join to earn 25 points for this order" in page
    assert 'href="/loyalty/claim/' in page  # a signed link: only this guest can claim the order


# --- redeeming: each message -------------------------------------------------------------------


@pytest.fixture
def reward(program):
    return Reward.objects.create(program=program, name="5 EUR off", kind="fixed", points_cost=500, value=Decimal("5"))


def redeem(client, reward):
    url = reverse("loyalty:redeem", args=[reward.pk])
    confirm = client.get(url, {"next": "/account/"}).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', confirm).group(1)
    return client.post(url, {"token": token, "next": "/account/"}, follow=True).content.decode()


def test_redeeming_success_says_the_code(client, member, customer, reward):
    points_adjust(member=member, points=500, reason="goodwill")
    client.force_login(customer)
    assert "is ready: enter it at checkout." in redeem(client, reward)


def test_redeeming_without_enough_points_says_so(client, member, customer, reward):
    points_adjust(member=member, points=100, reason="goodwill")
    client.force_login(customer)
    assert "costs 500 points; you have 100." in redeem(client, reward)


def test_redeeming_past_the_limit_says_so(client, member, customer, reward):
    reward.per_member_limit = 1
    reward.save()
    points_adjust(member=member, points=1000, reason="goodwill")
    client.force_login(customer)
    redeem(client, reward)
    assert "can be redeemed 1 time per member, and you have redeemed it." in redeem(client, reward)


def test_redeeming_a_reward_no_longer_available_says_so(client, member, customer, reward):
    points_adjust(member=member, points=600, reason="goodwill")
    client.force_login(customer)
    url = reverse("loyalty:redeem", args=[reward.pk])
    confirm = client.get(url).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', confirm).group(1)
    Reward.objects.filter(pk=reward.pk).update(is_active=False)
    page = client.post(url, {"token": token, "next": "/account/"}, follow=True).content.decode()
    assert "is not available any more." in page


def test_redeeming_a_sold_out_reward_says_so(client, member, customer, reward):
    points_adjust(member=member, points=600, reason="goodwill")
    client.force_login(customer)
    url = reverse("loyalty:redeem", args=[reward.pk])
    confirm = client.get(url).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', confirm).group(1)
    Reward.objects.filter(pk=reward.pk).update(stock=0)
    page = client.post(url, {"token": token, "next": "/account/"}, follow=True).content.decode()
    assert "is sold out." in page


def test_redeeming_needs_the_csrf_token(member, customer, reward):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(customer)
    response = strict.post(reverse("loyalty:redeem", args=[reward.pk]), {"token": "0" * 32})
    assert response.status_code == 403
