"""The admin index and sidebar list loyalty's models by section (loyalty/admin/sections.py),
the dashboard first; other apps are listed as Django lists them."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from loyalty.admin.sections import SECTIONS

pytestmark = pytest.mark.django_db

ORDER = ["setup", "members", "rewards", "campaigns", "health", "voice", "logs"]


def _loyalty_models() -> set[str]:
    return {model.__name__ for model in admin.site._registry if model._meta.app_label == "loyalty"}


def _sections_in(html: str) -> list[tuple[str, list[str]]]:
    """(section key, model rows) in page order."""
    found = []
    for key, body in re.findall(r'id="loyalty-section-(\w+)">(.*?)</div>', html, re.DOTALL):
        found.append((key, re.findall(r'<tr class="model-(\w+)', body)))
    return found


def _expected() -> list[tuple[str, list[str]]]:
    return [(section.key, [name.lower() for name in section.models]) for section in SECTIONS]


def test_every_loyalty_model_in_the_admin_is_in_exactly_one_section():
    listed = [name for section in SECTIONS for name in section.models]
    assert sorted(listed) == sorted(set(listed)), "a model is in two sections"
    assert set(listed) == _loyalty_models(), "give a new model a section in loyalty/admin/sections.py"


def test_the_index_lists_the_dashboard_then_the_sections_in_order(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    assert [key for key, _models in _sections_in(page)] == ORDER
    assert _sections_in(page) == _expected()
    dashboard = page.index('id="loyalty-dashboard"')
    assert dashboard < page.index('id="loyalty-section-setup"')
    for section in SECTIONS:
        assert str(section.title) in page and str(section.description) in page
    assert 'class="app-shop module' in page and 'class="app-auth module' in page  # other apps as Django lists them


def test_the_sidebar_shows_the_same_grouping(admin_client):
    page = admin_client.get(reverse("admin:loyalty_member_changelist")).content.decode()
    sidebar = page[page.index('id="nav-sidebar"') :]

    assert _sections_in(sidebar) == _expected()
    assert sidebar.index('id="loyalty-dashboard"') < sidebar.index('id="loyalty-section-setup"')
    assert 'class="model-member current-model"' in sidebar


def test_the_loyalty_app_page_groups_its_models_the_same_way(admin_client):
    page = admin_client.get(reverse("admin:app_list", args=["loyalty"])).content.decode()
    assert _sections_in(page) == _expected()


def test_staff_see_only_the_sections_they_may_use(client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("support", "support@example.com", "pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_survey"))
    client.force_login(staff)
    page = client.get(reverse("admin:index")).content.decode()
    assert _sections_in(page) == [("voice", ["survey"])]
    assert 'id="loyalty-dashboard"' not in page  # the dashboard needs view_member
