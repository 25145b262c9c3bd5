"""The loyalty admin: pages render, adjustments go through the ledger service, records stay read-only."""

import html
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty.adapters.base import EventKind
from loyalty.models import Member, OrderEvent, PointsEntry, Program, Purchase
from loyalty.services import events as event_services
from loyalty.services import member_enroll, order_event_record, points_adjust, points_credit
from tests.factories import UserFactory, order_event

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:loyalty_member_changelist"
MODELS = ["program", "member", "pointsentry", "purchase", "orderevent"]


# --- helpers --------------------------------------------------------------------------------


def staff(*codenames: str):
    """A staff user holding exactly the given loyalty permissions."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    assert user.user_permissions.count() == len(codenames)
    return user


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def populate(program: Program, n: int, *, start: int = 0, by=None) -> None:
    """``n`` customers, each with a paid order (member, purchase, earn entry, event), one refund and
    one staff adjustment; every row of every changelist points at other rows."""
    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"c{i}@example.com", email=f"c{i}@example.com", first_name="C", last_name=f"N{i}")
        for i in range(start, start + n)
    )
    now = timezone.now()
    for i, user in enumerate(users, start=start):
        at = now - timedelta(days=i)
        order_event_record(order_event(reference=f"A-{i}", amount="50.00", user=user, at=at))
        order_event_record(order_event(EventKind.REFUNDED, reference=f"A-{i}", amount="10.00", user=user, at=at))
        order_event_record(order_event(reference=f"G-{i}", amount="20.00", email=f"guest{i}@example.com", at=at))
        member = Member.objects.get(user=user, program=program)
        points_adjust(member=member, points=5, reason="Welcome gift", by=by, idempotency_key=f"gift:{i}")


def failed_event(monkeypatch, user, reference: str = "A-1") -> OrderEvent:
    """An event whose processing raised: stored as failed, nothing applied."""

    def explode(event, program, member=None):
        raise RuntimeError("points service is down")

    monkeypatch.setitem(event_services.__dict__, "_paid", explode)
    order_event_record(order_event(reference=reference, amount="30.00", user=user))
    monkeypatch.undo()
    event = OrderEvent.objects.get(order_reference=reference)
    assert event.status == OrderEvent.Status.FAILED
    return event


@pytest.fixture
def rich_member(program, customer):
    """``customer``'s membership with 100 points."""
    member = member_enroll(program=program, user=customer)[0]
    points_credit(member=member, points=100, kind=PointsEntry.Kind.BONUS, idempotency_key="seed")
    member.refresh_from_db()
    return member


# --- every page renders -----------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_and_change_page_renders_for_a_superuser(admin_client, admin_user, program, model):
    populate(program, 3, by=admin_user)
    objects = {
        "program": Program.objects.first(),
        "member": Member.objects.first(),
        "pointsentry": PointsEntry.objects.filter(created_by__isnull=False).first(),
        "purchase": Purchase.objects.filter(member__isnull=True).first(),
        "orderevent": OrderEvent.objects.first(),
    }

    changelist = admin_client.get(reverse(f"admin:loyalty_{model}_changelist"))
    change = admin_client.get(reverse(f"admin:loyalty_{model}_change", args=[objects[model].pk]))

    assert changelist.status_code == 200
    assert change.status_code == 200


def test_the_changelists_show_search_and_filter(admin_client, program):
    populate(program, 3)

    response = admin_client.get(reverse(CHANGELIST), {"q": "N1", "program__id__exact": program.pk})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert "c1@example.com" in response.text


def test_programme_and_member_add_pages_render(admin_client, program):
    assert admin_client.get(reverse("admin:loyalty_program_add")).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_member_add")).status_code == 200


def test_member_page_shows_the_balance_value_and_the_adjust_button(admin_client, rich_member):
    response = admin_client.get(reverse("admin:loyalty_member_change", args=[rich_member.pk]))

    assert "1.00 EUR" in response.text  # 100 points x 0.01
    assert reverse("admin:loyalty_member_adjust", args=[rich_member.pk]) in response.text
    assert "Adjust points…" in response.text


