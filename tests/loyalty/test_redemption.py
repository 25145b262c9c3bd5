"""Redeeming points for a reward: a debit, a discount code in the demo shop, usable at its checkout once;
refusals write nothing; expiry returns the points of unused codes once; staff can cancel."""

import threading
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import close_old_connections
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from config.loyalty_adapter import ShopAdapter
from loyalty.exceptions import (
    DiscountNotIssued,
    InsufficientPoints,
    LoyaltyError,
    RedemptionLimitReached,
    RedemptionNotCancellable,
    RewardOutOfStock,
    RewardUnavailable,
    TierTooLow,
)
from loyalty.models import Member, PointsEntry, Program, Redemption, Reward, Tier
from loyalty.services import member_enroll, points_adjust
from loyalty.services.rewards import redemption_cancel, redemptions_expire_due, reward_redeem
from loyalty.tasks import expire_reward_codes
from shop import services as shop
from shop.models import DiscountCode
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


# --- helpers --------------------------------------------------------------------------------


def make_reward(program, **fields) -> Reward:
    defaults = {"name": "5 € off", "kind": Reward.Kind.FIXED, "points_cost": 500, "value": Decimal("5.00")}
    return Reward.objects.create(program=program, **{**defaults, **fields})


def give(member, points: int) -> Member:
    points_adjust(member=member, points=points, reason="test start")
    member.refresh_from_db()
    return member


def ledger(member) -> tuple[int, list[tuple[str, int]]]:
    member.refresh_from_db()
    return member.balance, list(member.entries.order_by("id").values_list("kind", "points"))


def assert_ledger_consistent() -> None:
    out = StringIO()
    call_command("loyalty_check_ledger", stdout=out)
    assert "Ledger consistent" in out.getvalue()


@pytest.fixture
def rich(member):
    return give(member, 1000)


@pytest.fixture
def reward(program):
    return make_reward(program, min_order_value=Decimal("20.00"))


@pytest.fixture
def oil(db):
    return ProductFactory(name="Olive oil", slug="olive-oil", price=Decimal("30.00"))


# --- redeeming ------------------------------------------------------------------------------


def test_redeem_debits_and_issues_a_code_that_works_at_the_demo_checkout(rich, reward, oil, customer):
    redemption = reward_redeem(member=rich, reward=reward, idempotency_key="form-1")

    assert redemption.status == Redemption.Status.ISSUED
    assert redemption.points == 500 and redemption.entry.kind == PointsEntry.Kind.REDEEM
    assert redemption.code.startswith("LOY-")
    assert redemption.expires_at == redemption.created_at + timedelta(days=30)
    assert ledger(rich) == (500, [("adjust", 1000), ("redeem", -500)])
    discount = DiscountCode.objects.get(code=redemption.code)
    assert (discount.kind, discount.value, discount.min_order_value) == ("fixed", Decimal("5.00"), Decimal("20.00"))
    assert discount.valid_until == redemption.expires_at and discount.used_at is None

    # The customer types it in lower case at checkout; the shop takes it off the total.
    order = shop.place_order(items={oil.pk: 1}, user=customer, discount_code=redemption.code.lower())
    assert (order.total, order.discount_total, order.discount_code) == (
        Decimal("25.00"),
        Decimal("5.00"),
        redemption.code,
    )
    discount.refresh_from_db()
    assert discount.order == order and discount.used_at is not None

    # Points are earned on what was actually paid.
    shop.mark_paid(order=order)
    assert ledger(rich)[0] == 500 + 25
    assert_ledger_consistent()


def test_percent_and_free_product_rewards_become_the_matching_shop_codes(rich, program, oil, customer):
    soap = ProductFactory(name="Soap", slug="soap", price=Decimal("7.50"))
    percent = reward_redeem(member=rich, reward=make_reward(program, kind=Reward.Kind.PERCENT, value=Decimal("10")))
    free = reward_redeem(
        member=rich,
        reward=make_reward(program, kind=Reward.Kind.FREE_PRODUCT, value=0, product_reference="soap", points_cost=200),
    )

    order = shop.place_order(items={oil.pk: 1, soap.pk: 1}, user=customer, discount_code=percent.code)
    assert (order.total, order.discount_total) == (Decimal("33.75"), Decimal("3.75"))
    order = shop.place_order(items={oil.pk: 1, soap.pk: 2}, user=customer, discount_code=free.code)
    assert (order.total, order.discount_total) == (Decimal("37.50"), Decimal("7.50"))


