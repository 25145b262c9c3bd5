"""The demo's loyalty programme, set up as a shop manager would in the admin:
Bronze/Silver/Gold, bonuses, a double-points weekend, rewards, referral bonuses."""

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from loyalty.models import Campaign, EarningRule, Program, Reward, Segment, Tier


def next_weekend(now: datetime) -> tuple[datetime, datetime]:
    today = timezone.localdate(now)
    saturday = today + timedelta(days=(5 - today.weekday()) % 7)
    start = timezone.make_aware(datetime.combine(saturday, time.min))
    return start, start + timedelta(days=2)


def create_demo_programme(now: datetime | None = None) -> Program:
    now = now or timezone.now()
    program = Program.objects.create(
        name="Bottega Rewards",
        slug="rewards",
        currency=settings.SHOP_CURRENCY,
        points_per_unit=Decimal("1"),
        point_value=Decimal("0.01"),
        points_lifetime_days=365,
        pending_days=14,
        tier_retention_days=365,
    )
    five_euro_off = Reward.objects.create(
        program=program,
        name="5 EUR off your next order",
        description="A 5.00 EUR discount code, valid for 30 days.",
        kind=Reward.Kind.FIXED,
        points_cost=500,
        value=Decimal("5.00"),
    )
    Reward.objects.create(
        program=program,
        name="10% off an order over 40 EUR",
        kind=Reward.Kind.PERCENT,
        points_cost=1200,
        value=Decimal("10"),
        min_order_value=Decimal("40.00"),
    )
    Reward.objects.create(
        program=program,
        name="15 EUR off (Gold members)",
        kind=Reward.Kind.FIXED,
        points_cost=1200,
        value=Decimal("15.00"),
        min_order_value=Decimal("50.00"),
        per_member_limit=2,
    )
    tiers = {
        "Bronze": Tier.objects.create(
            program=program, name="Bronze", rank=1, qualifies_by="spend", threshold=Decimal("0"), colour="#8c5a2b",
            benefits="1 point per euro.",
        ),
        "Silver": Tier.objects.create(
            program=program, name="Silver", rank=2, qualifies_by="spend", threshold=Decimal("250"),
            multiplier=Decimal("1.25"), entry_bonus_points=100, colour="#5f6b73",
            benefits="1.25 points per euro and a 100-point welcome bonus.",
        ),
        "Gold": Tier.objects.create(
            program=program, name="Gold", rank=3, qualifies_by="spend", threshold=Decimal("600"),
            multiplier=Decimal("1.5"), entry_bonus_points=250, entry_reward=five_euro_off, colour="#8c6d1f",
            benefits="1.5 points per euro, a 250-point bonus and a 5 EUR voucher on arrival.",
        ),
    }
    Reward.objects.filter(name="15 EUR off (Gold members)").update(min_tier=tiers["Gold"])
    rules = [
        ("Welcome bonus", EarningRule.Kind.SIGNUP, 50, {}),
        ("First order bonus", EarningRule.Kind.FIRST_PURCHASE, 100, {}),
        ("Birthday present", EarningRule.Kind.BIRTHDAY, 200, {}),
        ("You referred a friend", EarningRule.Kind.REFERRER, 250, {}),
        ("Referred by a friend", EarningRule.Kind.REFEREE, 150, {}),
        ("Product review", EarningRule.Kind.CUSTOM_ACTION, 20, {"action_key": "product-review"}),
    ]
    for name, kind, points, extra in rules:
        EarningRule.objects.create(program=program, name=name, kind=kind, points=points, **extra)
    start, end = next_weekend(now)
    EarningRule.objects.create(
        program=program,
        name="Double points weekend",
        kind=EarningRule.Kind.MULTIPLIER,
        multiplier=Decimal("2.00"),
        min_order_amount=Decimal("30.00"),
        active_from=start,
        active_until=end,
    )
    # Win back drifting regulars: 250 points on the house, a tenth held out to measure the uplift.
    Campaign.objects.create(
        program=program,
        name="We miss you",
        segments=[Segment.AT_RISK],
        incentive=Campaign.Incentive.POINTS,
        incentive_points=250,
        incentive_valid_days=30,
        cooldown_days=30,
        control_percent=10,
        attribution_days=14,
        is_active=True,
    )
    return program
