"""Erasing a member's personal data: nothing personal left, the books unchanged, twice is a no-op."""

import logging
from datetime import date, timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from loyalty.models import Campaign, Member, Message, OrderEvent, OutboundEmail, PointsEntry, Program, Purchase
from loyalty.selectors import kpis, ledger_mismatches
from loyalty.services import member_enroll, member_erase, order_event_record, points_adjust
from loyalty.services.outbox import outbox_dispatch
from loyalty.services.privacy import member_is_erased
from tests.factories import CampaignFactory, UserFactory, order_event

pytestmark = pytest.mark.django_db

EMAIL = "maria@example.com"
YEAR_AGO = timezone.now() - timedelta(days=365)
TOMORROW = timezone.now() + timedelta(days=1)


@pytest.fixture
def maria(program):
    """A customer with a guest order before she registered, two paid orders (one refunded in
    part), a staff adjustment, a birthday, consent, campaign emails and an admin history."""
    for ref in ("G-0", "G-1"):  # as a guest, twice
        order_event_record(order_event(reference=ref, amount="15.00", email="Maria@Example.com"))
    user = UserFactory(email=EMAIL, username=EMAIL, first_name="Maria", last_name="Rossi")
    user.last_name = "Rossi"
    user.save()
    member = member_enroll(program=program, user=user)[0]
    order_event_record(order_event(reference="A-1", amount="80.00", user=user))
    order_event_record(order_event(reference="A-2", amount="40.00", user=user))
    order_event_record(order_event("refunded", reference="A-2", amount="10.00", user=user, event_id="A-2:refund"))
    points_adjust(member=member, points=25, reason="Parcel late", idempotency_key="adj")
    Member.objects.filter(pk=member.pk).update(
        birth_date=date(1990, 5, 17), marketing_consent=True, consent_changed_at=timezone.now()
    )
    campaign = CampaignFactory(program=program, incentive=Campaign.Incentive.NONE)
    now = timezone.now()
    Message.objects.create(
        campaign=campaign,
        program=program,
        member=member,
        cycle="2026-01-01",
        status=Message.Status.SENT,
        to_email=EMAIL,
        created_at=now - timedelta(days=3),
        sent_at=now - timedelta(days=3),
    )
    Message.objects.create(
        campaign=campaign,
        program=program,
        member=member,
        cycle="2026-01-02",
        status=Message.Status.FAILED,
        last_error=f"SMTPRecipientsRefused: {EMAIL} unknown",
        created_at=now,
    )
    outbox_dispatch()  # the member emails queued so far (welcome...) go out: the outbox records the address
    LogEntry.objects.create(  # what admin's log_action(s) writes, on every supported Django
        user_id=UserFactory(is_staff=True).pk,
        content_type=ContentType.objects.get_for_model(member),
        object_id=str(member.pk),
        object_repr=str(member)[:200],
        action_flag=CHANGE,
        change_message="Consent",
    )
    member.refresh_from_db()
    return member


def books() -> dict:
    """What must not change: the ledger, balances, purchase amounts, redemptions."""
    return {
        "entries": list(PointsEntry.objects.order_by("pk").values_list("pk", "member_id", "points", "remaining")),
        "members": list(
            Member.objects.order_by("pk").values_list("pk", "balance", "lifetime_points", "orders_count", "tier_id")
        ),
        "purchases": list(
            Purchase.objects.order_by("pk").values_list("pk", "member_id", "amount", "refunded_amount", "status")
        ),
        "revenue": Purchase.objects.aggregate(total=Sum("amount"))["total"],
        "kpis": [
            (kpis.order_kpis(**period), kpis.points_kpis(**period), kpis.member_kpis(**period))
            for period in [{"program": p, "start": YEAR_AGO, "end": TOMORROW} for p in Program.objects.all()]
        ],
    }


