"""Namespaced settings: ``settings.LOYALTY = {...}``, read at use (DRF's ``api_settings`` pattern).

Defaults, with what each key does:

``ADAPTER`` (``None``)
    Dotted path to the adapter class that maps the shop's order signals to loyalty events
    (see ``loyalty.adapters.base.BaseAdapter``). ``None`` connects nothing.
``DEFAULT_PROGRAM`` (``None``)
    Slug of the programme that order events go to. ``None``: the active programme whose
    currency matches the event's (the oldest one if there are several).
``EVENT_PROCESSING`` (``"inline"``)
    ``"inline"``: an order event is applied at once, in a savepoint inside the shop's
    transaction (points show on the very next page). ``"deferred"``: the shop's
    transaction only gains the inbox row (one ``INSERT``, no broker call); the beat task
    ``loyalty.tasks.process_pending_events`` (schedule it every few seconds) applies new
    events in batches. Choose deferred when checkout latency matters more than points
    appearing on the very next page.
``EVENT_PENDING_GRACE_SECONDS`` (``60``)
    In deferred mode, ``retry_unprocessed_events`` also takes pending events older than
    this: a safety net if ``process_pending_events`` is not scheduled.
``ENROLL_ON_SIGNUP`` (``True``)
    Listen to the user model's ``post_save`` and enrol new users in every active programme
    whose ``enroll_on_signup`` is set.
``SIGNUP_SKIPS_STAFF`` (``True``)
    Enrolment at registration leaves out staff accounts (``is_staff`` or ``is_superuser``,
    e.g. made with ``createsuperuser``). ``False``: staff are enrolled like customers. A
    staff user who places a paid order is enrolled with it either way.
``REWARD_CODES`` (``"adapter"``)
    Who makes the code of a redeemed reward. ``"adapter"``: the shop, through the adapter's
    ``issue_discount`` (its own discount model). ``"loyalty"``: loyalty issues and stores the
    code itself, and the shop's checkout asks loyalty about it (``code_quote``,
    ``code_consume``, ``code_release`` in ``loyalty.services``): for shops without a
    discount model.
``EVENT_MAX_ATTEMPTS`` (``8``)
    A failing order event is retried by ``retry_unprocessed_events`` this many times in
    all, then marked "gave up" for staff to look at.
``EVENT_BATCH_SIZE`` (``500``)
    Events one run of ``retry_unprocessed_events`` or ``process_pending_events`` takes on.
``BASE_TEMPLATE`` (``"base.html"``)
    The shop's page layout that loyalty's own pages (reward confirmation) extend; it must
    have a ``content`` block.
``ACCOUNT_HISTORY_SIZE`` (``20``)
    Ledger rows the account panel shows, newest first.
``HEALTH_CHUNK_SIZE`` (``250000``)
    Members per chunk of the nightly health refresh. The ``refresh_health`` task sends each
    chunk to a worker of its own; a programme smaller than this is refreshed in one go.
``SITE_URL`` (``"http://localhost:8000"``)
    The shop's absolute address (scheme and host): links in campaign emails (the shop,
    unsubscribe, open and click tracking) are built on it.
``SHOP_NAME`` (``""``)
    The shop's name in campaign emails; empty: the programme's name.
``EMAIL_MAX_ATTEMPTS`` (``5``)
    An email whose sending fails (SMTP, network, the provider's API) is tried this many times
    in all (after 1, 2, 4... minutes, at most an hour apart), then marked "failed" with the
    last error.
``CAMPAIGN_MAX_ATTEMPTS`` (``None``)
    The former name of ``EMAIL_MAX_ATTEMPTS``; when set, it wins.
``EMAIL_BATCH_SIZE`` (``500``)
    Emails a worker claims from the outbox at a time.
``EMAIL_FLUSH_EVERY`` (``200``)
    While sending a batch, "sent" marks (and a campaign's bonus points) are written after this
    many emails, or half a second, whichever comes first.
``EMAIL_LEASE_SECONDS`` (``300``)
    How long a worker holds the emails it claimed; a worker that dies leaves them to be claimed
    again after this. Longer than a batch takes to send.
``EMAIL_EXPIRE_HOURS`` (``72``)
    A queued email not sent within this many hours (a long mail or broker outage) is ended as
    "expired" instead of arriving days late; it no longer counts toward a campaign's cooldown.
``SUPPORT_ADJUST_LIMIT`` (``500``)
    The most points (absolute value) staff without the loyalty manager capability
    (``loyalty.change_program``) may move in one adjustment in admin, and the most points a
    reward they issue free may cost. ``None``: no limit. Enforced by the services
    (``loyalty.services.staff``), so admin, API and code alike meet it. See docs/staff.md.
``CHECKOUT_POINTS_VALID_MINUTES`` (``120``)
    How long the code of points used at checkout (a points discount reward) works: an order
    not placed by then gives the points back (the ``expire_reward_codes`` task settles it),
    and a checkout token older than this is refused as expired.
``SUPPORT_DAILY_ADJUST_LIMIT`` (``2000``)
    The most points (sum of absolute values) one such staff user may move in adjustments per
    day (since midnight in ``TIME_ZONE``). ``None``: no daily limit. Loyalty managers have none.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    "ADAPTER": None,
    "DEFAULT_PROGRAM": None,
    "EVENT_PROCESSING": "inline",
    "EVENT_PENDING_GRACE_SECONDS": 60,
    "ENROLL_ON_SIGNUP": True,
    "SIGNUP_SKIPS_STAFF": True,
    "REWARD_CODES": "adapter",
    "EVENT_MAX_ATTEMPTS": 8,
    "EVENT_BATCH_SIZE": 500,
    "ACCOUNT_HISTORY_SIZE": 20,
    "HEALTH_CHUNK_SIZE": 250_000,
    "BASE_TEMPLATE": "base.html",
    "SITE_URL": "http://localhost:8000",
    "SHOP_NAME": "",
    "EMAIL_MAX_ATTEMPTS": 5,
    "CAMPAIGN_MAX_ATTEMPTS": None,
    "EMAIL_BATCH_SIZE": 500,
    "EMAIL_FLUSH_EVERY": 200,
    "EMAIL_LEASE_SECONDS": 300,
    "EMAIL_EXPIRE_HOURS": 72,
    "SUPPORT_ADJUST_LIMIT": 500,
    "SUPPORT_DAILY_ADJUST_LIMIT": 2000,
    "CHECKOUT_POINTS_VALID_MINUTES": 120,
}

IMPORT_STRINGS = {"ADAPTER"}


class LoyaltySettings:
    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        configured = getattr(settings, "LOYALTY", {}) or {}
        unknown = set(configured) - set(DEFAULTS)
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown key(s) in settings.LOYALTY: {', '.join(sorted(unknown))}. "
                f"Known keys: {', '.join(sorted(DEFAULTS))}."
            )
        return configured

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid loyalty setting: {name!r}")
        if name in self._cache:
            return self._cache[name]
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in IMPORT_STRINGS and isinstance(value, str):
            try:
                value = import_string(value)
            except ImportError as exc:
                raise ImproperlyConfigured(f"settings.LOYALTY[{name!r}] = {value!r} cannot be imported: {exc}") from exc
        self._cache[name] = value
        return value

    def reload(self) -> None:
        self._cache.clear()


loyalty_settings = LoyaltySettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "LOYALTY":
        loyalty_settings.reload()


setting_changed.connect(_reload)
