"""Points at checkout over the API (headless shops): quote, apply (201, then 200 for the same
points), replace, remove; refusals as JSON with stable codes, 400 for bad amounts, 409 for the rest."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from loyalty.models import Member, Redemption
from tests.factories import points_discount_reward

from .conftest import client_for, fund

pytestmark = pytest.mark.django_db
URL = "/api/loyalty/checkout/points/"


@pytest.fixture
def points_reward(program):
    return points_discount_reward(program, max_order_share=Decimal("50"))


@pytest.fixture
def api(member, points_reward):
    fund(member, 1330)
    return client_for(member.user)


def quote(api, **params) -> dict:
    response = api.get(URL, {"basket": "B-1", "order_total": "40.00", "currency": "EUR", **params})
    assert response.status_code == 200, response.json()
    return response.json()


def test_the_quote_gives_the_choices_and_a_token(api, points_reward):
    body = quote(api)
    assert body["reward"] == {"id": points_reward.pk, "name": "Pay with points", "kind": "points_discount"}
    assert (body["balance"], body["step"], body["min_points"], body["max_points"]) == (1330, 100, 100, 1300)
    assert (body["max_amount"], body["point_value"], body["refusal"], body["applied"]) == ("13.00", "0.0100", "", None)
    # Half of a 4.00 order: 200 points at most.
    assert quote(api, order_total="4.00")["max_points"] == 200
    assert body["checkout_token"]


def test_apply_is_idempotent_and_replacing_gives_points_back(api, member):
    token = quote(api, order_total="100.00")["checkout_token"]
    first = api.post(URL, {"checkout_token": token, "points": 500, "order_total": "100.00", "currency": "EUR"})
    again = api.post(URL, {"checkout_token": token, "points": 500, "order_total": "100.00", "currency": "EUR"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    body = first.json()
    assert (body["points"], body["amount"], body["currency"], body["status"]) == (500, "5.00", "EUR", "issued")
    assert body["code"]

    other = api.post(URL, {"checkout_token": token, "points": 300, "order_total": "100.00", "currency": "EUR"})
    assert other.status_code == 201 and other.json()["code"] != body["code"]
    assert Member.objects.get(pk=member.pk).balance == 1030
    assert quote(api, order_total="100.00")["applied"]["points"] == 300

    removed = api.post(URL + "remove/", {"checkout_token": token})
    assert removed.status_code == 200 and removed.json()["status"] == "cancelled"
    assert api.post(URL + "remove/", {"checkout_token": token}).status_code == 204
    assert Member.objects.get(pk=member.pk).balance == 1330


@pytest.mark.parametrize(
    ("points", "status", "code"),
    [
        (-100, 400, "points_not_positive"),
        (0, 400, "points_not_positive"),
        (1.5, 400, "points_not_whole"),
        ("a lot", 400, "points_not_whole"),
        (150, 400, "points_not_in_step"),
        (300, 409, "points_above_cap"),
        (2000, 409, "insufficient_points"),
    ],
)
def test_refusals_have_stable_codes_and_write_nothing(api, member, points, status, code):
    token = quote(api, order_total="4.00")["checkout_token"]
    response = api.post(URL, {"checkout_token": token, "points": points, "order_total": "4.00", "currency": "EUR"})
    assert response.status_code == status and response.json()["code"] == code, response.json()
    assert response.json()["detail"]
    assert not Redemption.objects.exists() and Member.objects.get(pk=member.pk).balance == 1330


def test_a_foreign_or_altered_token_and_another_currency_are_refused(api, other, points_reward):
    fund(other, 500)
    theirs = quote(client_for(other.user))["checkout_token"]
    response = api.post(URL, {"checkout_token": theirs, "points": 100, "order_total": "40.00", "currency": "EUR"})
    assert (response.status_code, response.json()["code"]) == (409, "checkout_token_foreign")
    response = api.post(URL, {"checkout_token": "x" + theirs, "points": 100, "order_total": "40", "currency": "EUR"})
    assert response.json()["code"] == "checkout_token_invalid"
    assert api.get(URL, {"basket": "B", "order_total": "4", "currency": "USD"}).status_code == 404
    assert api.get(URL, {"basket": "B", "order_total": "-4", "currency": "EUR"}).json()["code"] == "invalid"
    assert not Redemption.objects.exists()


def test_anonymous_visitors_get_401(points_reward):
    assert APIClient().get(URL, {"basket": "B", "order_total": "4", "currency": "EUR"}).status_code == 401