def personal_traces(member: Member) -> list[str]:
    """Every place the fixture put Maria's personal data, and what is still there."""
    member = Member.objects.select_related("user").get(pk=member.pk)
    user = member.user
    found = []
    if any(EMAIL in str(v).lower() for v in (user.username, user.email)) or user.first_name or user.last_name:
        found.append(f"user: {user.username} {user.email} {user.first_name} {user.last_name}")
    if user.has_usable_password() or user.is_active:
        found.append("user can still sign in")
    if member.birth_date or member.referral_code or member.marketing_consent:
        found.append(f"member: {member.birth_date} {member.referral_code} {member.marketing_consent}")
    found += [f"purchase {p}" for p in Purchase.objects.filter(email__iexact=EMAIL).values_list("order_reference")]
    found += [f"message {m}" for m in Message.objects.filter(to_email__iexact=EMAIL).values_list("pk")]
    found += [f"message error {m}" for m in Message.objects.filter(last_error__icontains=EMAIL).values_list("pk")]
    found += [f"email {e}" for e in OutboundEmail.objects.filter(to_email__iexact=EMAIL).values_list("key")]
    found += [f"email {e}" for e in OutboundEmail.objects.filter(member=member).exclude(context={}).values_list("key")]
    found += [
        f"event {e.event_key}" for e in OrderEvent.objects.all() if EMAIL in str(e.payload.get("email", "")).lower()
    ]
    found += [f"admin history {r}" for r in LogEntry.objects.filter(object_repr__icontains="maria").values_list("pk")]
    return found


def test_the_fixture_has_personal_data_everywhere(maria):
    kinds = {trace.split(" ")[0].rstrip(":") for trace in personal_traces(maria)}
    assert kinds == {"user", "member", "purchase", "message", "event", "admin", "email"}
    assert len([t for t in personal_traces(maria) if t.startswith("purchase")]) == 4  # two orders, two as a guest


def test_erase_leaves_no_personal_data(maria, admin_user):
    erased = member_erase(member=maria, by=admin_user)

    assert personal_traces(maria) == []
    user = erased.user
    assert (user.username, user.email, user.first_name, user.last_name) == (f"erased-{user.pk}", "", "", "")
    assert (user.is_active, user.has_usable_password()) == (False, False)
    assert member_is_erased(erased)
    assert Member.objects.get(pk=maria.pk).consent_changed_at is not None


def test_erase_keeps_the_books(maria, capsys):
    before = books()
    balance = Member.objects.get(pk=maria.pk).balance
    assert balance == 80 + 40 - 10 + 25

    member_erase(member=maria, by=None)

    assert books() == before
    assert PointsEntry.objects.filter(member=maria).aggregate(s=Sum("points"))["s"] == balance
    assert not ledger_mismatches().exists()
    call_command("loyalty_check_ledger")  # raises CommandError on a mismatch
    assert "Ledger consistent" in capsys.readouterr().out
    # The guest orders are still guest orders of one (anonymous) customer; her own purchases stay hers.
    guest = Purchase.objects.filter(order_reference__in=["G-0", "G-1"])
    assert set(guest.values_list("member_id", "email")) == {(None, f"erased-{maria.user_id}@erased.invalid")}
    order_kpis = before["kpis"][0][0]
    assert (order_kpis.orders, order_kpis.guest_orders, order_kpis.customers, order_kpis.repeat_customers) == (
        4,
        2,
        2,
        2,
    )
    assert Purchase.objects.filter(member=maria).count() == 2


def test_erase_twice_changes_nothing_the_second_time(maria, caplog):
    caplog.set_level(logging.INFO, logger="loyalty.privacy")
    member_erase(member=maria, by=None)
    user_row = get_user_model().objects.filter(pk=maria.user_id).values().get()
    state = (
        books(),
        list(Message.objects.values()),
        list(Purchase.objects.values()),
        list(OrderEvent.objects.values()),
    )

    again = member_erase(member=maria, by=None)

    assert again.pk == maria.pk
    assert get_user_model().objects.filter(pk=maria.user_id).values().get() == user_row  # the password hash too
    assert (
        books(),
        list(Message.objects.values()),
        list(Purchase.objects.values()),
        list(OrderEvent.objects.values()),
    ) == state
    assert len([r for r in caplog.records if "erased by" in r.getMessage()]) == 1


