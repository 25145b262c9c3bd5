"""Customer voice on the staff side: NPS/CSAT arithmetic, detractor alerts, the health refresh's
detractor feature, and the survey admin (responses read-only, filters, CSV, member page)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty import nps as nps_definition
from loyalty import signals
from loyalty.compat import get_model_admin
from loyalty.health import risk
from loyalty.models import (
    CustomerHealth,
    EarningRule,
    HealthModelFit,
    HealthSettings,
    Purchase,
    Segment,
    SegmentChange,
    Survey,
    SurveyResponse,
)
from loyalty.selectors import kpis
from loyalty.services import feedback, member_enroll
from loyalty.services.health import (
    MIN_DETRACTORS_TO_LEARN,
    detractor_weight_in_use,
    health_fit_model,
    health_refresh,
    health_settings_for,
    with_added_log_odds,
)
from tests.factories import SurveyFactory, SurveyResponseFactory, UserFactory
from tests.loyalty.test_health_refresh import NOW, _simulated_history, buyer, five_buyers

pytestmark = pytest.mark.django_db


def answer(member, *, nps=9, csat=5, comment="", at=NOW, survey=None, existing=False, **kwargs) -> SurveyResponse:
    """A response by ``member``; with ``existing``, about their latest purchase (their history unchanged)."""
    survey = survey or Survey.objects.filter(program=member.program, is_active=True).first()
    survey = survey or SurveyFactory(program=member.program)
    if existing:
        kwargs["purchase"] = Purchase.objects.filter(member=member).order_by("-occurred_at").first()
    return SurveyResponseFactory(
        survey=survey, member=member, nps=nps, csat=csat, comment=comment, submitted_at=at, **kwargs
    )


def health(member) -> CustomerHealth:
    return CustomerHealth.objects.get(member=member)


# --- NPS and CSAT ---------------------------------------------------------------------------------


def test_nps_of_5_promoters_3_passives_2_detractors_is_30(program, member):
    survey = SurveyFactory(program=program)
    scores = [10, 9, 9, 10, 9, 7, 8, 7, 3, 6]
    csats = [5, 5, 4, 4, 3, 2, 5, 4, 1, None]
    for nps, csat in zip(scores, csats, strict=True):
        answer(member, nps=nps, csat=csat, survey=survey, at=timezone.now() - timedelta(days=1))
    answer(member, nps=None, csat=None, comment="Just a comment", survey=survey, at=timezone.now() - timedelta(days=1))

    with CaptureQueriesContext(connection) as ctx:
        summary = kpis.nps_summary(program=program, start=timezone.now() - timedelta(days=30), end=timezone.now())

    assert len(ctx.captured_queries) == 1
    assert (summary.promoters, summary.passives, summary.detractors) == (5, 3, 2)
    assert summary.responses == 11 and summary.nps_answers == 10
    assert summary.nps == 30
    assert summary.promoter_share == 0.5 and summary.detractor_share == 0.2
    assert summary.csat_answers == 9 and summary.csat == pytest.approx(6 / 9)
    assert summary.csat_average == Decimal("3.67")  # 33 / 9


def test_nps_is_none_without_answers_and_rounds_half_up(program, member):
    empty = kpis.nps_summary(program=program, start=NOW - timedelta(days=1), end=NOW)
    assert empty.nps is None and empty.csat is None and empty.responses == 0
    assert kpis.NpsSummary(3, 1, 1, 1, 0, 0).nps == 0
    assert kpis.NpsSummary(8, 3, 4, 1, 0, 0).nps == 25  # 2/8 = 25.0
    assert kpis.NpsSummary(8, 5, 0, 3, 0, 0).nps == 25  # 2/8
    assert kpis.NpsSummary(7, 3, 4, 0, 0, 0).nps == 43  # 42.857 -> 43
    assert kpis.NpsSummary(8, 1, 6, 1, 0, 0).nps == 0  # 0/8


def test_nps_is_defined_once_bands_and_rounding_half_away_from_zero():
    bands = [nps_definition.nps_band(score) for score in nps_definition.nps_scale()]
    assert bands == ["detractor"] * 7 + ["passive"] * 2 + ["promoter"] * 2
    assert nps_definition.nps_band(None) is None
    assert nps_definition.nps_score(promoters=1, detractors=0, answers=8) == 13  # 12.5
    assert nps_definition.nps_score(promoters=0, detractors=1, answers=8) == -13  # -12.5
    assert nps_definition.nps_score(promoters=0, detractors=0, answers=0) is None
    assert kpis.NpsSummary(8, 1, 7, 0, 0, 0).nps == 13
    assert [nps_definition.nps_text(v) for v in (13, 0, -5, None)] == ["+13", "0", "-5", "–"]


def test_the_survey_admin_shows_the_dashboards_nps(admin_client, program, member):
    """1 promoter and 7 passives: 12.5, shown as +13 in the survey list as on the dashboard."""
    survey = SurveyFactory(program=program)
    for score in (9, 7, 7, 7, 7, 7, 7, 7):
        answer(member, nps=score, survey=survey)
    page = admin_client.get(reverse("admin:loyalty_survey_changelist")).content.decode()
    assert '<td class="field-nps">+13</td>' in page
    promoters = admin_client.get(reverse("admin:loyalty_surveyresponse_changelist"), {"band": "promoter"})
    assert promoters.context["cl"].result_count == 1


def test_nps_trend_is_monthly_with_empty_months_in_one_query(program, member):
    survey = SurveyFactory(program=program)
    end = timezone.now()
    answer(member, nps=10, survey=survey, at=end - timedelta(days=1))
    answer(member, nps=2, survey=survey, at=end - timedelta(days=1))
    answer(member, nps=9, survey=survey, at=end - timedelta(days=70))

    with CaptureQueriesContext(connection) as ctx:
        trend = kpis.nps_trend(program=program, months=6, end=end)

    assert len(ctx.captured_queries) == 1
    assert len(trend) == 6 and trend[-1].month == timezone.localtime(end).date().replace(day=1)
    assert trend[-1].summary.nps == 0 and trend[-1].summary.responses == 2
    assert sum(row.summary.responses for row in trend) == 3
    assert [row.summary.nps for row in trend].count(None) >= 3


# --- detractor alerts -------------------------------------------------------------------------------


@pytest.fixture
def received():
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    signals.member_detractor.connect(receiver)
    yield calls
    signals.member_detractor.disconnect(receiver)


def test_a_high_value_detractor_alerts_once_by_signal_and_email(
    program, member, received, mailoutbox, django_capture_on_commit_callbacks, settings, send_emails
):
    settings.LOYALTY = {**getattr(settings, "LOYALTY", {}), "SITE_URL": "https://shop.example"}
    survey = SurveyFactory(program=program, alert_email="care@example.com", alert_min_spend=Decimal("100"))
    response = answer(member, nps=3, csat=2, comment="=Late and broken", survey=survey, amount=Decimal("150.00"))

    with django_capture_on_commit_callbacks(execute=True):
        assert feedback.response_saved(response=response) is True
    with django_capture_on_commit_callbacks(execute=True):
        assert feedback.response_saved(response=response) is False  # an edit later: never twice
        response.refresh_from_db()
        assert feedback.response_saved(response=response) is False

    assert response.alerted_at is not None
    assert len(received) == 1 and received[0]["member"] == member and received[0]["response"].pk == response.pk
    send_emails()
    alerts = [m for m in mailoutbox if m.to == ["care@example.com"]]
    assert len(alerts) == 1
    mail = alerts[0]
    assert mail.to == ["care@example.com"]
    assert "maria@example.com" in mail.subject and "NPS 3" in mail.subject and "CSAT 2" in mail.subject
    assert "=Late and broken" in mail.body and response.purchase.order_reference in mail.body
    assert "150.00 EUR" in mail.body
    assert f"https://shop.example/admin/loyalty/member/{member.pk}/change/" in mail.body


def test_no_alert_for_low_spend_promoters_or_without_an_address(
    program, member, received, mailoutbox, django_capture_on_commit_callbacks
):
    survey = SurveyFactory(program=program, alert_min_spend=Decimal("500"))
    cheap = answer(member, nps=1, survey=survey, amount=Decimal("40.00"))
    with django_capture_on_commit_callbacks(execute=True):
        assert feedback.response_saved(response=cheap) is False
    survey.alert_min_spend = Decimal("10")
    survey.save()
    happy = answer(member, nps=10, survey=survey, amount=Decimal("40.00"))
    with django_capture_on_commit_callbacks(execute=True):
        assert feedback.response_saved(response=happy) is False
        cheap.refresh_from_db()
        assert feedback.response_saved(response=cheap) is True  # high value now; no address: signal only

    assert len(received) == 1 and mailoutbox == []


def test_an_edit_that_makes_a_detractor_alerts_then(program, member, received, django_capture_on_commit_callbacks):
    survey = SurveyFactory(program=program, alert_min_spend=Decimal("10"))
    response = answer(member, nps=9, survey=survey)
    with django_capture_on_commit_callbacks(execute=True):
        feedback.response_saved(response=response)
    assert received == []

    SurveyResponse.objects.filter(pk=response.pk).update(nps=4, is_detractor=True)
    response.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        feedback.response_saved(response=response)
    assert len(received) == 1


def test_high_value_falls_back_to_health_settings_then_the_top_fifth(program, member):
    survey = SurveyFactory(program=program)  # no alert_min_spend
    policy = health_settings_for(program)
    policy.high_value_spend = Decimal("200")
    policy.save()
    assert not feedback.is_high_value(member=member, survey=survey, spent=Decimal("199.99"))
    assert feedback.is_high_value(member=member, survey=survey, spent=Decimal("200"))

    HealthSettings.objects.filter(pk=policy.pk).update(high_value_spend=None)
    assert not feedback.is_high_value(member=member, survey=survey, spent=Decimal("10000"))  # no refresh yet
    CustomerHealth.objects.create(
        member=member, program=program, segment="loyal", segment_since=NOW, computed_at=NOW, m_score=5
    )
    assert feedback.is_high_value(member=member, survey=survey, spent=Decimal("1"))


# --- health ---------------------------------------------------------------------------------------------


def test_a_detractor_repeat_customer_moves_to_needs_attention_with_reason_voice(program):
    shop = five_buyers(program)
    health_refresh(program=program, now=NOW)
    champion = health(shop["champion"])
    assert champion.segment in (Segment.CHAMPIONS, Segment.LOYAL) and not champion.at_risk

    answer(shop["champion"], nps=2, csat=1, at=NOW - timedelta(days=5), existing=True)
    health_refresh(program=program, now=NOW + timedelta(hours=1))

    moved = health(shop["champion"])
    assert moved.segment == Segment.NEEDS_ATTENTION
    assert moved.at_risk and moved.risk_reason == CustomerHealth.Reason.VOICE
    assert abs((moved.detractor_at - (NOW - timedelta(days=5))).total_seconds()) < 1
    assert SegmentChange.objects.filter(
        member=shop["champion"], from_segment=champion.segment, to_segment=Segment.NEEDS_ATTENTION
    ).exists()
    # Members flagged for other reasons keep their segment and reason.
    answer(shop["overdue"], nps=0, at=NOW - timedelta(days=5), existing=True)
    health_refresh(program=program, now=NOW + timedelta(hours=2))
    assert health(shop["overdue"]).segment == Segment.AT_RISK and health(shop["overdue"]).risk_reason == "gap"


def test_one_order_customers_and_promoters_are_not_moved(program):
    shop = five_buyers(program)
    answer(shop["promising"], nps=1, at=NOW - timedelta(days=5), existing=True)  # one order: no repeat customer
    answer(shop["champion"], nps=10, csat=5, at=NOW - timedelta(days=5), existing=True)
    health_refresh(program=program, now=NOW)
    assert health(shop["promising"]).segment == Segment.PROMISING
    assert health(shop["promising"]).detractor_at is not None  # still recorded
    assert health(shop["champion"]).segment == Segment.CHAMPIONS and health(shop["champion"]).detractor_at is None


@pytest.mark.parametrize("change", ["old_answer", "weight_zero"])
def test_an_old_answer_or_weight_zero_changes_nothing(program, change):
    shop = five_buyers(program)
    policy = health_settings_for(program)
    at = NOW - timedelta(days=5)
    if change == "old_answer":
        at = NOW - timedelta(days=policy.detractor_days + 1)
    else:
        policy.detractor_weight = Decimal("0")
        policy.save()
    answer(shop["champion"], nps=2, at=at, existing=True)

    health_refresh(program=program, now=NOW)

    champion = health(shop["champion"])
    assert champion.segment == Segment.CHAMPIONS and not champion.at_risk and champion.risk_reason == ""
    assert (champion.detractor_at is None) == (change == "old_answer")


@pytest.fixture
def modelled(program):
    """A programme with enough history for the purchase model, and two identical repeat customers."""
    policy = health_settings_for(program)
    policy.min_buyers_for_model, policy.min_frequent_buyers = 100, 10
    policy.save()
    _simulated_history(program, 150, np.random.default_rng(7), NOW)
    twins = [buyer(program, name, orders=4, last_days_ago=40, gap_days=30, spent="200") for name in ("twa", "twb")]
    health_fit_model(program=program, now=NOW)
    return policy, twins


def test_a_detractor_answer_raises_p_lapse_by_the_weight_in_log_odds(program, modelled):
    policy, (unhappy, happy) = modelled
    answer(unhappy, nps=3, at=NOW - timedelta(days=10), existing=True)

    run = health_refresh(program=program, now=NOW)

    assert run.scored_by == "bgnbd"
    raised, base = health(unhappy).p_lapse, health(happy).p_lapse
    assert raised > base
    expected = with_added_log_odds(np.array([base]), float(policy.detractor_weight))[0]
    assert raised == pytest.approx(expected, abs=1e-5)

    policy.detractor_weight = Decimal("0")
    policy.save()
    health_refresh(program=program, now=NOW + timedelta(hours=1))
    assert health(unhappy).p_lapse == pytest.approx(health(happy).p_lapse)


# --- the detractor weight learnt by the weekly backtest --------------------------------------------------

BACKTEST_CUT = NOW - timedelta(days=90)  # the fit's backtest window: the 90-day horizon fits in the history


def _backtest_group(program, prefix: str, n: int, *, lapsed: int, detractors: bool) -> list:
    """``n`` identical repeat customers (3 orders 30 days apart, the last 20 days before the backtest's
    cut); ``lapsed`` of them buy nothing after the cut, the others once, 30 days after it. With
    ``detractors``, each answered their last order's survey as a detractor 10 days before the cut."""
    members = []
    for i in range(n):
        member = buyer(program, f"{prefix}{i}", orders=3, last_days_ago=110, gap_days=30, spent="90")
        if detractors:
            last = Purchase.objects.filter(member=member).order_by("-occurred_at").first()
            answer(member, nps=2, at=BACKTEST_CUT - timedelta(days=10), purchase=last)
        if i >= lapsed:
            Purchase.objects.create(
                program=program,
                member=member,
                order_reference=f"{prefix}{i}-after",
                amount=Decimal("30"),
                currency=program.currency,
                occurred_at=BACKTEST_CUT + timedelta(days=30),
            )
        members.append(member)
    return members


