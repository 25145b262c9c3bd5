"""The demo shop's "Use my points" control, without JavaScript: the cart shows the balance, its
value and the range; the form debits the points and the cart's total drops without a code to
type; checkout places the order with it; the receipt and the account history say "Paid with
500 points"; refusals are explained and spend nothing."""

import re
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from loyalty.models import Member, Redemption, Reward
from loyalty.services import member_enroll, points_adjust
from shop import services as shop
from shop.models import Order
from tests.factories import ProductFactory, UserFactory, points_discount_reward

pytestmark = pytest.mark.django_db
CART = "/cart/"


@pytest.fixture
def reward(program):
    return points_discount_reward(program)


@pytest.fixture
def shopper(client, member, customer, reward):
    points_adjust(member=member, points=1330, reason="start")
    client.force_login(customer)
    oil = ProductFactory(name="Olive oil", price=Decimal("40.00"))
    client.post(reverse("shop:cart_add"), {"product": oil.pk, "quantity": 1})
    return client


def token_in(page: str) -> str:
    return re.search(r'name="checkout_token" value="([^"]+)"', page).group(1)


def use_points(client, points, *, page=None) -> list[str]:
    page = page or client.get(CART).text
    response = client.post(
        reverse("loyalty:checkout_points"),
        {"checkout_token": token_in(page), "program": "rewards", "points": points, "next": CART},
    )
    assert response.status_code == 302 and response.url == CART
    return [str(m) for m in get_messages(response.wsgi_request)]


def balance(member) -> int:
    return Member.objects.get(pk=member.pk).balance


def test_the_cart_shows_the_balance_its_value_and_the_range(shopper):
    page = shopper.get(CART).text
    assert "Use my points" in page
    assert "You have <strong>1330 points</strong>, worth €13.30." in page
    assert "You can use 100 to 1300 points on this order, in steps of 100: up to €13.00 off." in page
    assert '<option value="1300" selected>1300 points (−€13.00)</option>' in page
    assert 'for="loyalty-points-rewards"' in page and 'id="loyalty-points-rewards"' in page
    assert "<script" not in page.split("Use my points")[1].split("</section>")[0]


def test_using_points_drops_the_cart_total_without_a_code(shopper, member):
    said = use_points(shopper, 500)

    assert said == ["500 points take €5.00 off your order."]
    assert balance(member) == 830
    page = shopper.get(CART).text
    assert '<dd class="summary-total" id="cart-total">€35.00</dd>' in page
    assert "500 loyalty points" in page and "−€5.00" in page
    code = Redemption.objects.get(member=member).code
    assert code not in page  # never shown, never typed
    assert "<strong>500 points</strong> take <strong>€5.00</strong> off this order." in page


def test_checkout_places_the_order_with_the_points_and_the_receipt_and_history_say_so(shopper, member):
    use_points(shopper, 500)
    checkout = shopper.get(reverse("shop:checkout")).text
    assert "500 loyalty points" in checkout and "€35.00" in checkout

    shopper.post(reverse("shop:checkout"), {"discount_code": ""})
    order = Order.objects.get()
    assert (order.total, order.discount_total) == (Decimal("35.00"), Decimal("5.00"))
    shop.mark_paid(order=order)

    receipt = shopper.get(order.get_absolute_url()).text
    assert "Paid with 500 points (−€5.00)" in receipt
    account = shopper.get(reverse("shop:account")).text
    assert "Paid with 500 points (−€5.00)" in account
    # The next cart is a new checkout: no points used on it yet.
    assert Redemption.objects.get(member=member).status == "used"


def test_changing_and_removing_give_the_points_back(shopper, member):
    use_points(shopper, 500)
    use_points(shopper, 800)
    assert balance(member) == 530
    assert '<option value="800" selected>' in shopper.get(CART).text

    page = shopper.get(CART).text
    response = shopper.post(
        reverse("loyalty:checkout_points"),
        {"checkout_token": token_in(page), "program": "rewards", "remove": "1", "next": CART},
    )
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Your points are back in your account."]
    assert balance(member) == 1330
    assert '<dd class="summary-total" id="cart-total">€40.00</dd>' in shopper.get(CART).text


