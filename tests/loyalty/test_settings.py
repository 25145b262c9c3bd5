import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from loyalty.conf import loyalty_settings


def test_defaults_apply_and_settings_are_read_at_use(settings):
    settings.LOYALTY = {}
    assert loyalty_settings.ACCOUNT_HISTORY_SIZE == 20
    settings.LOYALTY = {"ACCOUNT_HISTORY_SIZE": 5}
    assert loyalty_settings.ACCOUNT_HISTORY_SIZE == 5


def test_unknown_keys_are_rejected_with_the_known_ones_listed(settings):
    settings.LOYALTY = {"ADAPTOR": "x.y"}
    with pytest.raises(ImproperlyConfigured, match="Unknown key.*ADAPTOR.*Known keys: ACCOUNT_HISTORY_SIZE, ADAPTER"):
        _ = loyalty_settings.ADAPTER


def test_a_bad_adapter_path_is_a_clear_system_check_error(settings):
    from loyalty.checks import check_settings

    settings.LOYALTY = {"ADAPTER": "nowhere.Adapter"}
    errors = check_settings()
    assert [e.id for e in errors] == ["loyalty.E001"]
    assert "cannot be imported" in errors[0].msg


def test_no_adapter_is_a_warning(settings):
    from loyalty.checks import check_settings

    settings.LOYALTY = {}
    assert [e.id for e in check_settings()] == ["loyalty.W001"]


def test_the_demo_project_passes_its_system_checks(settings):
    settings.DEBUG = True  # the demo runs with DEBUG on (config/demo.py); production has a shared cache
    call_command("check", "--fail-level", "WARNING")


def test_an_adapter_that_fails_to_connect_is_a_system_check_error(settings):
    from loyalty.adapters.base import BaseAdapter
    from loyalty.checks import check_settings
    from loyalty.receivers import connect_adapter

    class Broken(BaseAdapter):
        def connections(self):
            raise RuntimeError("shop signals moved")

    try:
        assert connect_adapter(Broken()) == []
        errors = check_settings()
        assert [e.id for e in errors] == ["loyalty.E004"]
        assert "shop signals moved" in errors[0].msg
    finally:
        connect_adapter()
    assert check_settings() == []


def test_an_event_with_a_non_string_email_is_rejected_before_it_reaches_the_database():
    from decimal import Decimal

    from django.utils import timezone

    from loyalty.adapters.base import OrderEvent
    from loyalty.exceptions import InvalidEvent

    with pytest.raises(InvalidEvent, match="email must be a string"):
        OrderEvent(
            kind="paid",
            event_id="e1",
            order_reference="R1",
            amount=Decimal("1"),
            currency="EUR",
            occurred_at=timezone.now(),
            email=object(),
        )


def test_missing_loyalty_urls_are_a_system_check_warning(settings):
    from loyalty.checks import check_urls

    assert check_urls() == []
    settings.ROOT_URLCONF = "shop.urls"  # a project that forgot include("loyalty.urls")
    assert [w.id for w in check_urls()] == ["loyalty.W002"]


def test_deploy_check_warns_about_a_local_site_url(settings):
    from django.core.checks import run_checks

    settings.LOYALTY = {**settings.LOYALTY, "SITE_URL": "http://localhost:8000"}
    assert "loyalty.W003" in [m.id for m in run_checks(include_deployment_checks=True)]

    settings.LOYALTY = {**settings.LOYALTY, "SITE_URL": "https://shop.example.com"}
    assert "loyalty.W003" not in [m.id for m in run_checks(include_deployment_checks=True)]
    assert "loyalty.W003" not in [m.id for m in run_checks()]  # only with --deploy


def test_the_adapter_is_made_once_per_process_and_anew_when_the_setting_changes(settings):
    """It is asked on every paid order: one instance, the same the receivers and rewards use."""
    from config.loyalty_adapter import ShopAdapter
    from loyalty.adapters import get_adapter
    from loyalty.receivers import get_adapter as documented_alias

    first = get_adapter()
    assert isinstance(first, ShopAdapter)
    assert get_adapter() is first and documented_alias() is first

    settings.LOYALTY = {**settings.LOYALTY}  # same class, but the setting changed: a new instance
    second = get_adapter()
    assert isinstance(second, ShopAdapter) and second is not first
    assert get_adapter() is second

    settings.LOYALTY = {}
    assert get_adapter() is None
