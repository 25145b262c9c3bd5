"""Tiers: upgrades at once on purchase, downgrades only after the retention period, entry
rewards once, multipliers on the next order, progress to the next tier."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from loyalty import tasks
from loyalty.config_cache import program_config
from loyalty.exceptions import LoyaltyError
from loyalty.models import (
    Member,
    OrderEvent,
    OutboundEmail,
    PendingPoints,
    PointsEntry,
    Redemption,
    Reward,
    Tier,
    TierChange,
)
from loyalty.selectors import tier_progress, tier_qualification
from loyalty.services.notifications import send_member_email
from loyalty.services.tiers import tier_evaluate, tiers_recompute
from loyalty.tasks import approve_pending_points
from shop import services as shop_services
from tests.factories import UserFactory, paid_order

pytestmark = pytest.mark.django_db

SPEND, POINTS = Tier.QualifiesBy.SPEND, Tier.QualifiesBy.POINTS


def tier(program, name, rank, threshold, qualifies_by=SPEND, **kwargs) -> Tier:
    return Tier.objects.create(
        program=program, name=name, rank=rank, threshold=Decimal(threshold), qualifies_by=qualifies_by, **kwargs
    )


def member_of(user) -> Member:
    """Fresh, with its programme, as the services receive it."""
    return Member.objects.select_related("program", "tier").get(user=user)


def bonuses(member) -> list[int]:
    return list(
        PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.BONUS)
        .order_by("id")
        .values_list("points", flat=True)
    )


def ledger_is_consistent() -> None:
    call_command("loyalty_check_ledger", stdout=StringIO())  # raises CommandError otherwise


@pytest.fixture
def silver(program):
    return tier(program, "Silver", 2, "50.00", multiplier=Decimal("1.25"), benefits="Free shipping on every order.")


# --- upgrades ----------------------------------------------------------------------------------


def test_upgrade_exactly_at_the_threshold(program, customer, silver):
    paid_order(total="49.99", user=customer)
    assert member_of(customer).tier is None
    assert not TierChange.objects.exists()

    order = paid_order(total="0.01", user=customer)

    member = member_of(customer)
    assert member.tier == silver
    assert member.tier_since == order.paid_at
    change = TierChange.objects.get()
    assert (change.from_tier, change.to_tier, change.reason) == (None, silver, TierChange.Reason.QUALIFIED)
    assert change.created_at == order.paid_at
    assert "50.00 EUR in 365 days" in change.note


def test_a_single_order_of_exactly_the_threshold_qualifies(program, customer, silver):
    paid_order(total="50.00", user=customer)
    assert member_of(customer).tier == silver


def test_skipping_tiers_grants_every_entry_bonus_once(program, customer):
    tier(program, "Bronze", 1, "10", entry_bonus_points=5)
    tier(program, "Silver", 2, "50", entry_bonus_points=20)
    gold = tier(program, "Gold", 3, "100", entry_bonus_points=50)

    paid_order(total="150.00", user=customer)

    member = member_of(customer)
    assert member.tier == gold
    assert bonuses(member) == [5, 20, 50]
    assert member.balance == 150 + 75
    assert TierChange.objects.get().to_tier == gold  # one change, not three

    assert tier_evaluate(member=member, at=timezone.now()) is None  # called again: nothing
    paid_order(total="300.00", user=customer)
    assert bonuses(member) == [5, 20, 50]
    assert TierChange.objects.count() == 1
    ledger_is_consistent()


def test_entry_bonus_is_not_granted_again_after_a_downgrade(program, customer):
    program.tier_retention_days = 60
    program.save()
    silver = tier(program, "Silver", 2, "50", window_days=30, entry_bonus_points=20)

    paid_order(total="50.00", user=customer, at=timezone.now() - timedelta(days=100))
    assert member_of(customer).tier == silver
    assert tiers_recompute() == 1
    assert member_of(customer).tier is None

    paid_order(total="60.00", user=customer)

    member = member_of(customer)
    assert member.tier == silver
    assert bonuses(member) == [20]
    assert list(TierChange.objects.order_by("created_at").values_list("reason", flat=True)) == [
        "qualified",
        "expired",
        "qualified",
    ]
    ledger_is_consistent()


def test_the_multiplier_applies_from_the_next_order(program, customer, silver):
    first = paid_order(total="50.00", user=customer)
    second = paid_order(total="40.00", user=customer)

    assert PointsEntry.objects.get(reference=first.number).points == 50  # tier reached with this order
    assert PointsEntry.objects.get(reference=second.number).points == 50  # floor(40.00 x 1.25)
    assert member_of(customer).balance == 100


def test_refunded_and_cancelled_orders_do_not_count(program, customer, silver):
    order = paid_order(total="60.00", user=customer)
    shop_services.refund_order(order=order, amount=Decimal("20.00"))
    cancelled = paid_order(total="30.00", user=customer)
    shop_services.cancel_order(order=cancelled)

    key = (SPEND, 365)
    member = member_of(customer)
    assert tier_qualification(member.pk, at=timezone.now(), keys={key})[key] == Decimal("40.00")
    assert member.tier == silver  # kept: downgrades wait for the retention period


def test_evaluating_twice_writes_one_change(program, customer, silver):
    paid_order(total="10.00", user=customer)
    Member.objects.filter(user=customer).update(tier=None, tier_since=None)  # as if tiers came later
    tier(program, "Bronze", 1, "5", entry_bonus_points=3)

    member = member_of(customer)
    first = tier_evaluate(member=member, at=timezone.now())
    second = tier_evaluate(member=member, at=timezone.now())

    assert first is not None and second is None
    assert TierChange.objects.count() == 1
    assert bonuses(member) == [3]


def test_entry_rewards_are_issued_free_for_every_tier_passed(program, customer, monkeypatch):
    calls = []
    monkeypatch.setattr("loyalty.services.rewards.reward_redeem", lambda **kwargs: calls.append(kwargs))
    voucher = Reward.objects.create(program=program, name="5 EUR", kind="fixed", points_cost=500, value=5)
    shipping = Reward.objects.create(program=program, name="Free shipping", kind="free_shipping", points_cost=300)
    bronze = tier(program, "Bronze", 1, "10", entry_reward=shipping)
    tier(program, "Silver", 2, "50")
    gold = tier(program, "Gold", 3, "100", entry_reward=voucher)

    paid_order(total="150.00", user=customer)

    member = member_of(customer)
    assert [(c["reward"], c["free"], c["idempotency_key"]) for c in calls] == [
        (shipping, True, f"tier-entry-reward:{bronze.pk}:{member.pk}"),
        (voucher, True, f"tier-entry-reward:{gold.pk}:{member.pk}"),
    ]


def test_an_entry_reward_is_redeemed_free_and_only_once(program, customer):
    program.tier_retention_days = 0
    program.save()
    voucher = Reward.objects.create(program=program, name="5 EUR", kind="fixed", points_cost=500, value=5)
    tier(program, "Silver", 2, "50", window_days=30, entry_reward=voucher)

    paid_order(total="60.00", user=customer, at=timezone.now() - timedelta(days=40))
    assert tiers_recompute() == 1  # dropped: the order left the 30-day window
    paid_order(total="60.00", user=customer)  # qualifies again

    member = member_of(customer)
    redemption = Redemption.objects.get(member=member)
    assert (redemption.reward, redemption.points, redemption.entry) == (voucher, 0, None)
    assert member.balance == 120  # nothing was debited for it
    ledger_is_consistent()


def test_a_failing_entry_reward_never_breaks_the_order(program, customer, monkeypatch):
    def refuse(**kwargs):
        raise LoyaltyError("Out of stock.", code="reward_unavailable")

    monkeypatch.setattr("loyalty.services.rewards.reward_redeem", refuse)
    voucher = Reward.objects.create(program=program, name="5 EUR", kind="fixed", points_cost=500, value=5)
    silver = tier(program, "Silver", 2, "50", entry_reward=voucher, entry_bonus_points=10)

    order = paid_order(total="60.00", user=customer)

    assert OrderEvent.objects.get(order_reference=order.number).status == OrderEvent.Status.PROCESSED
    member = member_of(customer)
    assert (member.tier, member.balance) == (silver, 70)


# --- downgrades ---------------------------------------------------------------------------------


def test_no_downgrade_inside_the_retention_period_then_downgrade_after_it(program, customer):
    silver = tier(program, "Silver", 2, "50", window_days=90)  # retention: 365 days (default)
    paid_order(total="100.00", user=customer, at=timezone.now() - timedelta(days=200))
    assert member_of(customer).tier == silver

    assert tiers_recompute() == 0  # no longer qualifies, but kept until day 365
    assert tier_evaluate(member=member_of(customer), at=timezone.now()) is None
    assert member_of(customer).tier == silver

    later = timezone.now() + timedelta(days=166)
    assert tiers_recompute(at=later) == 1

    member = member_of(customer)
    assert (member.tier, member.tier_since) == (None, None)
    change = TierChange.objects.filter(reason=TierChange.Reason.EXPIRED).get()
    assert (change.from_tier, change.to_tier, change.created_at) == (silver, None, later)
    assert tiers_recompute(at=later) == 0  # run twice: nothing more


def test_a_downgrade_drops_to_the_highest_tier_still_qualified(program, customer):
    program.tier_retention_days = 100
    program.save()
    silver = tier(program, "Silver", 2, "50", window_days=365)
    gold = tier(program, "Gold", 3, "100", window_days=90)
    paid_order(total="100.00", user=customer, at=timezone.now() - timedelta(days=150))
    assert member_of(customer).tier == gold

    now = timezone.now()
    assert tiers_recompute(at=now) == 1

    member = member_of(customer)
    assert (member.tier, member.tier_since) == (silver, now)
    change = TierChange.objects.get(reason=TierChange.Reason.EXPIRED)
    assert (change.from_tier, change.to_tier) == (gold, silver)


def test_the_nightly_run_upgrades_members_who_qualify_for_tiers_set_up_later(program, customer):
    other = UserFactory()
    paid_order(total="120.00", user=customer)
    paid_order(total="20.00", user=other)
    gold = tier(program, "Gold", 3, "100", entry_bonus_points=50)

    assert tasks.recompute_tiers() == 1
    assert tasks.recompute_tiers() == 0

    assert member_of(customer).tier == gold
    assert member_of(other).tier is None
    assert bonuses(member_of(customer)) == [50]
    ledger_is_consistent()


def test_the_nightly_run_costs_the_same_queries_for_any_number_of_members(
    program, silver, django_assert_max_num_queries
):
    for _ in range(6):
        paid_order(total="10.00", user=UserFactory())
    tiers_recompute()  # warms the programme cache

    with django_assert_max_num_queries(2):  # the programmes, one set-based scan per programme
        assert tiers_recompute() == 0


def test_the_nightly_run_is_a_beat_task():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["loyalty-recompute-tiers"]
    assert entry["task"] == "loyalty.tasks.recompute_tiers"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({2}, {30})


# --- points-qualified tiers --------------------------------------------------------------------


def test_points_tiers_count_only_approved_points(program, customer):
    program.pending_days = 14
    program.save()
    silver = tier(program, "Silver", 2, "50", qualifies_by=POINTS)

    paid_order(total="60.00", user=customer)
    assert member_of(customer).pending_points == 60
    assert member_of(customer).tier is None
    assert tiers_recompute() == 0

    PendingPoints.objects.update(approve_at=timezone.now() - timedelta(minutes=1))
    assert approve_pending_points() == 1

    member = member_of(customer)
    assert member.tier == silver
    assert TierChange.objects.get().reason == TierChange.Reason.QUALIFIED
    ledger_is_consistent()


def test_tier_entry_bonuses_do_not_count_towards_the_next_tier(program, customer):
    silver = tier(program, "Silver", 2, "50", qualifies_by=POINTS, entry_bonus_points=100)
    tier(program, "Gold", 3, "120", qualifies_by=POINTS)

    paid_order(total="60.00", user=customer)

    assert member_of(customer).balance == 160
    assert member_of(customer).tier == silver
    assert tiers_recompute() == 0


def test_points_reversed_by_a_refund_no_longer_count(program, customer):
    tier(program, "Silver", 2, "50", qualifies_by=POINTS)
    order = paid_order(total="40.00", user=customer)
    shop_services.refund_order(order=order, amount=Decimal("20.00"))
    paid_order(total="25.00", user=customer)

    assert member_of(customer).tier is None  # 40 - 20 + 25 = 45 < 50


# --- cost on the checkout path -----------------------------------------------------------------


def test_no_tiers_no_query(member, django_assert_num_queries):
    member = Member.objects.select_related("program").get(pk=member.pk)
    with django_assert_num_queries(0):
        assert tier_evaluate(member=member, at=timezone.now(), upgrades_only=True) is None


def test_top_tier_and_upgrades_only_no_query(program, customer, django_assert_num_queries):
    gold = tier(program, "Gold", 3, "100")
    paid_order(total="100.00", user=customer)
    member = member_of(customer)
    assert member.tier == gold
    program_config(member.program)  # warm, as on every order after the first
    with django_assert_num_queries(0):
        assert tier_evaluate(member=member, at=timezone.now(), upgrades_only=True) is None


def test_one_query_for_all_windows_of_a_kind(program, customer, django_assert_num_queries):
    tier(program, "Silver", 2, "50", window_days=30)
    tier(program, "Gold", 3, "500", window_days=365)
    tier(program, "Platinum", 4, "5000", window_days=730)
    paid_order(total="10.00", user=customer)
    member = member_of(customer)
    program_config(member.program)
    with django_assert_num_queries(1):
        assert tier_evaluate(member=member, at=timezone.now(), upgrades_only=True) is None


# --- email ---------------------------------------------------------------------------------------


def test_tier_up_email_is_an_outbox_row_of_the_payment_and_renders(program, customer, silver, mailoutbox, send_emails):
    paid_order(total="60.00", user=customer)

    member = member_of(customer)
    change = TierChange.objects.get()
    row = OutboundEmail.objects.get(key=f"tier-change:{change.pk}")
    assert (row.member_id, row.kind, row.context["change_id"], row.status) == (
        member.pk,
        "tier_changed",
        change.pk,
        "queued",
    )
    assert mailoutbox == []  # a worker sends it

    send_emails()

    [email] = [m for m in mailoutbox if m.subject.startswith("Welcome to Silver")]
    assert email.subject == "Welcome to Silver: your new Rewards status"
    assert email.to == ["maria@example.com"]
    assert "Hello Maria," in email.body
    assert "you have reached Silver in Rewards!" in email.body
    assert "1.25 times the points" in email.body
    assert "Free shipping on every order." in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html" and "Silver" in html


def test_tier_down_email_renders(program, customer, mailoutbox):
    program.tier_retention_days = 0
    program.save()
    tier(program, "Silver", 2, "50", window_days=30)
    paid_order(total="60.00", user=customer, at=timezone.now() - timedelta(days=40))
    assert tiers_recompute() == 1
    change = TierChange.objects.get(reason=TierChange.Reason.EXPIRED)

    context = {"change_id": change.pk, "direction": "down", "tier": "", "tier_id": None, "previous_tier": "Silver"}
    assert send_member_email(member_id=member_of(customer).pk, template="tier_changed", context=context) is True

    assert mailoutbox[0].subject == "Your Silver status at Rewards has ended"
    assert "your Silver status in Rewards has ended." in mailoutbox[0].body


def test_text_emails_are_not_html_escaped(program, mailoutbox):
    user = UserFactory(email="sean@example.com", first_name="Seán O'Brien")
    tier(program, "Gold & Co", 2, "10")
    paid_order(total="10.00", user=user)
    change = TierChange.objects.get()

    context = {"change_id": change.pk, "direction": "up", "tier": "Gold & Co", "tier_id": change.to_tier_id}
    send_member_email(member_id=change.member_id, template="tier_changed", context=context)

    assert "Gold & Co" in mailoutbox[0].subject
    assert "Hello Seán O'Brien," in mailoutbox[0].body


# --- progress ------------------------------------------------------------------------------------


def test_progress_to_the_next_tier(program, customer, silver, django_assert_max_num_queries):
    gold = tier(program, "Gold", 3, "200.00")
    for total in ("30.00", "25.00", "15.00", "10.00"):
        paid_order(total=total, user=customer)
    member = member_of(customer)

    with django_assert_max_num_queries(2):
        progress = tier_progress(member)

    assert (progress.tier, progress.next_tier) == (silver, gold)
    assert (progress.value, progress.missing) == (Decimal("80.00"), Decimal("120.00"))
    assert progress.fraction == pytest.approx(0.4)
    assert (progress.currency, progress.qualifies_by, progress.window_days) == ("EUR", SPEND, 365)
    assert progress.tier_kept_until == member.tier_since + timedelta(days=365)


def test_progress_in_points_is_whole_points(program, customer):
    tier(program, "Silver", 2, "100", qualifies_by=POINTS)
    paid_order(total="42.90", user=customer)

    progress = tier_progress(member_of(customer))

    assert (progress.tier, progress.value, progress.missing) == (None, 42, 58)
    assert progress.fraction == pytest.approx(0.42)


def test_progress_at_the_top_and_without_tiers(program, customer, member, django_assert_max_num_queries):
    assert tier_progress(member) is None
    gold = tier(program, "Gold", 3, "10")
    paid_order(total="10.00", user=customer)
    member = member_of(customer)

    with django_assert_max_num_queries(1):
        progress = tier_progress(member)

    assert (progress.tier, progress.next_tier, progress.missing, progress.fraction) == (gold, None, None, 1.0)


# --- admin ---------------------------------------------------------------------------------------


def test_admin_lists_tiers_and_changes(admin_client, program, customer, silver):
    paid_order(total="60.00", user=customer)

    assert admin_client.get("/admin/loyalty/tier/").status_code == 200
    response = admin_client.get("/admin/loyalty/tierchange/", {"q": "maria@"})
    assert response.status_code == 200
    assert b"maria@example.com" in response.content
    assert admin_client.get("/admin/loyalty/tierchange/add/").status_code == 403
