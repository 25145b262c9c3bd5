"""The contract between a shop and loyalty.

A shop keeps its own models and signals. An adapter (a small class in the shop's project,
named in ``settings.LOYALTY["ADAPTER"]``) says which signals to listen to and turns each
signal into a plain :class:`OrderEvent`. Loyalty never imports the shop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.dispatch import Signal
from django.utils.dateparse import parse_datetime

from ..exceptions import InvalidEvent


class EventKind:
    PAID = "paid"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    ALL = (PAID, REFUNDED, CANCELLED)


@dataclass(frozen=True)
class OrderEvent:
    """One thing that happened to a shop order, in loyalty's terms.

    ``event_id`` is unique per event in the shop ("order:1042:paid", "order:1042:refund:7"):
    it is what makes a signal delivered twice count once. ``amount`` is, for ``paid``, what
    the customer paid that earns points (after discounts, without shipping if you like);
    for ``refunded``, the amount of this refund; for ``cancelled``, ignored. ``user_id`` is
    the customer's user pk, or ``None`` for a guest, who is known by ``email``. ``category``
    (optional, at most 100 characters) is the order's product category as the shop names it,
    e.g. its largest line's; it is stored on the purchase, and staff filter survey answers by it.
    ``discount_codes`` (optional, ``paid`` and ``cancelled``): the codes the order was placed
    with; on ``paid`` a reward code among them is marked used on this order at once, on
    ``cancelled`` points used at checkout with one of them come back (an unpaid order's code
    was never marked used).
    """

    kind: str
    event_id: str
    order_reference: str
    amount: Decimal
    currency: str
    occurred_at: datetime
    user_id: Any = None
    email: str = ""
    program: str | None = None
    category: str = ""
    discount_codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        codes = self.discount_codes
        if isinstance(codes, (list, tuple)) and all(isinstance(c, str) and 0 < len(c) <= 64 for c in codes):
            object.__setattr__(self, "discount_codes", tuple(codes))  # a list from a stored payload
        else:
            problems.append(f"discount_codes must be a tuple of codes (1 to 64 characters), not {codes!r}")
        if self.kind not in EventKind.ALL:
            problems.append(f"kind must be one of {', '.join(EventKind.ALL)}, not {self.kind!r}")
        if not isinstance(self.event_id, str) or not self.event_id or len(self.event_id) > 180:
            # 180: ledger keys derived from it ("<event_id>:reverse") must fit in 200.
            problems.append("event_id is required (at most 180 characters)")
        if not isinstance(self.order_reference, str) or not self.order_reference or len(self.order_reference) > 100:
            problems.append("order_reference is required (at most 100 characters)")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount < 0:
            problems.append(f"amount must be a Decimal >= 0, not {self.amount!r}")
        if not isinstance(self.currency, str) or len(self.currency) != 3:
            problems.append(f"currency must be a 3-letter code, not {self.currency!r}")
        if not isinstance(self.occurred_at, datetime) or self.occurred_at.tzinfo is None:
            problems.append("occurred_at must be an aware datetime")
        if not isinstance(self.email, str) or len(self.email) > 254:
            problems.append(f"email must be a string (at most 254 characters), not {self.email!r}")
        if self.program is not None and not isinstance(self.program, str):
            problems.append(f"program must be a programme slug or None, not {self.program!r}")
        if not isinstance(self.category, str) or len(self.category) > 100:
            problems.append(f"category must be a string (at most 100 characters), not {self.category!r}")
        if self.user_id is not None and not isinstance(self.user_id, (int, str, uuid.UUID)):
            problems.append(f"user_id must be the user's primary key (int, str or UUID), not {self.user_id!r}")
        if self.kind == EventKind.PAID and self.user_id is None and not self.email:
            problems.append("a paid event needs a user_id or a guest email")
        if problems:
            raise InvalidEvent("; ".join(problems), extra={"event_id": self.event_id})

    def to_payload(self) -> dict[str, Any]:
        # Spelt out rather than dataclasses.asdict (a deep copy): this runs for every order.
        data = {
            "kind": self.kind,
            "event_id": self.event_id,
            "order_reference": self.order_reference,
            "amount": str(self.amount),
            "currency": self.currency,
            "occurred_at": self.occurred_at.isoformat(),
            "user_id": None if self.user_id is None else str(self.user_id),
            "email": self.email,
            "program": self.program,
            "category": self.category,
        }
        if self.discount_codes:  # payloads without codes look as they always did
            data["discount_codes"] = list(self.discount_codes)
        return data

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> OrderEvent:
        try:
            return cls(
                **{
                    **data,
                    "amount": Decimal(data["amount"]),
                    "occurred_at": parse_datetime(data["occurred_at"]),
                }
            )
        except (KeyError, TypeError, InvalidOperation, ValueError) as exc:
            raise InvalidEvent(f"stored payload cannot be read: {exc}") from exc


class HistoricalStatus:
    """Where a historical order ended up (the values of ``Purchase.Status``)."""

    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    ALL = (PAID, PARTIALLY_REFUNDED, REFUNDED, CANCELLED)


@dataclass(frozen=True, slots=True)
class HistoricalOrder:
    """A past order, paid before loyalty was installed, as the backfill imports it.

    Only orders that were paid: an order cancelled before payment is not one. ``amount`` is
    what earns points (as for a ``paid`` :class:`OrderEvent`), ``refunded_amount`` the sum
    of its refunds so far, ``status`` where it ended up (:class:`HistoricalStatus`), and
    ``paid_at`` the purchase date (points expiry counts from it). ``user_id`` is the
    customer's user pk, ``None`` for a guest, who is known by ``email``. ``category``: as for
    :class:`OrderEvent`, optional.
    """

    reference: str
    amount: Decimal
    currency: str
    paid_at: datetime
    user_id: Any = None
    email: str = ""
    refunded_amount: Decimal = Decimal("0.00")
    status: str = HistoricalStatus.PAID
    category: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.reference, str) or not self.reference or len(self.reference) > 100:
            problems.append("reference is required (at most 100 characters)")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount < 0:
            problems.append(f"amount must be a Decimal >= 0, not {self.amount!r}")
        elif not isinstance(self.refunded_amount, Decimal) or not 0 <= self.refunded_amount <= self.amount:
            problems.append(f"refunded_amount must be a Decimal between 0 and amount, not {self.refunded_amount!r}")
        if not isinstance(self.currency, str) or len(self.currency) != 3:
            problems.append(f"currency must be a 3-letter code, not {self.currency!r}")
        if not isinstance(self.paid_at, datetime) or self.paid_at.tzinfo is None:
            problems.append("paid_at must be an aware datetime")
        if self.status not in HistoricalStatus.ALL:
            problems.append(f"status must be one of {', '.join(HistoricalStatus.ALL)}, not {self.status!r}")
        if not isinstance(self.email, str) or len(self.email) > 254:
            problems.append(f"email must be a string (at most 254 characters), not {self.email!r}")
        if self.user_id is None and not self.email:
            problems.append("a historical order needs a user_id or a guest email")
        if not isinstance(self.category, str) or len(self.category) > 100:
            problems.append(f"category must be a string (at most 100 characters), not {self.category!r}")
        if problems:
            raise InvalidEvent("; ".join(problems), extra={"order_reference": self.reference})


@dataclass(frozen=True)
class CheckoutBasket:
    """The basket a customer is checking out, as the shop tells loyalty (points at checkout).

    ``reference``: the shop's id of this basket or checkout (1 to 80 characters), the same
    while the customer shops and a new one after the order is placed: points used on it are
    idempotent per reference. ``total``: what points may pay for, the goods before loyalty's
    discount. ``code``: the discount code the basket carries now ("" for none).
    """

    reference: str
    total: Decimal
    currency: str
    code: str = ""


EventFactory = Callable[..., "OrderEvent | Iterable[OrderEvent] | None"]


class BaseAdapter:
    """Subclass this in your project and point ``LOYALTY["ADAPTER"]`` at it.

    ``connections()`` returns ``(signal, factory)`` pairs. Loyalty connects each signal in
    ``AppConfig.ready()``; when it fires, ``factory(sender=..., **signal_kwargs)`` returns
    an :class:`OrderEvent` (or several, or ``None`` to ignore it), which loyalty records in
    the same database transaction as the shop's change.
    """

    def connections(self) -> Iterable[tuple[Signal, EventFactory]]:
        raise NotImplementedError("An adapter must say which signals to connect.")

    # --- backfill: orders paid before loyalty was installed ---------------------------

    def iter_historical_orders(
        self, *, since: datetime | None = None, after: str | None = None
    ) -> Iterable[HistoricalOrder]:
        """Optional: the shop's past paid orders, for ``manage.py loyalty_backfill``.

        Yield one :class:`HistoricalOrder` per order that was paid (whatever happened to it
        afterwards), in a stable order: by ``paid_at``, then by reference. ``since``: only
        orders paid at or after it. ``after``: only orders that come after the order with
        this reference in that order (to resume an interrupted backfill); raise
        ``ValueError`` if the shop has no such order. Stream (``.iterator(chunk_size=...)``)
        and avoid a query per order: the backfill reads millions of them.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot list past orders: implement "
            "iter_historical_orders(self, *, since=None, after=None) yielding HistoricalOrder "
            "objects (see docs/backfill.md) to backfill the shop's order history."
        )

    # --- rewards: discount codes in the shop ------------------------------------------

    def issue_discount(self, *, redemption) -> str:
        """Create a discount in the shop for ``redemption`` and return its code.

        What to create: ``redemption.discount_kind`` (fixed / percent / free_shipping /
        free_product), ``redemption.discount_value`` (in the programme's currency, or percent),
        ``redemption.discount_min_order_value``, ``redemption.reward.product_reference`` and
        ``redemption.expires_at`` (the code must stop working then). For most rewards these are
        the reward's own ``kind``, ``value`` and ``min_order_value``; points used at checkout (a
        ``points_discount`` reward) are a fixed amount of the redemption's own size. Called
        inside loyalty's transaction, after the points were debited: raise to refuse, and the
        debit is rolled back. The code must be unique and hard to guess (at most 64 characters).
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot issue discount codes: implement "
            "issue_discount(self, *, redemption) -> str to create a discount in your shop for a "
            "loyalty reward and return its code."
        )

    # --- points at checkout: the cart's "Use my points" control ---------------------------

    def checkout_basket(self, *, request) -> CheckoutBasket | None:
        """Optional: the basket of this request, for ``{% loyalty_checkout_points %}`` and the
        form it posts to. ``None`` (the default): no basket, and the control shows nothing."""
        return None

    def checkout_attach_code(self, *, request, code: str | None) -> None:
        """Optional (with :meth:`checkout_basket`): apply the discount code ``code`` to the
        request's basket without the customer typing it, replacing the one loyalty attached
        before; ``None`` takes it off. The code is one :meth:`issue_discount` made for points
        used at checkout (``redemption.discount_kind == "fixed"``)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot attach codes to a basket: implement "
            "checkout_attach_code(self, *, request, code) to let members pay with points in the cart."
        )

    def discount_status(self, *, code: str) -> str | None:
        """Optional: ``DiscountStatus.USED`` or ``UNUSED`` for a code this adapter issued.

        ``None`` (the default) means "unknown": an expired reward code then gives no points
        back, since loyalty cannot tell that it was never used.
        """
        return None

    def revoke_discount(self, *, code: str) -> bool:
        """Optional: make the code unusable (staff cancelled the redemption).

        Return ``True`` when the code can no longer be used and never was, ``False`` when it
        had been used already (the redemption is then not cancelled). Without it, issued
        redemptions cannot be cancelled (their points would be returned while the code
        still works).
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot revoke discount codes: implement "
            "revoke_discount(self, *, code) -> bool to cancel issued rewards."
        )


class DiscountStatus:
    """What :meth:`BaseAdapter.discount_status` answers."""

    USED = "used"
    UNUSED = "unused"
