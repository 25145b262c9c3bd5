"""Loyalty's own reward codes (REWARD_CODES = "loyalty") and the checkout API: quote, consume
(idempotent per order, one order per code, also under concurrency), release; refusals with
stable codes that write nothing; expiry and staff cancellation as with the shop's codes; and
codes named by a paid order event marked used at once."""

import dataclasses
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import close_old_connections, transaction
from django.urls import reverse
from django.utils import timezone

from loyalty.adapters.base import OrderEvent
from loyalty.exceptions import CodeRefused, InvalidEvent, RedemptionNotCancellable
from loyalty.models import Member, PointsEntry, Redemption, Reward, RewardCode
from loyalty.services import code_consume, code_issue, code_quote, code_release, member_enroll, points_adjust
from loyalty.services.codes import codes_used_by_paid_order
from loyalty.services.rewards import redemption_cancel, redemptions_expire_due, reward_redeem
from shop import services as shop
from shop.models import DiscountCode
from tests.factories import ProductFactory, UserFactory, order_event

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
EUR = "EUR"


@pytest.fixture
def own_codes(settings):
    settings.LOYALTY = {**settings.LOYALTY, "REWARD_CODES": "loyalty"}


def make_reward(program, **fields) -> Reward:
    defaults = {"name": "5 € off", "kind": Reward.Kind.FIXED, "points_cost": 500, "value": Decimal("5.00")}
    return Reward.objects.create(program=program, **{**defaults, **fields})


def redeemed(member, reward=None, *, key="r1", **reward_fields) -> Redemption:
    reward = reward or make_reward(member.program, **reward_fields)
    points_adjust(member=member, points=reward.points_cost, reason="test start", idempotency_key=f"start:{key}")
    return reward_redeem(member=member, reward=reward, idempotency_key=key)


def refusal(call, **kwargs) -> str:
    with pytest.raises(CodeRefused) as caught:
        call(**kwargs)
    assert caught.value.message  # a sentence for the customer
    return caught.value.code


# --- issuing --------------------------------------------------------------------------------


def test_a_redeemed_reward_becomes_a_personal_loyalty_code(own_codes, member, customer):
    redemption = redeemed(member, min_order_value=Decimal("20.00"))

    code = RewardCode.objects.get(redemption=redemption)
    assert redemption.code == code.code and code.code.startswith("LOY-") and len(code.code) == 14
    assert (code.kind, code.value, code.currency, code.min_order_value) == (
        "fixed",
        Decimal("5.00"),
        EUR,
        Decimal("20.00"),
    )
    assert code.member == member and code.expires_at == redemption.expires_at
    assert code.status == RewardCode.Status.ACTIVE and code.description == "5 € off"
    assert Member.objects.get(pk=member.pk).balance == 0


def test_a_reward_that_is_not_personal_gives_a_code_anyone_may_use(own_codes, member):
    redemption = redeemed(member, personal_code=False)

    assert RewardCode.objects.get(redemption=redemption).member is None
    quote = code_quote(code=redemption.code, order_total=Decimal("30.00"), currency=EUR, user=None)
    assert quote.discount == Decimal("5.00")


def test_without_the_setting_the_adapter_still_makes_the_code(member):
    redemption = redeemed(member)

    assert DiscountCode.objects.filter(code=redemption.code).exists()
    assert not RewardCode.objects.exists()


# --- quote ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "total", "discount", "free_shipping"),
    [
        ("fixed", "5.00", "30.00", "5.00", False),
        ("fixed", "5.00", "3.50", "3.50", False),  # never more than the order
        ("percent", "15.00", "33.33", "5.00", False),  # 4.9995 rounds half up to 5.00
        ("free_shipping", "0", "30.00", "0.00", True),
    ],
)
def test_quote_says_what_a_code_takes_off(program, customer, kind, value, total, discount, free_shipping):
    code = code_issue(program=program, kind=kind, value=Decimal(value))

    quote = code_quote(code=code.code.lower(), order_total=Decimal(total), currency=EUR, user=customer)

    assert (quote.code, quote.kind, quote.discount, quote.free_shipping) == (
        code.code,
        kind,
        Decimal(discount),
        free_shipping,
    )
    assert RewardCode.objects.get(pk=code.pk).status == RewardCode.Status.ACTIVE  # a quote writes nothing


