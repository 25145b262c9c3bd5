"""Each trap a shop owner fell into is a system check message that says what to add, and where:
no broker or no Celery app, a broker without its client library, a layout template that does
not load, static files not set up, rewards nobody can make codes for, the oscar adapter with
loyalty's own codes. Plus the staff accounts left out of sign-up enrolment, and the data
migration that fills members' activity columns."""

import sys
from importlib import import_module
from types import SimpleNamespace

import pytest
from celery import Celery
from django.core.checks import ERROR
from django.db import connection
from django.utils import timezone

from loyalty.adapters.base import BaseAdapter
from loyalty.adapters.oscar import OscarAdapter
from loyalty.checks import (
    celery_problems,
    check_base_template,
    check_celery,
    check_reward_codes,
    check_settings,
    static_problems,
)
from loyalty.models import Member, Purchase
from tests.factories import UserFactory, paid_order


class PlainAdapter(BaseAdapter):
    """An adapter for a shop without a discount model: signals only."""

    def connections(self):
        return []


def ids(messages) -> list[str]:
    return [m.id for m in messages]


# --- Celery ---------------------------------------------------------------------------------


def test_a_project_without_a_celery_app_is_warned_that_tasks_go_to_amqp_localhost():
    fallback = Celery("default", set_as_current=False)  # what celery.current_app is when nobody made one

    (warning,) = celery_problems(fallback)
    assert warning.id == "loyalty.W004" and "amqp://localhost" in warning.msg
    assert "CELERY_BROKER_URL" in warning.hint and "settings.py" in warning.hint and "__init__.py" in warning.hint

    (unread,) = celery_problems(fallback, settings_broker_url="redis://localhost:6379/0")
    assert "no Celery app reads it" in unread.msg and "flat project" in unread.hint


def test_an_app_without_a_broker_url_is_warned():
    app = Celery("myshop", set_as_current=False)
    (warning,) = celery_problems(app)
    assert warning.id == "loyalty.W004" and "'myshop'" in warning.msg


def test_a_redis_broker_without_the_redis_library_is_an_error(monkeypatch):
    app = Celery("myshop", set_as_current=False, broker="redis://localhost:6379/0")
    assert celery_problems(app) == []  # redis is installed here

    monkeypatch.setitem(sys.modules, "redis", None)  # as in a project that installed celery without it
    with pytest.raises(ImportError):
        import_module("redis")
    (error,) = celery_problems(app)
    assert error.id == "loyalty.E006" and "'redis'" in error.msg
    assert "django-loyalty-engine[redis]" in error.hint


def test_eager_tasks_need_no_broker():
    app = Celery("default", set_as_current=False)
    app.conf.task_always_eager = True
    assert celery_problems(app) == []


def test_the_demo_projects_celery_app_passes():
    assert check_celery() == []


# --- templates, static files, reward codes --------------------------------------------------


def test_a_base_template_that_does_not_load_is_a_warning_naming_the_setting(settings):
    assert check_base_template() == []  # the demo's base.html

    settings.LOYALTY = {**settings.LOYALTY, "BASE_TEMPLATE": "layouts/missing.html"}
    (warning,) = check_base_template()
    assert warning.id == "loyalty.W005" and "layouts/missing.html" in warning.msg
    assert "settings.py" in warning.hint and "block content" in warning.hint


def test_static_files_not_set_up_is_a_warning():
    assert static_problems(staticfiles_installed=True, static_url="static/") == []
    (missing,) = static_problems(staticfiles_installed=False, static_url="static/")
    assert missing.id == "loyalty.W006" and '"django.contrib.staticfiles"' in missing.hint
    (no_url,) = static_problems(staticfiles_installed=True, static_url=None)
    assert no_url.id == "loyalty.W006" and "STATIC_URL" in no_url.hint


def test_an_adapter_without_issue_discount_and_without_loyalty_codes_is_a_warning(settings):
    settings.LOYALTY = {**settings.LOYALTY, "ADAPTER": f"{__name__}.PlainAdapter"}
    (warning,) = check_reward_codes()
    assert warning.id == "loyalty.W007" and '"REWARD_CODES": "loyalty"' in warning.hint

    settings.LOYALTY = {**settings.LOYALTY, "REWARD_CODES": "loyalty"}
    assert check_reward_codes() == []


