"""Fixtures for the shop's tests. Orders are made through the real services."""

from decimal import Decimal

import pytest

from tests.factories import ProductFactory, UserFactory

from .helpers import signed_in


@pytest.fixture
def soap(db):
    return ProductFactory(name="Olive Oil Soap", slug="olive-oil-soap", price=Decimal("7.50"))


@pytest.fixture
def balm(db):
    return ProductFactory(name="Lavender Balm", slug="lavender-balm", price=Decimal("12.90"))


@pytest.fixture
def shopper(db):
    """A signed-in customer (not the loyalty ``customer`` fixture, so no programme is involved)."""
    return UserFactory(email="anna@example.com", first_name="Anna")


@pytest.fixture
def other_shopper(db):
    return UserFactory(email="bruno@example.com", first_name="Bruno")


@pytest.fixture
def shopper_client(shopper):
    return signed_in(shopper)