@pytest.fixture
def backtest_shop(program):
    """Enough history for the model and its backtest, and identical twins for the refresh."""
    policy = health_settings_for(program)
    policy.min_buyers_for_model, policy.min_frequent_buyers = 100, 10
    policy.save()
    _simulated_history(program, 150, np.random.default_rng(7), NOW)
    twins = [buyer(program, name, orders=4, last_days_ago=40, gap_days=30, spent="200") for name in ("twa", "twb")]
    return policy, twins


def _refresh_with_one_detractor_twin(program, twins):
    unhappy, happy = twins
    answer(unhappy, nps=3, at=NOW - timedelta(days=10), existing=True)
    run = health_refresh(program=program, now=NOW)
    return run, health(unhappy), health(happy)


def test_the_fit_learns_a_positive_detractor_weight_and_the_refresh_uses_it(program, backtest_shop):
    policy, twins = backtest_shop
    # In the backtest, detractors lapse far more often (32 of 40) than customers with the same history (8 of 40).
    _backtest_group(program, "det", 40, lapsed=32, detractors=True)
    _backtest_group(program, "oth", 40, lapsed=8, detractors=False)

    fit = health_fit_model(program=program, now=NOW)

    assert fit.status == HealthModelFit.Status.FITTED and fit.backtest_days == 90
    assert fit.risk_model["detractor_n"] == 40
    learnt = fit.risk_model["detractor_weight"]
    assert 0.5 < learnt <= 3.0
    assert learnt != float(policy.detractor_weight)
    in_use = detractor_weight_in_use(policy, fit)
    assert in_use.learnt and in_use.learnt_from == 40 and in_use.value == learnt

    run, unhappy, happy = _refresh_with_one_detractor_twin(program, twins)

    assert run.fit_id == fit.pk and run.scored_by == "bgnbd"
    assert unhappy.p_lapse == pytest.approx(with_added_log_odds(np.array([happy.p_lapse]), learnt)[0], abs=1e-5)

    # 0 in the settings still switches feedback off entirely, learnt weight or not.
    policy.detractor_weight = Decimal("0")
    policy.save()
    assert not detractor_weight_in_use(policy, fit).enabled
    health_refresh(program=program, now=NOW + timedelta(hours=1))
    unhappy, happy = health(twins[0]), health(twins[1])
    assert unhappy.p_lapse == pytest.approx(happy.p_lapse)
    assert unhappy.risk_reason != CustomerHealth.Reason.VOICE
    assert unhappy.detractor_at is not None  # still recorded


