"""The session cart, and the cart pages' handling of good and bad input."""

from decimal import Decimal

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django.urls import reverse

from shop.cart import MAX_QUANTITY, Cart
from shop.context_processors import shop as shop_context
from tests.factories import ProductFactory

from .helpers import add_to_cart, cart_of, last_message, messages_of

pytestmark = pytest.mark.django_db


def make_request():
    request = RequestFactory().get("/")
    request.session = SessionStore()
    return request


# --- the Cart class ------------------------------------------------------------------


def test_add_update_remove_clear(soap, balm):
    request = make_request()
    cart = Cart(request)
    assert cart.add(soap) == 1
    assert cart.add(soap, 2) == 3
    cart.add(balm, 1)
    assert cart.items() == {soap.pk: 3, balm.pk: 1}
    assert len(cart) == 4

    cart.update(soap.pk, 5)
    assert cart.quantity(soap) == 5
    cart.update(soap, 0)
    assert soap not in cart
    cart.remove(balm)
    assert cart.is_empty()

    cart.add(soap)
    cart.clear()
    assert Cart(request).is_empty()


def test_cart_lives_in_the_session(soap):
    request = make_request()
    Cart(request).add(soap, 2)
    assert request.session["shop_cart"] == {str(soap.pk): 2}
    assert Cart(request).quantity(soap) == 2  # a new Cart on the same session


def test_quantity_is_capped(soap):
    cart = Cart(make_request())
    cart.add(soap, MAX_QUANTITY)
    assert cart.add(soap, 5) == MAX_QUANTITY


@pytest.mark.parametrize("bad", [0, -1])
def test_add_refuses_non_positive_quantities(soap, bad):
    cart = Cart(make_request())
    with pytest.raises(ValueError):
        cart.add(soap, bad)
    assert cart.is_empty()


def test_a_damaged_session_cart_is_cleaned():
    request = make_request()
    request.session["shop_cart"] = {"abc": 1, "3": "x", "4": -2, "5": 2}
    assert Cart(request).items() == {5: 2}


def test_lines_load_products_in_one_query_and_total_is_decimal(django_assert_num_queries):
    products = [ProductFactory(price=Decimal(price)) for price in ("1.10", "2.20", "3.30")]
    cart = Cart(make_request())
    for quantity, product in enumerate(products, start=1):
        cart.add(product, quantity)
    with django_assert_num_queries(1):
        lines = cart.lines()
        total = cart.total
    assert [line.product for line in lines] == products
    assert [line.line_total for line in lines] == [Decimal("1.10"), Decimal("4.40"), Decimal("9.90")]
    assert total == Decimal("15.40")
    assert isinstance(total, Decimal)


def test_deleted_products_are_left_out_and_unavailable_ones_removed(soap, balm):
    cart = Cart(make_request())
    cart.add(soap)
    cart.add(balm)
    balm.is_active = False
    balm.save()
    assert cart.remove_unavailable() == ["Lavender Balm"]
    assert cart.items() == {soap.pk: 1}


def test_context_processor_counts_items_without_a_query(soap, django_assert_num_queries):
    request = make_request()
    Cart(request).add(soap, 3)
    with django_assert_num_queries(0):
        context = shop_context(request)
    assert context["cart_count"] == 3
    assert context["shop_name"] == "Bottega Verde"
    assert context["currency"] == "EUR"


# --- the cart views ------------------------------------------------------------------


def test_add_to_cart_view(client, soap):
    response = add_to_cart(client, soap, 2)
    assert response.status_code == 302
    assert cart_of(client) == {str(soap.pk): 2}
    assert last_message(response) == "Added 2 × Olive Oil Soap to your cart."


