"""Fixtures for the adapter's unit tests: an oscar catalogue, customers and oscar's own checkout code."""

from decimal import Decimal as D

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from oscar.core.loading import get_class, get_model

from loyalty.models import Program

Basket = get_model("basket", "Basket")
Partner = get_model("partner", "Partner")
Product = get_model("catalogue", "Product")
ProductClass = get_model("catalogue", "ProductClass")
StockRecord = get_model("partner", "StockRecord")
Applicator = get_class("offer.applicator", "Applicator")
OrderCreator = get_class("order.utils", "OrderCreator")
OrderTotalCalculator = get_class("checkout.calculators", "OrderTotalCalculator")
Selector = get_class("partner.strategy", "Selector")
SurchargeApplicator = get_class("checkout.applicator", "SurchargeApplicator")
Free = get_class("shipping.methods", "Free")
FixedPrice = get_class("shipping.methods", "FixedPrice")


@pytest.fixture
def program(db):
    return Program.objects.create(name="Rewards", slug="rewards", currency=settings.OSCAR_DEFAULT_CURRENCY)


@pytest.fixture
def customer(db):
    return get_user_model().objects.create_user(username="ada", email="ada@example.com", password="x")


@pytest.fixture
def product(db):
    books = ProductClass.objects.create(name="Books")
    book = Product.objects.create(product_class=books, title="A book", upc="BOOK-1")
    partner = Partner.objects.create(name="Warehouse")
    StockRecord.objects.create(product=book, partner=partner, partner_sku="B-1", price=D("50.00"), num_in_stock=100)
    return book


@pytest.fixture
def make_basket(product):
    def make(user=None, quantity=1, item=None):
        basket = Basket.objects.create(owner=user)
        basket.strategy = Selector().strategy(user=user)
        basket.add_product(item or product, quantity=quantity)
        return basket

    return make


@pytest.fixture
def place_order(make_basket):
    """Place an order as oscar's checkout does: OrderCreator.place_order (sends order_placed)."""

    def place(user=None, quantity=1, basket=None, shipping=None, **kwargs):
        basket = basket or make_basket(user, quantity)
        Applicator().apply(basket, user)
        method = shipping or Free()
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

    return place