def test_a_free_product_comes_off_when_the_order_has_it(program):
    code = code_issue(program=program, kind="free_product", product_reference="olive-oil")

    quote = code_quote(
        code=code.code, order_total=Decimal("40.00"), currency=EUR, lines={"olive-oil": Decimal("12.50")}
    )
    assert (quote.discount, quote.product_reference) == (Decimal("12.50"), "olive-oil")
    # Without lines the shop takes the product off itself.
    assert code_quote(code=code.code, order_total=Decimal("40.00"), currency=EUR).discount == Decimal("0.00")
    assert (
        refusal(code_quote, code=code.code, order_total=Decimal("40.00"), currency=EUR, lines={"bread": Decimal("3")})
        == "product_not_in_order"
    )


def test_refusals_have_stable_codes(program, member, customer):
    other = UserFactory(email="other@example.com")
    now = timezone.now()
    personal = code_issue(program=program, kind="fixed", value=Decimal("5"), member=member)
    minimum = code_issue(program=program, kind="percent", value=Decimal("10"), min_order_value=Decimal("50.00"))
    expired = code_issue(
        program=program, kind="fixed", value=Decimal("5"), valid_from=now - 9 * DAY, expires_at=now - DAY
    )
    later = code_issue(program=program, kind="fixed", value=Decimal("5"), valid_from=now + DAY)
    total = Decimal("30.00")

    assert refusal(code_quote, code="LOY-NOPE", order_total=total, currency=EUR) == "code_unknown"
    assert refusal(code_quote, code=expired.code, order_total=total, currency=EUR) == "code_expired"
    assert refusal(code_quote, code=later.code, order_total=total, currency=EUR) == "code_not_yet_valid"
    assert refusal(code_quote, code=minimum.code, order_total=total, currency=EUR) == "below_minimum"
    assert refusal(code_quote, code=personal.code, order_total=total, currency=EUR, user=other) == "wrong_customer"
    assert refusal(code_quote, code=personal.code, order_total=total, currency=EUR, user=None) == "wrong_customer"
    assert refusal(code_quote, code=personal.code, order_total=total, currency="GBP", user=customer) == "wrong_currency"
    assert code_quote(code=personal.code, order_total=total, currency=EUR, user=customer).discount == Decimal("5.00")

    code_consume(code=personal.code, order_reference="A-1", order_total=total, currency=EUR, user=customer)
    assert refusal(code_quote, code=personal.code, order_total=total, currency=EUR, user=customer) == "code_used"
    assert RewardCode.objects.filter(status=RewardCode.Status.USED).count() == 1


# --- consume and release --------------------------------------------------------------------


def test_consume_marks_the_code_and_its_redemption_used_on_the_order(own_codes, member, customer):
    redemption = redeemed(member)

    with transaction.atomic():  # the shop's own transaction that saves the order
        quote = code_consume(
            code=redemption.code, order_reference="A-1", order_total=Decimal("30.00"), currency=EUR, user=customer
        )

    assert (quote.discount, quote.order_reference) == (Decimal("5.00"), "A-1")
    code = RewardCode.objects.get(redemption=redemption)
    assert (code.status, code.order_reference, code.discount) == ("used", "A-1", Decimal("5.00"))
    redemption.refresh_from_db()
    assert (redemption.status, redemption.order_reference) == (Redemption.Status.USED, "A-1")
    assert redemption.used_at == code.used_at


