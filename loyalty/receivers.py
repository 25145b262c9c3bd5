"""Connects the configured adapter's signals (and user sign-up) to loyalty services."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from .adapters import get_adapter  # loyalty.receivers.get_adapter stays importable, as before
from .adapters.base import BaseAdapter, EventFactory, OrderEvent
from .conf import loyalty_settings
from .exceptions import InvalidEvent

logger = logging.getLogger("loyalty.receivers")

_connected: list[tuple[object, object]] = []
#: Why the adapter could not be connected at start-up, for the system check (loyalty.E004).
connection_error = ""


def _events(result: OrderEvent | Iterable[OrderEvent] | None) -> list[OrderEvent]:
    if result is None:
        return []
    if isinstance(result, OrderEvent):
        return [result]
    return list(result)


def make_receiver(factory: EventFactory):
    """A receiver that turns the signal into events and records them; it never raises."""
    from .services import order_event_record

    def receiver(sender, **kwargs):
        try:
            events = _events(factory(sender=sender, **kwargs))
        except InvalidEvent as exc:
            logger.error("The loyalty adapter could not describe a %s signal: %s", sender, exc.message)
            return
        except Exception:
            logger.exception("The loyalty adapter failed on a %s signal; no points recorded.", sender)
            return
        for event in events:
            order_event_record(event)

    receiver.__qualname__ = f"loyalty_receiver[{getattr(factory, '__qualname__', factory)}]"
    return receiver


def connect_adapter(adapter: BaseAdapter | None = None) -> list[tuple[object, object]]:
    """Connect (or reconnect) the adapter's signals; returns the (signal, receiver) pairs.

    A misconfigured adapter is logged and left unconnected, so that ``manage.py check``
    can report it (loyalty.E001/E002) instead of every command crashing at start-up.
    """
    global connection_error
    disconnect_adapter()
    connection_error = ""
    try:
        adapter = adapter or get_adapter()
        if adapter is None:
            return []
        if not isinstance(adapter, BaseAdapter):
            raise ImproperlyConfigured(f"{adapter!r} is not a BaseAdapter.")
        connections = list(adapter.connections())
    except Exception as exc:
        connection_error = f"{type(exc).__name__}: {exc}"
        logger.exception("Loyalty is not connected to the shop: %s", connection_error)
        return []
    for signal, factory in connections:
        receiver = make_receiver(factory)
        signal.connect(receiver, weak=False)
        _connected.append((signal, receiver))
    return list(_connected)


def disconnect_adapter() -> None:
    while _connected:
        signal, receiver = _connected.pop()
        signal.disconnect(receiver)


def _enrol_new_user(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    try:
        enrol_on_signup = loyalty_settings.ENROLL_ON_SIGNUP
    except ImproperlyConfigured:
        return  # reported by the system checks
    if not created or raw or not enrol_on_signup:
        return
    staff = getattr(instance, "is_staff", False) or getattr(instance, "is_superuser", False)
    if staff and loyalty_settings.SIGNUP_SKIPS_STAFF:
        return  # staff accounts (createsuperuser, the team) are not customers
    from .models import Program
    from .services import member_enroll

    def enrol() -> None:
        try:
            for program in Program.objects.filter(is_active=True, enroll_on_signup=True):
                member_enroll(program=program, user=instance)
        except Exception:  # a sign-up must never fail because of loyalty; enrolment retries at the first order
            logger.exception("Could not enrol new user %s in the loyalty programmes.", instance.pk)

    transaction.on_commit(enrol)


def _claim_guest_orders(sender, request, user, **kwargs) -> None:
    """A user signed in (or registered) carrying claim links of guest orders (``views.guest_claim``)."""
    session = getattr(request, "session", None)
    if session is None:
        return
    from .services.guests import SESSION_KEY, guest_claims_for_user

    tokens = session.pop(SESSION_KEY, None)
    if not tokens:
        return
    try:
        with transaction.atomic():
            guest_claims_for_user(user=user, tokens=list(tokens))
    except Exception:  # a loyalty failure must never break signing in; the link can be used again
        logger.exception("Could not claim guest orders for user %s.", user.pk)


def connect_enrolment() -> None:
    post_save.connect(_enrol_new_user, sender=get_user_model(), dispatch_uid="loyalty_enrol_new_user")
    user_logged_in.connect(_claim_guest_orders, dispatch_uid="loyalty_claim_guest_orders")


def _record_referral(sender, request, user, **kwargs) -> None:
    """A user signed in carrying a referral code (put in the session by ``views.referral``)."""
    session = getattr(request, "session", None)
    if session is None:
        return
    from .services.referrals import SESSION_KEY, referral_record

    code = session.pop(SESSION_KEY, None)
    if not code:
        return
    try:
        with transaction.atomic():
            referral = referral_record(code=code, user=user)
    except Exception:  # a loyalty failure must never break signing in
        logger.exception("Could not record the referral %r for user %s.", code, user.pk)
        return
    if (refusal := getattr(referral, "refusal", "")) and hasattr(request, "_messages"):
        from django.contrib import messages

        from .services.referrals import REFUSALS

        messages.info(request, REFUSALS[refusal])  # the friend learns why no referral bonus comes


def connect_referrals() -> None:
    user_logged_in.connect(_record_referral, dispatch_uid="loyalty_record_referral")


def _campaign_saved(sender, instance, raw: bool = False, **kwargs) -> None:
    if raw:
        return  # fixtures bring their own periodic tasks
    from .services.campaigns import campaign_schedule_sync

    campaign_schedule_sync(campaign=instance)


def _campaign_deleted(sender, instance, **kwargs) -> None:
    from .services.campaigns import campaign_schedule_delete

    campaign_schedule_delete(campaign_id=instance.pk)


def connect_campaign_schedules() -> None:
    """Each campaign's beat entry follows the campaign, however it was saved (admin, code, shell),
    in the same transaction as the campaign itself."""
    from .models import Campaign

    post_save.connect(_campaign_saved, sender=Campaign, dispatch_uid="loyalty_campaign_schedule_sync")
    post_delete.connect(_campaign_deleted, sender=Campaign, dispatch_uid="loyalty_campaign_schedule_delete")
