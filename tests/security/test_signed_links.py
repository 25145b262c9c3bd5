"""Every signed link (the token is the credential): a tampered, expired, cross-purpose or forged
token is refused and changes nothing; the genuine one works. ``LINKS`` must name every route with
a token parameter (``test_idor_matrix.TOKEN_ROUTES`` is checked against the URLconf)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from loyalty.models import Member, Message, Purchase, Survey, SurveyInvitation
from loyalty.services import campaigns as campaign_tokens
from loyalty.services import guests, surveys
from tests.factories import CampaignFactory, paid_order, segment_member
from tests.security.test_idor_matrix import TOKEN_ROUTES

pytestmark = pytest.mark.django_db

PUBLIC_DEMO_KEY = "demo-only-insecure-key-change-me-in-production-0123456789"


@contextmanager
def clock_back(delta: timedelta):
    """Tokens signed in here carry a timestamp ``delta`` in the past."""
    real = time.time
    time.time = lambda: real() - delta.total_seconds()
    try:
        yield
    finally:
        time.time = real


class Mail:
    """A sent campaign email to Ann, her guest order and a survey invitation: one of everything."""

    def __init__(self, program) -> None:
        self.member = segment_member(program, email="ann@example.com")
        campaign = CampaignFactory(program=program)
        self.message = Message.objects.create(
            campaign=campaign,
            program=program,
            member=self.member,
            cycle="c1",
            status=Message.Status.SENT,
            created_at=timezone.now(),
            sent_at=timezone.now(),
        )
        self.guest_order = paid_order(total="20.00", email="guest@example.com")
        survey = Survey.objects.create(program=program, name="After your order", is_active=True)
        purchase = Purchase.objects.create(
            program=program,
            member=self.member,
            order_reference="S-1",
            email="ann@example.com",
            amount="10.00",
            currency="EUR",
            status=Purchase.Status.PAID,
            occurred_at=timezone.now() - timedelta(days=8),
        )
        self.invitation = SurveyInvitation.objects.create(
            survey=survey, program=program, member=self.member, purchase=purchase, created_at=timezone.now()
        )

    def state(self) -> tuple:
        message = Message.objects.get(pk=self.message.pk)
        return (
            Member.objects.get(pk=self.member.pk).marketing_consent,
            message.opened_at,
            message.clicked_at,
            SurveyInvitation.objects.get(pk=self.invitation.pk).opened_at,
            Purchase.objects.get(order_reference=self.guest_order.number).member_id,
        )


#: route -> (make a genuine token for the mail, its salt, a payload of the right shape)
LINKS = {
    "loyalty:unsubscribe": (
        lambda m: campaign_tokens.unsubscribe_token(m.member, message=m.message),
        campaign_tokens.UNSUBSCRIBE_SALT,
        lambda m: {"m": m.member.pk},
    ),
    "loyalty:track_open": (
        lambda m: campaign_tokens.tracking_token(m.message),
        campaign_tokens.OPEN_SALT,
        lambda m: m.message.pk,
    ),
    "loyalty:track_click": (
        lambda m: campaign_tokens.click_token(m.message, "http://testserver/"),
        campaign_tokens.CLICK_SALT,
        lambda m: {"m": m.message.pk, "u": "http://testserver/"},
    ),
    "loyalty:survey": (
        lambda m: surveys.survey_token(m.invitation),
        surveys.TOKEN_SALT,
        lambda m: m.invitation.pk,
    ),
    "loyalty:guest_claim": (
        lambda m: guests.guest_claim_token(order_reference=m.guest_order.number, email="guest@example.com"),
        guests.CLAIM_SALT,
        lambda m: {"o": m.guest_order.number, "e": "guest@example.com"},
    ),
}
#: The longest a token of each route lives.
MAX_AGES = {
    "loyalty:unsubscribe": campaign_tokens.UNSUBSCRIBE_MAX_AGE,
    "loyalty:track_open": campaign_tokens.OPEN_MAX_AGE,
    "loyalty:track_click": campaign_tokens.CLICK_MAX_AGE,
    "loyalty:survey": surveys.LINK_MAX_AGE,
    "loyalty:guest_claim": guests.CLAIM_MAX_AGE,
}


def test_every_signed_link_route_is_covered():
    assert set(LINKS) == set(MAX_AGES) == TOKEN_ROUTES


def tampered(token: str) -> list[str]:
    payload, _, rest = token.partition(":")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    return [flipped + ":" + rest, token[:-1] + ("x" if token[-1] != "x" else "y"), token + "x", "", "garbage"]


def bad_tokens(route: str, mail: Mail) -> dict[str, str]:
    make, salt, payload = LINKS[route]
    others = {name: LINKS[name][0](mail) for name in LINKS if name != route}
    with clock_back(MAX_AGES[route] + timedelta(days=1)):
        expired = make(mail)
    return {
        **{f"tampered {n}": token for n, token in enumerate(tampered(make(mail))) if token},
        **{f"a {name} token": token for name, token in others.items()},
        "expired": expired,
        "signed with the published demo key": signing.dumps(payload(mail), key=PUBLIC_DEMO_KEY, salt=salt),
        "signed with no salt": signing.dumps(payload(mail)),
    }


def visit(client: Client, route: str, token: str) -> list:
    url = reverse(route, args=[token])
    responses = [client.get(url)]
    if route in ("loyalty:unsubscribe", "loyalty:survey"):
        responses.append(client.post(url, {"nps": "10"}))
    return responses


@pytest.mark.parametrize("route", sorted(LINKS))
def test_a_bad_token_is_refused_and_changes_nothing(route, program):
    mail = Mail(program)
    before = mail.state()
    for case, token in bad_tokens(route, mail).items():
        client = Client()
        for response in visit(client, route, token):
            if route == "loyalty:track_open":  # always the pixel, so a bad token shows nothing odd
                assert response["Content-Type"] == "image/gif", case
            else:
                assert response.status_code == 400, f"{route}: {case} answered {response.status_code}"
            assert "Location" not in response, case
        assert guests.SESSION_KEY not in client.session, case
        assert mail.state() == before, f"{route}: {case} changed something"


@pytest.mark.parametrize("route", sorted(LINKS))
def test_the_genuine_token_works_until_it_expires(route, program):
    mail = Mail(program)
    before = mail.state()
    with clock_back(MAX_AGES[route] - timedelta(days=1)):
        old_but_valid = LINKS[route][0](mail)

    responses = visit(Client(), route, old_but_valid)

    assert all(response.status_code in (200, 302) for response in responses), [r.status_code for r in responses]
    if route != "loyalty:guest_claim":  # the claim happens at sign-in
        assert mail.state() != before