def test_with_too_few_detractors_the_fit_learns_nothing_and_the_setting_is_used(program, backtest_shop):
    policy, twins = backtest_shop
    few = MIN_DETRACTORS_TO_LEARN - 1
    _backtest_group(program, "det", few, lapsed=few, detractors=True)
    _backtest_group(program, "oth", 40, lapsed=8, detractors=False)

    fit = health_fit_model(program=program, now=NOW)

    assert fit.risk_model is not None
    assert "detractor_weight" not in fit.risk_model and "detractor_n" not in fit.risk_model
    assert not detractor_weight_in_use(policy, fit).learnt
    run, unhappy, happy = _refresh_with_one_detractor_twin(program, twins)
    setting = float(policy.detractor_weight)
    assert unhappy.p_lapse == pytest.approx(with_added_log_odds(np.array([happy.p_lapse]), setting)[0], abs=1e-5)


def test_answers_outside_the_memory_before_the_cut_do_not_count(program, backtest_shop):
    policy, _ = backtest_shop
    policy.detractor_days = 5  # the backtest's answers came 10 days before the cut
    policy.save()
    _backtest_group(program, "det", 40, lapsed=32, detractors=True)

    fit = health_fit_model(program=program, now=NOW)

    assert fit.risk_model is not None and "detractor_weight" not in fit.risk_model