def test_a_double_submit_spends_once(shopper, member):
    page = shopper.get(CART).text
    use_points(shopper, 500, page=page)
    use_points(shopper, 500, page=page)
    assert balance(member) == 830 and Redemption.objects.count() == 1


@pytest.mark.parametrize(
    ("points", "said"),
    [
        ("150", "Choose points in steps of 100."),
        ("abc", "Enter a whole number of points."),
        ("2.5", "Enter a whole number of points."),
        ("-100", "Enter a number of points greater than zero."),
        ("5000", "You have 1330 points; you cannot use 5000."),
    ],
)
def test_a_bad_amount_is_explained_and_spends_nothing(shopper, member, points, said):
    assert use_points(shopper, points) == [said]
    assert balance(member) == 1330 and not Redemption.objects.exists()


def test_a_form_from_an_old_cart_is_refused(shopper, member):
    page = shopper.get(CART).text
    use_points(shopper, 500)
    shopper.post(reverse("shop:checkout"), {"discount_code": ""})  # the order is placed: a new cart next
    other = ProductFactory(price=Decimal("20.00"))
    shopper.post(reverse("shop:cart_add"), {"product": other.pk, "quantity": 1})

    assert use_points(shopper, 300, page=page)[-1] == "Your cart has changed: choose your points again."
    assert balance(member) == 830


def test_a_typed_code_and_the_carts_points_do_not_stack(shopper):
    use_points(shopper, 500)
    page = shopper.post(reverse("shop:checkout"), {"discount_code": "WELCOME10", "apply_code": "1"}).text
    assert "Your cart already has a discount: take it off to use a code instead." in page
    assert not Order.objects.exists()


def test_nothing_shows_without_a_points_discount_or_for_guests(client, member, customer, reward):
    oil = ProductFactory(price=Decimal("40.00"))
    client.post(reverse("shop:cart_add"), {"product": oil.pk, "quantity": 1})
    assert "Use my points" not in client.get(CART).text  # a guest
    client.force_login(customer)
    assert "Use my points" in client.get(CART).text
    Reward.objects.filter(pk=reward.pk).update(is_active=False)
    assert "Use my points" not in client.get(CART).text


def test_too_few_points_says_how_many_are_needed(client, member, customer, reward):
    points_adjust(member=member, points=40, reason="start")
    client.force_login(customer)
    oil = ProductFactory(price=Decimal("40.00"))
    client.post(reverse("shop:cart_add"), {"product": oil.pk, "quantity": 1})
    page = client.get(CART).text
    assert "You need at least 100 points to pay with points." in page and "checkout_token" not in page


def test_a_cart_that_shrinks_below_the_codes_cap_loses_the_discount_and_keeps_the_choice(shopper, member, reward):
    Reward.objects.filter(pk=reward.pk).update(max_order_share=Decimal("50"))
    use_points(shopper, 1300)  # 13.00 needs an order of 26.00
    Order.objects.all().delete()
    cheap = ProductFactory(price=Decimal("10.00"))
    session_cart = shopper.session["shop_cart"]
    (oil_id,) = session_cart
    shopper.post(reverse("shop:cart_update"), {"product": oil_id, "quantity": 0})
    shopper.post(reverse("shop:cart_add"), {"product": cheap.pk, "quantity": 1})

    response = shopper.get(CART)
    assert "The discount on your cart no longer applies to it and was taken off." in [
        str(m) for m in get_messages(response.wsgi_request)
    ]
    page = response.text
    assert '<dd class="summary-total" id="cart-total">€10.00</dd>' in page
    # The held points count towards the new choice, which replaces the old code.
    assert "You can use 100 to 500 points on this order" in page
    use_points(shopper, 500)
    assert balance(member) == 830


