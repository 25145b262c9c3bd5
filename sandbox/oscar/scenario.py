"""Run inside the oscar project that test_from_docs.py builds: a customer's life, through oscar's own code.

``python scenario.py`` in the project's directory (next to manage.py). Every step asserts;
the last line printed is ``SCENARIO OK {json}`` with what was seen.
"""

import json
import os
import sys
from decimal import Decimal as D

import django

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "frobshop.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from oscar.core.loading import get_class, get_model  # noqa: E402

from loyalty.adapters import get_adapter  # noqa: E402
from loyalty.adapters.base import DiscountStatus  # noqa: E402
from loyalty.models import Member, OrderEvent, PointsEntry, Program, Purchase, Reward  # noqa: E402
from loyalty.services import redeem  # noqa: E402

Basket = get_model("basket", "Basket")
Partner = get_model("partner", "Partner")
Product = get_model("catalogue", "Product")
ProductClass = get_model("catalogue", "ProductClass")
StockRecord = get_model("partner", "StockRecord")
Voucher = get_model("voucher", "Voucher")
Applicator = get_class("offer.applicator", "Applicator")
OrderCreator = get_class("order.utils", "OrderCreator")
OrderTotalCalculator = get_class("checkout.calculators", "OrderTotalCalculator")
Selector = get_class("partner.strategy", "Selector")
SurchargeApplicator = get_class("checkout.applicator", "SurchargeApplicator")
Free = get_class("shipping.methods", "Free")

seen = {}


def step(name, value):
    seen[name] = value
    print(f"- {name}: {value}", flush=True)


currency = settings.OSCAR_DEFAULT_CURRENCY
program = Program.objects.create(name="Frobshop Rewards", slug="rewards", currency=currency)
ada = get_user_model().objects.create_user(username="ada", email="ada@example.com", password="sandbox-pass-1")

books = ProductClass.objects.create(name="Books")
book = Product.objects.create(product_class=books, title="The Loyal Reader", upc="BOOK-1")
warehouse = Partner.objects.create(name="Warehouse")
StockRecord.objects.create(product=book, partner=warehouse, partner_sku="B-1", price=D("50.00"), num_in_stock=20)


def basket_for(user, quantity=2):
    basket = Basket.objects.create(owner=user)
    basket.strategy = Selector().strategy(user=user)
    basket.add_product(book, quantity=quantity)
    return basket


def place(basket, user=None, **kwargs):
    """What oscar's PaymentDetailsView.handle_order_placement ends in: OrderCreator.place_order."""
    Applicator().apply(basket, user)
    method = Free()
    charge = method.calculate(basket)
    surcharges = SurchargeApplicator().get_applicable_surcharges(basket)
    total = OrderTotalCalculator().calculate(basket, charge, surcharges)
    order = OrderCreator().place_order(
        basket=basket,
        total=total,
        shipping_method=method,
        shipping_charge=charge,
        user=user,
        surcharges=surcharges,
        **kwargs,
    )
    basket.submit()
    return order


# 1. A signed-in customer orders 2 x 50.00.
order1 = place(basket_for(ada), ada)
member = Member.objects.get(user=ada, program=program)
step("order 1", f"{order1.number} {order1.total_incl_tax} {order1.currency}, status {order1.status}")
assert member.balance == 100, member.balance
earn = PointsEntry.objects.get(member=member, kind=PointsEntry.Kind.EARN)
assert earn.points == 100 and earn.idempotency_key == f"purchase:{order1.number}:earn", earn
assert OrderEvent.objects.get(event_key=f"oscar:order:{order1.number}:paid").status == OrderEvent.Status.PROCESSED
step("points after order 1", member.balance)

