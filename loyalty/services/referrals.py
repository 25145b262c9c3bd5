"""Referrals: a member's link brings a friend; the friend's first paid order rewards both.

- ``referral_code_generate() -> str``: a new random code (8 characters, no look-alikes).
- ``referral_code_for(member) -> str``: the member's code, created on first use for
  members enrolled before codes existed.
- ``referral_record(*, code, user, at=None) -> Referral | None``: the user just signed in
  carrying ``code`` (the link's view put it in the session). A new member with no orders
  becomes a pending referral; self-referral (the same mailbox, ``identity.email_identity``:
  ``anna+ref@`` is Anna) and existing customers are recorded as refused, and the returned
  referral's ``refusal`` names why (``REFUSALS`` holds what the friend is told).
- ``referral_complete(*, friend, purchase) -> Referral | None``: called by
  ``rules.on_purchase_paid`` on the friend's first paid order (friend locked): pays the
  REFERRER rule to the referrer and the REFEREE rule to the friend, once.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from ..config_cache import paying_rules
from ..models import EarningRule, Member, PointsEntry, Purchase, Referral
from .identity import email_identity
from .ledger import points_credit
from .notifications import member_email_queue

logger = logging.getLogger("loyalty.referrals")

# No 0/O, 1/I/L: a code read aloud or typed from paper comes out right.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
# A friend must have joined this recently (and not have ordered) for a referral to count.
NEW_MEMBER_WINDOW = timedelta(hours=1)
SESSION_KEY = "loyalty_referral_code"


def referral_code_generate() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def referral_code_normalize(code: str) -> str:
    return (code or "").strip().upper()[:16]


def referral_code_for(member: Member) -> str:
    """The member's referral code, generated and stored if they have none yet. Safe concurrently."""
    if member.referral_code:
        return member.referral_code
    for _attempt in range(5):
        code = referral_code_generate()
        try:
            with transaction.atomic():
                Member.objects.filter(pk=member.pk, referral_code__isnull=True).update(referral_code=code)
        except IntegrityError:
            continue  # the code is taken by another member: draw again
        member.referral_code = Member.objects.values_list("referral_code", flat=True).get(pk=member.pk)
        return member.referral_code
    raise RuntimeError("could not find a free referral code")  # pragma: no cover (1 in 10^11 five times)


def referrer_for_code(code: str) -> Member | None:
    code = referral_code_normalize(code)
    if not code:
        return None
    return Member.objects.select_related("program", "user").filter(referral_code=code, program__is_active=True).first()


def _same_person(referrer: Member, user) -> bool:
    """The same account, or addresses reaching the same mailbox (``anna+ref@``, dotted Gmail)."""
    if referrer.user_id == user.pk:
        return True
    email = email_identity(user.email)
    return bool(email) and email == email_identity(referrer.user.email)


#: Why a referral was refused, as the friend is told when they sign in (``refusal`` codes).
REFUSALS = {
    "self": gettext_lazy("Referral links are for inviting friends: your own link earns no referral bonus."),
    "circular": gettext_lazy("This member joined through your link, so their link earns you no referral bonus."),
    "existing_customer": gettext_lazy("Referral bonuses are for new customers; you have shopped with us before."),
}


def _existing_customer_reason(friend: Member, user, at: datetime) -> str:
    """Why ``friend`` cannot be referred any more ("" when they can)."""
    if friend.orders_count > 0:
        return "Existing customer: has paid orders already."
    if at - friend.joined_at > NEW_MEMBER_WINDOW:
        return "Existing customer: joined the programme before following the link."
    date_joined = getattr(user, "date_joined", None)
    if date_joined is not None and at - date_joined > NEW_MEMBER_WINDOW:
        return "Existing customer: had an account before following the link."
    email = (user.email or "").strip()
    if email and Purchase.objects.filter(program_id=friend.program_id, email__iexact=email).exists():
        return "Existing customer: has ordered as a guest with this email."
    return ""


