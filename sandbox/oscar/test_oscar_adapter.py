"""OscarAdapter (loyalty/adapters/oscar.py) in an oscar shop, through oscar's own checkout and order code."""

import logging
import secrets
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.utils import timezone
from oscar.apps.order.signals import order_placed
from oscar.core.loading import get_class, get_model

from loyalty.adapters.base import DiscountStatus, HistoricalStatus
from loyalty.adapters.oscar import OscarAdapter
from loyalty.models import Member, OrderEvent, Purchase, Redemption, Reward
from loyalty.receivers import connect_adapter
from loyalty.services import adjust_points, member_enroll, redeem

pytestmark = pytest.mark.django_db

Order = get_model("order", "Order")
Voucher = get_model("voucher", "Voucher")
Benefit = get_model("offer", "Benefit")
Condition = get_model("offer", "Condition")
Applicator = get_class("offer.applicator", "Applicator")
OrderCreator = get_class("order.utils", "OrderCreator")
Repository = get_class("shipping.repository", "Repository")
FixedPrice = get_class("shipping.methods", "FixedPrice")
REPO = Path(__file__).resolve().parent.parent.parent


def balance(user):
    return Member.objects.get(user=user).balance


@pytest.fixture
def adapter_swap():
    """Connect another adapter for one test, then the configured one again."""
    yield connect_adapter
    connect_adapter()


# --- order events ---------------------------------------------------------------------------


def test_a_placed_order_is_a_paid_event_with_oscars_data(program, customer, place_order):
    order = place_order(customer, quantity=2)

    event = OrderEvent.objects.get()
    assert event.event_key == f"oscar:order:{order.number}:paid"
    # OrderCreator leaves the generated number an int on the instance; the adapter sends str(number).
    assert (event.kind, event.status, event.order_reference) == ("paid", "processed", str(order.number))
    assert event.payload["amount"] == "100.00" and event.payload["currency"] == order.currency == "GBP"
    assert event.payload["user_id"] == str(customer.pk) and event.payload["email"] == "ada@example.com"
    assert event.payload["occurred_at"] == order.date_placed.isoformat()
    assert balance(customer) == 100


def test_order_placed_delivered_twice_awards_once(program, customer, place_order):
    order = place_order(customer)
    order_placed.send(sender=OrderCreator(), order=order, user=customer)  # a replayed signal

    assert balance(customer) == 50
    assert OrderEvent.objects.filter(order_reference=order.number).count() == 1


def test_a_guest_order_is_a_guest_purchase(program, place_order):
    order = place_order(None, guest_email="guest@example.com")

    purchase = Purchase.objects.get(order_reference=order.number)
    assert (purchase.member, purchase.email, purchase.points_earned) == (None, "guest@example.com", 0)
    assert not Member.objects.exists()


def test_a_status_loyalty_does_not_map_records_nothing(program, customer, place_order):
    order = place_order(customer)
    order.set_status("Being processed")
    order.set_status("Complete")

    assert list(OrderEvent.objects.values_list("kind", flat=True)) == ["paid"]
    assert balance(customer) == 50


def test_an_order_without_customer_or_email_is_logged_and_the_shop_goes_on(program, place_order, caplog):
    with caplog.at_level(logging.ERROR, logger="loyalty"):
        order = place_order(None)  # neither a user nor a guest email: nothing loyalty can credit

    assert Order.objects.filter(pk=order.pk).exists()
    assert not OrderEvent.objects.exists()
    [record] = [r for r in caplog.records if r.name == "loyalty.receivers"]
    assert "a paid event needs a user_id or a guest email" in record.getMessage()


def test_cancelling_takes_the_points_back_and_twice_counts_once(program, customer, place_order):
    order = place_order(customer, quantity=2)
    order.set_status("Cancelled")
    Order.objects.get(pk=order.pk).set_status("Cancelled")  # same status again: oscar sends nothing

    assert balance(customer) == 0
    assert Purchase.objects.get(order_reference=order.number).status == Purchase.Status.CANCELLED
    assert OrderEvent.objects.filter(kind="cancelled", status="processed").count() == 1