# 2. She redeems a reward through loyalty's own service: the adapter creates an oscar voucher.
reward = Reward.objects.create(
    program=program, name="10 off", kind=Reward.Kind.FIXED, value=D("10.00"), points_cost=50, code_valid_days=30
)
redemption = redeem(member=member, reward=reward, idempotency_key="sandbox:redeem:1")
voucher = Voucher.objects.get(code=redemption.code)
assert voucher.usage == Voucher.SINGLE_USE and voucher.end_datetime == redemption.expires_at, voucher
offer = voucher.offers.get()
assert (offer.offer_type, offer.benefit.type, offer.benefit.value) == ("Voucher", "Absolute", D("10.00"))
assert offer.benefit.range.includes_all_products
assert voucher.name == f"10 off · #{redemption.pk}" and voucher.code not in voucher.name  # oscar adds "(code)"
member.refresh_from_db()
assert member.balance == 50, member.balance
step("voucher", f"{voucher.code} ({offer.benefit.type} {offer.benefit.value}, until {voucher.end_datetime:%Y-%m-%d})")

# 3. The voucher works in a new basket, through oscar's Applicator.
basket2 = basket_for(ada)
basket2.vouchers.add(voucher)
Applicator().apply(basket2, ada)
discount = basket2.total_incl_tax_excl_discounts - basket2.total_incl_tax
assert discount == D("10.00"), discount
assert [d["voucher"].code for d in basket2.voucher_discounts] == [voucher.code]
step("basket with voucher", f"{basket2.total_incl_tax_excl_discounts} - {discount} = {basket2.total_incl_tax}")
adapter = get_adapter()
assert adapter.discount_status(code=voucher.code) == DiscountStatus.UNUSED

# 4. ... and is used by the order placed with it (90.00, which earns 90 points).
order2 = place(basket2, ada)
assert order2.total_incl_tax == D("90.00"), order2.total_incl_tax
assert adapter.discount_status(code=voucher.code) == DiscountStatus.USED
redemption.refresh_from_db()  # marked used by the paid event at once, not by the nightly expiry task
assert (redemption.status, redemption.order_reference) == ("used", str(order2.number)), redemption.status
member.refresh_from_db()
assert member.balance == 50 + 90, member.balance
step("order 2 with voucher", f"{order2.number} {order2.total_incl_tax}, voucher used, balance {member.balance}")

# 5. A status that means nothing to loyalty, then a cancellation of order 1: its 100 points go.
order1.set_status("Being processed")
assert not OrderEvent.objects.filter(order_reference=order1.number).exclude(kind="paid").exists()
order1.set_status("Cancelled")
member.refresh_from_db()
assert member.balance == 40, member.balance
reverse_entry = PointsEntry.objects.get(idempotency_key=f"oscar:order:{order1.number}:cancelled:reverse")
assert reverse_entry.points == -100, reverse_entry.points
assert Purchase.objects.get(order_reference=order1.number).status == Purchase.Status.CANCELLED
step("order 1 cancelled", f"reversal {reverse_entry.points}, balance {member.balance}")

# 6. A guest's order is recorded with the guest's email, without points.
guest_basket = Basket.objects.create()
guest_basket.strategy = Selector().strategy()
guest_basket.add_product(book, quantity=1)
order3 = place(guest_basket, None, guest_email="guest@example.com")
guest_purchase = Purchase.objects.get(order_reference=order3.number)
assert guest_purchase.member_id is None and guest_purchase.email == "guest@example.com", guest_purchase
assert guest_purchase.points_earned == 0
step("guest order", f"{order3.number} recorded for {guest_purchase.email}, no points")

# 7. Every event was processed; the ledger adds up.
statuses = sorted(set(OrderEvent.objects.values_list("status", flat=True)))
assert statuses == [OrderEvent.Status.PROCESSED], statuses
call_command("loyalty_check_ledger")
step("events", f"{OrderEvent.objects.count()} events, all processed; loyalty_check_ledger clean")

# 8. The account panel on oscar's profile page (the template override from the docs).
client = Client(HTTP_HOST="localhost")  # startproject: DEBUG on, ALLOWED_HOSTS empty
client.force_login(ada)
page = client.get(reverse("customer:profile-view"))
html = page.content.decode()
assert page.status_code == 200, page.status_code
assert "loyalty-panel" in html and "Frobshop Rewards" in html, html[:2000]
assert voucher.code in html and f"Used on order #{order2.number}" in html  # the member's reward codes
step("profile page", f"{len(html)} bytes, loyalty panel with balance and the voucher code")

print("SCENARIO OK " + json.dumps(seen), flush=True)