def test_erase_leaves_other_customers_alone(maria, program):
    other = member_enroll(program=program, user=UserFactory(email="bob@example.com", first_name="Bob"))[0]
    order_event_record(order_event(reference="B-1", amount="20.00", user=other.user))
    order_event_record(order_event(reference="G-2", amount="20.00", email="someone@example.com"))

    member_erase(member=maria, by=None)

    other.refresh_from_db()
    assert (other.user.email, other.user.first_name, other.user.is_active) == ("bob@example.com", "Bob", True)
    assert other.referral_code
    assert Purchase.objects.get(order_reference="B-1").email == "bob@example.com"
    assert Purchase.objects.get(order_reference="G-2").email == "someone@example.com"


def test_erase_covers_every_programme_of_the_customer(maria):
    second = Program.objects.create(name="Club", slug="club")
    membership = member_enroll(program=second, user=maria.user)[0]
    Member.objects.filter(pk=membership.pk).update(birth_date=date(1990, 5, 17), marketing_consent=True)

    member_erase(member=maria, by=None)

    membership.refresh_from_db()
    assert (membership.birth_date, membership.referral_code, membership.marketing_consent) == (None, None, False)


def test_an_unprocessed_event_keeps_its_email_until_it_is_processed(maria):
    OrderEvent.objects.filter(order_reference="A-1").update(status=OrderEvent.Status.FAILED)

    member_erase(member=maria, by=None)
    assert OrderEvent.objects.get(event_key="order:A-1:paid").payload["email"] == EMAIL

    OrderEvent.objects.filter(order_reference="A-1").update(status=OrderEvent.Status.PROCESSED)
    member_erase(member=maria, by=None)
    assert OrderEvent.objects.get(event_key="order:A-1:paid").payload["email"] == ""


# --- in admin ------------------------------------------------------------------------------------------


def erase_url(member) -> str:
    return reverse("admin:loyalty_member_erase", args=[member.pk])


def test_admin_confirms_then_erases_and_records_who_did_it(admin_client, admin_user, maria):
    page = admin_client.get(erase_url(maria))
    assert page.status_code == 200
    assert "This cannot be undone." in page.text
    assert member_is_erased(Member.objects.get(pk=maria.pk)) is False  # showing the page erases nothing

    response = admin_client.post(erase_url(maria), {"post": "yes"})

    assert response.status_code == 302
    assert response.url == reverse("admin:loyalty_member_change", args=[maria.pk])
    assert personal_traces(maria) == []
    log = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Member), object_id=str(maria.pk), user=admin_user
    ).latest("action_time")
    assert "Erased the customer's personal data" in log.get_change_message()
    assert log.object_repr == f"erased-{maria.user_id}"


def test_admin_erase_a_second_time_says_so(admin_client, maria):
    admin_client.post(erase_url(maria), {"post": "yes"})
    logs = LogEntry.objects.count()

    page = admin_client.get(erase_url(maria))
    response = admin_client.post(erase_url(maria), {"post": "yes"})

    assert "has been erased already" in page.text
    assert [str(m) for m in response.wsgi_request._messages][-1] == "This customer's data had been erased already."
    assert LogEntry.objects.count() == logs


def test_erase_needs_the_delete_member_permission(client, maria):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_member", "change_member"]))
    client.force_login(staff)
    assert client.get(erase_url(maria)).status_code == 403
    assert client.post(erase_url(maria), {"post": "yes"}).status_code == 403
    assert personal_traces(maria) != []

    staff.user_permissions.add(Permission.objects.get(codename="delete_member"))
    client.force_login(get_user_model().objects.get(pk=staff.pk))
    change_page = client.get(reverse("admin:loyalty_member_change", args=[maria.pk]))
    assert erase_url(maria) in change_page.text
    assert client.post(erase_url(maria), {"post": "yes"}).status_code == 302
    assert personal_traces(maria) == []


def test_erase_refuses_a_post_without_the_csrf_token(admin_user, maria):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.post(erase_url(maria), {"post": "yes"}).status_code == 403
    assert personal_traces(maria) != []


def test_a_staff_account_is_not_erased(admin_client, maria):
    get_user_model().objects.filter(pk=maria.user_id).update(is_staff=True)

    response = admin_client.post(erase_url(maria), {"post": "yes"})

    assert response.status_code == 200
    assert "take away its staff status first" in response.text
    assert get_user_model().objects.get(pk=maria.user_id).is_active
    assert personal_traces(maria) != []
