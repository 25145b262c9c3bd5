"""Points at checkout in a real headless Chromium (Playwright) against the live server: a member
chooses points in the cart, sees the total drop, pays, and finds "Paid with 500 points" on the
receipt and in the account history. Screenshots of the cart (wide and narrow), the receipt and
the account page go to ``$SHOTS_DIR`` when it is set (else a temporary directory).

Needs the ``playwright`` package and Debian's ``/usr/bin/chromium`` (never ``playwright install``).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from loyalty.models import Member, Redemption
from loyalty.services import member_enroll, points_adjust
from shop.models import Order, Product
from tests.chromium import TIMEOUT_MS  # skips this module without Chromium or playwright
from tests.factories import ProgramFactory, UserFactory, points_discount_reward

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDE, NARROW = {"width": 1400, "height": 900}, {"width": 375, "height": 812}


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_pay_part_of_an_order_with_points_from_the_cart(browser, live_server, shots):
    program = ProgramFactory(pending_days=0)
    points_discount_reward(program, max_order_share=Decimal("50"))
    user = UserFactory(email="giulia@example.com", first_name="Giulia")
    member = member_enroll(program=program, user=user)[0]
    points_adjust(member=member, points=1330, reason="Welcome gift")
    oil = Product.objects.create(name="Olio extravergine", slug="olio-extravergine", price=Decimal("40.00"))

    context = browser.new_context(base_url=live_server.url, locale="en-GB", viewport=WIDE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/account/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("secret-pass-123")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/account/$"))

    page.goto(oil.get_absolute_url())
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name=re.compile(r"^Cart")).click()
    total = page.locator("#cart-total")
    assert total.inner_text() == "€40.00"
    page.get_by_role("heading", name="Use my points").wait_for()
    page.get_by_text("You have 1330 points, worth €13.30.").wait_for()
    page.screenshot(path=shots / "cart-1400-before.png", full_page=True)

    # Choose 500 points (the form's labelled drop-down), no JavaScript involved.
    page.get_by_label("Points to use").select_option("500")
    page.get_by_role("button", name="Use points").click()
    page.get_by_text("500 points take €5.00 off your order.").wait_for()
    assert total.inner_text() == "€35.00"
    assert page.get_by_text("500 loyalty points").is_visible()
    page.screenshot(path=shots / "cart-1400.png", full_page=True)
    page.set_viewport_size(NARROW)
    page.screenshot(path=shots / "cart-375.png", full_page=True)
    page.set_viewport_size(WIDE)
    assert Member.objects.get(pk=member.pk).balance == 830

    page.get_by_role("link", name="Go to checkout").click()
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url(re.compile(r"/orders/[^/]+/pay/$"))
    number = page.url.rstrip("/").split("/")[-2]
    page.get_by_role("button", name="Pay now (demo payment)").click()
    page.get_by_text("Thank you! Your payment was received.").wait_for()
    page.get_by_text("Paid with 500 points (−€5.00)").wait_for()
    page.screenshot(path=shots / "confirmation-1400.png", full_page=True)
    page.set_viewport_size(NARROW)
    page.screenshot(path=shots / "confirmation-375.png", full_page=True)
    page.set_viewport_size(WIDE)

    order = Order.objects.get(number=number)
    assert (order.total, order.discount_total, order.status) == (Decimal("35.00"), Decimal("5.00"), "paid")
    assert Redemption.objects.get(member=member).status == "used"

    page.goto("/account/")
    page.get_by_role("cell", name="Paid with 500 points (−€5.00)").wait_for()
    assert Redemption.objects.get(member=member).code not in page.content()  # never shown
    page.screenshot(path=shots / "account-1400.png", full_page=True)
    page.set_viewport_size(NARROW)
    page.screenshot(path=shots / "account-375.png", full_page=True)
    context.close()
