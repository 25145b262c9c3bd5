"""Health in admin: staff see who is at risk and why, what the thresholds flag, and whether the
purchase model or the fallback rules are scoring the members."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from loyalty.models import HealthModelFit, HealthSettings
from loyalty.services.health import health_refresh, health_settings_for
from tests.loyalty.test_health_refresh import NOW, _simulated_history, buyer, five_buyers


@pytest.fixture
def shop(program):
    return five_buyers(program)


def test_health_pages_render_after_a_refresh(admin_client, program, shop):
    health_refresh(program=program, now=NOW)

    for name in ["customerhealth", "segmentchange", "healthmodelfit", "healthrun", "healthsettings"]:
        response = admin_client.get(reverse(f"admin:loyalty_{name}_changelist"))
        assert response.status_code == 200, name
    page = admin_client.get(reverse("admin:loyalty_customerhealth_changelist") + "?at_risk__exact=1")
    assert "cid" in page.content.decode() and "ada" not in page.content.decode()


def test_the_fallback_is_said_plainly(admin_client, program, shop):
    health_refresh(program=program, now=NOW)

    page = admin_client.get(reverse("admin:loyalty_customerhealth_changelist")).content.decode()

    assert "Not enough history" in page and "5 buyers of 500 needed" in page
    assert "gap rule" in page


def test_settings_page_shows_what_the_thresholds_flag(admin_client, program, shop):
    health_refresh(program=program, now=NOW)
    settings_row = HealthSettings.objects.get(program=program)

    page = admin_client.get(reverse("admin:loyalty_healthsettings_change", args=[settings_row.pk])).content.decode()

    assert "2 of 6 members at risk (33%)" in page
    assert "Champions" in page  # the RFM grid, readable


def test_a_bad_rfm_grid_is_refused_with_a_clear_error(admin_client, program):
    settings_row = health_settings_for(program)
    url = reverse("admin:loyalty_healthsettings_change", args=[settings_row.pk])
    data = {
        "horizon_days": 90,
        "lapse_threshold": "0.7",
        "gap_factor": "2.5",
        "min_orders": 2,
        "high_value_spend": "",
        "min_buyers_for_model": 500,
        "min_history_days": 180,
        "min_frequent_buyers": 30,
        "rfm_grid": '{"6,1": "champions", "5,5": "heroes"}',
    }

    response = admin_client.post(url, data)

    assert response.status_code == 200
    content = response.content.decode()
    assert "is not an &quot;R,FM&quot; pair" in content and "unknown segment &quot;heroes&quot;" in content
    settings_row.refresh_from_db()
    assert "6,1" not in settings_row.rfm_grid


def test_member_page_shows_health(admin_client, program, shop):
    health_refresh(program=program, now=NOW)

    page = admin_client.get(reverse("admin:loyalty_member_change", args=[shop["overdue"].pk])).content.decode()

    assert "Overdue for their rhythm" in page and "Days since last order" in page
    listing = admin_client.get(reverse("admin:loyalty_member_changelist") + "?health__segment=at_risk")
    assert listing.status_code == 200 and "cid" in listing.content.decode()


def test_health_changelist_query_count_is_bounded(admin_client, program):
    url = reverse("admin:loyalty_customerhealth_changelist")

    def queries(n: int) -> int:
        for i in range(n):
            buyer(program, f"q{n}-{i}", orders=2, last_days_ago=i + 1, gap_days=10, spent="50")
        health_refresh(program=program, now=NOW)
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url).status_code == 200
        return len(ctx.captured_queries)

    assert queries(3) == queries(40)


def test_with_the_model_the_settings_page_shows_the_share_each_threshold_flags(admin_client, program):
    policy = health_settings_for(program)
    policy.min_buyers_for_model, policy.min_frequent_buyers = 100, 10
    policy.save()
    _simulated_history(program, 150, np.random.default_rng(7), NOW)
    health_refresh(program=program, now=NOW)

    page = admin_client.get(reverse("admin:loyalty_healthsettings_change", args=[policy.pk])).content.decode()

    assert "BG/NBD purchase model fitted" in page and "At-risk score learnt from the last 90 days" in page
    assert "lapse threshold" in page and "<strong>0.700</strong>" in page
    listing = admin_client.get(reverse("admin:loyalty_customerhealth_changelist")).content.decode()
    assert "Not enough history" not in listing


def test_admin_shows_the_backtest_reliability_curve_calibration_error_and_learnt_weights(admin_client, program):
    policy = health_settings_for(program)
    policy.min_buyers_for_model, policy.min_frequent_buyers = 100, 10
    policy.save()
    _simulated_history(program, 150, np.random.default_rng(7), NOW)
    health_refresh(program=program, now=NOW)
    fit = HealthModelFit.objects.get(program=program)
    ece = fit.risk_model["ece"]

    for url in (
        reverse("admin:loyalty_healthsettings_change", args=[policy.pk]),
        reverse("admin:loyalty_healthmodelfit_change", args=[fit.pk]),
    ):
        page = admin_client.get(url).content.decode()
        assert f"expected calibration error {ece:.1f} points" in page
        assert page.count('<circle cx="') == len(fit.risk_model["reliability"]) == 10  # one point per tenth
        assert "<title id=\"reliability-" in page and "perfect calibration" in page
        assert "log weeks since the last order" in page  # the learnt weights, by name
        assert "log weeks since the first order" in page  # the age features
        level = fit.risk_model["level"]  # the level carried from the backtest's customers to today's
        assert f"{level['backtest']:.1%} of them lapsed" in page
        if level["seen"] < 1:  # customers who came after the backtest's cut get the learnt weights alone
            assert f"For the {level['seen']:.0%} of today's customers it saw, the learnt weights give" in page
            assert f"for newer customers the learnt weights give {level['newer']:.1%}" in page
            assert f"is set to {level['today']:.1%}: the average of the first two" in page
        else:
            assert f"their average, {level['today']:.1%}" in page
    listing = admin_client.get(reverse("admin:loyalty_healthmodelfit_changelist")).content.decode()
    assert "Calibration error (points)" in listing and f"{ece:.1f}" in listing
