"""End to end in a real headless Chromium (Playwright) against the live server.

A new customer signs up, buys through cart, checkout and payment, sees the points on the account
page, redeems a reward (with its confirmation step), uses the code at checkout and sees the
balance move. Then the language switcher turns the shop German.

Needs the ``playwright`` package and Debian's ``/usr/bin/chromium`` (never ``playwright install``;
``.ci/run`` installs chromium when it is missing). Without either the module is skipped.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from loyalty.models import Member, Reward
from shop.models import DiscountCode, Order, Product
from tests.chromium import TIMEOUT_MS  # skips this module without Chromium or playwright
from tests.factories import ProgramFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def balance(page) -> int:
    page.goto("/account/")
    return int(page.locator(".loyalty-balance strong").first.inner_text())


def buy(page, product: Product, *, code: str = "") -> str:
    """Cart -> checkout -> pay, as a customer clicks it; returns the order number."""
    page.goto(product.get_absolute_url())
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name=re.compile(r"^Cart")).click()
    page.get_by_role("link", name="Go to checkout").click()
    if code:
        page.get_by_label("Discount code").fill(code)
        page.get_by_role("button", name="Apply").click()
        page.get_by_text(re.compile(rf"{code} takes .+ off this order\.")).wait_for()
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url(re.compile(r"/orders/[^/]+/pay/$"))
    number = page.url.rstrip("/").split("/")[-2]
    page.get_by_role("button", name="Pay now (demo payment)").click()
    page.get_by_text("Thank you! Your payment was received.").wait_for()
    return number


def test_sign_up_buy_earn_redeem_and_spend_the_code(page):
    program = ProgramFactory(pending_days=0)  # 1 point per euro, spendable at once
    reward = Reward.objects.create(
        program=program, name="5 € off", kind=Reward.Kind.FIXED, value=Decimal("5.00"), points_cost=50
    )
    oil = Product.objects.create(name="Olio extravergine", slug="olio-extravergine", price=Decimal("60.00"))

    # Sign up.
    page.goto("/account/register/")
    page.get_by_label("Email address").fill("giulia@example.com")
    page.get_by_label("Password").fill("Oliv3-grove-2026")
    page.get_by_role("button", name="Create account").click()
    page.get_by_text("Welcome! Your account is ready.").wait_for()

    # Buy: 60.00 EUR earns 60 points.
    first = buy(page, oil)
    assert Order.objects.get(number=first).status == Order.Status.PAID
    assert balance(page) == 60

    # Redeem the reward: a confirmation page first, then the code.
    # The reward's name is visually hidden text in the link (its accessible name).
    page.get_by_role("link", name=re.compile(rf"^Redeem\s*:\s*{re.escape(reward.name)}$")).click()
    page.get_by_role("heading", name=reward.name).wait_for()
    page.get_by_role("button", name="Redeem for 50 points").click()
    ready = page.get_by_text(re.compile(r"Your code \S+ for 5 € off is ready"))
    ready.wait_for()
    code = re.search(r"Your code (\S+) for", ready.inner_text()).group(1)
    assert balance(page) == 10
    assert DiscountCode.objects.filter(code=code, used_at__isnull=True).exists()

    # Spend it: 5 EUR off the next 60 EUR order, which earns 55 points.
    second = buy(page, oil, code=code)
    order = Order.objects.get(number=second)
    assert (order.discount_code, order.discount_total, order.total) == (code, Decimal("5.00"), Decimal("55.00"))
    assert balance(page) == 65
    assert DiscountCode.objects.get(code=code).order == order  # spent (loyalty's expiry task marks it used)
    assert Member.objects.get(user__email="giulia@example.com").balance == 65

    # The language switcher: a plain form, no JavaScript needed.
    page.get_by_label("Language").select_option("de")
    page.get_by_role("button", name="Change language").click()
    page.get_by_role("link", name="Mein Konto").wait_for()
    assert page.locator("html").get_attribute("lang") == "de"
