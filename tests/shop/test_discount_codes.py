"""Discount codes: a plain shop feature (staff create them in admin; the loyalty adapter creates them too).
A code is checked at checkout, taken off the total and used once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from shop import services
from shop.exceptions import InvalidDiscountCode
from shop.models import DiscountCode, Order

from .helpers import add_to_cart, cart_of, messages_of

pytestmark = pytest.mark.django_db


def code(**fields) -> DiscountCode:
    return DiscountCode.objects.create(**{"code": "SPRING5", "kind": "fixed", "value": Decimal("5.00"), **fields})


def order_with(code_text: str, *products, user=None, quantities=None, **kwargs) -> Order:
    items = {p.pk: (quantities or {}).get(p.pk, 1) for p in products}
    return services.place_order(items=items, user=user, email="guest@example.com", discount_code=code_text, **kwargs)


# --- applying a code ------------------------------------------------------------------------


def test_a_fixed_code_comes_off_the_total_and_is_used_by_the_order(soap, balm):
    discount = code()

    order = order_with("  spring5 ", soap, balm)  # typed loosely: spaces and lower case are fine

    assert (order.total, order.discount_total, order.discount_code) == (Decimal("15.40"), Decimal("5.00"), "SPRING5")
    assert order.subtotal == Decimal("20.40")
    discount.refresh_from_db()
    assert discount.order == order and discount.used_at == order.created_at


@pytest.mark.parametrize(
    ("fields", "quantities", "discount", "total"),
    [
        ({"kind": "percent", "value": Decimal("15")}, {}, Decimal("3.06"), Decimal("17.34")),  # 15 % of 20.40
        ({"kind": "fixed", "value": Decimal("50.00")}, {}, Decimal("20.40"), Decimal("0.00")),  # never below 0
        ({"kind": "free_shipping", "value": Decimal("0")}, {}, Decimal("0.00"), Decimal("20.40")),  # shipping is free
        ({"kind": "free_product", "value": Decimal("0")}, {"soap": 3}, Decimal("7.50"), Decimal("27.90")),  # one of 3
    ],
    ids=["percent", "more-than-the-order", "free-shipping", "free-product"],
)
def test_each_kind_takes_off_what_it_says(soap, balm, fields, quantities, discount, total):
    if fields["kind"] == "free_product":
        fields = {**fields, "product": soap}
    code(**fields)
    order = order_with("SPRING5", soap, balm, quantities={soap.pk: quantities.get("soap", 1)})
    assert (order.discount_total, order.total) == (discount, total)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (None, "The discount code NOPE is not valid. Please check it."),
        ({"is_active": False}, "The discount code SPRING5 is not valid. Please check it."),
        ({"used_at": timezone.now()}, "The discount code SPRING5 has already been used."),
        (
            {"min_order_value": Decimal("25.00")},
            "The discount code SPRING5 needs an order of at least €25.00; your order is €20.40.",
        ),
    ],
    ids=["unknown", "inactive", "used", "minimum-order"],
)
def test_a_refused_code_says_why_and_no_order_is_made(soap, balm, fields, message):
    if fields is not None:
        code(**fields)
    with pytest.raises(InvalidDiscountCode) as refused:
        order_with("NOPE" if fields is None else "SPRING5", soap, balm)
    assert str(refused.value) == message
    assert not Order.objects.exists()


def test_an_expired_code_says_when_it_expired(soap, settings):
    settings.LANGUAGE_CODE = "en"
    until = timezone.make_aware(timezone.datetime(2025, 3, 31, 23, 59))
    code(valid_until=until)
    with pytest.raises(InvalidDiscountCode, match=r"^The discount code SPRING5 expired on March 31, 2025\.$"):
        order_with("SPRING5", soap, at=until + timedelta(minutes=1))
    assert order_with("SPRING5", soap, at=until - timedelta(minutes=1)).discount_total == Decimal("5.00")


def test_a_free_product_code_asks_for_the_product(soap, balm):
    code(kind="free_product", value=0, product=balm)
    with pytest.raises(InvalidDiscountCode, match="gives you one Lavender Balm free: please add it to your cart first"):
        order_with("SPRING5", soap)


def test_a_code_is_used_once(soap):
    code()
    first = order_with("SPRING5", soap)
    with pytest.raises(InvalidDiscountCode, match="has already been used"):
        order_with("SPRING5", soap)
    assert list(Order.objects.values_list("pk", flat=True)) == [first.pk]


def test_an_order_without_a_code_has_no_discount(soap):
    order = order_with("", soap)
    assert (order.total, order.discount_total, order.discount_code) == (Decimal("7.50"), Decimal("0.00"), "")


def test_cancelling_an_unpaid_order_frees_its_code_and_a_paid_one_does_not(soap):
    discount = code()
    services.cancel_pending_order(order=order_with("SPRING5", soap))
    discount.refresh_from_db()
    assert discount.used_at is None and discount.order is None

    paid = services.mark_paid(order=order_with("SPRING5", soap))
    services.cancel_order(order=paid)
    discount.refresh_from_db()
    assert discount.order == paid


def test_the_paid_amount_is_net_of_the_discount(soap, balm):
    code()
    order = services.mark_paid(order=order_with("SPRING5", soap, balm))
    assert order.refundable_amount == Decimal("15.40")


def test_codes_are_stored_in_capitals_and_must_be_unique(db):
    assert code(code=" spring 5 ").code == "SPRING5"
    generated = DiscountCode.objects.create(kind="fixed", value=Decimal("1.00"))
    assert len(generated.code) == 12 and generated.code == generated.code.upper()


# --- the checkout page ----------------------------------------------------------------------


def test_the_checkout_page_has_a_discount_code_field(client, soap):
    add_to_cart(client, soap)
    page = client.get(reverse("shop:checkout")).content.decode()
    assert 'name="discount_code"' in page and "Discount code" in page and 'name="apply_code"' in page
    assert "Have a discount code? Enter it at checkout." in client.get(reverse("shop:cart")).content.decode()


def test_apply_shows_the_discount_without_using_the_code(client, soap, balm):
    discount = code()
    add_to_cart(client, soap)
    add_to_cart(client, balm)

    page = client.post(reverse("shop:checkout"), {"email": "", "discount_code": "spring5", "apply_code": "1"})

    content = page.content.decode()
    assert page.status_code == 200
    assert "Discount (SPRING5)" in content and "−€5.00" in content and "€15.40" in content
    assert "SPRING5 takes €5.00 off this order." in content
    assert "Please enter your email address." not in content  # only the code was checked
    discount.refresh_from_db()
    assert discount.used_at is None and not Order.objects.exists()


def test_apply_shows_why_a_code_is_refused(client, soap):
    add_to_cart(client, soap)
    page = client.post(reverse("shop:checkout"), {"email": "", "discount_code": "NOPE", "apply_code": "1"})
    content = page.content.decode()
    assert "The discount code NOPE is not valid. Please check it." in content
    assert 'aria-invalid="true"' in content


def test_checkout_with_a_code_places_the_discounted_order(client, soap, balm):
    code()
    add_to_cart(client, soap)
    add_to_cart(client, balm)

    response = client.post(reverse("shop:checkout"), {"email": "guest@example.com", "discount_code": "SPRING5"})

    assert response.status_code == 302, messages_of(response)
    order = Order.objects.get()
    assert (order.total, order.discount_total) == (Decimal("15.40"), Decimal("5.00"))
    assert cart_of(client) == {}
    pay_page = client.get(response.url).content.decode()
    assert "Discount (SPRING5)" in pay_page and "−€5.00" in pay_page and "€15.40" in pay_page
    receipt = client.get(reverse("shop:order_detail", args=[order.number])).content.decode()
    assert "Subtotal" in receipt and "€20.40" in receipt and "Discount (SPRING5)" in receipt


def test_checkout_with_a_used_code_keeps_the_cart_and_shows_the_reason(client, soap):
    code(used_at=timezone.now())
    add_to_cart(client, soap)

    page = client.post(reverse("shop:checkout"), {"email": "guest@example.com", "discount_code": "SPRING5"})

    assert page.status_code == 200
    assert "The discount code SPRING5 has already been used." in page.content.decode()
    assert not Order.objects.exists() and cart_of(client)


def test_signed_in_checkout_takes_a_code_too(shopper_client, shopper, soap):
    code()
    add_to_cart(shopper_client, soap)
    response = shopper_client.post(reverse("shop:checkout"), {"discount_code": "SPRING5"})
    assert response.status_code == 302
    assert Order.objects.get(user=shopper).total == Decimal("2.50")


# --- admin ----------------------------------------------------------------------------------


def test_staff_create_and_list_codes_in_admin(admin_client, soap):
    response = admin_client.post(
        reverse("admin:shop_discountcode_add"),
        {"code": "welcome10", "kind": "percent", "value": "10", "is_active": "on", "description": "Newsletter"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert DiscountCode.objects.get().code == "WELCOME10"

    order_with("WELCOME10", soap)
    listing = admin_client.get(reverse("admin:shop_discountcode_changelist") + "?q=welcome").content.decode()
    assert "WELCOME10" in listing
    page = admin_client.get(reverse("admin:shop_discountcode_change", args=[DiscountCode.objects.get().pk]))
    assert page.status_code == 200
    order = Order.objects.get()
    assert admin_client.get(reverse("admin:shop_order_change", args=[order.pk])).status_code == 200


def test_admin_refuses_a_free_product_code_without_a_product(admin_client):
    data = {"code": "GIFT", "kind": "free_product", "value": "0", "is_active": "on"}
    response = admin_client.post(reverse("admin:shop_discountcode_add"), data)
    assert response.status_code == 200
    assert "Choose the product that comes free." in response.context["adminform"].form.errors["product"]
