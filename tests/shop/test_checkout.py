"""Checkout through the views: guests give an email, signed-in customers confirm; then the demo payment."""

from decimal import Decimal

import pytest
from django.urls import reverse

from shop.models import Order

from .helpers import add_to_cart, cart_of, guest_checkout, last_message, messages_of

pytestmark = pytest.mark.django_db


def test_guest_checkout_end_to_end(client, soap, balm):
    add_to_cart(client, soap, 2)
    add_to_cart(client, balm)

    page = client.get(reverse("shop:checkout"))
    assert page.status_code == 200
    assert 'name="email"' in page.content.decode()

    response = client.post(reverse("shop:checkout"), {"email": "Guest@Example.com"})
    order = Order.objects.get()
    assert response.url == reverse("shop:order_pay", args=[order.number])
    assert order.user is None
    assert order.email == "Guest@Example.com"
    assert order.status == Order.Status.PENDING
    assert order.total == Decimal("27.90")
    assert sorted((line.product_name, line.quantity) for line in order.lines.all()) == [
        ("Lavender Balm", 1),
        ("Olive Oil Soap", 2),
    ]
    assert cart_of(client) == {}

    pay_page = client.get(response.url)
    assert pay_page.status_code == 200
    content = pay_page.content.decode()
    assert "Pay now (demo payment)" in content and "Cancel order" in content
    assert "€27.90" in content

    paid = client.post(response.url, {"action": "pay"})
    assert paid.url == reverse("shop:order_detail", args=[order.number])
    assert last_message(paid) == "Thank you! Your payment was received."
    order.refresh_from_db()
    assert order.status == Order.Status.PAID and order.paid_at is not None

    receipt = client.get(paid.url)
    assert receipt.status_code == 200
    assert order.number in receipt.content.decode()
    assert "Paid" in receipt.content.decode()


def test_pay_page_of_a_paid_order_goes_to_the_receipt(client, soap):
    order = guest_checkout(client, soap)
    client.post(reverse("shop:order_pay", args=[order.number]), {"action": "pay"})
    response = client.get(reverse("shop:order_pay", args=[order.number]))
    assert response.url == reverse("shop:order_detail", args=[order.number])


def test_paying_twice_is_harmless(client, soap):
    order = guest_checkout(client, soap)
    url = reverse("shop:order_pay", args=[order.number])
    client.post(url, {"action": "pay"})
    response = client.post(url, {"action": "pay"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_guest_can_cancel_a_pending_order(client, soap):
    order = guest_checkout(client, soap)
    response = client.post(reverse("shop:order_pay", args=[order.number]), {"action": "cancel"})
    assert last_message(response) == "Your order was cancelled. Nothing was charged."
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED


def test_a_paid_order_cannot_be_cancelled_from_the_payment_page(client, soap):
    order = guest_checkout(client, soap)
    url = reverse("shop:order_pay", args=[order.number])
    client.post(url, {"action": "pay"})
    response = client.post(url, {"action": "cancel"})
    assert last_message(response) == f"Order {order.number} can no longer be cancelled: it is paid."
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_a_cancelled_order_cannot_be_paid(client, soap):
    order = guest_checkout(client, soap)
    url = reverse("shop:order_pay", args=[order.number])
    client.post(url, {"action": "cancel"})
    response = client.post(url, {"action": "pay"})
    assert last_message(response) == f"Order {order.number} cannot be paid: it is cancelled."


def test_unknown_payment_action(client, soap):
    order = guest_checkout(client, soap)
    response = client.post(reverse("shop:order_pay", args=[order.number]), {"action": "steal"})
    assert last_message(response) == "Please choose whether to pay or to cancel the order."
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


@pytest.mark.parametrize("email", ["", "not-an-email", "a@b"])
def test_guest_with_an_invalid_email_keeps_the_cart(client, soap, email):
    add_to_cart(client, soap, 2)
    response = client.post(reverse("shop:checkout"), {"email": email})
    assert response.status_code == 200
    assert last_message(response) in ("Please enter a valid email address.", "Please enter your email address.")
    assert Order.objects.count() == 0
    assert cart_of(client) == {str(soap.pk): 2}


def test_checkout_with_an_empty_cart_goes_back_to_the_cart(client):
    for response in (client.get(reverse("shop:checkout")), client.post(reverse("shop:checkout"), {"email": "a@b.it"})):
        assert response.url == reverse("shop:cart")
        assert last_message(response) == "Your cart is empty."
    assert Order.objects.count() == 0


def test_a_product_gone_from_sale_during_checkout_is_reported(client, soap, balm):
    add_to_cart(client, soap)
    add_to_cart(client, balm)
    balm.is_active = False
    balm.save()
    response = client.post(reverse("shop:checkout"), {"email": "guest@example.com"})
    # The cart is cleaned and the customer sees what changed before anything is ordered.
    assert "Lavender Balm is no longer available and was removed from your cart." in messages_of(response)
    assert Order.objects.count() == 0
    assert cart_of(client) == {str(soap.pk): 1}


def test_signed_in_checkout_confirms_with_the_account_email(shopper, shopper_client, soap):
    add_to_cart(shopper_client, soap, 3)
    page = shopper_client.get(reverse("shop:checkout"))
    assert 'name="email"' not in page.content.decode()
    assert "anna@example.com" in page.content.decode()

    response = shopper_client.post(reverse("shop:checkout"))
    order = Order.objects.get()
    assert response.url == reverse("shop:order_pay", args=[order.number])
    assert order.user == shopper
    assert order.email == "anna@example.com"
    assert order.total == Decimal("22.50")

    shopper_client.post(response.url, {"action": "pay"})
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_signed_in_customer_without_an_email_is_asked_for_one(shopper, shopper_client, soap):
    shopper.email = ""
    shopper.save()
    add_to_cart(shopper_client, soap)
    response = shopper_client.post(reverse("shop:checkout"), {"email": "anna.new@example.com"})
    order = Order.objects.get()
    assert response.status_code == 302
    assert (order.user, order.email) == (shopper, "anna.new@example.com")


def test_the_cart_survives_signing_in(client, shopper, soap):
    add_to_cart(client, soap, 2)
    client.post(reverse("shop:login"), {"username": "anna@example.com", "password": "secret-pass-123"})
    assert cart_of(client) == {str(soap.pk): 2}
