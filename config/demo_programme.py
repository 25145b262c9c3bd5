"""The demo's loyalty programme, set up as a shop manager would in the admin:
Bronze/Silver/Gold, bonuses, a double-points weekend, rewards, referral bonuses."""

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from loyalty.models import (
    Campaign,
    EarningRule,
    Program,
    Purchase,
    Reward,
    Segment,
    Survey,
    SurveyInvitation,
    SurveyResponse,
    Tier,
)
from loyalty.services.surveys import survey_response_submit


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
    Reward.objects.create(
        program=program,
        name="Pay with points",
        description="Use your points in the cart: 100 points take 1.00 EUR off, up to half of an order.",
        kind=Reward.Kind.POINTS_DISCOUNT,
        points_cost=100,
        points_step=100,
        max_order_share=Decimal("50"),
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


# --- post-purchase survey --------------------------------------------------------------------

SURVEY_NAME = "How was your order?"
SURVEY_RULE_NAME = "Survey answered"
SURVEY_POINTS = 50
#: Past answers seeded so the dashboard has an NPS trend to show (about this many).
SEEDED_ANSWERS = 60
SEEDED_MONTHS_DAYS = 183

_GOOD_COMMENTS = [
    "Arrived quickly and beautifully packed.",
    "The olive oil is the best I have had outside Liguria.",
    "Great selection, I always find something new.",
    "Lovely gift box, my mother was delighted.",
    "Fast delivery and the panettone was fresh.",
    "Friendly service when I had a question about my order.",
]
_MIXED_COMMENTS = [
    "Good products, but shipping is a bit expensive.",
    "Fine overall; the website could show delivery dates.",
    "Nice quality, the parcel took five days though.",
]
_BAD_COMMENTS = [
    "The jar of truffle cream arrived broken.",
    "Delivery took almost two weeks and nobody answered my email.",
    "One item was missing from the parcel.",
    "Prices went up a lot since last year.",
]


def ensure_demo_survey(program: Program) -> Survey:
    """The demo's survey and its points rule, as a shop manager would set them up in admin
    (created once; a restart changes nothing)."""
    if not EarningRule.objects.filter(program=program, kind=EarningRule.Kind.SURVEY_ANSWERED).exists():
        EarningRule.objects.create(
            program=program, name=SURVEY_RULE_NAME, kind=EarningRule.Kind.SURVEY_ANSWERED, points=SURVEY_POINTS
        )
    survey = Survey.objects.filter(program=program, name=SURVEY_NAME).first()
    if survey is None:
        active = Survey.objects.filter(program=program, is_active=True).exists()
        survey = Survey.objects.create(
            program=program,
            name=SURVEY_NAME,
            is_active=not active,
            delay_days=7,
            window_days=14,
            min_days_between=60,
            alert_email="care@example.com",
        )
    return survey


def seed_demo_survey_answers(survey: Survey, *, now: datetime | None = None, seed: int = 7) -> int:
    """About 60 answers over the last six months from demo members (mixed, a few detractors,
    some comments), each through the real service at the time it would have been given: the
    invitation a week after payment, the answer a few hours later, the points then. Only once:
    nothing is seeded when the survey has answers. Anna (the demo login) is left out, so her
    own survey arrives live when the demo starts. Returns the answers written."""
    import random

    from shop.demo_data import DEMO_CUSTOMER_EMAIL

    if SurveyResponse.objects.filter(survey=survey).exists():
        return 0
    now = now or timezone.now()
    rng = random.Random(seed)
    delay = timedelta(days=survey.delay_days)
    candidates = (
        Purchase.objects.filter(
            program_id=survey.program_id,
            member__isnull=False,
            status__in=(Purchase.Status.PAID, Purchase.Status.PARTIALLY_REFUNDED),
            occurred_at__gte=now - timedelta(days=SEEDED_MONTHS_DAYS) - delay,
            occurred_at__lt=now - delay - timedelta(days=2),
            survey_invitation__isnull=True,
        )
        .exclude(member__user__email=DEMO_CUSTOMER_EMAIL)
        .order_by("occurred_at", "pk")
    )
    last_asked: dict[int, datetime] = {}
    picked: list[Purchase] = []
    for purchase in candidates:
        previous = last_asked.get(purchase.member_id)
        if previous is not None and purchase.occurred_at - previous < timedelta(days=survey.min_days_between):
            continue
        last_asked[purchase.member_id] = purchase.occurred_at
        picked.append(purchase)
    if len(picked) > SEEDED_ANSWERS:
        picked = sorted(rng.sample(picked, SEEDED_ANSWERS), key=lambda p: (p.occurred_at, p.pk))
    for purchase in picked:
        sent_at = purchase.occurred_at + delay
        invitation = SurveyInvitation.objects.create(
            survey=survey,
            program_id=survey.program_id,
            member_id=purchase.member_id,
            purchase=purchase,
            status=SurveyInvitation.Status.SENT,
            created_at=sent_at,
            sent_at=sent_at,
            opened_at=sent_at + timedelta(hours=rng.uniform(0.5, 20)),
        )
        nps = rng.choices(range(11), weights=[2, 1, 1, 2, 2, 4, 6, 10, 16, 24, 32])[0]
        csat = (
            rng.choice([4, 5, 5])
            if nps >= 9
            else rng.choice([3, 4, 4])
            if nps >= 7
            else rng.choice([1, 2, 2, 3])
        )
        pool = _GOOD_COMMENTS if nps >= 9 else _MIXED_COMMENTS if nps >= 7 else _BAD_COMMENTS
        comment = rng.choice(pool) if rng.random() < (0.8 if nps <= 6 else 0.4) else ""
        survey_response_submit(
            invitation=invitation,
            nps=nps,
            csat=csat,
            comment=comment,
            language="en",
            now=invitation.opened_at + timedelta(minutes=rng.randint(1, 10)),
        )
    return len(picked)