def test_the_settings_default_is_the_fallback_and_0_5():
    assert HealthSettings._meta.get_field("detractor_weight").default == Decimal("0.50")
    assert str(MIN_DETRACTORS_TO_LEARN) in str(HealthSettings._meta.get_field("detractor_weight").help_text)


def test_fit_offset_recovers_a_known_offset_and_respects_the_bounds():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.1, 0.9, 40_000)
    flag = rng.uniform(size=p.size) < 0.3
    truth = with_added_log_odds(p, np.where(flag, 1.2, 0.0))
    lapsed = rng.uniform(size=p.size) < truth
    assert risk.fit_offset(p, flag, lapsed) == pytest.approx(1.2, abs=0.1)
    # The likelihood's own maximum, by brute force on a grid.
    grid = np.linspace(0, 3, 3001)
    q = np.clip(with_added_log_odds(p[flag][:, None], grid[None, :]), 1e-12, 1 - 1e-12)
    loglik = np.where(lapsed[flag][:, None], np.log(q), np.log(1 - q)).sum(axis=0)
    assert risk.fit_offset(p, flag, lapsed) == pytest.approx(grid[np.argmax(loglik)], abs=2e-3)
    # Detractors who lapse less than predicted: 0, never negative; all lapsed: the upper bound.
    assert risk.fit_offset(p, flag, np.where(flag, False, lapsed)) == 0.0
    assert risk.fit_offset(p, flag, np.where(flag, True, lapsed)) == 3.0
    with pytest.raises(ValueError):
        risk.fit_offset(p, np.zeros_like(flag), lapsed)


