"""Customer endpoints: each one's happy path, and that a customer only ever sees their own data."""

from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.models import Redemption, Referral, Tier
from loyalty.services import member_enroll
from tests.factories import UserFactory

from .conftest import client_for, fund

pytestmark = pytest.mark.django_db

BASE = "/api/loyalty/"
CUSTOMER_URLS = ["me/", "transactions/", "rewards/", "redemptions/", "redemptions/1/", "referral/"]


@pytest.mark.parametrize("url", CUSTOMER_URLS)
def test_anonymous_visitors_get_401_json_with_a_code(url):
    response = APIClient().get(BASE + url)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


def test_session_authentication_works_too(member):
    client = APIClient()
    client.force_login(member.user)
    assert client.get(BASE + "me/").status_code == 200


def test_me_shows_balance_money_tier_progress_and_no_health(api, member, program):
    Tier.objects.create(program=program, name="Gold", rank=1, qualifies_by="spend", threshold=Decimal("100"))
    fund(member, 1234)
    [row] = api.get(BASE + "me/").json()
    assert row["id"] == member.pk
    assert row["program"]["slug"] == program.slug
    assert row["balance"] == 1234
    assert row["balance_value"] == "12.34"
    assert row["tier"] is None
    assert row["progress"]["next_tier"]["name"] == "Gold"
    assert row["progress"]["missing"] == "100.00"
    assert row["pending_points"] == 0
    assert "health" not in row and "segment" not in row


def test_me_lists_only_own_memberships(api, member, other):
    assert [row["id"] for row in api.get(BASE + "me/").json()] == [member.pk]


def test_transactions_are_newest_first_cursor_paginated_and_own_only(api, member, other):
    for n in range(3):
        fund(member, 10 + n, key=f"t{n}")
    fund(other, 999, key="other")
    first = api.get(BASE + "transactions/?page_size=2").json()
    assert [row["points"] for row in first["results"]] == [12, 11]
    assert first["results"][0]["title"] == "Purchase"
    second = APIClient(HTTP_AUTHORIZATION=api._credentials["HTTP_AUTHORIZATION"]).get(first["next"]).json()
    assert [row["points"] for row in second["results"]] == [10]
    assert second["next"] is None
    all_rows = api.get(BASE + "transactions/").json()["results"]
    assert 999 not in [row["points"] for row in all_rows]


def test_transactions_reject_a_bad_program_filter(api):
    response = api.get(BASE + "transactions/?program=abc")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_rewards_say_whether_they_are_affordable(api, member, reward, program):
    fund(member, 300)
    [row] = api.get(BASE + "rewards/").json()
    assert row["id"] == reward.pk
    assert row["affordable"] is False
    assert row["missing_points"] == 200
    fund(member, 200, key="more")
    [row] = api.get(BASE + "rewards/").json()
    assert (row["affordable"], row["missing_points"], row["redeemable"]) == (True, 0, True)


def test_rewards_of_a_programme_the_customer_is_not_in_are_not_shown(api, reward):
    from loyalty.models import Program, Reward

    elsewhere = Program.objects.create(name="Other", slug="other", currency="EUR")
    Reward.objects.create(program=elsewhere, name="Secret", kind="fixed", value=5, points_cost=1)
    assert [row["name"] for row in api.get(BASE + "rewards/").json()] == ["5 EUR off"]


def test_redeeming_twice_with_one_key_makes_one_redemption(api, member, reward):
    fund(member, 1200)
    body = {"reward": reward.pk, "idempotency_key": "c0ffee"}
    first = api.post(BASE + "redemptions/", body, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["code"]
    again = api.post(BASE + "redemptions/", body, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Redemption.objects.filter(member=member).count() == 1
    member.refresh_from_db()
    assert member.balance == 700


def test_one_customers_key_never_reaches_anothers_redemption(api, other_api, member, other, reward):
    fund(member, 500)
    fund(other, 500)
    body = {"reward": reward.pk, "idempotency_key": "same-key"}
    mine = api.post(BASE + "redemptions/", body, format="json").json()
    theirs = other_api.post(BASE + "redemptions/", body, format="json")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]


def test_a_refused_redemption_is_409_with_the_engines_code(api, member, reward):
    fund(member, 100)
    response = api.post(BASE + "redemptions/", {"reward": reward.pk, "idempotency_key": "k1"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_points"
    assert response.json()["detail"]
    assert not Redemption.objects.exists()


def test_bad_redemption_input_is_400_with_fields(api, reward):
    response = api.post(BASE + "redemptions/", {"reward": "x"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"reward", "idempotency_key"}


def test_a_reward_of_another_programme_cannot_be_redeemed(api, member):
    from loyalty.models import Program, Reward

    elsewhere = Program.objects.create(name="Other", slug="other", currency="EUR")
    secret = Reward.objects.create(program=elsewhere, name="Secret", kind="fixed", value=5, points_cost=1)
    fund(member, 100)
    response = api.post(BASE + "redemptions/", {"reward": secret.pk, "idempotency_key": "k"}, format="json")
    assert response.status_code == 400
    assert "reward" in response.json()["fields"]


def test_redemptions_list_and_detail_are_own_only(api, other_api, member, other, reward):
    fund(member, 500)
    fund(other, 500)
    mine = api.post(BASE + "redemptions/", {"reward": reward.pk, "idempotency_key": "a"}, format="json").json()
    theirs = other_api.post(BASE + "redemptions/", {"reward": reward.pk, "idempotency_key": "b"}, format="json").json()
    assert [row["id"] for row in api.get(BASE + "redemptions/").json()["results"]] == [mine["id"]]
    assert api.get(f"{BASE}redemptions/{mine['id']}/").json()["reward"]["id"] == reward.pk
    response = api.get(f"{BASE}redemptions/{theirs['id']}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_redemptions_are_throttled(api, member, reward, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"loyalty_redeem": "2/min"}}
    fund(member, 5000)
    codes = [
        api.post(BASE + "redemptions/", {"reward": reward.pk, "idempotency_key": f"t{n}"}, format="json").status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 429]
    response = api.post(BASE + "redemptions/", {"reward": reward.pk, "idempotency_key": "t9"}, format="json")
    assert response.json()["code"] == "throttled"
    assert response.json()["wait"] > 0
    assert api.get(BASE + "redemptions/").status_code == 200  # reading is not throttled


def test_referral_shows_code_link_and_own_stats(api, member, other, program):
    friend = member_enroll(program=program, user=UserFactory(email="friend@example.com"))[0]
    Referral.objects.create(program=program, referrer=member, friend=other, created_at=timezone.now())
    Referral.objects.create(
        program=program, referrer=member, friend=friend, status=Referral.Status.REWARDED, created_at=timezone.now()
    )
    [row] = api.get(BASE + "referral/").json()
    member.refresh_from_db()
    assert row["code"] == member.referral_code
    assert row["link"] == f"http://testserver/loyalty/r/{member.referral_code}/"
    assert (row["invited"], row["rewarded"], row["pending"]) == (2, 1, 1)
    [theirs] = client_for(other.user).get(BASE + "referral/").json()
    assert theirs["code"] == other.referral_code != row["code"]
    assert (theirs["invited"], theirs["rewarded"]) == (0, 0)
