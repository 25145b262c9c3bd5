"""Helpers for the shop's tests: they drive the real views and services."""

from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from shop import services
from shop.models import Order

PASSWORD = "secret-pass-123"  # tests.factories.UserFactory's password


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add_to_cart(client, product, quantity=1):
    return client.post(reverse("shop:cart_add"), {"product": product.pk, "quantity": quantity})


def cart_of(client) -> dict:
    return dict(client.session.get("shop_cart", {}))


def messages_of(response) -> list[str]:
    """The messages not yet shown when ``response`` was made (works for redirects), oldest first."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def last_message(response) -> str | None:
    messages = messages_of(response)
    return messages[-1] if messages else None


def pending_order(*products, user=None, email="guest@example.com"):
    return services.place_order(items={p.pk: 1 for p in products}, user=user, email=email)


def paid_order(*products, user=None, email="guest@example.com"):
    return services.mark_paid(order=pending_order(*products, user=user, email=email))


def guest_checkout(client, product, email="guest@example.com"):
    """Add ``product`` and check out as a guest with the test client; returns the order."""
    add_to_cart(client, product)
    response = client.post(reverse("shop:checkout"), {"email": email})
    assert response.status_code == 302, messages_of(response)
    return Order.objects.get(number=response.url.split("/")[2])