def test_member_page_lists_the_members_own_latest_entries_whatever_others_do(admin_client, program, rich_member):
    other = member_enroll(program=program, user=UserFactory())[0]
    for i in range(60):  # newer than all of rich_member's entries
        points_credit(member=other, points=1, kind=PointsEntry.Kind.BONUS, idempotency_key=f"o{i}")

    response = admin_client.get(reverse("admin:loyalty_member_change", args=[rich_member.pk]))
    other_page = admin_client.get(reverse("admin:loyalty_member_change", args=[other.pk]))

    (formset,) = response.context["inline_admin_formsets"]
    assert [form.instance.idempotency_key for form in formset.formset] == ["seed"]
    (formset,) = other_page.context["inline_admin_formsets"]
    assert len(formset.formset.forms) == 50
    assert formset.formset.forms[0].instance.idempotency_key == "o59"


def test_points_entry_list_links_to_the_member_and_shows_the_reason(admin_client, rich_member):
    points_adjust(member=rich_member, points=7, reason="Parcel arrived late")

    response = admin_client.get(reverse("admin:loyalty_pointsentry_changelist"))

    url = reverse("admin:loyalty_member_change", args=[rich_member.pk])
    assert f'<a href="{url}">{rich_member}</a>' in response.text
    assert "Parcel arrived late" in response.text


def test_order_event_page_shows_payload_and_error_preformatted(admin_client, program, customer, monkeypatch):
    event = failed_event(monkeypatch, customer)

    response = admin_client.get(reverse("admin:loyalty_orderevent_change", args=[event.pk]))

    text = html.unescape(response.text)
    assert '<pre style="margin: 0">{\n  "amount": "30.00",\n' in text
    assert '<pre style="white-space: pre-wrap; margin: 0">RuntimeError: points service is down</pre>' in text


# --- adjusting points: the bulk action --------------------------------------------------------


def run_adjust(client, members, **data):
    return client.post(
        reverse(CHANGELIST),
        {"action": "adjust_points", "_selected_action": [m.pk for m in members], **data},
    )


def test_adjust_action_first_shows_the_form(admin_client, rich_member):
    response = run_adjust(admin_client, [rich_member])

    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "admin/loyalty/adjust_points.html"
    assert response.context["form"].is_bound is False
    assert 'name="token"' in response.text
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).exists()


def test_adjust_action_applies_the_adjustment_as_the_staff_user(client, rich_member):
    manager = staff("view_member", "change_member")
    client.force_login(manager)

    response = run_adjust(
        client, [rich_member], apply="1", points="-30", reason="Damaged parcel refund", token=uuid.uuid4().hex
    )

    assert response.status_code == 302
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.ADJUST)
    assert (entry.points, entry.description, entry.created_by) == (-30, "Damaged parcel refund", manager)
    rich_member.refresh_from_db()
    assert rich_member.balance == 70
    assert messages_of(response) == [("success", "Adjusted the points of 1 member.")]


@pytest.mark.parametrize(
    ("points", "reason", "error"),
    [
        ("25", "   ", "This field is required."),
        ("0", "Goodwill", "Enter a number of points other than zero."),
        ("", "Goodwill", "This field is required."),
    ],
)
def test_adjust_action_refuses_an_empty_reason_or_zero_points(admin_client, rich_member, points, reason, error):
    token = uuid.uuid4().hex

    response = run_adjust(admin_client, [rich_member], apply="1", points=points, reason=reason, token=token)

    assert response.status_code == 200
    assert error in response.text
    assert f'value="{token}"' in response.text  # the same form, so a corrected resubmit stays idempotent
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).exists()
    assert Member.objects.get(pk=rich_member.pk).balance == 100