@pytest.fixture
def emails_now(emails_sent_on_commit, mailoutbox, send_emails):
    """Queued member emails are sent at once (on commit), into ``mailoutbox`` (emptied of the
    emails queued before the test, such as the welcome email)."""
    send_emails()
    mailoutbox.clear()
    return mailoutbox


def test_the_reward_issued_email_carries_the_code(rich, reward, emails_now, django_capture_on_commit_callbacks):
    mailoutbox = emails_now
    with django_capture_on_commit_callbacks(execute=True):
        redemption = reward_redeem(member=rich, reward=reward, idempotency_key="form-1")

    assert len(mailoutbox) == 1
    assert mailoutbox[0].subject == "Your reward: 5 € off"
    assert redemption.code in mailoutbox[0].body
    assert date_format(timezone.localdate(redemption.expires_at), "DATE_FORMAT") in mailoutbox[0].body


def test_the_same_key_twice_redeems_once(rich, reward, emails_now, django_capture_on_commit_callbacks):
    mailoutbox = emails_now
    with django_capture_on_commit_callbacks(execute=True):
        first = reward_redeem(member=rich, reward=reward, idempotency_key="form-1")
    with django_capture_on_commit_callbacks(execute=True):
        again = reward_redeem(member=rich, reward=reward, idempotency_key="form-1")

    assert again.pk == first.pk and again.code == first.code
    assert Redemption.objects.count() == 1 and DiscountCode.objects.count() == 1
    assert ledger(rich) == (500, [("adjust", 1000), ("redeem", -500)])
    assert len(mailoutbox) == 1


def test_a_replay_returns_the_redemption_even_when_it_could_not_be_redeemed_again(member, program):
    give(member, 500)
    reward = make_reward(program, stock=1, per_member_limit=1)
    first = reward_redeem(member=member, reward=reward, idempotency_key="k")
    assert reward_redeem(member=member, reward=reward, idempotency_key="k").pk == first.pk


def test_a_key_cannot_be_reused_for_another_reward(rich, program, reward):
    reward_redeem(member=rich, reward=reward, idempotency_key="k")
    with pytest.raises(LoyaltyError) as refused:
        reward_redeem(member=rich, reward=make_reward(program, name="Other"), idempotency_key="k")
    assert refused.value.code == "idempotency_key_conflict"


def test_without_a_key_each_call_redeems(rich, reward):
    reward_redeem(member=rich, reward=reward)
    reward_redeem(member=rich, reward=reward)
    assert Redemption.objects.count() == 2 and ledger(rich)[0] == 0


def test_stock_goes_down_by_one_per_redemption(rich, program):
    reward = make_reward(program, stock=2, points_cost=100)
    reward_redeem(member=rich, reward=reward)
    reward.refresh_from_db()
    assert reward.stock == 1


def test_a_free_redemption_takes_no_points_and_skips_limit_and_tier(member, program):
    gold = Tier.objects.create(program=program, name="Gold", rank=3, qualifies_by=Tier.QualifiesBy.SPEND)
    reward = make_reward(program, per_member_limit=1, min_tier=gold)
    first = reward_redeem(member=member, reward=reward, free=True, idempotency_key="tier:gold")
    reward_redeem(member=member, reward=reward, free=True, idempotency_key="tier:gold:again")

    assert first.points == 0 and first.entry is None and first.code
    assert ledger(member) == (0, [])


# --- refusals: a clear error with a stable code, nothing written ----------------------------


def _state(member, reward):
    reward.refresh_from_db()
    return ledger(member), Redemption.objects.count(), DiscountCode.objects.count(), reward.stock