def test_a_refunded_status_refunds_the_whole_order(program, customer, place_order):
    order = place_order(customer)
    order.set_status("Being processed")
    order.set_status("Refunded")

    purchase = Purchase.objects.get(order_reference=order.number)
    assert (purchase.status, purchase.refunded_amount) == (Purchase.Status.REFUNDED, D("50.00"))
    assert balance(customer) == 0


class PaidWhenComplete(OscarAdapter):
    PAID_STATUSES = ("Complete",)


def test_paid_statuses_award_only_when_the_order_reaches_one(program, customer, place_order, adapter_swap):
    adapter_swap(PaidWhenComplete())
    order = place_order(customer)
    assert not OrderEvent.objects.exists()

    order.set_status("Being processed")
    assert not OrderEvent.objects.exists()
    order.set_status("Complete")
    assert balance(customer) == 50
    event = OrderEvent.objects.get()
    assert event.event_key == f"oscar:order:{order.number}:paid"


def test_paid_statuses_then_cancelled_before_paid_is_skipped(program, customer, place_order, adapter_swap):
    adapter_swap(PaidWhenComplete())
    order = place_order(customer)
    order.set_status("Cancelled")

    assert OrderEvent.objects.get().status == OrderEvent.Status.SKIPPED
    assert not Purchase.objects.exists()


class WithoutShipping(OscarAdapter):
    AMOUNT = "basket_total_incl_tax"


def test_the_amount_can_leave_out_shipping(program, customer, place_order):
    order = place_order(customer, shipping=FixedPrice(D("4.99"), D("4.99")))
    assert order.total_incl_tax == D("54.99")

    assert OscarAdapter().order_placed(sender=None, order=order).amount == D("54.99")
    assert WithoutShipping().order_placed(sender=None, order=order).amount == D("50.00")
    with pytest.raises(ValueError, match="AMOUNT must be one of"):
        type("Wrong", (OscarAdapter,), {"AMOUNT": "total"})().amount(order)


# --- rewards as oscar vouchers ----------------------------------------------------------


@pytest.fixture
def member(program, customer):
    adjust_points(
        member=member_enroll(program=program, user=customer)[0],
        points=10_000,
        reason="Test credit",
        idempotency_key="test:credit",
    )
    return Member.objects.get(user=customer)


def reward_voucher(member, **fields):
    reward = Reward.objects.create(program=member.program, name=fields.pop("name", "Reward"), points_cost=100, **fields)
    redemption = redeem(member=member, reward=reward, idempotency_key=f"test:{reward.pk}")
    return redemption, Voucher.objects.get(code=redemption.code)


def discount_of(voucher, basket, user):
    basket.vouchers.add(voucher)
    Applicator().apply(basket, user)
    return basket.total_incl_tax_excl_discounts - basket.total_incl_tax


def test_a_percent_reward_is_a_percentage_voucher(member, customer, make_basket):
    redemption, voucher = reward_voucher(member, kind="percent", value=D("20"))

    assert voucher.code == redemption.code and voucher.code.startswith("LOY-")
    assert (voucher.usage, voucher.end_datetime) == (Voucher.SINGLE_USE, redemption.expires_at)
    offer = voucher.offers.get()
    assert (offer.offer_type, offer.benefit.type, offer.max_global_applications) == ("Voucher", "Percentage", 1)
    assert discount_of(voucher, make_basket(customer, quantity=2), customer) == D("20.00")