def referral_record(*, code: str, user, at: datetime | None = None) -> Referral | None:
    """Record that ``user`` signed in through the link with ``code``; idempotent per friend.

    Returns the friend's referral (pending or refused), or ``None`` when the code is unknown
    or the user is an existing account with no membership of the programme (nothing to record).
    A new account is enrolled in the referrer's programme here: the link is an invitation.
    """
    from .members import member_enroll  # members imports this module for referral codes

    at = at or timezone.now()
    referrer = referrer_for_code(code)
    if referrer is None:
        logger.info("Unknown referral code %r used by user %s; ignored.", code, user.pk)
        return None
    program = referrer.program
    friend = Member.objects.filter(program=program, user=user).first()
    if friend is None:
        date_joined = getattr(user, "date_joined", None)
        if date_joined is not None and at - date_joined > NEW_MEMBER_WINDOW:
            logger.info("User %s followed referral code %s but is an existing account; ignored.", user.pk, code)
            return None
        friend, _created = member_enroll(program=program, user=user, at=at)
    if (existing := Referral.objects.filter(friend=friend).first()) is not None:
        return existing

    note, refusal = "", ""
    if _same_person(referrer, user):
        note, refusal = "Self-referral: the link's owner and the new member share one mailbox.", "self"
    elif referrer.referred_by_id == friend.pk:
        note, refusal = "Circular: the referrer was referred by this member.", "circular"
    elif note := _existing_customer_reason(friend, user, at):
        refusal = "existing_customer"
    status = Referral.Status.REFUSED if note else Referral.Status.PENDING
    try:
        with transaction.atomic():
            referral = Referral.objects.create(
                program=program, referrer=referrer, friend=friend, status=status, note=note, created_at=at
            )
            if status == Referral.Status.PENDING:
                Member.objects.filter(pk=friend.pk, referred_by__isnull=True).update(referred_by=referrer)
    except IntegrityError:  # the same friend recorded concurrently (two logins at once)
        return Referral.objects.get(friend=friend)
    if note:
        logger.info("Referral of member %s by member %s refused: %s", friend.pk, referrer.pk, note)
    referral.refusal = refusal  # for the friend's sign-in: REFUSALS[refusal] says why
    return referral


def _rule_for(kind: str, *, program, purchase: Purchase) -> EarningRule | None:
    """The most generous active rule of ``kind`` the purchase qualifies for (one bonus per side)."""
    rules = paying_rules(program, kind, purchase.occurred_at, purchase.amount)
    return max(rules, key=lambda rule: (rule.points, -rule.pk), default=None)


def referral_complete(*, friend: Member, purchase: Purchase) -> Referral | None:
    """Reward a pending referral of ``friend`` (who just paid their first order), once.

    The friend is locked by the caller; the referral row is locked here, so a replayed or
    concurrent event finds it rewarded. Each bonus also has its own idempotency key.
    """
    referral = (
        Referral.objects.select_for_update(of=("self",))
        .select_related("referrer__program")
        .filter(friend=friend, status=Referral.Status.PENDING)
        .first()
    )
    if referral is None:
        return None
    program, at = referral.referrer.program, purchase.occurred_at
    paid: dict[str, PointsEntry] = {}
    for side, kind, member in (
        ("referrer", EarningRule.Kind.REFERRER, referral.referrer),
        ("friend", EarningRule.Kind.REFEREE, friend),
    ):
        rule = _rule_for(kind, program=program, purchase=purchase)
        if rule is None:
            continue
        paid[side] = points_credit(
            member=member,
            points=rule.points,
            kind=PointsEntry.Kind.BONUS,
            idempotency_key=f"referral:{referral.pk}:{side}",
            reference=f"referral:{referral.pk}",
            description=rule.name,
            at=at,
        )
    referral.status = Referral.Status.REWARDED
    referral.rewarded_at = at
    if not paid:
        referral.note = "No referral bonus rule was active for the friend's first order."
    referral.save(update_fields=["status", "rewarded_at", "note"])
    if "referrer" in paid:
        member_email_queue(
            member=referral.referrer,
            template="referral_rewarded",
            key=f"referral:{referral.pk}:referrer",
            context={"referral_id": referral.pk, "points": paid["referrer"].points},
        )
    if "friend" in paid:
        member_email_queue(
            member=friend,
            template="referral_friend_rewarded",
            key=f"referral:{referral.pk}:friend",
            context={"referral_id": referral.pk, "points": paid["friend"].points},
        )
    return referral
