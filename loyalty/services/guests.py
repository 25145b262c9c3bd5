"""Guest orders: a customer who bought as a guest and later joins claims those purchases' points.

A claim needs proof that the claimant placed the order: a signed link from the order's
confirmation page (which only the guest who placed it sees) names the order and its email.
Visiting it remembers the claim in the session; signing in or registering with that same email
claims it. An email address alone is not proof (shops rarely verify addresses at sign-up), so
nothing is claimed by matching emails: that would hand a guest's orders to anyone who
registers with their address.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core import signing
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from ..models import Member, PendingPoints, PointsEntry, Program, Purchase
from ..selectors import guest_points_earned, guest_points_reversed
from .identity import email_identity
from .ledger import points_credit
from .pending import pending_until
from .tiers import tier_evaluate

logger = logging.getLogger("loyalty.guests")

KEPT = (Purchase.Status.PAID, Purchase.Status.PARTIALLY_REFUNDED)
CLAIM_SALT = "loyalty.guests.claim"
#: A claim link works this long after the order (the guest may join weeks later).
CLAIM_MAX_AGE = timedelta(days=90)
SESSION_KEY = "loyalty_guest_claims"


def guest_claim_token(*, order_reference: str, email: str) -> str:
    """A signed, URL-safe token naming a guest order and the email it was placed with."""
    return signing.dumps({"o": order_reference, "e": email.strip().lower()}, salt=CLAIM_SALT, compress=True)


def guest_claim_load(token: str, *, max_age: timedelta = CLAIM_MAX_AGE) -> tuple[str, str] | None:
    """``(order_reference, email)`` from a token, or ``None`` when it was tampered with, made for
    another purpose, or is older than ``max_age``."""
    try:
        data = signing.loads(token, salt=CLAIM_SALT, max_age=max_age)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(data, dict) or not isinstance(data.get("o"), str) or not isinstance(data.get("e"), str):
        return None
    return data["o"], data["e"]


def guest_claims_for_user(*, user, tokens: list[str], at: datetime | None = None) -> int:
    """Claim the guest orders named by ``tokens`` for ``user``'s memberships, where the order's
    email reaches the user's mailbox (``identity.email_identity``: case, ``+tag``, Gmail dots).
    Returns the points credited or put pending."""
    identity = email_identity(getattr(user, "email", ""))
    if not identity:
        return 0
    by_program: dict[int, list[str]] = {}
    for token in tokens:
        loaded = guest_claim_load(token)
        if loaded is None or email_identity(loaded[1]) != identity:
            continue
        for program_id, email in Purchase.objects.filter(order_reference=loaded[0], member__isnull=True).values_list(
            "program_id", "email"
        ):
            if email_identity(email) == identity:
                by_program.setdefault(program_id, []).append(loaded[0])
    from .members import member_enroll  # the claim link says "join": enrol where not a member yet

    credited = 0
    for program in Program.objects.filter(pk__in=list(by_program), is_active=True):
        member = member_enroll(program=program, user=user)[0]
        credited += guest_purchases_claim(member=member, order_references=by_program[program.pk], at=at)
    return credited


def guest_purchase_claim_key(purchase: Purchase) -> str:
    """The same key an ordinary purchase's points use: a claimed order can never pay twice."""
    return f"purchase:{purchase.order_reference}:earn"


def guest_purchases_claim(*, member: Member, order_references: list[str], at: datetime | None = None) -> int:
    """Attach the programme's guest purchases ``order_references`` made with the member's email
    (the same mailbox: ``identity.email_identity``) to ``member`` and credit their points;
    returns the points credited (or put pending). Callers establish that the member placed
    them (see the module docstring).

    Each purchase earns what it would have earned then at the base rate (and any multiplier
    campaign of its day), less what refunds took back (pro rata, as for members); a refunded or
    cancelled purchase is attached with no points. Points of a purchase still inside the
    programme's approval period are pending until it ends. The credit carries the purchase's own
    key (``purchase:<order>:earn``) and only purchases without a member are claimed, so calling
    this twice, or concurrently, credits once. Lots are dated ``at`` (the claim), so old orders do
    not bring points that are already expired.
    """
    email = (getattr(member.user, "email", "") or "").strip()
    if not email:
        return 0
    at = at or timezone.now()
    credited = 0
    with transaction.atomic():
        member = Member.objects.select_for_update().select_related("program", "user").get(pk=member.pk)
        program = member.program
        purchases = list(
            Purchase.objects.select_for_update()
            .select_related("program")
            .filter(program=program, member__isnull=True, order_reference__in=order_references)
            .order_by("occurred_at", "id")
        )
        purchases = [purchase for purchase in purchases if email_identity(purchase.email) == email_identity(email)]
        if not purchases:
            return 0
        kept = [purchase for purchase in purchases if purchase.status in KEPT]
        for purchase in purchases:
            earned = guest_points_earned(purchase) if purchase.status in KEPT else 0
            points = earned - guest_points_reversed(purchase, earned)
            purchase.member = member
            purchase.points_earned = earned
            purchase.points_reversed = earned - points
            purchase.save(update_fields=["member", "points_earned", "points_reversed"])
            if points <= 0:
                continue
            approve_at = pending_until(program, purchase.occurred_at)
            if approve_at is not None:
                PendingPoints.objects.create(
                    program_id=program.pk, member=member, purchase=purchase, points=points, approve_at=approve_at
                )
                Member.objects.filter(pk=member.pk).update(pending_points=F("pending_points") + points)
                member.pending_points += points
            else:
                points_credit(
                    member=member,
                    points=points,
                    kind=PointsEntry.Kind.EARN,
                    idempotency_key=guest_purchase_claim_key(purchase),
                    reference=purchase.order_reference,
                    description="Guest order claimed",
                    purchase=purchase,
                    at=at,
                    locked=True,
                )
            credited += points
        if kept:
            last = max(purchase.occurred_at for purchase in kept)
            Member.objects.filter(pk=member.pk).update(
                orders_count=F("orders_count") + len(kept),
                last_purchase_at=Greatest(Coalesce(F("last_purchase_at"), Value(last)), Value(last)),
            )
            tier_evaluate(member=member, at=at, upgrades_only=True)
    logger.info("Member %s claimed %s guest purchase(s), %s points.", member.pk, len(purchases), credited)
    return credited