def test_consume_twice_for_one_order_is_one_use_with_the_same_answer(own_codes, member, customer):
    redemption = redeemed(member, kind="percent", value=Decimal("10"))
    first = code_consume(
        code=redemption.code, order_reference="A-1", order_total=Decimal("80.00"), currency=EUR, user=customer
    )
    again = code_consume(
        code=redemption.code, order_reference="A-1", order_total=Decimal("99.00"), currency=EUR, user=customer
    )

    assert first.discount == again.discount == Decimal("8.00")
    assert (
        refusal(
            code_consume,
            code=redemption.code,
            order_reference="A-2",
            order_total=Decimal("80.00"),
            currency=EUR,
            user=customer,
        )
        == "code_used"
    )
    assert RewardCode.objects.get().order_reference == "A-1"


def test_a_refused_consume_rolls_nothing_into_the_shops_transaction(own_codes, member, customer):
    redemption = redeemed(member, min_order_value=Decimal("50.00"))
    with transaction.atomic():
        code = refusal(
            code_consume,
            code=redemption.code,
            order_reference="A-1",
            order_total=Decimal("20.00"),
            currency=EUR,
            user=customer,
        )
    assert code == "below_minimum"
    assert RewardCode.objects.get().status == RewardCode.Status.ACTIVE
    assert Redemption.objects.get().status == Redemption.Status.ISSUED


def test_release_frees_the_code_for_another_order_once(own_codes, member, customer):
    redemption = redeemed(member)
    code_consume(code=redemption.code, order_reference="A-1", order_total=Decimal("30.00"), currency=EUR, user=customer)

    assert code_release(order_reference="A-2") == 0  # another order: nothing of its own to release
    assert code_release(order_reference="A-1") == 1
    assert code_release(order_reference="A-1") == 0
    redemption.refresh_from_db()
    assert (redemption.status, redemption.order_reference, redemption.used_at) == ("issued", "", None)
    quote = code_consume(
        code=redemption.code, order_reference="A-2", order_total=Decimal("30.00"), currency=EUR, user=customer
    )
    assert quote.order_reference == "A-2"
    assert Redemption.objects.get().order_reference == "A-2"


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_two_checkouts_racing_for_one_code_use_it_once(postgres_only, program, customer):
    code = code_issue(program=program, kind="fixed", value=Decimal("5.00"))
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def checkout(n: int) -> None:
        barrier.wait()
        try:
            with transaction.atomic():
                code_consume(code=code.code, order_reference=f"R-{n}", order_total=Decimal("30"), currency=EUR)
            outcomes.append("ok")
        except CodeRefused as exc:
            outcomes.append(exc.code)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=checkout, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["code_used"] * 5 + ["ok"]
    assert RewardCode.objects.get().status == RewardCode.Status.USED


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_one_order_consumed_from_several_threads_gets_one_answer(postgres_only, program):
    code = code_issue(program=program, kind="percent", value=Decimal("10"))
    barrier = threading.Barrier(4)
    quotes = []

    def checkout() -> None:
        barrier.wait()
        try:
            quotes.append(code_consume(code=code.code, order_reference="SAME", order_total=Decimal("50"), currency=EUR))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=checkout) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [q.discount for q in quotes] == [Decimal("5.00")] * 4
    assert RewardCode.objects.get().order_reference == "SAME"


# --- expiry and staff cancellation ----------------------------------------------------------


def test_an_expired_unused_loyalty_code_gives_its_points_back(own_codes, member):
    redemption = redeemed(member, code_valid_days=1)

    assert redemptions_expire_due(now=timezone.now() + 2 * DAY) == 1

    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.EXPIRED
    assert Member.objects.get(pk=member.pk).balance == 500
    assert PointsEntry.objects.filter(idempotency_key=f"redemption:{redemption.pk}:refund").count() == 1


def test_a_consumed_loyalty_code_is_used_not_expired(own_codes, member, customer):
    redemption = redeemed(member, code_valid_days=1)
    code_consume(code=redemption.code, order_reference="A-1", order_total=Decimal("30.00"), currency=EUR, user=customer)

    assert redemptions_expire_due(now=timezone.now() + 2 * DAY) == 0  # used already: nothing to settle

    assert Redemption.objects.get().status == Redemption.Status.USED
    assert Member.objects.get(pk=member.pk).balance == 0