def test_add_returns_to_a_safe_next_page_only(client, soap):
    url = reverse("shop:cart_add")
    response = client.post(url, {"product": soap.pk, "quantity": 1, "next": soap.get_absolute_url()})
    assert response.url == soap.get_absolute_url()
    response = client.post(url, {"product": soap.pk, "quantity": 1, "next": "https://evil.example.com/"})
    assert response.url == reverse("shop:product_list")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"quantity": "abc"}, "Please enter a quantity between 1 and 99."),
        ({"quantity": "-1"}, "Please enter a quantity between 1 and 99."),
        ({"quantity": "0"}, "Please enter a quantity between 1 and 99."),
        ({"quantity": "100"}, "Please enter a quantity between 1 and 99."),
        ({"quantity": ""}, "Please enter a quantity between 1 and 99."),
        ({"product": "999999", "quantity": "1"}, "Sorry, that product is not available."),
        ({"product": "abc", "quantity": "1"}, "Sorry, that product is not available."),
    ],
)
def test_bad_add_input_gives_a_message_and_keeps_the_cart(client, soap, balm, data, message):
    add_to_cart(client, balm, 2)
    response = client.post(reverse("shop:cart_add"), {"product": soap.pk, **data})
    assert response.status_code == 302
    assert last_message(response) == message
    assert cart_of(client) == {str(balm.pk): 2}


def test_a_product_taken_off_sale_cannot_be_added(client, soap):
    soap.is_active = False
    soap.save()
    response = add_to_cart(client, soap)
    assert last_message(response) == "Sorry, that product is not available."
    assert cart_of(client) == {}


def test_cart_add_and_update_need_post(client, soap):
    assert client.get(reverse("shop:cart_add")).status_code == 405
    assert client.get(reverse("shop:cart_update")).status_code == 405


def test_update_quantity(client, soap):
    add_to_cart(client, soap)
    response = client.post(reverse("shop:cart_update"), {"product": soap.pk, "quantity": 4})
    assert response.url == reverse("shop:cart")
    assert cart_of(client) == {str(soap.pk): 4}
    assert last_message(response) == "Your cart was updated."


def test_update_to_zero_or_remove_button_removes(client, soap, balm):
    add_to_cart(client, soap)
    add_to_cart(client, balm)
    client.post(reverse("shop:cart_update"), {"product": soap.pk, "quantity": 0})
    assert cart_of(client) == {str(balm.pk): 1}
    response = client.post(reverse("shop:cart_update"), {"product": balm.pk, "quantity": "7", "remove": "1"})
    assert cart_of(client) == {}
    assert last_message(response) == "The product was removed from your cart."


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"quantity": "abc"}, "Please enter a quantity between 0 and 99."),
        ({"quantity": "-3"}, "Please enter a quantity between 0 and 99."),
        ({"quantity": "1000"}, "Please enter a quantity between 0 and 99."),
        ({"product": "424242", "quantity": "2"}, "That product is not in your cart."),
        ({"product": "nope", "quantity": "2"}, "That product is not in your cart."),
    ],
)
def test_bad_update_input_gives_a_message_and_keeps_the_cart(client, soap, data, message):
    add_to_cart(client, soap, 3)
    response = client.post(reverse("shop:cart_update"), {"product": soap.pk, **data})
    assert response.url == reverse("shop:cart")
    assert last_message(response) == message
    assert cart_of(client) == {str(soap.pk): 3}


def test_cart_page_lists_lines_and_total(client, soap, balm):
    add_to_cart(client, soap, 2)
    add_to_cart(client, balm, 1)
    response = client.get(reverse("shop:cart"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Olive Oil Soap" in content and "Lavender Balm" in content
    assert "€27.90" in content  # 2 × 7.50 + 12.90
    assert 'class="cart-count"' in content


def test_cart_page_drops_products_no_longer_on_sale_with_a_message(client, soap, balm):
    add_to_cart(client, soap)
    add_to_cart(client, balm)
    balm.is_active = False
    balm.save()
    response = client.get(reverse("shop:cart"))
    assert "Lavender Balm is no longer available and was removed from your cart." in messages_of(response)
    assert cart_of(client) == {str(soap.pk): 1}


def test_empty_cart_page(client):
    response = client.get(reverse("shop:cart"))
    assert response.status_code == 200
    assert "Your cart is empty." in response.content.decode()