def test_a_minimum_order_value_is_a_value_condition(member, customer, make_basket):
    _redemption, voucher = reward_voucher(member, kind="fixed", value=D("5.00"), min_order_value=D("80.00"))

    condition = voucher.offers.get().condition
    assert (condition.type, condition.value) == (Condition.VALUE, D("80.00"))
    assert discount_of(voucher, make_basket(customer, quantity=1), customer) == D("0.00")  # 50.00 < 80.00
    assert discount_of(voucher, make_basket(customer, quantity=2), customer) == D("5.00")


def test_a_free_shipping_reward_zeroes_the_shipping_charge(member, customer, make_basket):
    _redemption, voucher = reward_voucher(member, kind="free_shipping")
    assert voucher.offers.get().benefit.type == Benefit.SHIPPING_PERCENTAGE

    basket = make_basket(customer)
    basket.vouchers.add(voucher)
    Applicator().apply(basket, customer)
    [method] = Repository().apply_shipping_offers(basket, [FixedPrice(D("4.99"), D("4.99"))])
    assert method.calculate(basket).incl_tax == D("0.00")


def test_a_free_product_reward_takes_one_unit_of_that_product_off(member, customer, make_basket, product):
    _redemption, voucher = reward_voucher(member, kind="free_product", product_reference="BOOK-1")

    benefit = voucher.offers.get().benefit
    assert list(benefit.range.all_products()) == [product] and benefit.max_affected_items == 1
    assert discount_of(voucher, make_basket(customer, quantity=3), customer) == D("50.00")


def test_a_free_product_the_shop_does_not_have_refuses_the_redemption(member):
    reward = Reward.objects.create(
        program=member.program, name="Gift", kind="free_product", product_reference="NOPE", points_cost=100
    )
    with pytest.raises(Exception, match="could not create your discount code"):
        redeem(member=member, reward=reward, idempotency_key="test:nope")
    assert not Redemption.objects.exists() and not Voucher.objects.exists()
    assert Member.objects.get(pk=member.pk).balance == 10_000


def test_a_fixed_reward_in_another_currency_is_refused(member):
    member.program.currency = "EUR"
    member.program.save()
    reward = Reward.objects.create(program=member.program, name="5 off", kind="fixed", value=D("5"), points_cost=100)
    with pytest.raises(Exception, match="could not create your discount code"):
        redeem(member=member, reward=reward, idempotency_key="test:eur")
    assert not Voucher.objects.exists()


def test_discount_status_follows_oscars_voucher_applications(member, customer, make_basket, place_order):
    adapter = OscarAdapter()
    _redemption, voucher = reward_voucher(member, kind="fixed", value=D("5.00"))
    assert adapter.discount_status(code=voucher.code) == DiscountStatus.UNUSED
    assert adapter.discount_status(code=voucher.code.lower()) == DiscountStatus.UNUSED
    assert adapter.discount_status(code="LOY-UNKNOWN") is None

    basket = make_basket(customer)
    basket.vouchers.add(voucher)
    order = place_order(customer, basket=basket)
    assert order.total_incl_tax == D("45.00")
    assert adapter.discount_status(code=voucher.code) == DiscountStatus.USED
    assert adapter.revoke_discount(code=voucher.code) is False


def test_an_order_placed_with_the_voucher_marks_the_redemption_used_at_once(member, customer, make_basket, place_order):
    redemption, voucher = reward_voucher(member, name="10 off", kind="fixed", value=D("10.00"))
    assert voucher.name == f"10 off · #{redemption.pk}"  # oscar shows "<name> (<code>)": the code once

    basket = make_basket(customer)
    basket.vouchers.add(voucher)
    order = place_order(customer, basket=basket)

    event = OrderEvent.objects.get(event_key=f"oscar:order:{order.number}:paid")
    assert event.payload["discount_codes"] == [voucher.code]
    redemption.refresh_from_db()
    assert (redemption.status, redemption.order_reference) == (Redemption.Status.USED, str(order.number))
    assert redemption.used_at == order.date_placed


