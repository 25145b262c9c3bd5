"""Run inside the plain shop that test_from_docs.py builds: a customer's life, through the shop's own code.

``python scenario.py`` in the project's directory (next to manage.py). Every step asserts; the
last line printed is ``SCENARIO OK {json}`` with what was seen.
"""

import json
import os
import re
import sys
from decimal import Decimal as D

import django

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from orders.checkout import (  # noqa: E402
    place_order,
    place_order_with_code,
    return_money,
    take_payment,
    void_order,
    void_order_and_free_code,
)
from orders.models import Order  # noqa: E402

from loyalty.exceptions import CodeRefused  # noqa: E402
from loyalty.models import Member, OrderEvent, Program, Redemption, Reward, RewardCode  # noqa: E402

User = get_user_model()
seen = {}


def step(name, value):
    seen[name] = value
    print(f"- {name}: {value}", flush=True)


def balance(user) -> int:
    return Member.objects.get(user=user).balance


def refused(**kwargs) -> str:
    orders_before = Order.objects.count()
    try:
        place_order_with_code(**kwargs)
    except CodeRefused as refusal:
        assert Order.objects.count() == orders_before, "a refused code must leave no order behind"
        return refusal.code
    raise AssertionError(f"the code was taken: {kwargs}")


def redeem_on_the_web(client: Client, reward: Reward) -> Redemption:
    """What the customer does: the panel's Redeem button, the confirmation page, its form."""
    page = client.get(reverse("loyalty:redeem", args=[reward.pk]) + "?next=/account/")
    html = page.content.decode()
    assert page.status_code == 200 and "Plain Shop" in html, html[:2000]  # in the shop's layout.html
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    answer = client.post(reverse("loyalty:redeem", args=[reward.pk]), {"token": token, "next": "/account/"})
    assert answer.status_code == 302, answer.status_code
    redemption = Redemption.objects.filter(reward=reward).order_by("-pk").first()
    assert redemption is not None, [str(m) for m in client.get("/account/").context["messages"]]
    return redemption


# Staff set up the programme in the admin (install.md step 7); a shell does the same here.
program = Program.objects.create(name="Plain Rewards", slug="rewards", currency="EUR")
five_off = Reward.objects.create(
    program=program, name="5 € off", kind="fixed", value=D("5.00"), min_order_value=D("20.00"), points_cost=50
)
free_shipping = Reward.objects.create(program=program, name="Free shipping", kind="free_shipping", points_cost=20)

# 0. The team's superuser is not a member; a customer who registers is.
User.objects.create_superuser("boss", "boss@example.com", "sandbox-pass-0")
ada = User.objects.create_user("ada", "ada@example.com", "sandbox-pass-1")
bob = User.objects.create_user("bob", "bob@example.com", "sandbox-pass-2")
assert Member.objects.filter(user=ada).exists() and not Member.objects.filter(user__username="boss").exists()
step("enrolment", "ada and bob members at registration, the superuser not")

# 1. An order through the shop's own checkout: 60.00 + 4.90 shipping, paid: 64 points.
order1 = take_payment(place_order(buyer=ada, subtotal=D("60.00")))
assert balance(ada) == 64, balance(ada)
step("order 1 paid", f"{order1.reference} {order1.amount_due} EUR, balance {balance(ada)}")

# 2. Two refunds of 5.00: the shop has no refund ids, the docs' running-total id keeps them apart.
return_money(order1, D("5.00"))
return_money(order1, D("5.00"))
refunds = OrderEvent.objects.filter(order_reference=order1.reference, kind="refunded")
assert sorted(refunds.values_list("event_key", flat=True)) == [
    f"order:{order1.reference}:refunded-to:10.00",
    f"order:{order1.reference}:refunded-to:5.00",
]
assert balance(ada) == 64 - 9, balance(ada)  # floor(64 x 10.00 / 64.90) = 9 taken back in all
step("two refunds of 5.00", f"2 events, balance {balance(ada)}")

# 3. She redeems "5 € off" on loyalty's page (it extends the shop's layout).
client = Client(HTTP_HOST="localhost")
client.force_login(ada)
account = client.get("/account/").content.decode()
assert "Enough for “5 € off”" in account and "Worth" not in account, account[:3000]
redemption = redeem_on_the_web(client, five_off)
code = redemption.code
assert RewardCode.objects.get(code=code).member.user == ada  # loyalty's own, personal code
assert balance(ada) == 55 - 50, balance(ada)
account = client.get("/account/").content.decode()
assert code in account and "valid until" in account
step("redeemed", f"{code}, balance {balance(ada)}")

# 4. The shop's checkout refuses it to another customer and below the minimum, leaving no order.
assert refused(buyer=bob, subtotal=D("30.00"), code=code) == "wrong_customer"
assert refused(buyer=ada, subtotal=D("15.00"), code=code) == "below_minimum"
assert refused(buyer=ada, subtotal=D("30.00"), code="LOY-NOTACODE") == "code_unknown"
step("refusals", "wrong_customer, below_minimum, code_unknown; no orders left behind")

# 5. She pays with it: 30.00 + 4.90 - 5.00 = 29.90, which earns 29 points.
order2 = place_order_with_code(buyer=ada, subtotal=D("30.00"), code=f"  {code.lower()} ")
assert order2.amount_due == D("29.90"), order2.amount_due
order2 = take_payment(order2)
redemption.refresh_from_db()
assert (redemption.status, redemption.order_reference) == ("used", order2.reference), redemption.status
assert balance(ada) == 5 + 29, balance(ada)
assert refused(buyer=ada, subtotal=D("30.00"), code=code) == "code_used"
account = client.get("/account/").content.decode()
assert f"Used on order #{order2.reference}" in account
step("order 2 with the code", f"{order2.reference} {order2.amount_due} EUR, used, balance {balance(ada)}")

# 6. Free shipping, on an order voided before payment: the code works again on the next one.
shipping_code = redeem_on_the_web(client, free_shipping).code
order3 = place_order_with_code(buyer=ada, subtotal=D("10.00"), code=shipping_code)
assert order3.amount_due == D("10.00"), order3.amount_due  # the 4.90 shipping dropped
void_order_and_free_code(order3)
assert Redemption.objects.get(code=shipping_code).status == "issued"
order4 = take_payment(place_order_with_code(buyer=ada, subtotal=D("12.00"), code=shipping_code))
assert Redemption.objects.get(code=shipping_code).order_reference == order4.reference
step("free shipping", f"voided {order3.reference} released the code; used on {order4.reference}")

# 7. A paid order voided: its 12 points are taken back ("Order #… cancelled" in the history).
before = balance(ada)
void_order(order4)
assert balance(ada) == before - 12, balance(ada)
account = client.get("/account/").content.decode()
assert f"Order #{order4.reference} cancelled" in account
step("order 4 voided", f"balance {before} -> {balance(ada)}")

# 8. Every event was processed; the ledger adds up.
statuses = sorted(set(OrderEvent.objects.values_list("status", flat=True)))
assert statuses == [OrderEvent.Status.PROCESSED], statuses
call_command("loyalty_check_ledger")
step("events", f"{OrderEvent.objects.count()} events, all processed; loyalty_check_ledger clean")

print("SCENARIO OK " + json.dumps(seen), flush=True)
