"""Points as money at checkout (services.checkout_points): the quote, applying points for a code
of exactly their value (idempotent per checkout, replacing gives the points back in one
transaction), refusals with stable codes that write nothing, and the points coming back when
the code is taken off the basket (loyalty's control or the shop's own button), expires unused,
the order is cancelled, or refunded (pro rata by policy)."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core import signing
from django.core.management import call_command
from django.utils import timezone

from loyalty.exceptions import InsufficientPoints, LoyaltyError, TierTooLow
from loyalty.models import Member, PointsEntry, Program, Redemption, Reward, RewardCode, Tier
from loyalty.services import member_enroll, points_adjust, reward_redeem
from loyalty.services.checkout_points import (
    TOKEN_SALT,
    checkout_token_issue,
    points_discount_apply,
    points_discount_quote,
    points_discount_release,
    points_discount_remove,
)
from loyalty.services.rewards import redemptions_expire_due
from shop import services as shop
from shop.models import DiscountCode, Order
from tests.factories import ProductFactory, UserFactory, points_discount_reward

pytestmark = pytest.mark.django_db
EUR = "EUR"


def give(member, points: int) -> Member:
    points_adjust(member=member, points=points, reason="test start")
    member.refresh_from_db()
    return member


def balance(member) -> int:
    return Member.objects.get(pk=member.pk).balance


def assert_ledger_consistent() -> None:
    out = StringIO()
    call_command("loyalty_check_ledger", stdout=out)
    assert "Ledger consistent" in out.getvalue()


def apply(member, points, *, basket="cart-1", total="50.00", currency=EUR, **kwargs) -> Redemption:
    token = checkout_token_issue(member=member, basket=basket)
    return points_discount_apply(
        member=member, checkout_token=token, points=points, order_total=Decimal(total), currency=currency, **kwargs
    )


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(LoyaltyError) as caught:
        call(*args, **kwargs)
    assert caught.value.message
    return caught.value.code


@pytest.fixture
def reward(program):
    return points_discount_reward(program)


@pytest.fixture
def rich(member, reward):
    return give(member, 1330)


# --- the quote ---------------------------------------------------------------------------------


def test_the_quote_lists_the_choices_from_the_programmes_point_value(rich):
    quote = points_discount_quote(member=rich, order_total=Decimal("50.00"), currency=EUR, basket="cart-1")

    assert (quote.balance, quote.point_value, quote.step, quote.min_points, quote.max_points) == (
        1330,
        Decimal("0.01"),
        100,
        100,
        1300,
    )
    assert quote.max_amount == Decimal("13.00") and quote.refusal == ""
    assert [(o.points, o.amount) for o in quote.options][:2] == [(100, Decimal("1.00")), (200, Decimal("2.00"))]
    assert quote.options[-1].points == 1300 and quote.applied is None and quote.checkout_token


def test_caps_by_share_of_the_order_and_by_amount_take_the_smaller(rich, reward):
    reward.max_order_share = Decimal("20")
    reward.save()
    assert points_discount_quote(member=rich, order_total=Decimal("50.00"), currency=EUR).max_points == 1000
    reward.max_amount = Decimal("7.50")
    reward.save()
    assert points_discount_quote(member=rich, order_total=Decimal("50.00"), currency=EUR).max_points == 700
    # The order itself is a cap: points never pay more than the goods.
    reward.max_order_share = reward.max_amount = None
    reward.save()
    assert points_discount_quote(member=rich, order_total=Decimal("4.99"), currency=EUR).max_points == 400


def test_a_reward_point_value_overrides_the_programmes(rich, reward):
    reward.point_value = Decimal("0.02")
    reward.save()
    quote = points_discount_quote(member=rich, order_total=Decimal("100.00"), currency=EUR)
    assert quote.max_points == 1300 and quote.max_amount == Decimal("26.00")


def test_too_few_points_or_too_small_an_order_quote_nothing_with_a_reason(member, reward):
    give(member, 50)
    quote = points_discount_quote(member=member, order_total=Decimal("50.00"), currency=EUR)
    assert (quote.max_points, quote.refusal) == (0, "insufficient_points") and quote.message
    give(member, 450)
    assert points_discount_quote(member=member, order_total=Decimal("0.50"), currency=EUR).refusal == "points_above_cap"
    reward.min_order_value = Decimal("20.00")
    reward.save()
    assert points_discount_quote(member=member, order_total=Decimal("19.99"), currency=EUR).refusal == "below_minimum"


def test_without_an_active_points_discount_there_is_no_quote(member):
    give(member, 500)
    assert refused(points_discount_quote, member=member, order_total=Decimal("50"), currency=EUR) == (
        "points_discount_unavailable"
    )


# --- applying -------------------------------------------------------------------------------------


def test_applying_debits_the_points_and_issues_a_shop_code_of_their_value(rich):
    redemption = apply(rich, 500)

    assert (redemption.points, redemption.amount, redemption.status) == (500, Decimal("5.00"), "issued")
    assert redemption.expires_at - redemption.created_at == timedelta(hours=2)
    assert balance(rich) == 830
    code = DiscountCode.objects.get(code=redemption.code)
    assert (code.kind, code.value, code.min_order_value, code.valid_until) == (
        "fixed",
        Decimal("5.00"),
        Decimal("5.00"),
        redemption.expires_at,
    )
    entry = PointsEntry.objects.get(member=rich, kind=PointsEntry.Kind.REDEEM)
    assert entry.points == -500 and redemption.entry == entry
    assert_ledger_consistent()


def test_the_code_never_takes_more_than_the_capped_share_of_an_order(rich, reward):
    reward.max_order_share = Decimal("50")
    reward.save()
    redemption = apply(rich, 1000, total="30.00")
    # 10.00 is at most half of the order: the shop refuses it on an order under 20.00.
    assert DiscountCode.objects.get(code=redemption.code).min_order_value == Decimal("20.00")


def test_the_validity_is_a_setting(rich, settings):
    settings.LOYALTY = {**settings.LOYALTY, "CHECKOUT_POINTS_VALID_MINUTES": 30}
    redemption = apply(rich, 100)
    assert redemption.expires_at - redemption.created_at == timedelta(minutes=30)


def test_pressing_twice_spends_once(rich):
    first = apply(rich, 500)
    second = apply(rich, 500)

    assert second.pk == first.pk and second.replayed and not first.replayed
    assert balance(rich) == 830
    assert Redemption.objects.filter(member=rich).count() == 1 and DiscountCode.objects.count() == 1


def test_two_tabs_of_one_basket_share_one_checkout(rich):
    token_a = checkout_token_issue(member=rich, basket="cart-1")
    first = points_discount_apply(
        member=rich, checkout_token=token_a, points=300, order_total=Decimal("50"), currency=EUR
    )
    again = apply(rich, 300, basket="cart-1")  # the other tab's token, issued separately
    assert again.pk == first.pk and balance(rich) == 1030


def test_changing_the_amount_replaces_the_code_and_returns_its_points(rich):
    first = apply(rich, 500)
    second = apply(rich, 800)

    first.refresh_from_db()
    assert first.status == "cancelled" and second.status == "issued" and second.amount == Decimal("8.00")
    assert not DiscountCode.objects.get(code=first.code).is_active
    assert DiscountCode.objects.get(code=second.code).is_active
    assert balance(rich) == 1330 - 800
    kinds = list(PointsEntry.objects.filter(member=rich).order_by("id").values_list("kind", "points"))
    assert kinds[1:] == [("redeem", -500), ("adjust", 500), ("redeem", -800)]
    assert Redemption.objects.filter(member=rich, status__in=["issued", "used"]).count() == 1
    assert_ledger_consistent()


def test_changing_may_use_the_points_the_previous_code_holds(member, reward):
    give(member, 600)
    apply(member, 500)
    assert apply(member, 600).points == 600 and balance(member) == 0


def test_removing_gives_the_points_back_and_twice_changes_nothing(rich):
    redemption = apply(rich, 500)
    token = checkout_token_issue(member=rich, basket="cart-1")

    assert points_discount_remove(member=rich, checkout_token=token).pk == redemption.pk
    assert points_discount_remove(member=rich, checkout_token=token) is None
    assert balance(rich) == 1330 and not DiscountCode.objects.get(code=redemption.code).is_active
    assert_ledger_consistent()


def test_the_shops_own_remove_gives_the_points_back_once_for_that_baskets_code_only(rich, program):
    from loyalty.selectors import points_history_page

    redemption = apply(rich, 500)
    five_off = Reward.objects.create(program=program, name="5 off", kind=Reward.Kind.FIXED, value=5, points_cost=100)
    reward_code = reward_redeem(member=rich, reward=five_off, idempotency_key="test:5-off")
    assert points_discount_release(basket="cart-2", code=redemption.code) is None  # another basket's
    assert points_discount_release(basket="cart-1", code=reward_code.code) is None  # a reward's code
    assert Redemption.objects.get(pk=reward_code.pk).status == "issued" and balance(rich) == 730

    assert points_discount_release(basket="cart-1", code=redemption.code).pk == redemption.pk
    assert points_discount_release(basket="cart-1", code=redemption.code) is None  # twice
    assert redemptions_expire_due(now=timezone.now() + timedelta(hours=3)) == 0  # nothing left to expire
    token = checkout_token_issue(member=rich, basket="cart-1")
    assert points_discount_remove(member=rich, checkout_token=token) is None  # "Don't use points" afterwards

    assert balance(rich) == 1230 and not DiscountCode.objects.get(code=redemption.code).is_active
    assert points_history_page(rich).object_list[0].note == "You took the points off your order."
    assert_ledger_consistent()


def test_the_shops_own_remove_leaves_a_code_an_order_used(rich, customer):
    redemption = apply(rich, 500)
    shop.mark_paid(order=_order_with(redemption, customer))

    assert points_discount_release(basket="cart-1", code=redemption.code) is None
    assert Redemption.objects.get(pk=redemption.pk).status == "used"
    assert not PointsEntry.objects.filter(member=rich, idempotency_key=f"redemption:{redemption.pk}:refund").exists()


def test_loyaltys_own_codes_work_the_same(rich, settings, customer):
    from loyalty.services import code_quote

    settings.LOYALTY = {**settings.LOYALTY, "REWARD_CODES": "loyalty"}
    redemption = apply(rich, 500)
    code = RewardCode.objects.get(redemption=redemption)
    assert (code.kind, code.value, code.member) == ("fixed", Decimal("5.00"), rich)
    quote = code_quote(code=code.code, order_total=Decimal("50"), currency=EUR, user=customer)
    assert quote.discount == Decimal("5.00")
    apply(rich, 200)
    code.refresh_from_db()
    assert code.status == RewardCode.Status.REVOKED and balance(rich) == 1130


# --- refusals: a stable code, nothing written ------------------------------------------------------


def _state(member) -> tuple:
    return (
        balance(member),
        PointsEntry.objects.count(),
        Redemption.objects.count(),
        DiscountCode.objects.count(),
    )


@pytest.mark.parametrize(
    ("points", "code"),
    [
        (-100, "points_not_positive"),
        (0, "points_not_positive"),
        (Decimal("100.5"), "points_not_whole"),
        (100.0, "points_not_whole"),
        ("100", "points_not_whole"),
        (True, "points_not_whole"),
        (150, "points_not_in_step"),
        (1400, "insufficient_points"),
    ],
)
def test_a_bad_amount_is_refused_and_writes_nothing(rich, points, code):
    before = _state(rich)
    assert refused(apply, rich, points) == code
    assert _state(rich) == before


def test_below_the_fewest_points_is_refused(rich, reward):
    reward.points_cost = 300
    reward.save()
    assert refused(apply, rich, 200) == "points_below_minimum"


def test_more_than_the_cap_is_refused(rich, reward):
    reward.max_amount = Decimal("5.00")
    reward.save()
    before = _state(rich)
    assert refused(apply, rich, 600) == "points_above_cap"
    assert _state(rich) == before


def test_a_basket_in_another_currency_is_refused(rich):
    before = _state(rich)
    assert refused(apply, rich, 100, currency="USD") == "wrong_currency"
    assert refused(points_discount_quote, member=rich, order_total=Decimal("50"), currency="USD") == "wrong_currency"
    assert _state(rich) == before


def test_an_order_below_the_rewards_minimum_is_refused(rich, reward):
    reward.min_order_value = Decimal("20.00")
    reward.save()
    assert refused(apply, rich, 100, total="19.99") == "below_minimum"


def test_an_expired_altered_or_foreign_token_is_refused(rich, monkeypatch):
    import time

    other = give(member_enroll(program=rich.program, user=UserFactory())[0], 1000)
    before = _state(rich)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3 * 3600)
    old = checkout_token_issue(member=rich, basket="cart-1")
    monkeypatch.setattr(time, "time", real)
    call = {"points": 100, "order_total": Decimal("50"), "currency": EUR}

    assert refused(points_discount_apply, member=rich, checkout_token=old, **call) == "checkout_token_expired"
    assert refused(points_discount_apply, member=rich, checkout_token="nonsense", **call) == "checkout_token_invalid"
    forged = signing.dumps({"m": rich.pk, "b": "x"}, salt="another salt")
    assert refused(points_discount_apply, member=rich, checkout_token=forged, **call) == "checkout_token_invalid"
    theirs = checkout_token_issue(member=other, basket="cart-1")
    assert refused(points_discount_apply, member=rich, checkout_token=theirs, **call) == "checkout_token_foreign"
    assert refused(points_discount_remove, member=rich, checkout_token=theirs) == "checkout_token_foreign"
    assert _state(rich) == before
    assert TOKEN_SALT  # the salt is the module's, not a guessable default


def test_a_tier_below_the_rewards_is_refused(rich, reward, program):
    gold = Tier.objects.create(program=program, name="Gold", rank=2, threshold=Decimal("1000"))
    reward.min_tier = gold
    reward.save()
    assert refused(apply, rich, 100) == TierTooLow.code


def test_after_a_concurrent_spend_the_points_are_refused(rich):
    quote = points_discount_quote(member=rich, order_total=Decimal("50"), currency=EUR, basket="cart-1")
    points_adjust(member=rich, points=-1000, reason="spent elsewhere meanwhile")
    with pytest.raises(InsufficientPoints):
        points_discount_apply(
            member=rich, checkout_token=quote.checkout_token, points=1300, order_total=Decimal("50"), currency=EUR
        )
    assert balance(rich) == 330


def test_the_shop_failing_to_make_the_code_debits_nothing(rich, monkeypatch):
    from config.loyalty_adapter import ShopAdapter

    def broken(self, *, redemption):
        raise RuntimeError("shop down")

    monkeypatch.setattr(ShopAdapter, "issue_discount", broken)
    before = _state(rich)
    assert refused(apply, rich, 100) == "discount_not_issued"
    assert _state(rich) == before


# --- given back ---------------------------------------------------------------------------------


def _order_with(redemption, customer, *, price="40.00") -> Order:
    product = ProductFactory(price=Decimal(price))
    return shop.place_order(items={product.pk: 1}, user=customer, discount_code=redemption.code)


def test_a_code_that_expires_unused_gives_the_points_back_once(rich, program):
    Program.objects.filter(pk=program.pk).update(refund_points_on_code_expiry=False)  # checkout points come back anyway
    redemption = apply(rich, 500)

    assert redemptions_expire_due(now=timezone.now() + timedelta(hours=3)) == 1
    assert redemptions_expire_due(now=timezone.now() + timedelta(hours=4)) == 0
    redemption.refresh_from_db()
    assert redemption.status == "expired" and balance(rich) == 1330
    assert_ledger_consistent()


def test_an_expired_checkout_code_is_replaced_even_for_the_same_points(rich):
    first = apply(rich, 500, at=timezone.now() - timedelta(hours=3))
    second = apply(rich, 500)
    assert second.pk != first.pk and balance(rich) == 830


def test_the_paid_order_uses_the_code_and_a_new_checkout_is_refused_on_it(rich, customer):
    redemption = apply(rich, 500)
    order = shop.mark_paid(order=_order_with(redemption, customer))

    redemption.refresh_from_db()
    assert (redemption.status, redemption.order_reference) == ("used", order.number)
    assert order.discount_total == Decimal("5.00") and order.total == Decimal("35.00")
    assert apply(rich, 500).pk == redemption.pk  # a late double press
    assert refused(apply, rich, 300) == "checkout_completed"
    assert redemptions_expire_due(now=timezone.now() + timedelta(hours=3)) == 0


def test_cancelling_an_unpaid_order_gives_the_points_back_and_kills_the_code(rich, customer):
    redemption = apply(rich, 500)
    order = _order_with(redemption, customer)

    shop.cancel_pending_order(order=order)

    redemption.refresh_from_db()
    assert redemption.status == "cancelled" and balance(rich) == 1330
    code = DiscountCode.objects.get(code=redemption.code)
    assert not code.is_active  # freed by the shop, but dead
    product = ProductFactory(price=Decimal("40.00"))
    with pytest.raises(Exception, match="not valid"):
        shop.place_order(items={product.pk: 1}, user=customer, discount_code=redemption.code)
    assert_ledger_consistent()


def test_cancelling_a_paid_order_gives_the_points_back(rich, customer):
    redemption = apply(rich, 500)
    order = shop.mark_paid(order=_order_with(redemption, customer))
    shop.cancel_order(order=order)
    shop.cancel_order(order=order)

    redemption.refresh_from_db()
    assert redemption.status == "cancelled"
    # The 35 points earned on the order are reversed; the 500 used on it come back.
    assert balance(rich) == 1330
    assert_ledger_consistent()


def test_a_partial_refund_gives_back_points_pro_rata_and_the_rest_with_the_last_refund(rich, customer):
    redemption = apply(rich, 500)
    order = shop.mark_paid(order=_order_with(redemption, customer, price="40.00"))  # pays 35.00
    after_paid = balance(rich)

    shop.refund_order(order=order, amount=Decimal("7.00"))  # a fifth
    redemption.refresh_from_db()
    assert redemption.points_returned == 100
    assert balance(rich) == after_paid - 7 + 100

    shop.refund_order(order=order)  # the rest
    redemption.refresh_from_db()
    assert redemption.points_returned == 500 and redemption.status == "used"
    assert balance(rich) == 1330
    assert_ledger_consistent()


def test_the_keep_policy_returns_nothing_on_a_partial_refund_but_all_on_a_full_one(rich, customer, program):
    Program.objects.filter(pk=program.pk).update(checkout_points_refund_policy="keep")
    redemption = apply(rich, 500)
    order = shop.mark_paid(order=_order_with(redemption, customer))
    after_paid = balance(rich)

    shop.refund_order(order=order, amount=Decimal("7.00"))
    assert balance(rich) == after_paid - 7
    shop.refund_order(order=order)
    assert balance(rich) == 1330


def test_the_history_says_paid_with_points(rich):
    from loyalty.selectors import points_history_page

    apply(rich, 500)
    apply(rich, 300)
    rows = points_history_page(rich).object_list
    assert rows[0].title == "Paid with 300 points (−€3.00)"
    assert rows[1].title == "Points returned from checkout" and rows[1].note
    assert rows[2].title == "Paid with 500 points (−€5.00)"
