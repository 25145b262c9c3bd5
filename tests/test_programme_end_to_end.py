"""A shop manager sets the programme up in the admin; customers going through the demo shop
see every piece take effect: tiers, a double-points weekend, a 5 EUR reward, referral bonuses."""

import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from loyalty.models import EarningRule, Member, Redemption, Reward, Tier
from shop.models import Order, Product
from tests.factories import ProgramFactory

pytestmark = pytest.mark.django_db


def admin_add(client: Client, model: str, data: dict) -> None:
    response = client.post(reverse(f"admin:loyalty_{model}_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]


def split(dt) -> dict:
    local = timezone.localtime(dt)
    return {"0": local.strftime("%Y-%m-%d"), "1": local.strftime("%H:%M:%S")}


def buy(client: Client, product: Product, quantity: int, code: str = "") -> Order:
    client.post(reverse("shop:cart_add"), {"product": product.pk, "quantity": quantity})
    response = client.post(reverse("shop:checkout"), {"discount_code": code, "confirm": "on"}, follow=True)
    number = re.search(r"/orders/([0-9A-Z-]+)/", response.redirect_chain[-1][0]).group(1)
    client.post(reverse("shop:order_pay", args=[number]), {"action": "pay"})
    return Order.objects.get(number=number)


def register(client: Client, email: str) -> None:
    data = {"email": email, "first_name": "Test", "password": "A-long-pass-42"}
    response = client.post(reverse("shop:register"), data)
    assert response.status_code == 302


def test_staff_configure_and_customers_see_it_take_effect(admin_client, django_capture_on_commit_callbacks):
    program = ProgramFactory(pending_days=0)
    now = timezone.now()
    tiers = ((1, "Bronze", "0", "1"), (2, "Silver", "100", "1.5"), (3, "Gold", "300", "2"))
    for rank, name, threshold, multiplier in tiers:
        admin_add(
            admin_client,
            "tier",
            {
                "program": program.pk,
                "name": name,
                "rank": rank,
                "colour": "#8c6d1f",
                "benefits": "",
                "qualifies_by": "spend",
                "threshold": threshold,
                "window_days": 365,
                "multiplier": multiplier,
                "entry_bonus_points": 0,
            },
        )
    rule = {"program": program.pk, "is_active": "on", "multiplier": "1", "points": 0, "action_key": ""}
    start, end = split(now - timedelta(hours=1)), split(now + timedelta(days=2))
    weekend = {"name": "Double points weekend", "kind": "multiplier", "multiplier": "2"}
    window = {"active_from_0": start["0"], "active_from_1": start["1"]}
    window |= {"active_until_0": end["0"], "active_until_1": end["1"]}
    admin_add(admin_client, "earningrule", {**rule, **weekend, **window})
    admin_add(admin_client, "earningrule", {**rule, "name": "You referred a friend", "kind": "referrer", "points": 250})
    admin_add(admin_client, "earningrule", {**rule, "name": "Referred by a friend", "kind": "referee", "points": 150})
    admin_add(
        admin_client,
        "reward",
        {
            "program": program.pk,
            "name": "5 EUR off",
            "description": "",
            "is_active": "on",
            "kind": "fixed",
            "value": "5.00",
            "product_reference": "",
            "code_valid_days": 30,
            "points_cost": 500,
        },
    )
    assert (Tier.objects.count(), EarningRule.objects.count(), Reward.objects.count()) == (3, 3, 1)
    product = Product.objects.create(name="Olive oil", slug="olive-oil", price=Decimal("40.00"))

    anna = Client()
    with django_capture_on_commit_callbacks(execute=True):
        register(anna, "anna@example.com")
        buy(anna, product, 3)  # 120 EUR in the double weekend: 240 points, Silver reached
    member = Member.objects.select_related("tier").get(user__email="anna@example.com")
    assert (member.balance, member.tier.name) == (240, "Silver")
    page = anna.get(reverse("shop:account")).content.decode()
    assert "Silver" in page and "Spend 180.00 EUR more to reach Gold" in page

    # A friend signs up through Anna's link and pays: both bonuses, once.
    friend = Client()
    with django_capture_on_commit_callbacks(execute=True):
        friend.get(reverse("loyalty:referral", args=[member.referral_code]))
        register(friend, "ben@example.com")
        buy(friend, product, 1)  # 40 EUR x2 (weekend) = 80, +150 referee bonus
    member.refresh_from_db()
    assert member.balance == 240 + 250
    assert Member.objects.get(user__email="ben@example.com").balance == 80 + 150

    # Anna buys again as Silver (x1.5) in the weekend (x2): 40 x 3 = 120 points; then redeems 5 EUR off.
    with django_capture_on_commit_callbacks(execute=True):
        buy(anna, product, 1)
    member.refresh_from_db()
    assert member.balance == 490 + 120
    reward = Reward.objects.get()
    confirm = anna.get(reverse("loyalty:redeem", args=[reward.pk])).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', confirm).group(1)
    anna.post(reverse("loyalty:redeem", args=[reward.pk]), {"token": token, "next": "/account/"})
    code = Redemption.objects.get().code
    assert code in anna.get(reverse("shop:account")).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        order = buy(anna, product, 1, code=code)
    assert order.total == Decimal("35.00")
    call_command("loyalty_check_ledger", stdout=StringIO())