class FrobshopAdapter(OscarAdapter):
    """A shop's own oscar adapter (docs/oscar.md step 8)."""

    CANCELLED_STATUSES = ("Cancelled", "Voided")


@pytest.mark.parametrize("adapter", [OscarAdapter, FrobshopAdapter], ids=lambda a: a.__name__)
def test_the_oscar_adapter_with_loyaltys_own_codes_is_an_error(settings, adapter):
    settings.LOYALTY = {**settings.LOYALTY, "ADAPTER": f"{adapter.__module__}.{adapter.__qualname__}"}
    assert check_reward_codes() == []  # "adapter", the default: oscar vouchers

    settings.LOYALTY = {**settings.LOYALTY, "REWARD_CODES": "loyalty"}
    (error,) = check_reward_codes()
    assert error.id == "loyalty.E009" and error.level == ERROR
    assert adapter.__name__ in error.msg and "Use my points" in error.msg
    assert 'Remove "REWARD_CODES"' in error.hint and "docs/oscar.md" in error.hint


def test_loyaltys_own_codes_with_another_adapter_are_no_error(settings):
    settings.LOYALTY = {**settings.LOYALTY, "ADAPTER": f"{__name__}.PlainAdapter", "REWARD_CODES": "loyalty"}
    assert check_reward_codes() == []


def test_an_unknown_reward_codes_value_is_an_error(settings):
    settings.LOYALTY = {**settings.LOYALTY, "REWARD_CODES": "shop"}
    assert ids(check_settings()) == ["loyalty.E005"]


# --- staff left out of sign-up enrolment ----------------------------------------------------


@pytest.mark.django_db
def test_staff_accounts_are_not_enrolled_at_signup(program, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        UserFactory(email="boss@example.com", is_staff=True, is_superuser=True)
        UserFactory(email="clerk@example.com", is_staff=True)
        UserFactory(email="buyer@example.com")

    assert list(Member.objects.values_list("user__email", flat=True)) == ["buyer@example.com"]


@pytest.mark.django_db
def test_staff_enrolment_at_signup_can_be_switched_back_on(program, settings, django_capture_on_commit_callbacks):
    settings.LOYALTY = {**settings.LOYALTY, "SIGNUP_SKIPS_STAFF": False}
    with django_capture_on_commit_callbacks(execute=True):
        UserFactory(email="clerk@example.com", is_staff=True)
    assert Member.objects.filter(user__email="clerk@example.com").exists()


@pytest.mark.django_db
def test_a_staff_member_who_buys_is_enrolled_with_the_order(program):
    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    paid_order(total="20.00", user=clerk)
    assert Member.objects.get(user=clerk).balance == 20


# --- data migration 0010: activity columns of members who bought before 0003 ----------------


@pytest.mark.django_db
def test_the_data_migration_fills_activity_of_members_counted_as_zero(program, customer):
    from django.apps import apps

    fill = import_module("loyalty.migrations.0012_member_activity_data").fill_activity
    paid_order(total="10.00", user=customer, at=timezone.now() - timezone.timedelta(days=9))
    last = paid_order(total="10.00", user=customer, at=timezone.now() - timezone.timedelta(days=2))
    other = UserFactory(email="counted@example.com")
    paid_order(total="10.00", user=other)
    # As before 0003: purchases recorded, activity columns empty.
    Member.objects.filter(user=customer).update(orders_count=0, last_purchase_at=None)
    Member.objects.filter(user=other).update(orders_count=7)  # counted already: left alone
    UserFactory(email="never@example.com")

    fill(apps, SimpleNamespace(connection=connection))

    member = Member.objects.get(user=customer)
    assert (member.orders_count, member.last_purchase_at) == (2, last.paid_at)
    assert Member.objects.get(user=other).orders_count == 7
    assert Purchase.objects.filter(member__isnull=True).count() == 0
    fill(apps, SimpleNamespace(connection=connection))  # again: nothing changes
    assert Member.objects.get(user=customer).orders_count == 2
