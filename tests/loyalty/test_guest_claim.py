"""A guest who later joins claims their guest orders' points, once, through the signed link on the
order's confirmation page: an email address alone proves nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from loyalty.models import Member, PendingPoints, PointsEntry, Purchase
from loyalty.services import member_enroll
from loyalty.services.guests import guest_claim_token, guest_claims_for_user, guest_purchases_claim
from shop import services as shop_services
from tests.factories import UserFactory, paid_order

pytestmark = pytest.mark.django_db


def fresh(member: Member) -> Member:
    return Member.objects.get(pk=member.pk)


def claim_url(order, email=None) -> str:
    token = guest_claim_token(order_reference=order.number, email=email or order.email)
    return reverse("loyalty:guest_claim", args=[token]) + "?next=" + reverse("shop:register")


def test_joining_through_the_orders_link_claims_the_points(client, program, django_capture_on_commit_callbacks):
    order = paid_order(total="42.50", email="Anna.Guest@Example.com")
    assert Purchase.objects.get(order_reference=order.number).member_id is None
    assert client.get(claim_url(order)).url == reverse("shop:register")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("shop:register"), {"email": "anna.guest@example.com", "password": "a-good-pass-2026"}
        )
    assert response.status_code == 302

    member = Member.objects.get(user__email="anna.guest@example.com")
    purchase = Purchase.objects.get(order_reference=order.number)
    assert purchase.member_id == member.pk
    assert member.balance == 42
    assert member.orders_count == 1
    entry = PointsEntry.objects.get(member=member, kind=PointsEntry.Kind.EARN)
    assert entry.reference == order.number and entry.purchase_id == purchase.pk


def test_registering_with_someone_elses_email_claims_nothing(client, program, django_capture_on_commit_callbacks):
    order = paid_order(total="42.50", email="victim@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("shop:register"), {"email": "victim@example.com", "password": "a-good-pass-2026"})

    assert Purchase.objects.get(order_reference=order.number).member_id is None
    assert Member.objects.get(user__email="victim@example.com").balance == 0


def test_a_link_for_another_email_or_a_tampered_link_claims_nothing(client, program):
    order = paid_order(total="42.50", email="guest@example.com")
    user = UserFactory(email="other@example.com")
    member_enroll(program=program, user=user)

    assert (
        guest_claims_for_user(user=user, tokens=[guest_claim_token(order_reference=order.number, email=order.email)])
        == 0
    )
    assert guest_claims_for_user(user=user, tokens=["forged:token"]) == 0
    assert client.get(reverse("loyalty:guest_claim", args=["forged:token"])).status_code == 400
    assert Purchase.objects.get(order_reference=order.number).member_id is None


def test_a_signed_in_customer_claims_at_once(client, program):
    order = paid_order(total="20.00", email="signed.in@example.com")
    user = UserFactory(email="signed.in@example.com")
    member, _ = member_enroll(program=program, user=user)
    client.force_login(user)

    client.get(claim_url(order))

    assert fresh(member).balance == 20


def claim_all(member) -> int:
    """What a claim link for each of the member's guest orders would claim."""
    references = list(Purchase.objects.filter(member__isnull=True).values_list("order_reference", flat=True))
    return guest_purchases_claim(member=member, order_references=references)


def test_claiming_twice_credits_once(program):
    paid_order(total="30.00", email="twice@example.com")
    member, _ = member_enroll(program=program, user=UserFactory(email="twice@example.com"))

    first = claim_all(member)
    second = claim_all(member)

    assert (first, second) == (30, 0)
    assert fresh(member).balance == 30
    assert PointsEntry.objects.filter(member=member).count() == 1


def test_refunds_are_respected(program):
    partly = paid_order(total="100.00", email="refunds@example.com")
    shop_services.refund_order(order=partly, amount=Decimal("25.00"))
    wholly = paid_order(total="50.00", email="refunds@example.com")
    shop_services.refund_order(order=wholly)
    cancelled = paid_order(total="20.00", email="refunds@example.com")
    shop_services.cancel_order(order=cancelled)
    member, _ = member_enroll(program=program, user=UserFactory(email="refunds@example.com"))

    assert claim_all(member) == 75

    member = fresh(member)
    assert member.balance == 75
    assert member.orders_count == 1  # only the kept (partly refunded) order counts
    claimed = Purchase.objects.get(order_reference=partly.number)
    assert (claimed.points_earned, claimed.points_reversed) == (100, 25)
    for order in (wholly, cancelled):
        purchase = Purchase.objects.get(order_reference=order.number)
        assert purchase.member_id == member.pk
        assert (purchase.points_earned, purchase.points_reversed) == (0, 0)


def test_a_refund_after_the_claim_takes_back_only_what_is_left(program):
    order = paid_order(total="100.00", email="later@example.com")
    shop_services.refund_order(order=order, amount=Decimal("50.00"))
    member, _ = member_enroll(program=program, user=UserFactory(email="later@example.com"))
    claim_all(member)

    shop_services.refund_order(order=type(order).objects.get(pk=order.pk))

    assert fresh(member).balance == 0


def test_other_emails_and_members_purchases_are_untouched(program, customer):
    paid_order(total="10.00", email="someone.else@example.com")
    paid_order(total="15.00", user=customer)
    member, _ = member_enroll(program=program, user=UserFactory(email="nobody@example.com"))

    assert claim_all(member) == 0

    assert fresh(member).balance == 0
    assert Purchase.objects.filter(member__isnull=True, email="someone.else@example.com").count() == 1
    assert Purchase.objects.filter(member__user=customer).count() == 1


def test_points_inside_the_approval_period_are_pending(program):
    program.pending_days = 14
    program.save()
    paid_order(total="40.00", email="pending@example.com")
    member, _ = member_enroll(program=program, user=UserFactory(email="pending@example.com"))

    assert claim_all(member) == 40

    member = fresh(member)
    assert (member.balance, member.pending_points) == (0, 40)
    pending = PendingPoints.objects.get(member=member)
    assert pending.approve_at > timezone.now() + timedelta(days=13)