@pytest.mark.parametrize(
    ("change", "error", "code", "message"),
    [
        ({"points_cost": 5000}, InsufficientPoints, "insufficient_points", "costs 5000 points; you have 1000."),
        ({"is_active": False}, RewardUnavailable, "reward_unavailable", "“5 € off” is not available any more."),
        ({"active_until": timezone.now() - DAY}, RewardUnavailable, "reward_unavailable", "was available until"),
        ({"active_from": timezone.now() + DAY}, RewardUnavailable, "reward_unavailable", "is available from"),
        ({"stock": 0}, RewardOutOfStock, "reward_out_of_stock", "“5 € off” is sold out."),
    ],
    ids=["insufficient", "inactive", "ended", "not-yet", "out-of-stock"],
)
def test_a_refusal_is_clear_and_writes_nothing(rich, program, change, error, code, message):
    reward = make_reward(program, **change)
    before = _state(rich, reward)

    with pytest.raises(error) as refused:
        reward_redeem(member=rich, reward=reward, idempotency_key="form-1")

    assert refused.value.code == code
    assert message in refused.value.message
    assert _state(rich, reward) == before


def test_the_per_member_limit_counts_issued_and_used_codes(rich, program):
    reward = make_reward(program, per_member_limit=1, points_cost=100, stock=5)
    reward_redeem(member=rich, reward=reward)
    before = _state(rich, reward)

    with pytest.raises(RedemptionLimitReached) as refused:
        reward_redeem(member=rich, reward=reward)

    assert refused.value.code == "redemption_limit_reached"
    assert refused.value.message == "“5 € off” can be redeemed 1 time per member, and you have redeemed it."
    assert _state(rich, reward) == before


def test_a_cancelled_redemption_does_not_count_against_the_limit(rich, program):
    reward = make_reward(program, per_member_limit=1, points_cost=100)
    redemption_cancel(redemption=reward_redeem(member=rich, reward=reward))
    reward_redeem(member=rich, reward=reward)
    assert Redemption.objects.filter(status=Redemption.Status.ISSUED).count() == 1


def test_a_reward_for_a_higher_tier_is_refused_below_it(rich, program):
    silver = Tier.objects.create(program=program, name="Silver", rank=2, qualifies_by=Tier.QualifiesBy.SPEND)
    gold = Tier.objects.create(program=program, name="Gold", rank=3, qualifies_by=Tier.QualifiesBy.SPEND)
    reward = make_reward(program, min_tier=gold, points_cost=100)

    for tier in (None, silver):
        Member.objects.filter(pk=rich.pk).update(tier=tier)
        before = _state(rich, reward)
        with pytest.raises(TierTooLow) as refused:
            reward_redeem(member=rich, reward=reward)
        assert refused.value.code == "tier_too_low"
        assert refused.value.message == "“5 € off” is for Gold members and above."
        assert _state(rich, reward) == before

    Member.objects.filter(pk=rich.pk).update(tier=gold)
    assert reward_redeem(member=rich, reward=reward).status == Redemption.Status.ISSUED


def test_a_reward_of_another_programme_is_refused(rich):
    other = Program.objects.create(name="Other", slug="other")
    with pytest.raises(RewardUnavailable) as refused:
        reward_redeem(member=rich, reward=make_reward(other))
    assert refused.value.code == "reward_other_program"
    assert ledger(rich)[0] == 1000


def test_a_shop_that_cannot_issue_the_code_rolls_the_debit_back(rich, program, monkeypatch):
    reward = make_reward(program, stock=3)
    before = _state(rich, reward)

    def broken(self, *, redemption):
        DiscountCode.objects.create(code="HALF-WRITTEN")  # the adapter's own writes go too
        raise RuntimeError("discount service down")

    monkeypatch.setattr(ShopAdapter, "issue_discount", broken)
    with pytest.raises(DiscountNotIssued) as refused:
        reward_redeem(member=rich, reward=reward, idempotency_key="form-1")

    assert refused.value.code == "discount_not_issued"
    assert "no points were taken" in refused.value.message
    assert _state(rich, reward) == before
    assert_ledger_consistent()


def test_without_an_adapter_no_code_is_issued_and_nothing_is_taken(rich, reward, settings):
    settings.LOYALTY = {"ADAPTER": None}
    with pytest.raises(DiscountNotIssued, match="No shop adapter"):
        reward_redeem(member=rich, reward=reward)
    assert ledger(rich)[0] == 1000 and Redemption.objects.count() == 0


# --- concurrency (row locks: PostgreSQL) ----------------------------------------------------


