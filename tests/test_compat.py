"""One code base for Django 4.2 LTS and 5.2 LTS (scripts/matrix runs the suite on both).

Django 5.1 renamed ``CheckConstraint(check=...)`` to ``condition=`` and 4.2 knows only ``check=``:
models and migrations build check constraints with ``loyalty.compat.check_constraint`` instead.
"""

import io
import re
from pathlib import Path

import django
import pytest
from django.contrib import admin
from django.contrib.admin.sites import NotRegistered
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db.models import CheckConstraint, Q

from loyalty.compat import check_constraint, get_model_admin
from loyalty.models import Member

ROOT = Path(__file__).resolve().parent.parent
DIRECT_USE = re.compile(r"CheckConstraint\(\s*(condition|check)\s*=")


def python_files():
    for folder in ("loyalty", "shop", "config"):
        yield from (path for path in (ROOT / folder).rglob("*.py") if path.name != "compat.py")


def test_models_and_migrations_build_check_constraints_through_compat():
    offenders = [
        f"{path.relative_to(ROOT)}:{path.read_text()[: match.start()].count(chr(10)) + 1}"
        for path in python_files()
        for match in DIRECT_USE.finditer(path.read_text())
    ]
    assert not offenders, (
        "CheckConstraint(condition=...) needs Django >= 5.1 and check=... is gone in 6.0: use "
        "loyalty.compat.check_constraint(condition=..., name=...) instead (in migrations too: "
        "`from loyalty.compat import check_constraint`). Found at: " + ", ".join(offenders)
    )


def test_the_check_reads_real_migrations():
    migrations = [path for path in python_files() if path.parent.name == "migrations"]
    assert len(migrations) >= 5
    assert any("check_constraint(" in path.read_text() for path in migrations)


def test_check_constraint_uses_the_keyword_of_this_django():
    constraint = check_constraint(condition=Q(points__gt=0), name="positive")
    assert isinstance(constraint, CheckConstraint)
    _, _, kwargs = constraint.deconstruct()
    keyword = "condition" if django.VERSION >= (5, 1) else "check"
    assert kwargs == {keyword: Q(points__gt=0), "name": "positive"}


@pytest.mark.django_db
def test_migrations_match_the_models():
    # Also proves the migrations written through check_constraint equal the models on this Django.
    out = io.StringIO()
    call_command("makemigrations", "loyalty", "shop", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_get_model_admin_finds_the_registered_admin_or_raises_not_registered():
    assert get_model_admin(admin.site, Member) is admin.site._registry[Member]
    with pytest.raises(NotRegistered):
        get_model_admin(admin.site, Permission)
