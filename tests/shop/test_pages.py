"""The catalogue pages and the money format."""

from decimal import Decimal

import pytest
from django.urls import reverse

from shop.templatetags.shop_tags import money, swatch_colour
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_product_list_shows_active_products_only(client, soap):
    ProductFactory(name="Retired Candle", is_active=False)
    response = client.get(reverse("shop:product_list"))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Olive Oil Soap" in content and "€7.50" in content
    assert "Retired Candle" not in content
    assert "Bottega Verde" in content


def test_product_detail(client, soap):
    response = client.get(reverse("shop:product_detail", args=[soap.slug]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Olive Oil Soap" in content
    assert f"--swatch: {soap.colour}" in content
    assert 'for="id_quantity"' in content


def test_inactive_and_unknown_products_are_404(client, soap):
    soap.is_active = False
    soap.save()
    assert client.get(reverse("shop:product_detail", args=[soap.slug])).status_code == 404
    assert client.get(reverse("shop:product_detail", args=["nothing-here"])).status_code == 404


def test_base_page_basics(client):
    content = client.get(reverse("shop:product_list")).content.decode()
    assert '<html lang="en">' in content
    assert 'name="viewport"' in content
    assert 'href="#main"' in content and 'id="main"' in content


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (Decimal("7.5"), "EUR", "€7.50"),
        (Decimal("1234.5"), "EUR", "€1,234.50"),
        (Decimal("0"), "GBP", "£0.00"),
        (Decimal("3.456"), "CHF", "3.46 CHF"),
        (Decimal("-2"), "EUR", "−€2.00"),
        ("12", None, "€12.00"),
        (None, "EUR", ""),
        ("abc", "EUR", ""),
    ],
)
def test_money(value, currency, expected):
    assert money(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("#A0B1C2", "#A0B1C2"), ("red;}", "#5b7f5a"), ("", "#5b7f5a"), (None, "#5b7f5a")]
)
def test_swatch_colour_is_safe_in_a_style_attribute(value, expected):
    assert swatch_colour(value) == expected
