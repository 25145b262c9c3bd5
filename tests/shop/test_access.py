"""Who may see which pages: an order page only to its customer, or to the guest session that placed it."""

import pytest
from django.test import Client
from django.urls import reverse

from shop.models import Order

from .helpers import add_to_cart, guest_checkout, paid_order, pending_order, signed_in

pytestmark = pytest.mark.django_db

ORDER_PAGES = ["shop:order_detail", "shop:order_pay"]


@pytest.mark.parametrize("page", ORDER_PAGES)
def test_the_customer_sees_their_order(shopper, shopper_client, soap, page):
    order = pending_order(soap, user=shopper)
    assert shopper_client.get(reverse(page, args=[order.number])).status_code == 200


@pytest.mark.parametrize("page", ORDER_PAGES)
def test_another_customer_gets_404(shopper, other_shopper, soap, page):
    order = pending_order(soap, user=shopper)
    response = signed_in(other_shopper).get(reverse(page, args=[order.number]))
    assert response.status_code == 404


@pytest.mark.parametrize("page", ORDER_PAGES)
def test_an_anonymous_visitor_gets_404_on_a_customer_order(client, shopper, soap, page):
    order = pending_order(soap, user=shopper)
    assert client.get(reverse(page, args=[order.number])).status_code == 404


def test_another_customer_cannot_pay_or_cancel(shopper, other_shopper, soap):
    order = pending_order(soap, user=shopper)
    intruder = signed_in(other_shopper)
    for action in ("pay", "cancel"):
        response = intruder.post(reverse("shop:order_pay", args=[order.number]), {"action": action})
        assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_a_guest_sees_their_own_order(client, soap):
    order = guest_checkout(client, soap)
    assert client.get(reverse("shop:order_detail", args=[order.number])).status_code == 200
    assert client.get(reverse("shop:order_pay", args=[order.number])).status_code == 200


@pytest.mark.parametrize("page", ORDER_PAGES)
def test_a_guest_cannot_see_another_guests_order(soap, balm, page):
    alice, bob = Client(), Client()
    alices = guest_checkout(alice, soap, email="alice@example.com")
    guest_checkout(bob, balm, email="bob@example.com")
    assert bob.get(reverse(page, args=[alices.number])).status_code == 404
    assert bob.post(reverse("shop:order_pay", args=[alices.number]), {"action": "cancel"}).status_code == 404
    alices.refresh_from_db()
    assert alices.status == Order.Status.PENDING


def test_a_guest_order_made_outside_this_browser_is_not_visible(client, soap):
    order = paid_order(soap, email="someone@example.com")
    assert client.get(reverse("shop:order_detail", args=[order.number])).status_code == 404


def test_a_signed_in_customer_cannot_see_a_guest_order_with_their_email(shopper, shopper_client, soap):
    order = paid_order(soap, email=shopper.email)  # placed as a guest in some other browser
    assert shopper_client.get(reverse("shop:order_detail", args=[order.number])).status_code == 404


def test_an_unknown_order_number_is_404(client):
    assert client.get(reverse("shop:order_detail", args=["2601-NOPE00"])).status_code == 404


def test_a_guest_keeps_access_after_signing_in(client, shopper, soap):
    order = guest_checkout(client, soap)
    client.post(reverse("shop:login"), {"username": shopper.email, "password": "secret-pass-123"})
    assert client.get(reverse("shop:order_detail", args=[order.number])).status_code == 200


def test_a_guest_loses_access_after_logging_out(client, shopper, soap):
    client.force_login(shopper)
    add_to_cart(client, soap)
    order = client.post(reverse("shop:checkout"))
    number = order.url.split("/")[2]
    client.post(reverse("shop:logout"))
    assert client.get(reverse("shop:order_detail", args=[number])).status_code == 404


# --- account page --------------------------------------------------------------------


def test_account_needs_login(client):
    response = client.get(reverse("shop:account"))
    assert response.status_code == 302
    assert response.url == f"{reverse('shop:login')}?next={reverse('shop:account')}"


def test_account_lists_own_orders_newest_first_ten_per_page(shopper, other_shopper, shopper_client, soap):
    from datetime import timedelta

    from django.utils import timezone

    from shop import services

    start = timezone.now() - timedelta(days=30)
    mine = [services.place_order(items={soap.pk: 1}, user=shopper, at=start + timedelta(days=i)) for i in range(12)]
    pending_order(soap, user=other_shopper)

    first = shopper_client.get(reverse("shop:account"))
    assert first.status_code == 200
    assert [o.number for o in first.context["orders"]] == [o.number for o in reversed(mine)][:10]
    second = shopper_client.get(reverse("shop:account"), {"page": 2})
    assert [o.number for o in second.context["orders"]] == [mine[1].number, mine[0].number]
    assert shopper_client.get(reverse("shop:account"), {"page": "abc"}).status_code == 200

    content = first.content.decode()
    assert 'class="badge badge-warning"' in content  # status badges
    assert "Awaiting payment" in content


def test_account_page_includes_the_loyalty_panel(shopper_client):
    response = shopper_client.get(reverse("shop:account"))
    assert response.status_code == 200
    assert "loyalty/account/panel.html" in [t.name for t in response.templates]


def test_account_page_shows_the_panel_for_a_loyalty_member(member, customer, soap):
    paid_order(soap, user=customer)
    response = signed_in(customer).get(reverse("shop:account"))
    assert response.status_code == 200
    assert 'class="card loyalty-panel"' in response.content.decode()


# --- CSRF ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shop:cart_add", "shop:cart_update", "shop:checkout", "shop:register", "shop:logout"])
def test_posts_need_a_csrf_token(name):
    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse(name), {}).status_code == 403


def test_forms_carry_a_csrf_token(client, soap):
    add_to_cart(client, soap)
    for name in ["shop:product_list", "shop:cart", "shop:checkout"]:
        assert "csrfmiddlewaretoken" in client.get(reverse(name)).content.decode()