def test_another_member_never_sees_a_points_code_label(client, member, customer, reward):
    points_adjust(member=member, points=600, reason="start")
    client.force_login(customer)
    oil = ProductFactory(price=Decimal("40.00"))
    client.post(reverse("shop:cart_add"), {"product": oil.pk, "quantity": 1})
    use_points(client, 500)
    client.post(reverse("shop:checkout"), {"discount_code": ""})
    order = Order.objects.get()
    other = UserFactory()
    member_enroll(program=member.program, user=other)
    client.force_login(other)
    assert client.get(order.get_absolute_url()).status_code == 404


def test_the_panel_says_worth_only_with_a_points_discount(client, member, customer, reward):
    points_adjust(member=member, points=1331, reason="start")
    client.force_login(customer)
    page = client.get(reverse("shop:account")).text
    # Whole steps only: 1300 of the 1331 points pay in the cart.
    assert "Worth €13.00 towards your next order." in page and "Choose how many points" in page
    assert "Pay with points" not in page.split("Rewards")[-1]  # not a reward to redeem for a code
    Reward.objects.filter(pk=reward.pk).update(is_active=False)
    assert "Worth" not in client.get(reverse("shop:account")).text


def test_the_panel_says_how_many_points_are_missing_below_the_fewest(client, member, customer, reward):
    Reward.objects.filter(pk=reward.pk).update(points_cost=500, points_step=100)
    points_adjust(member=member, points=420, reason="start")
    client.force_login(customer)
    page = client.get(reverse("shop:account")).text
    assert "80 more points and you can pay with points in the cart." in page and "Worth" not in page


def test_how_it_works_explains_paying_with_points(client, program, reward):
    Reward.objects.filter(pk=reward.pk).update(max_order_share=Decimal("50"), max_amount=Decimal("20.00"))
    page = client.get(reverse("loyalty:how_it_works", args=[program.slug])).text
    assert (
        "Pay with points in your cart: 100 points take €1.00 off an order. Points pay up to 50% of an order. "
        "Points pay at most €20.00 of one order." in page
    )


def test_a_points_discount_cannot_be_redeemed_for_a_code(member, reward):
    from loyalty.services import reward_redeem

    points_adjust(member=member, points=500, reason="start")
    with pytest.raises(Exception) as caught:
        reward_redeem(member=member, reward=reward)
    assert caught.value.code == "reward_used_at_checkout" and balance(member) == 500


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "de",
            [
                "Meine Punkte einlösen",
                "Sie haben <strong>1330 Punkte</strong> im Wert von 13,30\u00a0€.",
                "Punkte einsetzen",
            ],
        ),
        ("it", ["Usa i miei punti", "Hai <strong>1330 punti</strong>, del valore di 13,30\u00a0€.", "Usa i punti"]),
    ],
)
def test_the_control_and_the_history_are_in_german_and_italian(shopper, member, settings, lang, words):
    shopper.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    page = shopper.get(CART).text
    for word in words:
        assert word in page
    use_points(shopper, 500)
    account = shopper.get(reverse("shop:account")).text
    paid = {"de": "Mit 500 Punkten bezahlt (−5,00\u00a0€)", "it": "Pagato con 500 punti (−5,00\u00a0€)"}[lang]
    assert paid in account


def test_staff_set_up_points_at_checkout_in_admin(admin_client, program):
    data = {
        "program": program.pk,
        "name": "Pay with points",
        "description": "",
        "is_active": "on",
        "kind": "points_discount",
        "value": "0",
        "code_valid_days": 30,
        "points_cost": 150,
        "points_step": 100,
        "max_order_share": "50",
    }
    url = reverse("admin:loyalty_reward_add")
    refused = admin_client.post(url, data)
    assert refused.status_code == 200 and "The fewest points must be a multiple of the step." in refused.text
    assert admin_client.post(url, {**data, "points_cost": 200}).status_code == 302
    reward = Reward.objects.get(kind="points_discount")
    assert (reward.points_cost, reward.points_step, reward.max_order_share) == (200, 100, Decimal("50.00"))
    change = admin_client.get(reverse("admin:loyalty_reward_change", args=[reward.pk])).text
    assert "Points as money at checkout" in change