def test_adjust_action_reports_a_refusal_and_adjusts_the_others(admin_client, program, rich_member):
    poor = member_enroll(program=program, user=UserFactory(username="poor@example.com"))[0]

    response = run_adjust(
        admin_client, [rich_member, poor], apply="1", points="-40", reason="Fraud check", token=uuid.uuid4().hex
    )

    assert Member.objects.get(pk=rich_member.pk).balance == 60
    assert Member.objects.get(pk=poor.pk).balance == 0
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).count() == 1
    assert messages_of(response) == [
        ("success", "Adjusted the points of 1 member."),
        ("error", "poor@example.com: The balance is 0 points; an adjustment cannot take it below zero."),
    ]


def test_adjust_action_submitted_twice_adjusts_once(admin_client, rich_member):
    data = {"apply": "1", "points": "15", "reason": "Birthday", "token": uuid.uuid4().hex}

    run_adjust(admin_client, [rich_member], **data)
    second = run_adjust(admin_client, [rich_member], **data)

    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).count() == 1
    assert Member.objects.get(pk=rich_member.pk).balance == 115
    assert messages_of(second)[-1] == (
        "warning",
        "1 adjustment had been applied already (the form was sent twice); not repeated.",
    )


# --- adjusting points: the member's own page ----------------------------------------------------


def adjust_url(member) -> str:
    return reverse("admin:loyalty_member_adjust", args=[member.pk])


def test_member_adjust_page_adjusts_and_returns_to_the_member(client, rich_member):
    manager = staff("view_member", "change_member")
    client.force_login(manager)
    assert client.get(adjust_url(rich_member)).status_code == 200

    response = client.post(
        adjust_url(rich_member), {"points": "20", "reason": "Late delivery", "token": uuid.uuid4().hex}
    )

    assert response.status_code == 302
    assert response.url == reverse("admin:loyalty_member_change", args=[rich_member.pk])
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.ADJUST)
    assert (entry.points, entry.description, entry.created_by) == (20, "Late delivery", manager)
    assert Member.objects.get(pk=rich_member.pk).balance == 120
    assert messages_of(response) == [
        ("success", f"+20 points for {rich_member} (Late delivery). The balance is now 120 points.")
    ]


def test_member_adjust_page_shows_a_refusal_on_the_form(admin_client, rich_member):
    response = admin_client.post(
        adjust_url(rich_member), {"points": "-500", "reason": "Oops", "token": uuid.uuid4().hex}
    )

    assert response.status_code == 200
    assert "an adjustment cannot take it below zero" in response.text
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).exists()


def test_member_adjust_page_submitted_twice_adjusts_once(admin_client, rich_member):
    data = {"points": "-10", "reason": "Correction", "token": uuid.uuid4().hex}

    admin_client.post(adjust_url(rich_member), data)
    second = admin_client.post(adjust_url(rich_member), data)

    assert second.status_code == 302
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).count() == 1
    assert Member.objects.get(pk=rich_member.pk).balance == 90
    assert messages_of(second)[-1] == ("warning", "This adjustment had been applied already (the form was sent twice).")


def test_member_adjust_page_of_an_unknown_member_redirects(admin_client, program):
    response = admin_client.get(reverse("admin:loyalty_member_adjust", args=[987654]))
    assert response.status_code == 302


# --- permissions ------------------------------------------------------------------------------


def test_view_only_staff_sees_members_but_cannot_adjust(client, rich_member):
    client.force_login(staff("view_member"))

    changelist = client.get(reverse(CHANGELIST))
    change = client.get(reverse("admin:loyalty_member_change", args=[rich_member.pk]))
    action = run_adjust(client, [rich_member], apply="1", points="50", reason="Nice", token=uuid.uuid4().hex)
    page = client.post(adjust_url(rich_member), {"points": "50", "reason": "Nice", "token": uuid.uuid4().hex})

    assert changelist.status_code == 200
    assert rich_member.user.email in changelist.text
    assert "adjust_points" not in changelist.text
    assert change.status_code == 200
    assert adjust_url(rich_member) not in change.text
    assert action.status_code == 302  # adjust_points is not among this user's actions (export is): refused
    assert page.status_code == 403
    assert client.get(adjust_url(rich_member)).status_code == 403
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).exists()


