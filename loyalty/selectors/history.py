"""A member's points history in the customer's words, and the points that lapse soon."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.paginator import Page, Paginator
from django.db.models import Min, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..conf import loyalty_settings
from ..formats import money_text
from ..models import Member, PointsEntry
from .tiers import TIER_ENTRY_KEY_PREFIX


@dataclass(frozen=True)
class HistoryRow:
    """One line of the customer's points history, in words ("Order #1042", "Birthday bonus")."""

    created_at: datetime
    points: int
    title: str
    note: str = ""
    expires_at: datetime | None = None

    @property
    def amount(self) -> int:
        return abs(self.points)


@dataclass(frozen=True)
class ExpiringPoints:
    """Points that lapse soon: ``points`` of them on ``at`` (the first date something expires)."""

    points: int
    at: datetime
    whole_balance: bool = False  # inactivity policy: the whole balance goes unless the member orders


def points_history(member: Member, *, limit: int | None = None) -> list[PointsEntry]:
    """The member's newest ledger rows (one query, whatever the ledger's length)."""
    limit = limit or loyalty_settings.ACCOUNT_HISTORY_SIZE
    return list(
        PointsEntry.objects.filter(member=member)
        .only("kind", "points", "reference", "description", "created_at", "expires_at", "purchase_id")
        .order_by("-created_at", "-id")[:limit]
    )


# A cancellation's reversal has a description starting with this (services/events.py writes it).
CANCELLED_NOTE = "Order cancelled"


_HISTORY_FIELDS = (
    "kind",
    "points",
    "reference",
    "description",
    "created_at",
    "expires_at",
    "purchase_id",
    "idempotency_key",
)


def _quoted_after(prefix: str, text: str) -> str | None:
    """``We miss you`` from ``Campaign “We miss you”`` (services store English descriptions)."""
    if text.startswith(prefix) and text.endswith("”"):
        return text[len(prefix) : -1]
    return None


# Points used at checkout (services/checkout_points.py writes these keys and descriptions).
CHECKOUT_KEY_PREFIX = "redeem:checkout:"
CHECKOUT_GIVEN_BACK = "Checkout points returned"


def paid_with_points(points: int, amount: Decimal, currency: str) -> str:
    """ "Paid with 500 points (−5.00 €)": the history line and the receipt's."""
    return ngettext("Paid with %(points)s point (−%(amount)s)", "Paid with %(points)s points (−%(amount)s)", points) % {
        "points": number_format(points, force_grouping=True),
        "amount": money_text(amount, currency),
    }


def _amount_in(reference: str) -> tuple[Decimal, str] | None:
    """``(Decimal("5.00"), "EUR")`` from the reference ``"5.00 EUR"`` of a checkout debit."""
    value, _space, currency = reference.partition(" ")
    try:
        return Decimal(value), currency
    except ArithmeticError:
        return None


def _checkout_return_note(text: str) -> str:
    if "expired" in text:
        return _("The order was not placed in time.")
    if "changed" in text:
        return _("You changed the points used on your order.")
    if "removed" in text:
        return _("You took the points off your order.")
    if "cancelled" in text:
        return _("The order was cancelled.")
    if "refunded" in text:
        return _("The order was refunded.")
    return ""


def history_row(entry: PointsEntry) -> HistoryRow:
    """A ledger row in the customer's words. Services store keys, references and (English)
    descriptions; this maps them to translatable text, so the template only prints."""
    kind, ref, text, key = entry.kind, entry.reference, entry.description, entry.idempotency_key
    Kind = PointsEntry.Kind
    title, note = entry.get_kind_display(), ""
    if kind == Kind.EARN:
        title = _("Order #%(order)s") % {"order": ref} if ref else _("Purchase")
    elif kind == Kind.BONUS:
        if (name := _quoted_after("Campaign “", text)) is not None:
            title = _("Campaign “%(name)s”") % {"name": name}
        elif key.startswith(TIER_ENTRY_KEY_PREFIX):
            tier = text.removeprefix("Entry bonus: ")
            title = _("Welcome to %(tier)s") % {"tier": tier}
        elif ":birthday:" in key:
            title = _("Birthday bonus")
        elif key.startswith("referral:"):
            title = _("Referral bonus")
            note = text
        else:
            title = text or _("Bonus")
            if entry.purchase_id and ref:
                note = _("Order #%(order)s") % {"order": ref}
    elif kind == Kind.REDEEM:
        if key.startswith(CHECKOUT_KEY_PREFIX) and (paid := _amount_in(ref)) is not None:
            title = paid_with_points(abs(entry.points), *paid)
        else:
            title = _("Redeemed for “%(reward)s”") % {"reward": ref} if ref else _("Redeemed")
    elif kind == Kind.REVERSE:
        if text.startswith(CANCELLED_NOTE):
            title = _("Order #%(order)s cancelled") % {"order": ref} if ref else _("Order cancelled")
        else:
            title = _("Refund of order #%(order)s") % {"order": ref} if ref else _("Refund")
        if "forgiven" in text:
            note = _("Points you had already spent were forgiven.")
    elif kind == Kind.EXPIRE:
        title = _("Expired")
    elif kind == Kind.ADJUST:
        if key.startswith("redemption:") and text.startswith(CHECKOUT_GIVEN_BACK):
            title = _("Points returned from checkout")
            note = _checkout_return_note(text)
        elif key.startswith("redemption:"):
            title = _("Points returned for “%(reward)s”") % {"reward": ref} if ref else _("Points returned")
            note = _("The reward code was not used.") if "expired" in text else ""
        else:
            title = _("Adjustment by our team")
            note = text
    return HistoryRow(entry.created_at, entry.points, title, note, entry.expires_at if entry.points > 0 else None)


def points_history_page(member: Member, *, page: int | str | None = None, per_page: int | None = None) -> Page:
    """One page of the member's points history in words, newest first: two queries (a count
    and the page's rows), whatever the ledger's length."""
    per_page = per_page or loyalty_settings.ACCOUNT_HISTORY_SIZE
    rows = PointsEntry.objects.filter(member=member).only(*_HISTORY_FIELDS).order_by("-created_at", "-id")
    result = Paginator(rows, per_page).get_page(page)
    result.object_list = [history_row(entry) for entry in result.object_list]
    return result


def expiring_points(
    member: Member, *, at: datetime | None = None, within_days: int | None = None
) -> ExpiringPoints | None:
    """The next points to lapse, if within ``within_days`` (the programme's reminder window, at
    least 30 days): per-lot expiry is one query; the inactivity policy needs none."""
    at = at or timezone.now()
    program = member.program
    days = within_days if within_days is not None else max(program.expiry_reminder_days, 30)
    horizon = at + timedelta(days=days)
    if member.balance <= 0:
        return None
    if program.expiry_policy == program.ExpiryPolicy.INACTIVITY:
        if not program.inactivity_days or member.last_purchase_at is None:
            return None
        lapse = member.last_purchase_at + timedelta(days=program.inactivity_days)
        return ExpiringPoints(member.balance, lapse, whole_balance=True) if at < lapse <= horizon else None
    if program.expiry_policy != program.ExpiryPolicy.PER_LOT:
        return None
    first = (
        PointsEntry.objects.filter(member=member, points__gt=0, remaining__gt=0, expires_at__gt=at)
        .filter(expires_at__lte=horizon)
        .annotate(day=TruncDate("expires_at"))
        .values("day")
        .annotate(points=Sum("remaining"), first=Min("expires_at"))
        .order_by("day")
        .first()
    )
    return ExpiringPoints(first["points"], first["first"]) if first else None
