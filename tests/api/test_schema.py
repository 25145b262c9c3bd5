"""The OpenAPI schema is valid without warnings, Swagger UI needs no CDN, and fuzzing finds no 5xx."""

from contextlib import contextmanager

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.test import APIClient

from config.wsgi import application

from .conftest import client_for, fund, staff_user


def test_the_schema_validates_without_warnings(tmp_path):
    # The same as `manage.py spectacular --validate --fail-on-warn` (raises on any warning).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    text = (tmp_path / "schema.yml").read_text()
    assert "/api/loyalty/redemptions/" in text and "/api/loyalty/staff/kpis/" in text


@pytest.mark.django_db
def test_swagger_ui_is_served_without_a_cdn():
    html = APIClient().get("/api/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
    assert APIClient().get("/api/schema/").status_code == 200


@contextmanager
def connections_kept_open():
    """The WSGI app closes the database connection after each request, which would close the
    test's transaction; Django's test client keeps it open the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


#: Examples per operation: enough to hit every parameter's edge cases, small enough to stay fast.
EXAMPLES = 12


@pytest.mark.django_db
def test_fuzzing_every_operation_finds_no_server_error(member, reward, program):
    """Schemathesis generates requests from the schema (in-process, through the WSGI app) as a
    user who is both a customer and a staff member with every loyalty permission."""
    fund(member, 2000)
    user = member.user
    user.is_staff = True
    user.save()
    for perm in ("view_member", "change_member", "view_program", "view_campaign"):
        staff_user(user.email, f"loyalty.{perm}")
    token = client_for(user)._credentials["HTTP_AUTHORIZATION"]
    with connections_kept_open():
        schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 15

    def fuzz(operation):
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case):
            response = case.call(headers={"Authorization": token})
            if response.status_code >= 500:
                failures.append((operation.label, case.path_parameters, case.query, case.body))
            elif response.status_code >= 400:
                assert "code" in response.json(), (operation.label, response.text)

        call()

    with connections_kept_open():
        for operation in operations:
            fuzz(operation)
    assert failures == []
