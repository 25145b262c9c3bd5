"""The staff KPI dashboard in admin: who may see it, what it shows with data and without,
bad query parameters, the link from the admin home page, and its query count."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import loyalty
from loyalty.admin.dashboard import nice_ceiling
from loyalty.models import CustomerHealth, Member, Message, Program, Purchase, Segment, SegmentChange, Tier
from loyalty.services import member_enroll
from tests.factories import CampaignFactory, ProgramFactory, UserFactory, paid_order

pytestmark = pytest.mark.django_db

URL = "/admin/loyalty/program/dashboard/"


def staff(*codenames: str):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    return user


def purchases(program, n: int, *, prefix: str = "P") -> None:
    """``n`` paid orders over the last months, every third a guest's."""
    now = timezone.now()
    members = list(Member.objects.filter(program=program)[:5])
    for i in range(n):
        member = members[i % len(members)] if members and i % 3 else None
        Purchase.objects.create(
            program=program,
            member=member,
            email=member.user.email if member else f"guest{i % 7}@example.com",
            order_reference=f"{prefix}-{i}",
            amount=Decimal("20.00") + i % 9,
            currency=program.currency,
            occurred_at=now - timedelta(days=(i * 11) % 700, hours=1),
        )


@pytest.fixture
def shop(program, customer):
    """Demo-like: tiers, members with orders through the shop, a guest, health, a campaign with results."""
    Tier.objects.create(program=program, name="Bronze", rank=1, qualifies_by="spend", colour="#8c5a2b")
    Tier.objects.create(program=program, name="Gold", rank=2, qualifies_by="spend", threshold=Decimal("150"))
    now = timezone.now()
    paid_order(total="120.00", user=customer, at=now - timedelta(days=40))
    paid_order(total="45.50", user=customer, at=now - timedelta(days=10))
    paid_order(total="30.00", email="walk-in@example.com", at=now - timedelta(days=20))
    paid_order(total="80.00", user=customer, at=now - timedelta(days=400))
    others = [member_enroll(program=program, user=UserFactory())[0] for _ in range(4)]
    for member, segment in zip(
        [Member.objects.get(user=customer), *others],
        [Segment.CHAMPIONS, Segment.AT_RISK, Segment.AT_RISK, Segment.DORMANT, Segment.NEW],
        strict=True,
    ):
        CustomerHealth.objects.update_or_create(
            member=member, defaults={"program": program, "segment": segment, "segment_since": now, "computed_at": now}
        )
    SegmentChange.objects.create(
        program=program, member=others[0], from_segment="loyal", to_segment="at_risk", changed_at=now - timedelta(1)
    )
    campaign = CampaignFactory(program=program, name="Win them back", control_percent=20)
    for i, member in enumerate(others):
        Message.objects.create(
            campaign=campaign,
            program=program,
            member=member,
            cycle="2026-01-01",
            status=Message.Status.CONTROL if i == 3 else Message.Status.SENT,
            created_at=now - timedelta(days=5),
            converted_at=now - timedelta(days=2) if i == 0 else None,
            revenue=Decimal("42.00") if i == 0 else Decimal("0"),
        )
    return campaign


def test_the_dashboard_shows_kpis_charts_tables_and_campaigns(admin_client, program, shop):
    response = admin_client.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Loyalty dashboard</h1>" in page and program.name in page
    for label in (
        "Revenue",
        "Orders",
        "Average order value",
        "Purchase frequency",
        "Repeat purchase rate",
        "Guest checkout rate",
        "Revenue from members",
        "Customer lifetime value",
        "Redemption rate",
        "Outstanding liability",
        "Moved into at risk",
    ):
        assert f'<h3 class="ld-card__label">{label}</h3>' in page, label
    assert "195.50\u00a0EUR" in page  # 120.00 + 45.50 + 30.00 in the last 365 days
    assert "33.3\u00a0%" in page  # guest checkout rate: 1 of 3 orders
    # Comparison with the previous 365 days (one order of 80.00), in symbols and in words.
    assert "was 80.00\u00a0EUR" in page and "▲" in page
    assert "Up 144.4 % from 80.00\u00a0EUR in the previous period." in page
    # Charts are inline SVG with a title, a description and a data table.
    assert page.count('<svg class="ld-chart') == 4  # revenue, points, segments, NPS over time
    assert '<title id="ld-nps-t">NPS over time</title>' in page and "NPS and CSAT per month as a table" in page
    assert 'role="img" aria-labelledby="ld-revenue-t ld-revenue-d"' in page
    assert '<title id="ld-revenue-t">Revenue per month: members and guests</title>' in page
    assert "Revenue per month as a table" in page and "Points per month as a table" in page
    assert "<script" not in page.split('id="content-main"')[1]  # no JavaScript charts
    # Tables: tiers, segments with the week's moves, the campaign with its uplift.
    assert "Bronze" in page and "Gold" in page
    assert "moved into at risk this week" in page
    assert "Win them back" in page and "42.00\u00a0EUR" in page
    assert "165.50\u00a0EUR" in page  # revenue from members, under its share
    assert "+33.3\u00a0pp" in page  # 1 of 3 sent converted, 0 of 1 in control


def test_a_custom_period_and_another_programme(admin_client, program, shop):
    other = ProgramFactory(slug="second", name="Second shop", currency="CHF")

    response = admin_client.get(URL, {"program": other.pk, "start": "2026-01-01", "end": "2026-01-31"})

    page = response.content.decode()
    assert response.status_code == 200 and "Second shop" in page
    assert "1 Jan 2026 – 31 Jan 2026" in page and "compared with 1 Dec 2025 – 31 Dec 2025" in page
    assert "0.00\u00a0CHF" in page and "errornote" not in page


