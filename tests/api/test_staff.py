"""Staff endpoints: permissions, member lookup, adjustments within the support limit, KPIs, reports."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty import selectors
from loyalty.models import CustomerHealth, PointsEntry, Tier
from loyalty.selectors import kpis
from tests.factories import CampaignFactory, SurveyFactory, SurveyResponseFactory, UserFactory, segment_member

from .conftest import client_for, fund, staff_user

pytestmark = pytest.mark.django_db

BASE = "/api/loyalty/staff/"


def staff_urls(member, campaign):
    return [
        ("get", "members/"),
        ("get", f"members/{member.pk}/"),
        ("post", f"members/{member.pk}/adjust/"),
        ("get", f"kpis/?program={member.program_id}"),
        ("get", f"campaigns/{campaign.pk}/report/"),
    ]


def test_customers_and_staff_without_permissions_get_403(member, program):
    campaign = CampaignFactory(program=program)
    plain_staff = UserFactory(email="staff@example.com", is_staff=True)
    for user in (member.user, plain_staff):
        for method, url in staff_urls(member, campaign):
            response = getattr(client_for(user), method)(BASE + url, {"points": 5, "reason": "x"}, format="json")
            assert response.status_code == 403, (user, url)
            assert response.json()["code"] == "permission_denied"


def test_anonymous_gets_401_on_staff_endpoints(member):
    response = APIClient().get(BASE + "members/")
    assert response.status_code == 401


def test_member_list_filters_by_tier_segment_at_risk_and_email(viewer, member, other, program):
    gold = Tier.objects.create(program=program, name="Gold", rank=1, qualifies_by="spend")
    type(member).objects.filter(pk=member.pk).update(tier=gold)
    risky = segment_member(program, email="risky@example.com", segment="at_risk")
    CustomerHealth.objects.filter(member=risky).update(at_risk=True)
    api = client_for(viewer)

    def ids(query: str = "") -> set[int]:
        body = api.get(BASE + "members/" + query).json()
        assert body["count"] == len(body["results"])
        return {row["id"] for row in body["results"]}

    assert ids() == {member.pk, other.pk, risky.pk}
    assert ids(f"?tier={gold.pk}") == {member.pk}
    assert ids("?segment=at_risk") == {risky.pk}
    assert ids("?at_risk=true") == {risky.pk}
    assert ids("?at_risk=false") == {member.pk, other.pk}
    assert ids("?search=MARIA@") == {member.pk}
    row = api.get(BASE + "members/?search=risky").json()["results"][0]
    assert (row["email"], row["segment"], row["at_risk"]) == ("risky@example.com", "at_risk", True)


def test_member_list_rejects_bad_filters_with_400(viewer):
    response = client_for(viewer).get(BASE + "members/?segment=nonsense&at_risk=maybe")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"segment", "at_risk"}


def test_member_list_is_paginated(viewer, member, other):
    body = client_for(viewer).get(BASE + "members/?page_size=1").json()
    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]


def test_member_detail_includes_health(viewer, program):
    risky = segment_member(program, email="risky@example.com", segment="at_risk")
    body = client_for(viewer).get(f"{BASE}members/{risky.pk}/").json()
    assert body["email"] == "risky@example.com"
    assert body["health"]["segment"] == "at_risk"
    assert client_for(viewer).get(f"{BASE}members/999999/").status_code == 404


def test_an_agent_adjusts_within_the_limit_and_it_is_recorded_with_them(agent, member, settings):
    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_ADJUST_LIMIT": 100}
    api = client_for(agent)
    response = api.post(f"{BASE}members/{member.pk}/adjust/", {"points": 100, "reason": "Goodwill"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["balance"] == 100
    entry = PointsEntry.objects.get(pk=response.json()["id"])
    assert (entry.kind, entry.created_by, entry.description) == (PointsEntry.Kind.ADJUST, agent, "Goodwill")
    over = api.post(f"{BASE}members/{member.pk}/adjust/", {"points": 101, "reason": "Too much"}, format="json")
    assert over.status_code == 403
    assert over.json()["code"] == "adjust_limit_exceeded"
    member.refresh_from_db()
    assert member.balance == 100


def test_a_manager_has_no_adjust_limit(manager, member, settings):
    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_ADJUST_LIMIT": 100}
    response = client_for(manager).post(
        f"{BASE}members/{member.pk}/adjust/", {"points": 5000, "reason": "Migration"}, format="json"
    )
    assert response.status_code == 201


def test_staff_without_change_member_cannot_adjust(viewer, member):
    response = client_for(viewer).post(
        f"{BASE}members/{member.pk}/adjust/", {"points": 5, "reason": "x"}, format="json"
    )
    assert response.status_code == 403
    assert not PointsEntry.objects.filter(member=member).exists()


def test_adjustment_idempotency_and_errors(agent, member):
    api = client_for(agent)
    url = f"{BASE}members/{member.pk}/adjust/"
    body = {"points": 50, "reason": "Sorry", "idempotency_key": "ticket-17"}
    assert api.post(url, body, format="json").status_code == 201
    assert api.post(url, body, format="json").status_code == 200
    assert PointsEntry.objects.filter(member=member).count() == 1
    zero = api.post(url, {"points": 0, "reason": "x"}, format="json")
    assert (zero.status_code, zero.json()["code"], list(zero.json()["fields"])) == (400, "invalid", ["points"])
    blank = api.post(url, {"points": 5, "reason": "   "}, format="json")
    assert blank.status_code == 400
    below_zero = api.post(url, {"points": -80, "reason": "Too much"}, format="json")
    assert below_zero.status_code in (400, 409)
    assert below_zero.json()["code"] in ("insufficient_points", "invalid_adjustment")
    assert api.post(f"{BASE}members/999999/adjust/", {"points": 5, "reason": "x"}, format="json").status_code == 404


def test_kpis_match_the_dashboard_selectors(viewer, member, other, program):
    fund(member, 400)
    fund(other, 100)
    end = timezone.now() + timedelta(minutes=1)
    start = end - timedelta(days=30)
    response = client_for(viewer).get(
        BASE + "kpis/", {"program": program.pk, "start": start.isoformat(), "end": end.isoformat()}
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    board = kpis.dashboard(program=program, start=start, end=end)
    points = body["current"]["points"]
    assert points["issued"] == board.current.points.issued == 500
    assert points["liability_points"] == board.current.points.liability_points
    assert points["liability"] == str(board.current.points.liability)
    assert points["redemption_rate"] == board.current.points.redemption_rate
    assert body["current"]["orders"]["orders"] == board.current.orders.orders
    assert body["current"]["members"]["total"] == board.current.members.total == 2
    assert body["previous"]["points"]["issued"] == board.previous.points.issued
    assert len(body["points_by_month"]) == len(board.points_by_month)
    assert len(body["nps_by_month"]) == len(board.nps_by_month)


def test_kpis_carry_the_customer_voice(viewer, member, program):
    survey = SurveyFactory(program=program)
    for nps in [10, 9, 9, 10, 9, 8, 7, 7, 3, 0]:  # 5 promoters, 3 passives, 2 detractors
        SurveyResponseFactory(survey=survey, member=member, nps=nps)
    end = timezone.now() + timedelta(minutes=1)
    body = (
        client_for(viewer)
        .get(
            BASE + "kpis/",
            {"program": program.pk, "start": (end - timedelta(days=30)).isoformat(), "end": end.isoformat()},
        )
        .json()
    )
    voice = body["current"]["voice"]
    assert (voice["promoters"], voice["passives"], voice["detractors"], voice["nps"]) == (5, 3, 2, 30)
    assert body["nps_by_month"][-1]["summary"]["nps"] == 30


def test_kpis_reject_a_bad_period_and_an_unknown_programme(viewer, program):
    api = client_for(viewer)
    now = timezone.now()
    bad = api.get(BASE + "kpis/", {"program": program.pk, "start": now.isoformat(), "end": now.isoformat()})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")
    assert api.get(BASE + "kpis/").json()["fields"].keys() == {"program"}
    assert api.get(BASE + "kpis/", {"program": 999999}).status_code == 404


def test_campaign_report_matches_the_selector(viewer, program):
    campaign = CampaignFactory(program=program)
    body = client_for(viewer).get(f"{BASE}campaigns/{campaign.pk}/report/").json()
    report = selectors.campaign_report(campaign=campaign)
    assert body["campaign"] == campaign.pk
    assert body["sent"] == report["sent"]
    assert body["control"]["members"] == report["control"]["members"]
    assert client_for(viewer).get(f"{BASE}campaigns/999999/report/").status_code == 404


def test_a_superuser_passes_every_staff_check(member, db):
    boss = staff_user("boss@example.com")
    boss.is_superuser = True
    boss.save()
    assert client_for(boss).get(BASE + "members/").status_code == 200
