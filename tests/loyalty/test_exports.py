"""CSV exports from admin: streamed, the right rows and columns, the period, permissions."""

import csv
import io
from datetime import date, datetime

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models.query import QuerySet
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty import exports
from loyalty.models import CustomerHealth, Member, PointsEntry, Tier
from loyalty.services import member_enroll, points_adjust, points_credit
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MEMBERS = reverse("admin:loyalty_member_changelist")
MEMBERS_EXPORT = reverse("admin:loyalty_member_export")
LEDGER_EXPORT = reverse("admin:loyalty_pointsentry_export")


def at(day: int, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime(2026, 3, day, hour, 0))


def rows_of(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def staff(*codenames: str):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    return user


@pytest.fixture
def members(program):
    """Ann (gold, at risk, 150 points), Bob (no tier, not scored) and Cy (=formula in her name)."""
    gold = Tier.objects.create(program=program, name="Gold", rank=1, qualifies_by="points")
    ann = member_enroll(program=program, user=UserFactory(email="ann@example.com", first_name="Ann", last_name="Lee"))[
        0
    ]
    bob = member_enroll(program=program, user=UserFactory(email="bob@example.com", first_name="Bob", last_name=""))[0]
    cy = member_enroll(program=program, user=UserFactory(email="cy@example.com", first_name="=cmd|' /C calc'!A0"))[0]
    points_credit(member=ann, points=150, kind=PointsEntry.Kind.BONUS, idempotency_key="ann")
    Member.objects.filter(pk=ann.pk).update(
        tier=gold, joined_at=at(1), orders_count=3, last_purchase_at=at(2, 9), lifetime_points=400
    )
    CustomerHealth.objects.create(
        member=ann, program=program, segment="at_risk", at_risk=True, segment_since=at(2), computed_at=at(2)
    )
    return [Member.objects.get(pk=m.pk) for m in (ann, bob, cy)]


# --- members -------------------------------------------------------------------------------------


def test_member_export_streams_every_member_of_the_list(admin_client, members):
    response = admin_client.get(MEMBERS_EXPORT)

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="members-{today}.csv"'
    header, *rows = rows_of(response)
    assert header == exports.MEMBER_HEADER
    ann, bob, cy = members
    assert rows == [
        [
            str(ann.pk),
            "ann@example.com",
            "Ann Lee",
            "Rewards",
            "Gold",
            "at_risk",
            "yes",
            "150",
            "400",
            "3",
            "2026-03-02 09:00:00+01:00",
            "2026-03-01 12:00:00+01:00",
        ],
        [str(bob.pk), "bob@example.com", "Bob", "Rewards", "", "", "", "0", "0", "0", "", rows[1][-1]],
        [str(cy.pk), "cy@example.com", "'=cmd|' /C calc'!A0", *rows[2][3:]],  # never a formula
    ]


def test_member_export_button_keeps_the_lists_filter_and_search(admin_client, members):
    page = admin_client.get(MEMBERS, {"health__at_risk__exact": "1"})
    assert f"{MEMBERS_EXPORT}?health__at_risk__exact=1" in page.text

    at_risk = rows_of(admin_client.get(MEMBERS_EXPORT, {"health__at_risk__exact": "1"}))
    searched = rows_of(admin_client.get(MEMBERS_EXPORT, {"q": "bob@"}))

    assert [row[1] for row in at_risk[1:]] == ["ann@example.com"]
    assert [row[1] for row in searched[1:]] == ["bob@example.com"]


def test_member_export_action_exports_the_selected_members(admin_client, members):
    ann, bob, cy = members

    response = admin_client.post(MEMBERS, {"action": "export_csv", "_selected_action": [cy.pk, ann.pk]})

    assert [row[1] for row in rows_of(response)[1:]] == ["ann@example.com", "cy@example.com"]


def test_member_export_needs_the_view_permission(client, members):
    client.force_login(staff("view_pointsentry"))
    assert client.get(MEMBERS_EXPORT).status_code == 403

    client.force_login(staff("view_member"))
    assert isinstance(client.get(MEMBERS_EXPORT), StreamingHttpResponse)
    action = client.post(MEMBERS, {"action": "export_csv", "_selected_action": [members[0].pk]})
    assert len(rows_of(action)) == 2


# --- the ledger --------------------------------------------------------------------------------------


@pytest.fixture
def ledger(members, admin_user):
    ann, bob, _cy = members
    PointsEntry.objects.filter(member=ann).update(created_at=at(1, 10))
    points_adjust(member=ann, points=-20, reason="-Damaged parcel", by=admin_user, idempotency_key="a")
    points_adjust(member=bob, points=30, reason="Goodwill", by=admin_user, idempotency_key="b")
    points_adjust(member=bob, points=5, reason="Later", idempotency_key="c")
    PointsEntry.objects.filter(idempotency_key="a").update(created_at=at(1, 0))
    PointsEntry.objects.filter(idempotency_key="b").update(created_at=timezone.make_aware(datetime(2026, 3, 3, 23, 59)))
    PointsEntry.objects.filter(idempotency_key="c").update(created_at=timezone.make_aware(datetime(2026, 3, 4, 0, 0)))
    return members


def test_ledger_export_page_shows_the_period_form(admin_client, ledger):
    page = admin_client.get(LEDGER_EXPORT)

    assert page.status_code == 200
    assert page.context["form"].initial["start"] == timezone.localdate().replace(day=1)
    assert LEDGER_EXPORT in admin_client.get(reverse("admin:loyalty_pointsentry_changelist")).text


def test_ledger_export_streams_the_period_whole_days_oldest_first(admin_client, admin_user, ledger):
    ann, bob, _cy = ledger

    response = admin_client.get(LEDGER_EXPORT, {"start": "2026-03-01", "end": "2026-03-03"})

    assert response["Content-Disposition"] == 'attachment; filename="ledger-2026-03-01-to-2026-03-03.csv"'
    header, *rows = rows_of(response)
    assert header == ["date", "member id", "member email", "kind", "points", "reference", "description", "created by"]
    assert rows == [
        [
            "2026-03-01 00:00:00+01:00",
            str(ann.pk),
            "ann@example.com",
            "adjust",
            "-20",
            "",
            "'-Damaged parcel",
            admin_user.username,
        ],
        ["2026-03-01 10:00:00+01:00", str(ann.pk), "ann@example.com", "bonus", "150", "", "", ""],
        [
            "2026-03-03 23:59:00+01:00",
            str(bob.pk),
            "bob@example.com",
            "adjust",
            "30",
            "",
            "Goodwill",
            admin_user.username,
        ],
    ]  # 4 March 00:00 is the next day: not in the period


def test_ledger_export_of_one_day_and_of_one_programme(admin_client, program, ledger):
    one_day = rows_of(admin_client.get(LEDGER_EXPORT, {"start": "2026-03-04", "end": "2026-03-04"}))
    mine = rows_of(admin_client.get(LEDGER_EXPORT, {"start": "2026-03-01", "end": "2026-03-31", "program": program.pk}))

    assert [row[6] for row in one_day[1:]] == ["Later"]
    assert len(mine) == 1 + 4


def test_ledger_export_refuses_a_period_that_ends_before_it_starts(admin_client, ledger):
    page = admin_client.get(LEDGER_EXPORT, {"start": "2026-03-05", "end": "2026-03-01"})

    assert page.status_code == 200
    assert not isinstance(page, StreamingHttpResponse)
    assert "The end must not be before the start." in page.text


def test_ledger_export_needs_the_view_permission_on_the_ledger(client, ledger):
    client.force_login(staff("view_member"))
    assert client.get(LEDGER_EXPORT, {"start": "2026-03-01", "end": "2026-03-03"}).status_code == 403

    client.force_login(staff("view_pointsentry"))
    response = client.get(LEDGER_EXPORT, {"start": "2026-03-01", "end": "2026-03-03"})
    assert len(rows_of(response)) == 4


# --- streaming: rows come from a cursor, not a list ----------------------------------------------------------


def test_the_header_comes_before_any_query_and_the_rows_from_one_chunked_cursor(admin_client, program, monkeypatch):
    users = UserFactory._meta.model.objects.bulk_create(
        UserFactory._meta.model(username=f"u{i}@example.com", email=f"u{i}@example.com") for i in range(1200)
    )
    Member.objects.bulk_create(Member(program=program, user=u, joined_at=timezone.now()) for u in users)
    iterators = []
    real_iterator = QuerySet.iterator

    def spy(self, chunk_size=None):
        iterators.append((self.model, chunk_size))
        return real_iterator(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    monkeypatch.setattr(exports, "LINES_PER_PIECE", 100)
    response = exports.members_csv(Member.objects.all())
    pieces = iter(response.streaming_content)

    with CaptureQueriesContext(connection) as queries:
        header = next(pieces)
        assert len(queries) == 0  # the header is sent before the database is asked anything
        first = next(pieces)
        assert len(queries) == 1
        rest = list(pieces)
    assert len(queries) == 1  # one query for all 1,200 rows: no query per row or per piece

    assert header.startswith(b"id,email,name")
    assert first.count(b"\n") == 100
    assert sum(piece.count(b"\n") for piece in rest) == 1100
    assert iterators == [(Member, exports.CHUNK_SIZE)]
    assert exports.CHUNK_SIZE == 2000


def test_the_ledger_rows_are_read_through_a_chunked_iterator(monkeypatch, ledger):
    calls = []
    real_iterator = QuerySet.iterator
    monkeypatch.setattr(
        QuerySet, "iterator", lambda self, chunk_size=None: calls.append(chunk_size) or real_iterator(self, chunk_size)
    )

    with CaptureQueriesContext(connection) as queries:
        response = exports.ledger_csv(start=date(2026, 3, 1), end=date(2026, 3, 31))
        assert len(queries) == 0  # nothing read yet
        assert len(rows_of(response)) == 5
    assert len(queries) == 1
    assert calls == [exports.CHUNK_SIZE]