def test_an_order_without_vouchers_carries_no_codes(program, customer, place_order):
    order = place_order(customer)
    assert "discount_codes" not in OrderEvent.objects.get(order_reference=order.number).payload


def test_revoking_ends_the_voucher_and_suspends_its_offer(member, customer, make_basket):
    redemption, voucher = reward_voucher(member, kind="fixed", value=D("5.00"))
    assert OscarAdapter().revoke_discount(code=voucher.code) is True
    assert OscarAdapter().revoke_discount(code="LOY-UNKNOWN") is True

    voucher.refresh_from_db()
    assert not voucher.is_active() and voucher.offers.get().is_suspended
    assert discount_of(voucher, make_basket(customer), customer) == D("0.00")


# --- backfill -----------------------------------------------------------------------------------


def test_historical_orders_stream_in_date_order_with_their_outcome(program, customer, place_order):
    first = place_order(customer, quantity=2)
    guest = place_order(None, guest_email="guest@example.com")
    cancelled = place_order(customer)
    cancelled.set_status("Cancelled")
    refunded = place_order(customer)
    refunded.set_status("Being processed")
    refunded.set_status("Refunded")
    Order.objects.filter(pk=first.pk).update(date_placed=timezone.now() - timedelta(days=30))

    orders = list(OscarAdapter().iter_historical_orders())
    assert [o.reference for o in orders] == [str(o.number) for o in (first, guest, cancelled, refunded)]
    assert (orders[0].amount, orders[0].user_id, orders[0].email) == (D("100.00"), customer.pk, "ada@example.com")
    assert (orders[1].user_id, orders[1].email) == (None, "guest@example.com")
    assert orders[2].status == HistoricalStatus.CANCELLED
    assert (orders[3].status, orders[3].refunded_amount) == (HistoricalStatus.REFUNDED, D("50.00"))

    since = timezone.now() - timedelta(days=1)
    assert [o.reference for o in OscarAdapter().iter_historical_orders(since=since)][0] == str(guest.number)
    resumed = OscarAdapter().iter_historical_orders(after=str(guest.number))
    assert [o.reference for o in resumed] == [str(cancelled.number), str(refunded.number)]
    with pytest.raises(ValueError, match="no paid order"):
        list(OscarAdapter().iter_historical_orders(after="999999"))


def test_historical_orders_with_paid_statuses_only_those_that_reached_one(program, customer, place_order):
    done = place_order(customer)
    done.set_status("Being processed")
    done.set_status("Complete")
    done.set_status("Refunded")  # reached Complete before: it was paid
    place_order(customer)  # still pending: never paid

    orders = list(PaidWhenComplete().iter_historical_orders())
    assert [(o.reference, o.status) for o in orders] == [(str(done.number), HistoricalStatus.REFUNDED)]


def test_historical_orders_without_shipping_in_one_query(program, customer, place_order, django_assert_num_queries):
    place_order(customer, shipping=FixedPrice(D("4.99"), D("4.99")))
    place_order(customer, shipping=FixedPrice(D("2.00"), D("2.00")))
    with django_assert_num_queries(1):
        amounts = [o.amount for o in WithoutShipping().iter_historical_orders()]
    assert amounts == [D("50.00"), D("50.00")]


# --- loyalty without oscar ----------------------------------------------------------------------


def test_loyalty_imports_without_oscar_installed():
    code = (
        "import sys; sys.modules['oscar'] = None\n"  # any `import oscar...` now fails
        "import django; django.setup()\n"
        "import loyalty, loyalty.adapters, loyalty.adapters.base, loyalty.services, loyalty.receivers\n"
        "import loyalty.adapters.oscar\n"  # the module itself imports oscar only when used
        "print('ok')\n"
    )
    # The demo project's settings want a secret key outside DEBUG.
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "PATH": "/usr/bin:/bin"}
    env["SECRET_KEY"] = secrets.token_urlsafe(50)  # the demo project has no key default outside DEBUG
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