@pytest.mark.parametrize(
    "params, shown",
    [
        ({"period": "90"}, "Last 90 days"),
        ({"start": "2026-01-01", "end": "2026-01-31"}, "1 Jan 2026 – 31 Jan 2026"),
        # The page showed the last 365 days and dates were typed in: a custom period.
        ({"period": "365", "shown": "365", "start": "2026-01-01", "end": "2026-01-31"}, "1 Jan 2026 – 31 Jan 2026"),
        # The page showed a custom period and the select was changed: the preset, the dates are dropped.
        ({"period": "30", "shown": "custom", "start": "2026-01-01", "end": "2026-01-31"}, "Last 30 days"),
    ],
)
def test_presets_and_custom_dates(admin_client, program, params, shown):
    page = admin_client.get(URL, params).content.decode()

    assert "errornote" not in page
    if shown.startswith("Last"):
        days = int(shown.split()[1])
        first = timezone.localdate() - timedelta(days=days - 1)
        assert f"{first:%-d %b %Y} – {timezone.localdate():%-d %b %Y}" in page
        assert f'<option value="{days}" selected>' in page and 'name="start" value=' not in page
    else:
        assert shown in page and '<option value="custom" selected>' in page
        assert 'name="start" value="2026-01-01"' in page and 'name="end" value="2026-01-31"' in page


@pytest.mark.parametrize(
    "params, message",
    [
        ({"start": "2026-05-01", "end": "2026-01-01"}, "The period cannot end before it starts."),
        ({"start": "not-a-date"}, "From: Enter a valid date."),
        ({"start": "2026-01-01"}, "Give both dates of a custom period."),
        ({"period": "7"}, "Period: Select a valid choice."),
        ({"program": "abc"}, "Programme: Select a valid choice."),
        ({"program": "999999"}, "Programme: Select a valid choice."),
        ({"start": "2000-01-01", "end": "2026-01-01"}, "A custom period can be at most"),
    ],
)
def test_bad_query_parameters_show_an_error_and_the_defaults(admin_client, program, params, message):
    response = admin_client.get(URL, params)

    assert response.status_code == 200
    page = response.content.decode()
    assert "errornote" in page and message in page
    assert '<option value="365" selected>' in page
    today = timezone.localdate()
    assert f"{today:%-d %b %Y}" in page  # the default period, ending today


def test_an_empty_shop_gets_a_friendly_message_and_a_link_to_add_a_programme(admin_client):
    assert not Program.objects.exists()

    response = admin_client.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "No loyalty programme yet" in page
    assert reverse("admin:loyalty_program_add") in page


def test_a_programme_without_data_shows_zeros_and_dashes(admin_client, program):
    response = admin_client.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "0.00\u00a0EUR" in page and "–" in page
    assert "No campaigns yet." in page


def test_anonymous_and_non_staff_users_are_sent_to_the_login(client, program):
    login = reverse("admin:login")

    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(login)

    client.force_login(UserFactory(is_staff=False))
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(login)


def test_staff_need_the_view_member_permission(client, program):
    client.force_login(staff("view_program"))
    assert client.get(URL).status_code == 403

    client.force_login(staff("view_member"))
    assert client.get(URL).status_code == 200


def test_the_url_has_a_name_under_the_programme_admin(program):
    assert reverse("admin:loyalty_dashboard") == URL
    # The programme admin's own pages still work.
    assert reverse("admin:loyalty_program_change", args=[program.pk]).endswith(f"/program/{program.pk}/change/")


def test_the_loyalty_app_page_links_to_the_dashboard(admin_client, program):
    page = admin_client.get(reverse("admin:app_list", args=["loyalty"])).content.decode()

    assert f'href="{URL}"' in page and "Loyalty dashboard" in page


def test_the_admin_home_page_links_to_the_dashboard(admin_client, program, settings):
    """loyalty's admin/index.html adds the link when Django finds it before the admin's own:
    with "loyalty" above "django.contrib.admin" in INSTALLED_APPS, or its templates in DIRS (here)."""
    templates = Path(loyalty.__file__).parent / "templates"
    settings.TEMPLATES = [{**django_settings.TEMPLATES[0], "DIRS": [templates, *django_settings.TEMPLATES[0]["DIRS"]]}]

    page = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{URL}"' in page and "Loyalty dashboard" in page
    assert 'id="recent-actions-module"' in page  # the rest of the admin's home page is still there
    # The app page shows the card once.
    app_page = admin_client.get(reverse("admin:app_list", args=["loyalty"])).content.decode()
    assert app_page.count('class="loyalty-dashboard-link"') == 1


def test_the_link_is_only_for_staff_who_may_see_the_dashboard(client, program):
    client.force_login(staff("view_program"))

    page = client.get(reverse("admin:app_list", args=["loyalty"])).content.decode()

    assert f'href="{URL}"' not in page


def _dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL).status_code == 200
    return len(queries)


def test_the_page_query_count_is_bounded_and_the_same_for_10_and_200_orders(admin_client, program, shop):
    purchases(program, 10)
    admin_client.get(URL)  # the session and the content types are cached after this
    few = _dashboard_queries(admin_client)

    purchases(program, 190, prefix="Q")
    many = _dashboard_queries(admin_client)

    assert few == many
    # Session, user, programmes, and the KPIs' 21 (365 days) + 1 per campaign; NPS and CSAT added
    # 3 of them: one aggregate per period (current, previous) and one for the monthly NPS series;
    # points used at checkout 3 more: one per period, one for the codes held in the liability.
    assert many <= 28


def test_nice_axis_steps():
    assert [nice_ceiling(v) for v in (0, 0.7, 3, 4.2, 9, 13, 451, 913)] == [1, 1, 5, 5, 10, 20, 500, 1000]
