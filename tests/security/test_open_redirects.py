"""No view sends a visitor to another site: open-redirect payloads in ``?next=``, in the form's
``next`` and in ``Referer`` on every customer URL (generated from the URLconf, as the IDOR
matrix), and as the signed target of a click-tracking link."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client
from django.urls import reverse

from loyalty.models import Message, Reward
from loyalty.services.campaigns import click_token
from tests.factories import CampaignFactory, segment_member
from tests.security.test_idor_matrix import OTHER_IDS, ROUTES, TOKEN_ROUTES, World, url_for

pytestmark = pytest.mark.django_db

PAYLOADS = [
    "https://evil.example/",
    "//evil.example/",
    "///evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "/\\/evil.example/",
    "https:/\\evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " //evil.example/",
    "\t//evil.example/",
    "\n//evil.example/",
    "/\t/evil.example/",
    "%2F%2Fevil.example/",
    "/%2F%2Fevil.example/",
    "https://testserver@evil.example/",
    "https://evil.example\\@testserver/",
]


def leaves_the_site(location: str) -> bool:
    """What a browser would make of ``location``: another host, or a script/data URL. Browsers
    drop leading control characters and spaces, tabs and newlines anywhere, read ``\\`` as ``/``
    and take any run of two or more slashes as the start of a host."""
    url = re.sub(r"^[\x00-\x20]+", "", location)
    url = re.sub(r"[\t\n\r]", "", url).replace("\\", "/")
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", url)
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        return True
    rest = url[scheme.end():] if scheme else url
    if rest.startswith("//"):
        host = re.split(r"[/?#]", rest.lstrip("/"), maxsplit=1)[0].rsplit("@", 1)[-1].lower()
        return host != "testserver"
    return bool(scheme)  # "http:evil.example": a host for browsers


def test_the_checker_itself():
    assert all(leaves_the_site(payload) for payload in PAYLOADS if not payload.startswith(("%", "/%")))
    assert not leaves_the_site("/account/") and not leaves_the_site("http://testserver/cart/")


def hrefs(body: str) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', body)


ROUTES_TO_PROBE = [r for r in ROUTES if r.name not in TOKEN_ROUTES]
EXTRA_URLS = ["set_language", "admin:login", "shop:logout"]


@pytest.mark.parametrize("route", ROUTES_TO_PROBE, ids=lambda r: r.name)
def test_no_view_redirects_off_site(route):
    world = World()
    Reward.objects.create(program=world.program, name="Tote", kind="fixed", value=5, points_cost=10)
    urls = [url_for(route, world)]
    if route.name == "loyalty:redeem":  # also the customer's own reward, where the page renders and redirects
        urls.append(reverse("loyalty:redeem", args=[Reward.objects.get(program=world.program).pk]))
    for user in (None, world.maria_user):
        client = Client()
        if user is not None:
            client.force_login(user)
        for url in urls:
            for payload in PAYLOADS:
                for method in ("get", "post"):
                    data = {"next": payload, "token": "not-a-uuid"}
                    response = getattr(client, method)(url, data, HTTP_REFERER=payload)
                    where = f"{method.upper()} {url} next={payload!r} as {user or 'anonymous'}"
                    location = response.get("Location", "")
                    assert not (location and leaves_the_site(location)), f"{where} -> {location}"
                    if response.status_code == 200 and "html" in response.get("Content-Type", ""):
                        bad = [h for h in hrefs(response.content.decode()) if leaves_the_site(html.unescape(h))]
                        assert not bad, f"{where} links to {bad}"


@pytest.mark.parametrize("name", EXTRA_URLS)
def test_djangos_own_redirecting_views_stay_on_site(name, client, customer):
    client.force_login(customer)
    for payload in PAYLOADS:
        response = client.post(reverse(name), {"next": payload, "language": "de"}, HTTP_REFERER=payload)
        location = response.get("Location", "")
        assert not (location and leaves_the_site(location)), f"{name} next={payload!r} -> {location}"


def test_a_click_link_signed_with_an_off_site_target_is_refused(program):
    member = segment_member(program, email="ann@example.com")
    campaign = CampaignFactory(program=program)
    message = Message.objects.create(
        campaign=campaign, program=program, member=member, cycle="c", created_at=member.joined_at
    )
    for payload in PAYLOADS:
        response = Client().get(reverse("loyalty:track_click", args=[click_token(message, payload)]))
        location = response.get("Location", "")
        assert not (location and leaves_the_site(location)), f"click target {payload!r} -> {location}"


def test_every_probed_route_has_its_parameters():
    assert all((route.name, param) in OTHER_IDS for route in ROUTES_TO_PROBE for param in route.params)