def _race(n: int, work) -> list[str]:
    barrier, outcomes = threading.Barrier(n), []

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
            outcomes.append("ok")
        except LoyaltyError as exc:
            outcomes.append(exc.code)
        except Exception as exc:  # noqa: BLE001  (any other failure shows in the outcomes)
            outcomes.append(repr(exc))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_redemptions_beyond_the_balance_one_succeeds(postgres_only, member, program):
    give(member, 100)
    reward = make_reward(program, points_cost=60)

    outcomes = _race(2, lambda i: reward_redeem(member=member, reward=reward, idempotency_key=f"tab-{i}"))

    assert outcomes == ["insufficient_points", "ok"]
    assert ledger(member)[0] == 40
    assert Redemption.objects.count() == 1 and DiscountCode.objects.count() == 1
    assert_ledger_consistent()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_last_item_of_stock_goes_to_one_member(postgres_only, program):
    reward = make_reward(program, points_cost=10, stock=1)
    members = [give(member_enroll(program=program, user=UserFactory())[0], 50) for _ in range(4)]

    outcomes = _race(4, lambda i: reward_redeem(member=members[i], reward=reward))

    assert outcomes == ["ok", "reward_out_of_stock", "reward_out_of_stock", "reward_out_of_stock"]
    reward.refresh_from_db()
    assert reward.stock == 0 and Redemption.objects.count() == 1


# --- expiry ---------------------------------------------------------------------------------


def _expired_redemption(member, reward, *, days_ago: int = 40) -> Redemption:
    redemption = reward_redeem(member=member, reward=reward, at=timezone.now() - timedelta(days=days_ago))
    assert redemption.expires_at < timezone.now()
    return redemption


def test_an_expired_unused_code_returns_its_points_once(rich, reward):
    redemption = _expired_redemption(rich, reward)
    assert ledger(rich)[0] == 500

    assert expire_reward_codes() == 1
    assert expire_reward_codes() == 0

    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.EXPIRED
    balance, entries = ledger(rich)
    assert balance == 1000 and entries == [("adjust", 1000), ("redeem", -500), ("adjust", 500)]
    refund = rich.entries.get(idempotency_key=f"redemption:{redemption.pk}:refund")
    assert refund.description == "Reward code expired unused: points returned"
    assert_ledger_consistent()


def test_an_expired_code_keeps_its_points_when_the_programme_says_so(rich, reward, program):
    Program.objects.filter(pk=program.pk).update(refund_points_on_code_expiry=False)
    redemption = _expired_redemption(rich, reward)

    assert redemptions_expire_due() == 1

    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.EXPIRED and ledger(rich)[0] == 500


def test_a_used_code_is_marked_used_and_keeps_its_points(rich, reward, oil, customer):
    redemption = reward_redeem(member=rich, reward=reward)
    shop.place_order(items={oil.pk: 1}, user=customer, discount_code=redemption.code)

    assert redemptions_expire_due(now=redemption.expires_at + timedelta(seconds=1)) == 1

    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.USED and redemption.used_at is not None
    assert ledger(rich)[0] == 500
    assert_ledger_consistent()


def test_a_code_the_shop_cannot_report_on_expires_without_points_back(rich, reward, monkeypatch):
    monkeypatch.setattr(ShopAdapter, "discount_status", lambda self, *, code: None)
    redemption = _expired_redemption(rich, reward)

    assert redemptions_expire_due() == 1

    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.EXPIRED and ledger(rich)[0] == 500


def test_codes_not_yet_expired_are_left_alone_and_batches_cover_everything(rich, program):
    reward = make_reward(program, points_cost=10)
    for _ in range(5):
        _expired_redemption(rich, reward)
    fresh = reward_redeem(member=rich, reward=reward)

    assert redemptions_expire_due(batch_size=2) == 5

    assert Redemption.objects.get(pk=fresh.pk).status == Redemption.Status.ISSUED
    assert ledger(rich)[0] == 1000 - 10


def test_an_expired_code_no_longer_works_at_checkout(rich, reward, oil, customer):
    from shop.exceptions import InvalidDiscountCode

    redemption = _expired_redemption(rich, reward)
    with pytest.raises(InvalidDiscountCode, match="expired on"):
        shop.place_order(items={oil.pk: 1}, user=customer, discount_code=redemption.code)


# --- staff cancellation ---------------------------------------------------------------------