def test_staff_cancel_revokes_the_code_and_returns_the_points(own_codes, member, customer):
    redemption = redeemed(member)

    redemption_cancel(redemption=redemption)

    assert RewardCode.objects.get().status == RewardCode.Status.REVOKED
    assert Member.objects.get(pk=member.pk).balance == 500
    assert (
        refusal(code_quote, code=redemption.code, order_total=Decimal("30"), currency=EUR, user=customer)
        == "code_revoked"
    )


def test_a_used_loyalty_code_cannot_be_cancelled(own_codes, member, customer):
    redemption = redeemed(member)
    code_consume(code=redemption.code, order_reference="A-1", order_total=Decimal("30.00"), currency=EUR, user=customer)

    with pytest.raises(RedemptionNotCancellable):
        redemption_cancel(redemption=redemption)
    assert Member.objects.get(pk=member.pk).balance == 0


# --- codes used, as it happens (paid order events) ------------------------------------------


def test_a_paid_order_with_the_shops_reward_code_marks_the_redemption_used_at_once(member, customer):
    redemption = redeemed(member)
    product = ProductFactory(price=Decimal("30.00"))
    order = shop.place_order(items={product.pk: 1}, user=customer, discount_code=redemption.code.lower())

    assert Redemption.objects.get().status == Redemption.Status.ISSUED  # placed, not paid yet
    order = shop.mark_paid(order=order)

    redemption.refresh_from_db()
    assert (redemption.status, redemption.order_reference) == (Redemption.Status.USED, order.number)
    assert redemption.used_at == order.paid_at


def test_the_panel_says_which_order_used_the_code(client, member, customer):
    redemption = redeemed(member)
    product = ProductFactory(price=Decimal("30.00"))
    order = shop.mark_paid(order=shop.place_order(items={product.pk: 1}, user=customer, discount_code=redemption.code))
    client.force_login(customer)

    html = client.get(reverse("shop:account")).content.decode()

    assert f"Used on order #{order.number}" in html
    assert "valid until" not in html


def test_an_order_without_codes_costs_no_query(program, django_assert_num_queries):
    event = order_event(reference="A-1")
    with django_assert_num_queries(0):
        codes_used_by_paid_order(event=event, program=program)


def test_codes_of_other_programmes_or_settled_ones_are_left_alone(member, program):
    redemption = redeemed(member)
    Redemption.objects.filter(pk=redemption.pk).update(status=Redemption.Status.EXPIRED)
    event = OrderEvent(**{**order_event(reference="A-9").__dict__, "discount_codes": (redemption.code,)})

    codes_used_by_paid_order(event=event, program=program)

    assert Redemption.objects.get().status == Redemption.Status.EXPIRED


def test_discount_codes_survive_the_inbox_payload_and_bad_ones_are_refused():
    event = OrderEvent(**{**order_event(reference="A-1").__dict__, "discount_codes": ("LOY-1", "SPRING")})
    payload = event.to_payload()

    assert payload["discount_codes"] == ["LOY-1", "SPRING"]
    assert OrderEvent.from_payload(payload) == event
    assert "discount_codes" not in order_event(reference="A-2").to_payload()  # old payloads look the same
    # to_payload is spelt out (no deep copy): every field of the event is in it.
    assert set(payload) == {f.name for f in dataclasses.fields(OrderEvent)}
    with pytest.raises(InvalidEvent, match="discount_codes"):
        OrderEvent(**{**order_event(reference="A-3").__dict__, "discount_codes": "LOY-1"})


def test_a_guest_order_with_a_code_marks_it_used_too(program, customer):
    member = member_enroll(program=program, user=customer)[0]
    redemption = redeemed(member, personal_code=False)
    product = ProductFactory(price=Decimal("30.00"))
    order = shop.place_order(items={product.pk: 1}, email="guest@example.com", discount_code=redemption.code)
    shop.mark_paid(order=order)

    assert Redemption.objects.get().order_reference == order.number