@pytest.mark.parametrize("model", ["pointsentry", "purchase", "orderevent"])
def test_records_cannot_be_added_changed_or_deleted(admin_client, program, model):
    populate(program, 1)
    obj = {"pointsentry": PointsEntry, "purchase": Purchase, "orderevent": OrderEvent}[model].objects.first()
    change_url = reverse(f"admin:loyalty_{model}_change", args=[obj.pk])

    page = admin_client.get(change_url)

    assert page.status_code == 200
    assert 'name="_save"' not in page.text
    assert admin_client.post(change_url, {}).status_code == 403
    delete_url = reverse(f"admin:loyalty_{model}_delete", args=[obj.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse(f"admin:loyalty_{model}_add")).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


# --- retrying order events --------------------------------------------------------------------


def run_retry(client, events):
    return client.post(
        reverse("admin:loyalty_orderevent_changelist"),
        {"action": "retry", "_selected_action": [e.pk for e in events]},
    )


def test_retry_action_reprocesses_a_failed_event(admin_client, program, customer, monkeypatch):
    event = failed_event(monkeypatch, customer)

    response = run_retry(admin_client, [event])

    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error) == (OrderEvent.Status.PROCESSED, 2, "")
    assert Member.objects.get(user=customer).balance == 30
    assert messages_of(response) == [("success", "Retried. Processed: 1")]


def test_retry_action_reports_an_event_that_fails_again(admin_client, program, customer, monkeypatch):
    event = failed_event(monkeypatch, customer)
    monkeypatch.setitem(event_services.__dict__, "_paid", lambda *a, **kw: 1 / 0)

    response = run_retry(admin_client, [event])

    event.refresh_from_db()
    assert (event.status, event.attempts) == (OrderEvent.Status.FAILED, 2)
    assert "ZeroDivisionError" in event.last_error
    assert messages_of(response) == [("warning", "Retried. Failed, will retry: 1")]


def test_retry_action_leaves_processed_events_alone(admin_client, program, customer):
    order_event_record(order_event(reference="A-1", user=customer))

    response = run_retry(admin_client, OrderEvent.objects.all())

    assert OrderEvent.objects.get().attempts == 1
    assert messages_of(response) == [("info", "The selected events were all processed already.")]


def test_view_only_staff_cannot_retry_events(client, program, customer, monkeypatch):
    event = failed_event(monkeypatch, customer)
    client.force_login(staff("view_orderevent"))

    changelist = client.get(reverse("admin:loyalty_orderevent_changelist"))
    run_retry(client, [event])

    assert changelist.status_code == 200
    assert 'value="retry"' not in changelist.text
    event.refresh_from_db()
    assert (event.status, event.attempts) == (OrderEvent.Status.FAILED, 1)


# --- bounded queries --------------------------------------------------------------------------


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_each_changelist_runs_the_same_queries_for_5_and_200_rows(
    admin_client, admin_user, program, django_assert_num_queries
):
    urls = {model: reverse(f"admin:loyalty_{model}_changelist") for model in MODELS}

    def grow(start: int, n: int) -> None:
        Program.objects.bulk_create(Program(name=f"P{i}", slug=f"p{i}") for i in range(start, start + n))
        populate(program, n, start=start, by=admin_user)

    grow(0, 5)
    small = {}
    for model, url in urls.items():
        admin_client.get(url)  # warm caches (content types, session)
        small[model] = count_queries(admin_client, url)
    grow(5, 195)

    for model, url in urls.items():
        with django_assert_num_queries(small[model]):
            response = admin_client.get(url)
        assert len(response.context["cl"].result_list) == 100, model  # a full page, not 5 rows


def test_member_page_runs_the_same_queries_for_a_short_and_a_long_ledger(
    admin_client, admin_user, rich_member, django_assert_num_queries
):
    url = reverse("admin:loyalty_member_change", args=[rich_member.pk])
    admin_client.get(url)
    small = count_queries(admin_client, url)
    for i in range(80):
        points_adjust(member=rich_member, points=1, reason="Goodwill", by=admin_user, idempotency_key=f"g{i}")

    with django_assert_num_queries(small):
        admin_client.get(url)
