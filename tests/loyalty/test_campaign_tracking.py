"""What members do with a campaign email: one-click unsubscribe, the open pixel and tracked links.
The links are taken from a real sent email; tokens are signed, and a changed one changes nothing."""

import re
from datetime import datetime

import pytest
from django.test import Client
from django.utils import timezone

from loyalty.models import Member, Message
from loyalty.services.campaigns import (
    campaign_run,
    click_token,
    message_send,
    tracking_token,
    unsubscribe_token,
)
from loyalty.views import PIXEL
from tests.factories import CampaignFactory, segment_member

pytestmark = pytest.mark.django_db

SITE = "http://localhost:8000"


@pytest.fixture
def sent(program, mailoutbox):
    """A sent campaign email and its message."""
    campaign = CampaignFactory(program=program)
    segment_member(program, email="ann@example.com")
    campaign_run(campaign=campaign, now=timezone.make_aware(datetime(2026, 3, 2, 10, 30)))
    message = Message.objects.get()
    assert message_send(message_id=message.pk) == "sent"
    [email] = mailoutbox
    message.refresh_from_db()
    return message, email


def local(url: str) -> str:
    assert url.startswith(SITE), url
    return url[len(SITE) :]


def unsubscribe_path(email) -> str:
    return local(email.extra_headers["List-Unsubscribe"].strip("<>"))


def html_of(email) -> str:
    return email.alternatives[0][0]


def tampered(path: str) -> str:
    """The same link with one character of the token's signature changed."""
    token = re.search(r"/loyalty/(?:unsubscribe|m)/([^/]+)/", path).group(1)
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    return path.replace(token, changed)


def consent(message) -> tuple[bool, object]:
    member = Member.objects.get(pk=message.member_id)
    return member.marketing_consent, member.consent_changed_at


# --- unsubscribe --------------------------------------------------------------------------------------


def test_the_unsubscribe_link_shows_a_page_and_changes_nothing(client, sent):
    message, email = sent

    response = client.get(unsubscribe_path(email))

    assert response.status_code == 200
    assert "Unsubscribe from offers" in response.text
    assert '<form method="post">' in response.text
    assert consent(message)[0] is True
    message.refresh_from_db()
    assert message.unsubscribed_at is None


def test_the_button_opts_out_once(client, sent):
    message, email = sent

    response = client.post(unsubscribe_path(email))

    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    opted_out, changed_at = consent(message)
    assert opted_out is False and changed_at is not None
    message.refresh_from_db()
    first = message.unsubscribed_at
    assert first is not None

    assert client.post(unsubscribe_path(email)).status_code == 200  # again: nothing moves
    message.refresh_from_db()
    assert (consent(message), message.unsubscribed_at) == ((False, changed_at), first)
    assert "already unsubscribed" in client.get(unsubscribe_path(email)).text


def test_the_mail_clients_one_click_post_needs_no_csrf_token(sent):
    message, email = sent
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(
        unsubscribe_path(email), "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    assert consent(message)[0] is False


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_unsubscribe_link_is_refused_and_changes_nothing(client, sent, method):
    message, email = sent

    response = getattr(client, method)(tampered(unsubscribe_path(email)))

    assert response.status_code == 400
    assert "This link is not valid" in response.text
    assert consent(message)[0] is True


def test_a_token_made_for_another_purpose_is_no_unsubscribe_token(client, sent):
    message, _email = sent

    response = client.post(f"/loyalty/unsubscribe/{tracking_token(message)}/")

    assert response.status_code == 400
    assert consent(message)[0] is True


def test_an_unsubscribe_token_without_a_message_still_opts_the_member_out(client, sent):
    message, _email = sent
    member = Member.objects.get(pk=message.member_id)

    assert client.post(f"/loyalty/unsubscribe/{unsubscribe_token(member)}/").status_code == 200

    assert consent(message)[0] is False
    message.refresh_from_db()
    assert message.unsubscribed_at is None  # no message named: the opt-out is not credited to this email


# --- the open pixel --------------------------------------------------------------------------------------


def test_the_open_pixel_records_the_first_open(client, sent):
    message, email = sent
    pixel = local(re.search(r'<img src="([^"]+open\.gif)"', html_of(email)).group(1))

    response = client.get(pixel)

    assert response.status_code == 200
    assert (response["Content-Type"], response["Cache-Control"], response.content) == ("image/gif", "no-store", PIXEL)
    message.refresh_from_db()
    first = message.opened_at
    assert first is not None
    client.get(pixel)
    message.refresh_from_db()
    assert message.opened_at == first


def test_a_bad_pixel_token_still_returns_the_gif_and_records_nothing(client, sent):
    message, email = sent
    pixel = local(re.search(r'<img src="([^"]+open\.gif)"', html_of(email)).group(1))

    response = client.get(tampered(pixel))

    assert (response.status_code, response.content) == (200, PIXEL)
    message.refresh_from_db()
    assert message.opened_at is None


# --- tracked links ----------------------------------------------------------------------------------------


def test_a_tracked_link_redirects_and_records_the_first_click(client, sent):
    message, email = sent
    [link] = re.findall(r'href="(http://localhost:8000/loyalty/m/[^"]+/click/)"', html_of(email))

    response = client.get(local(link))

    assert response.status_code == 302
    assert response["Location"] == f"{SITE}/"  # the default template's "Visit the shop" button
    message.refresh_from_db()
    first = message.clicked_at
    assert first is not None and message.opened_at == first  # a click means it was opened
    client.get(local(link))
    message.refresh_from_db()
    assert message.clicked_at == first


def test_a_tampered_link_is_refused(client, sent):
    message, email = sent
    [link] = re.findall(r'href="(http://localhost:8000/loyalty/m/[^"]+/click/)"', html_of(email))

    response = client.get(tampered(local(link)))

    assert response.status_code == 400
    message.refresh_from_db()
    assert message.clicked_at is None


@pytest.mark.parametrize(
    "target", ["https://evil.example/login", "//evil.example/", "javascript:alert(1)", "http://localhost:8001/"]
)
def test_a_signed_link_to_a_foreign_site_is_no_open_redirect(client, sent, target):
    message, _email = sent

    response = client.get(f"/loyalty/m/{click_token(message, target)}/click/")

    assert response.status_code == 400
    assert "Location" not in response
    message.refresh_from_db()
    assert message.clicked_at is None


def test_a_signed_relative_link_on_our_site_redirects(client, sent):
    message, _email = sent

    response = client.get(f"/loyalty/m/{click_token(message, '/products/soap/')}/click/")

    assert (response.status_code, response["Location"]) == (302, "/products/soap/")
