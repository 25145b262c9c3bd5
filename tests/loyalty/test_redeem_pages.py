"""Customers redeem rewards from their account page: confirm, then a code; refusals explained."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from loyalty.models import Member, Redemption, Reward
from loyalty.services import member_enroll, points_adjust
from shop import services as shop_services
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_euro(program):
    return Reward.objects.create(
        program=program, name="5 EUR off", kind=Reward.Kind.FIXED, points_cost=500, value=Decimal("5.00")
    )


def test_the_account_page_offers_affordable_rewards_and_says_what_is_missing(client, member, customer, five_euro):
    points_adjust(member=member, points=120, reason="goodwill")
    client.force_login(customer)
    page = client.get(reverse("shop:account")).content.decode()
    assert "5 EUR off" in page
    assert "380 more points" in page
    assert reverse("loyalty:redeem", args=[five_euro.pk]) not in page


def test_redeeming_confirms_then_issues_a_code_usable_at_checkout(client, member, customer, five_euro):
    points_adjust(member=member, points=600, reason="goodwill")
    client.force_login(customer)
    account = reverse("shop:account")
    url = reverse("loyalty:redeem", args=[five_euro.pk])
    assert url in client.get(account).content.decode()

    confirm = client.get(url, {"next": account}).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', confirm).group(1)
    assert "Left after redeeming" in confirm and "100 points" in confirm

    response = client.post(url, {"token": token, "next": account}, follow=True)
    again = client.post(url, {"token": token, "next": account}, follow=True)  # double submit

    redemption = Redemption.objects.get()
    assert Member.objects.get(pk=member.pk).balance == 100
    assert redemption.code in response.content.decode()
    assert again.status_code == 200
    product = ProductFactory(price=Decimal("20.00"))
    order = shop_services.place_order(items={product.pk: 1}, user=customer, discount_code=redemption.code)
    assert order.total == Decimal("15.00")


def test_a_refusal_is_explained_and_spends_nothing(client, member, customer, five_euro):
    points_adjust(member=member, points=600, reason="goodwill")
    five_euro.is_active = False
    five_euro.save()
    client.force_login(customer)
    url = reverse("loyalty:redeem", args=[five_euro.pk])

    response = client.post(url, {"token": "0" * 32, "next": "/account/"}, follow=True)

    assert not Redemption.objects.exists()
    assert Member.objects.get(pk=member.pk).balance == 600
    assert "is not available any more" in response.content.decode()


def test_another_programmes_reward_or_a_non_member_gets_404(client, program, five_euro):
    outsider = UserFactory()
    client.force_login(outsider)
    assert client.get(reverse("loyalty:redeem", args=[five_euro.pk])).status_code == 404
    member_enroll(program=program, user=outsider)
    assert client.get(reverse("loyalty:redeem", args=[987654])).status_code == 404


def test_redeeming_needs_a_login(client, five_euro):
    response = client.get(reverse("loyalty:redeem", args=[five_euro.pk]))
    assert response.status_code == 302
    assert "login" in response["Location"]
