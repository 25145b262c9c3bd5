"""Run inside the oscar project that test_from_docs.py builds: a customer's life, through oscar's own code.

``python scenario.py`` in the project's directory (next to manage.py). Every step asserts;
the last line printed is ``SCENARIO OK {json}`` with what was seen.
"""

import json
import os
import re
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
from loyalty.models import Member, OrderEvent, PointsEntry, Program, Purchase, Redemption, Reward  # noqa: E402
from loyalty.services import reward_redeem  # noqa: E402

Basket = get_model("basket", "Basket")
Country = get_model("address", "Country")
Order = get_model("order", "Order")
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
redemption = reward_redeem(member=member, reward=reward, idempotency_key="sandbox:redeem:1")
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

# 7. Points as money in oscar's basket (docs step 10): she opens her basket, uses her 40 points
#    (worth 4.00), the total drops without a code to type; she takes them off with oscar's own
#    "Remove" and they are back at once; she uses them again, checks out through oscar's views,
#    and cancelling the order gives the points back.
Reward.objects.create(
    program=program,
    name="Pay with points",
    kind=Reward.Kind.POINTS_DISCOUNT,
    point_value=D("0.10"),
    points_cost=10,
    points_step=10,
)
client = Client(HTTP_HOST="localhost")  # startproject: DEBUG on, ALLOWED_HOSTS empty
client.force_login(ada)
added = client.post(reverse("basket:add", kwargs={"pk": book.pk}), {"quantity": 1})
assert added.status_code == 302, added.status_code


def use_40_points():
    """The "Use my points" form on oscar's basket page, as she fills it in; the voucher it puts there."""
    html = client.get(reverse("basket:summary")).content.decode()
    assert "Use my points" in html and "You have <strong>40 points</strong>, worth £4.00." in html, html[-6000:]
    form = {n: re.search(rf'name="{n}" value="([^"]*)"', html).group(1) for n in ("checkout_token", "program")}
    used = client.post(reverse("loyalty:checkout_points"), {**form, "points": "40", "next": reverse("basket:summary")})
    assert used.status_code == 302, used.status_code
    html = client.get(used.url).content.decode()
    after = re.search(r"total \(after discounts\)</th>\s*<th[^>]*>\s*(£[\d.]+)", html)
    assert after and after.group(1) == "£46.00", html[
        html.find("basket_totals") : html.find("basket_totals") + 4000
    ]  # oscar's totals table ("Cart total" in en-us)
    assert "<strong>40 points</strong> take <strong>£4.00</strong> off this order." in html
    basket = Basket.open.get(owner=ada)
    basket.strategy = Selector().strategy(user=ada)
    Applicator().apply(basket, ada)
    assert (basket.total_incl_tax_excl_discounts, basket.total_incl_tax) == (D("50.00"), D("46.00")), basket
    [voucher] = basket.vouchers.all()
    member.refresh_from_db()
    assert member.balance == 0, member.balance
    return voucher


removed_voucher = use_40_points()
step("basket with points", f"50.00 - 4.00 = 46.00 (voucher {removed_voucher.code}, balance 0)")

# ... oscar's own "Remove" next to the voucher on the basket page: the points are back at once.
removed = client.post(reverse("basket:vouchers-remove", kwargs={"pk": removed_voucher.pk}))
assert removed.status_code == 302 and removed.url == reverse("basket:summary"), removed.status_code
member.refresh_from_db()
assert member.balance == 40, member.balance
given_back = PointsEntry.objects.get(member=member, description="Checkout points returned: removed from the basket")
assert given_back.points == 40 and Redemption.objects.get(code=removed_voucher.code).status == "cancelled"
assert not Basket.open.get(owner=ada).vouchers.exists()
step("voucher removed with oscar's Remove", f"{given_back.points} points back at once, balance {member.balance}")

points_voucher = use_40_points()
step("points used again", f"voucher {points_voucher.code}, balance 0")

# ... through oscar's checkout: shipping address, the one shipping method, preview, place order.
Country.objects.create(iso_3166_1_a2="GB", name="United Kingdom", is_shipping_country=True)
address = {"first_name": "Ada", "last_name": "Lovelace", "line1": "1 Loyal Road", "line4": "London"}
shipped = client.post(reverse("checkout:shipping-address"), {**address, "postcode": "N1 9GU", "country": "GB"})
assert shipped.status_code == 302, shipped.content.decode()[-3000:]
client.get(reverse("checkout:shipping-method"), follow=True)
placed = client.post(reverse("checkout:preview"), {"action": "place_order"})
assert placed.status_code == 302 and "thank-you" in placed.url, (placed.status_code, placed.content.decode()[-3000:])
order4 = Order.objects.get(user=ada, voucherapplication__voucher=points_voucher)
assert order4.total_incl_tax == D("46.00"), order4.total_incl_tax
points_redemption = Redemption.objects.select_related("entry").get(code=points_voucher.code)
spent = PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.REDEEM, points=-40)
assert spent.count() == 2, list(spent)  # the removed voucher's (given back) and the order's
assert points_redemption.entry.description == "Paid with 40 points (-4.00 GBP)", points_redemption.entry
assert (points_redemption.status, points_redemption.order_reference) == ("used", str(order4.number))
member.refresh_from_db()
assert member.balance == 46, member.balance  # 46.00 paid earns 46 points
step("order 4 paid with points", f"{order4.number} {order4.total_incl_tax}, 40 points spent once, balance 46")

order4.set_status("Cancelled")
member.refresh_from_db()
points_redemption.refresh_from_db()
assert member.balance == 40 and points_redemption.status == "cancelled", (member.balance, points_redemption.status)
step("order 4 cancelled", f"40 points back, 46 earned taken back: balance {member.balance}")

# 8. Every event was processed; the ledger adds up.
statuses = sorted(set(OrderEvent.objects.values_list("status", flat=True)))
assert statuses == [OrderEvent.Status.PROCESSED], statuses
call_command("loyalty_check_ledger")
step("events", f"{OrderEvent.objects.count()} events, all processed; loyalty_check_ledger clean")

# 9. The account panel on oscar's profile page (the template override from the docs).
page = client.get(reverse("customer:profile-view"))
html = page.content.decode()
assert page.status_code == 200, page.status_code
assert "loyalty-panel" in html and "Frobshop Rewards" in html, html[:2000]
assert voucher.code in html and f"Used on order #{order2.number}" in html  # the member's reward codes
step("profile page", f"{len(html)} bytes, loyalty panel with balance and the voucher code")

print("SCENARIO OK " + json.dumps(seen), flush=True)
