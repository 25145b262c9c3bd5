"""Test data: factory_boy factories and small helpers that go through the real services."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from loyalty.adapters.base import EventKind, OrderEvent
from loyalty.models import Campaign, CustomerHealth, Member, Program, Purchase, Reward, Survey, SurveyResponse
from loyalty.nps import is_detractor
from shop import services as shop_services
from shop.models import Order, Product


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    username = factory.LazyAttribute(lambda u: u.email)
    # Not Faker: a random real name now and then matched a name a test asserts is absent from a page
    # (the admin header greets the signed-in staff user by first name).
    first_name = factory.Sequence(lambda n: f"Customer{n}")
    password = factory.django.Password("secret-pass-123")


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program
        django_get_or_create = ("slug",)

    name = "Rewards"
    slug = "rewards"
    currency = "EUR"
    points_per_unit = Decimal("1")
    point_value = Decimal("0.01")
    points_lifetime_days = 365


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Olive oil {n}")
    slug = factory.Sequence(lambda n: f"olive-oil-{n}")
    price = Decimal("10.00")


def place_order(*, total: Decimal | str, user=None, email: str = "", at: datetime | None = None) -> Order:
    """A pending order of one product priced ``total``."""
    product = ProductFactory(price=Decimal(total))
    return shop_services.place_order(items={product.pk: 1}, user=user, email=email or "guest@example.com", at=at)


def paid_order(*, total: Decimal | str, user=None, email: str = "", at: datetime | None = None) -> Order:
    order = place_order(total=total, user=user, email=email, at=at)
    return shop_services.mark_paid(order=order, at=at)


def order_event(
    kind: str = EventKind.PAID,
    *,
    reference: str = "A-1",
    amount: str = "100.00",
    user=None,
    email: str = "",
    event_id: str | None = None,
    at: datetime | None = None,
) -> OrderEvent:
    return OrderEvent(
        kind=kind,
        event_id=event_id or f"order:{reference}:{kind}",
        order_reference=reference,
        amount=Decimal(amount),
        currency="EUR",
        occurred_at=at or timezone.now(),
        user_id=user.pk if user is not None else None,
        email=email or (user.email if user is not None else "guest@example.com"),
    )


class CampaignFactory(factory.django.DjangoModelFactory):
    """An active "we miss you" campaign for at-risk members: 200 bonus points, no control group."""

    class Meta:
        model = Campaign

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"We miss you {n}")
    segments = factory.LazyFunction(lambda: ["at_risk"])
    incentive = Campaign.Incentive.POINTS
    incentive_points = 200
    control_percent = 0
    is_active = True


def segment_member(
    program: Program,
    *,
    email: str,
    segment: str | None = "at_risk",
    consent: bool = True,
    first_name: str = "Ann",
    at: datetime | None = None,
) -> Member:
    """A member with marketing consent, put in ``segment`` the way the health refresh would."""
    from loyalty.services import member_enroll

    at = at or timezone.now()
    member = member_enroll(program=program, user=UserFactory(email=email, first_name=first_name))[0]
    if consent:
        Member.objects.filter(pk=member.pk).update(marketing_consent=True, consent_changed_at=at)
        member.marketing_consent, member.consent_changed_at = True, at
    if segment:
        CustomerHealth.objects.update_or_create(
            member=member,
            defaults={"program": program, "segment": segment, "segment_since": at, "computed_at": at},
        )
    return member


class SurveyFactory(factory.django.DjangoModelFactory):
    """The programme's active survey: NPS, CSAT and a comment, sent 7 days after payment."""

    class Meta:
        model = Survey

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"After your order {n}")
    is_active = True


class SurveyResponseFactory(factory.django.DjangoModelFactory):
    """A response written directly (not through the survey service): its own paid purchase by ``member``.

    ``is_detractor`` follows the scores (NPS 0-6 or CSAT 1-2) unless given.
    """

    class Meta:
        model = SurveyResponse

    survey = factory.SubFactory(SurveyFactory)
    program = factory.SelfAttribute("survey.program")
    member = None  # required: pass a member of the survey's programme
    purchase = factory.LazyAttribute(
        lambda o: Purchase.objects.create(
            program=o.program,
            member=o.member,
            email=o.member.user.email,
            order_reference=f"SR-{Purchase.objects.count() + 1}-{o.member.pk}",
            amount=o.amount,
            currency=o.program.currency,
            category=o.category,
            occurred_at=o.submitted_at - timezone.timedelta(days=7),
        )
    )
    nps = 9
    csat = 5
    comment = ""
    is_detractor = factory.LazyAttribute(lambda o: is_detractor(nps=o.nps, csat=o.csat))
    submitted_at = factory.LazyFunction(timezone.now)
    updated_at = factory.SelfAttribute("submitted_at")

    class Params:
        amount = Decimal("50.00")
        category = ""


def points_discount_reward(program: Program, **fields) -> Reward:
    """Points as money at checkout: 100 points a step ("Pay with points"); ``fields`` override."""
    defaults = {"name": "Pay with points", "kind": Reward.Kind.POINTS_DISCOUNT, "points_cost": 100, "points_step": 100}
    return Reward.objects.create(program=program, **{**defaults, **fields})
