"""Erasing a member's personal data (GDPR art. 17) while the books stay right.

What goes: the customer's name, email, username, password and birthday, their referral code
and marketing consent, the addresses on their messages, purchases (a pseudonym on guest
orders) and order events, and their name in the admin's history. What stays: every ledger row, balance, purchase amount,
redemption, tier and segment, so ``balance == sum(ledger)`` still holds and the KPIs do not
move. The rows keep pointing at the (now anonymous) member and user.

The shop's own data (its orders, addresses, discount codes) is the shop's to erase.
"""

from __future__ import annotations

import logging

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..exceptions import LoyaltyError
from ..models import Member, Message, OrderEvent, OutboundEmail, Purchase

logger = logging.getLogger("loyalty.privacy")

ERASED_PREFIX = "erased-"
#: Order events whose payload is final: a pending or failed event still needs its email to be
#: processed (a guest order is known by it); erase again once it is processed.
FINAL_EVENT_STATUSES = (OrderEvent.Status.PROCESSED, OrderEvent.Status.SKIPPED, OrderEvent.Status.GAVE_UP)


def _user_field(name: str):
    try:
        return get_user_model()._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def erased_username(user) -> str:
    """``erased-<user id>``; when the username is the email field, an address nobody can own."""
    model = get_user_model()
    name = f"{ERASED_PREFIX}{user.pk}"
    if model.USERNAME_FIELD == model.get_email_field_name():
        return f"{name}@erased.invalid"
    return name


def erased_guest_email(user) -> str:
    """What an erased customer's guest orders carry instead of their address."""
    return f"{ERASED_PREFIX}{user.pk}@erased.invalid"


def member_is_erased(member: Member) -> bool:
    """Whether the member's customer account has been erased (its username is ``erased-<id>``)."""
    user = member.user
    return user.get_username() == erased_username(user)


def _anonymise_user(user) -> list[str]:
    """Blank the generic personal fields the user model has; returns the fields changed."""
    model = get_user_model()
    email_field = model.get_email_field_name()
    wanted = {model.USERNAME_FIELD: erased_username(user)}
    if email_field != model.USERNAME_FIELD and _user_field(email_field) is not None:
        wanted[email_field] = "" if not _user_field(email_field).null else None
    for name in ("first_name", "last_name"):
        if _user_field(name) is not None:
            wanted[name] = ""
    if _user_field("is_active") is not None:
        wanted["is_active"] = False
    changed = [name for name, value in wanted.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, wanted[name])
    if user.has_usable_password():
        user.set_unusable_password()
        changed.append("password")
    if changed:
        user.save(update_fields=changed)
    return changed


def _scrub_admin_history(members: list[Member], user) -> None:
    """The admin's history (``LogEntry.object_repr``) names the member and the user: rename them."""
    if not apps.is_installed("django.contrib.admin"):
        return
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    member_type = ContentType.objects.get_for_model(Member)
    user_type = ContentType.objects.get_for_model(type(user))
    new_name = user.get_username()
    LogEntry.objects.filter(
        Q(content_type=member_type, object_id__in=[str(m.pk) for m in members])
        | Q(content_type=user_type, object_id=str(user.pk))
    ).exclude(object_repr=new_name).update(object_repr=new_name)


def member_erase(*, member: Member, by=None) -> Member:
    """Anonymise ``member``'s customer (and so every membership of that customer); idempotent.

    Returns the member, reloaded. A second call finds nothing left to erase and changes
    nothing (order events still being processed are scrubbed by the call after they are).
    Who erased whom is logged on ``loyalty.privacy``; the admin also records it in its history.
    A staff account is refused (``LoyaltyError``, code ``staff_account``): erasing it would lock
    an employee out; take away its staff status first.
    """
    now = timezone.now()
    with transaction.atomic():
        # Lock order as everywhere: the member rows first.
        members = list(
            Member.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(user_id=member.user_id)
            .order_by("pk")
        )
        user = get_user_model().objects.select_for_update().get(pk=member.user_id)
        if getattr(user, "is_staff", False) or getattr(user, "is_superuser", False):
            raise LoyaltyError(
                _("This customer's account is a staff account: take away its staff status first."), code="staff_account"
            )
        email = (getattr(user, user.get_email_field_name(), "") or "").strip()
        member_ids = [m.pk for m in members]

        cleared = Member.objects.filter(pk__in=member_ids).filter(
            Q(birth_date__isnull=False) | Q(referral_code__isnull=False) | Q(marketing_consent=True)
        )
        cleared.filter(marketing_consent=True).update(consent_changed_at=now)
        members_changed = cleared.update(birth_date=None, referral_code=None, marketing_consent=False)

        own = Purchase.objects.filter(member_id__in=member_ids)
        # Their guest orders from before they registered get a pseudonym, not a blank: the KPIs
        # count a guest by address, so the orders stay one (repeat) customer's.
        pseudonym = erased_guest_email(user)
        guest = Q(member__isnull=True, email=pseudonym)
        if email:
            guest |= Q(member__isnull=True, email__iexact=email)
        guests = Purchase.objects.filter(guest)
        references = [*own.values_list("order_reference", flat=True), *guests.values_list("order_reference", flat=True)]
        purchases_changed = own.exclude(email="").update(email="")
        purchases_changed += guests.exclude(email=pseudonym).update(email=pseudonym)

        messages = Message.objects.filter(member_id__in=member_ids)
        messages_changed = messages.exclude(to_email="").update(to_email="")
        if email:
            messages.filter(last_error__icontains=email).update(last_error="(erased: it named the customer)")
        # The outbox keeps what it sent, not to whom: unsent emails end, sent ones lose address and content.
        emails = OutboundEmail.objects.filter(member_id__in=member_ids)
        emails.filter(status__in=OutboundEmail.OPEN_STATUSES).update(
            status=OutboundEmail.Status.CANCELLED, last_error="The member's personal data was erased."
        )
        emails.update(to_email="", subject="", context={})

        events_changed = 0
        if references:
            for event in (
                OrderEvent.objects.filter(order_reference__in=references, status__in=FINAL_EVENT_STATUSES)
                .only("pk", "payload")
                .iterator(chunk_size=500)
            ):
                if isinstance(event.payload, dict) and event.payload.get("email"):
                    event.payload = {**event.payload, "email": ""}
                    event.save(update_fields=["payload"])
                    events_changed += 1

        user_changed = _anonymise_user(user)
        _scrub_admin_history(members, user)

    if members_changed or purchases_changed or messages_changed or events_changed or user_changed:
        logger.info(
            "Personal data of user %s (members %s) erased by %s: %s member(s), %s purchase(s), "
            "%s message(s), %s order event(s), user fields %s.",
            user.pk,
            member_ids,
            getattr(by, "pk", None) or "system",
            members_changed,
            purchases_changed,
            messages_changed,
            events_changed,
            ", ".join(user_changed) or "none",
        )
    return Member.objects.select_related("user", "program", "tier").get(pk=member.pk)