def test_the_added_log_odds_are_exact():
    assert with_added_log_odds(np.array([0.5]), 0.0)[0] == pytest.approx(0.5)
    assert with_added_log_odds(np.array([0.5]), np.log(3))[0] == pytest.approx(0.75)
    assert with_added_log_odds(np.array([0.2]), 1.0)[0] == pytest.approx(1 / (1 + 4 / np.e))


# --- admin ----------------------------------------------------------------------------------------------


def test_responses_are_read_only_searchable_filterable_and_exported(admin_client, program, member):
    survey = SurveyFactory(program=program)
    bad = answer(member, nps=2, csat=1, comment="=HYPERLINK(evil) late delivery", survey=survey, category="Oil")
    answer(member, nps=10, comment="Lovely olives", survey=survey, category="Olives")
    url = reverse("admin:loyalty_surveyresponse_changelist")

    assert admin_client.get(url + "?q=delivery").context["cl"].result_count == 1
    assert admin_client.get(url + "?band=detractor").context["cl"].result_count == 1
    assert admin_client.get(url + "?band=promoter").context["cl"].result_count == 1
    assert admin_client.get(url + "?category=Olives").context["cl"].result_count == 1
    assert admin_client.get(url + "?q=maria@example.com").context["cl"].result_count == 2
    model_admin = get_model_admin(admin.site, SurveyResponse)
    request = admin_client.get(url).wsgi_request
    assert not model_admin.has_change_permission(request, bad) and not model_admin.has_delete_permission(request)
    assert not model_admin.has_add_permission(request)

    export = admin_client.post(
        url, {"action": "export_csv", "_selected_action": [bad.pk], "select_across": "0", "index": "0"}
    )
    body = b"".join(export.streaming_content).decode()
    assert body.splitlines()[0].startswith("answered at,member id,member email")
    assert "'=HYPERLINK(evil) late delivery" in body and "Oil" in body and "Lovely" not in body