def test_cancelling_returns_the_points_once_and_the_code_stops_working(rich, reward, oil, customer):
    from shop.exceptions import InvalidDiscountCode

    redemption = reward_redeem(member=rich, reward=reward)
    redemption_cancel(redemption=redemption)
    redemption_cancel(redemption=redemption)

    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.CANCELLED
    assert ledger(rich) == (1000, [("adjust", 1000), ("redeem", -500), ("adjust", 500)])
    with pytest.raises(InvalidDiscountCode, match="not valid"):
        shop.place_order(items={oil.pk: 1}, user=customer, discount_code=redemption.code)
    assert redemptions_expire_due(now=redemption.expires_at + timedelta(days=1)) == 0
    assert_ledger_consistent()


def test_a_used_code_cannot_be_cancelled(rich, reward, oil, customer):
    redemption = reward_redeem(member=rich, reward=reward)
    shop.place_order(items={oil.pk: 1}, user=customer, discount_code=redemption.code)

    with pytest.raises(RedemptionNotCancellable) as refused:
        redemption_cancel(redemption=redemption)

    assert refused.value.code == "redemption_used"
    assert ledger(rich)[0] == 500


def test_cancelling_an_expired_code_that_was_refunded_returns_nothing_more(rich, reward):
    redemption = _expired_redemption(rich, reward)
    redemptions_expire_due()
    redemption_cancel(redemption=redemption)
    assert ledger(rich)[0] == 1000


def test_the_admin_action_cancels_and_reports(admin_client, rich, program, oil, customer):
    reward = make_reward(program, points_cost=100)
    open_one, used_one = reward_redeem(member=rich, reward=reward), reward_redeem(member=rich, reward=reward)
    shop.place_order(items={oil.pk: 1}, user=customer, discount_code=used_one.code)

    response = admin_client.post(
        reverse("admin:loyalty_redemption_changelist"),
        {"action": "cancel_and_refund", "_selected_action": [open_one.pk, used_one.pk]},
    )

    assert response.status_code == 302
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert notes[0] == "Cancelled 1 redemption and returned its points."
    assert "was used already" in notes[1]
    assert ledger(rich)[0] == 900


def test_reward_and_redemption_admin_pages_render(admin_client, rich, reward):
    redemption = reward_redeem(member=rich, reward=reward)
    for url in (
        reverse("admin:loyalty_reward_changelist"),
        reverse("admin:loyalty_reward_add"),
        reverse("admin:loyalty_reward_change", args=[reward.pk]),
        reverse("admin:loyalty_redemption_changelist") + f"?q={redemption.code}",
        reverse("admin:loyalty_redemption_change", args=[redemption.pk]),
    ):
        assert admin_client.get(url).status_code == 200, url


def test_the_reward_form_refuses_a_tier_of_another_programme(admin_client, program):
    other = Program.objects.create(name="Other", slug="other")
    gold = Tier.objects.create(program=other, name="Gold", rank=3, qualifies_by=Tier.QualifiesBy.SPEND)
    response = admin_client.post(
        reverse("admin:loyalty_reward_add"),
        {
            "program": program.pk,
            "name": "10 % off",
            "kind": "percent",
            "points_cost": 300,
            "value": "120",
            "min_tier": gold.pk,
            "code_valid_days": 30,
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "A percentage cannot be more than 100." in errors["value"]
    assert "Choose a tier of the same programme." in errors["min_tier"]
    assert not Reward.objects.exists()


def test_stock_comes_back_when_a_redemption_is_cancelled(program, customer):
    from loyalty.models import Member
    from loyalty.services import member_enroll, points_adjust, redemption_cancel, reward_redeem

    member, _ = member_enroll(program=program, user=customer)
    points_adjust(member=member, points=1000, reason="test")
    reward = Reward.objects.create(
        program=program, name="Tote bag", kind=Reward.Kind.FIXED, points_cost=100, value=Decimal("5.00"), stock=1
    )
    redemption = reward_redeem(member=Member.objects.get(pk=member.pk), reward=reward, idempotency_key="stock-1")
    reward.refresh_from_db()
    assert reward.stock == 0

    redemption_cancel(redemption=redemption)

    reward.refresh_from_db()
    assert reward.stock == 1
