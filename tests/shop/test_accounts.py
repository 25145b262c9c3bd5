"""Registering, signing in with the email address, and logging out."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from .helpers import last_message

pytestmark = pytest.mark.django_db

User = get_user_model()


def register(client, **data):
    return client.post(reverse("shop:register"), {"password": "a-good-pass-2026", "first_name": "", **data})


def test_register_creates_a_customer_and_signs_them_in(client):
    response = register(client, email="Giulia.Rossi@Example.COM", first_name="Giulia")
    assert response.url == reverse("shop:account")
    user = User.objects.get()
    assert user.username == user.email == "giulia.rossi@example.com"
    assert user.first_name == "Giulia"
    assert user.check_password("a-good-pass-2026")
    assert client.get(reverse("shop:account")).context["user"] == user
    assert last_message(response) == "Welcome! Your account is ready."


def test_first_name_is_optional(client):
    register(client, email="x@example.com")
    assert User.objects.get().first_name == ""


def test_register_refuses_a_taken_email_in_any_case(client, shopper):
    response = register(client, email="ANNA@example.com")
    assert response.status_code == 200
    assert "An account with this email already exists." in response.content.decode()
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"email": "not-an-email"}, "Please enter a valid email address."),
        ({"email": ""}, "Please enter your email address."),
        ({"email": "z@example.com", "password": "123"}, "This password is too short."),
        ({"email": "z@example.com", "password": "password"}, "This password is too common."),
    ],
)
def test_register_validates(client, data, error):
    response = register(client, **data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert User.objects.count() == 0


def test_register_prefills_the_email_from_the_receipt_link(client):
    response = client.get(reverse("shop:register"), {"email": "guest@example.com"})
    assert 'value="guest@example.com"' in response.content.decode()


def test_signed_in_visitors_skip_register_and_login(shopper_client):
    assert shopper_client.get(reverse("shop:register")).url == reverse("shop:account")
    assert shopper_client.get(reverse("shop:login")).url == reverse("shop:account")


def test_login_with_the_email_in_any_case(client, shopper):
    response = client.post(reverse("shop:login"), {"username": " ANNA@Example.com", "password": "secret-pass-123"})
    assert response.url == reverse("shop:account")


def test_login_with_a_wrong_password(client, shopper):
    response = client.post(reverse("shop:login"), {"username": "anna@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct email address and password." in response.content.decode()


def test_login_honours_a_safe_next(client, shopper):
    response = client.post(
        reverse("shop:login") + "?next=/checkout/",
        {"username": "anna@example.com", "password": "secret-pass-123", "next": "/checkout/"},
    )
    assert response.url == "/checkout/"


def test_logout_is_a_post(shopper_client):
    assert shopper_client.get(reverse("shop:logout")).status_code == 405
    response = shopper_client.post(reverse("shop:logout"))
    assert response.url == reverse("shop:product_list")
    assert shopper_client.get(reverse("shop:account")).status_code == 302


def test_the_header_shows_the_right_links(client, shopper_client):
    anonymous = client.get(reverse("shop:product_list")).content.decode()
    assert reverse("shop:login") in anonymous and reverse("shop:register") in anonymous
    signed = shopper_client.get(reverse("shop:product_list")).content.decode()
    assert reverse("shop:account") in signed
    assert f'action="{reverse("shop:logout")}"' in signed