def test_survey_admin_lists_rates_and_warns_without_a_points_rule(admin_client, program, member):
    survey = SurveyFactory(program=program)
    answer(member, nps=10, survey=survey)
    answer(member, nps=2, survey=survey)

    page = admin_client.get(reverse("admin:loyalty_survey_changelist"))
    row = page.content.decode()
    assert '<td class="field-nps">0</td>' in row

    change = admin_client.get(reverse("admin:loyalty_survey_change", args=[survey.pk]))
    assert any("no active" in str(m) for m in change.context["messages"])
    EarningRule.objects.create(program=program, name="Thanks", kind=EarningRule.Kind.SURVEY_ANSWERED, points=50)
    change = admin_client.get(reverse("admin:loyalty_survey_change", args=[survey.pk]))
    assert not any("no active" in str(m) for m in change.context["messages"])
    assert "Survey answered rules" in change.content.decode()


def test_member_page_shows_survey_answers_without_more_queries_per_answer(admin_client, program, member):
    url = reverse("admin:loyalty_member_change", args=[member.pk])
    survey = SurveyFactory(program=program)
    answer(member, nps=4, comment="Too slow", survey=survey)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as one:
        page = admin_client.get(url)
    for i in range(5):
        answer(member, nps=i, survey=survey)
    with CaptureQueriesContext(connection) as six:
        admin_client.get(url)

    assert "Survey answers" in page.content.decode() and "Too slow" in page.content.decode()
    assert len(six.captured_queries) == len(one.captured_queries)


def test_the_dashboard_shows_nps_and_csat(admin_client, program, member):
    survey = SurveyFactory(program=program)
    for nps in [10, 9, 9, 10, 9, 7, 8, 7, 3, 6]:
        answer(member, nps=nps, csat=5, survey=survey, at=timezone.now() - timedelta(days=2))

    page = admin_client.get(reverse("admin:loyalty_dashboard")).content.decode()

    assert '<h3 class="ld-card__label">NPS</h3>' in page and '<p class="ld-card__value">+30</p>' in page
    assert '<h3 class="ld-card__label">CSAT</h3>' in page and "100.0\u00a0%" in page


def test_a_member_without_purchases_scores_nothing_extra(program):
    member_enroll(program=program, user=UserFactory(username="nobody"))
    run = health_refresh(program=program, now=NOW)
    assert run.members == 1
