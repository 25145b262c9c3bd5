"""A ready-made adapter for django-oscar shops (docs/oscar.md).

Name it in settings::

    LOYALTY = {"ADAPTER": "loyalty.adapters.oscar.OscarAdapter"}

It listens to oscar's ``order_placed`` (sent by ``OrderCreator.place_order``) and
``order_status_changed`` (sent by ``Order.set_status``), turns a redeemed reward into an
oscar ``Voucher`` (single use, with its own ``ConditionalOffer``, ``Condition`` and
``Benefit``), puts the voucher of points used at checkout on the member's basket
(``{% loyalty_checkout_points %}`` on oscar's basket page) and gives its points back when
oscar's own "Remove" takes it off (``voucher_removal``), and lists oscar's past orders for
``manage.py loyalty_backfill`` (``oscar_history.py``).

Only this module and ``oscar_history.py`` need django-oscar: everything of oscar's is imported when it is used,
so ``loyalty`` itself imports without it. Subclass ``OscarAdapter`` to change the status
mapping or the amount that earns points (class attributes below).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .base import (
    BaseAdapter,
    CheckoutBasket,
    DiscountStatus,
    EventKind,
    HistoricalOrder,
    OrderEvent,
)
from .oscar_history import _model, oscar_historical_orders

logger = logging.getLogger("loyalty.adapters.oscar")

# Letters and digits that cannot be mistaken for one another when typed (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

# The amounts that can earn points (``OscarAdapter.AMOUNT``): ``Order`` attributes of these names.
AMOUNTS = ("total_incl_tax", "total_excl_tax", "basket_total_incl_tax", "basket_total_excl_tax")


def points_condition_path() -> str:
    """``Condition.proxy_class`` of the vouchers for points used at checkout."""
    return f"{MemberBasketCondition.__module__}.{MemberBasketCondition.__qualname__}"


def _redemption_pk(voucher) -> int | None:
    """The redemption a voucher of this adapter was made for: its name ends in ``#<pk>``."""
    head, sep, number = (voucher.name or "").rpartition("#")
    return int(number) if sep and number.isdigit() else None


class MemberBasketCondition:
    """The condition of the vouchers for points used at checkout (oscar's ``Condition.proxy_class``):
    an item in the basket, the basket of the member who used the points, and at least the
    smallest order the code works on (``Redemption.discount_min_order_value``).

    Oscar's vouchers have no owner and its ``Condition`` no customer, so this is what ties a
    points voucher to its member: typed into another customer's basket it takes nothing off.
    Not a model (no migration in oscar's app or loyalty's): oscar builds it from the condition
    row's fields (``Condition.proxy``) and asks it what it asks any condition; everything else
    is the count condition's. All points vouchers share one condition row.
    """

    name = "Loyalty points at checkout: the member's own basket"
    description = name

    def __init__(self, **fields):
        from oscar.core.loading import get_class

        self._fields = fields
        self._count = get_class("offer.conditions", "CountCondition")(**fields)

    def __getattr__(self, attribute):
        if attribute in ("_count", "_fields"):  # before __init__ (copies): no recursion
            raise AttributeError(attribute)
        return getattr(self._count, attribute)

    def __str__(self) -> str:
        return self.name

    def _terms(self, offer) -> tuple[int | None, Decimal | None] | None:
        """(the member's user pk, the smallest order) of the offer's voucher; ``None`` when it is
        not a points voucher of a live checkout. Read once per voucher instance (one query)."""
        voucher = offer.get_voucher() if hasattr(offer, "get_voucher") else None
        if voucher is None:
            return None
        if not hasattr(voucher, "_loyalty_terms"):
            from ..models import Redemption, Reward

            redemption = (
                Redemption.objects.filter(
                    pk=_redemption_pk(voucher), code=voucher.code, reward__kind=Reward.Kind.POINTS_DISCOUNT
                )
                .select_related("reward", "member")
                .first()
            )
            voucher._loyalty_terms = (
                (redemption.member.user_id, redemption.discount_min_order_value) if redemption is not None else None
            )
        return voucher._loyalty_terms

    def _owner_basket(self, offer, basket) -> tuple[int | None, Decimal | None] | None:
        terms = self._terms(offer)
        if terms is None or terms[0] is None or getattr(basket, "owner_id", None) != terms[0]:
            return None
        return terms

    def is_satisfied(self, offer, basket) -> bool:
        terms = self._owner_basket(offer, basket)
        if terms is None:
            return False
        minimum = terms[1]
        if minimum:
            from oscar.core.loading import get_class

            ValueCondition = get_class("offer.conditions", "ValueCondition")
            by_value = ValueCondition(**{**self._fields, "type": "Value", "value": minimum})
            if not by_value.is_satisfied(offer, basket):
                return False
        return self._count.is_satisfied(offer, basket)

    def is_partially_satisfied(self, offer, basket) -> bool:
        return False  # never an upsell message: the customer did not ask for this voucher

    def get_upsell_message(self, offer, basket) -> str:
        return ""


class OscarAdapter(BaseAdapter):
    """Joins a django-oscar shop to loyalty. Override the class attributes in a subclass."""

    #: What earns points: ``"total_incl_tax"`` (default), ``"total_excl_tax"``, or without
    #: shipping and surcharges ``"basket_total_incl_tax"`` / ``"basket_total_excl_tax"``.
    AMOUNT = "total_incl_tax"
    #: Statuses that mean "paid". Empty (default): an order counts as paid when it is placed
    #: (``order_placed``). Set, e.g. ``("Complete",)``: points come when the order moves into
    #: one of them (or is placed in one), not before.
    PAID_STATUSES: tuple[str, ...] = ()
    #: Moving into one of these cancels the order in loyalty: every point it earned is taken back.
    CANCELLED_STATUSES: tuple[str, ...] = ("Cancelled",)
    #: Moving into one of these refunds the whole order (a ``refunded`` event for the full amount).
    REFUNDED_STATUSES: tuple[str, ...] = ("Refunded",)
    #: Prefix of every event id ("oscar:order:<number>:paid"). Keep it once events were recorded.
    EVENT_PREFIX = "oscar:order"
    #: Prefix of the voucher codes this adapter creates.
    CODE_PREFIX = "LOY"

    # --- order events -----------------------------------------------------------------

    def connections(self):
        from oscar.apps.basket.signals import voucher_removal
        from oscar.apps.order.signals import order_placed, order_status_changed

        return [
            (order_placed, self.order_placed),
            (order_status_changed, self.order_status_changed),
            (voucher_removal, self.voucher_removed),
        ]

    def _amount_name(self) -> str:
        if self.AMOUNT not in AMOUNTS:
            raise ValueError(f"OscarAdapter.AMOUNT must be one of {', '.join(AMOUNTS)}, not {self.AMOUNT!r}.")
        return self.AMOUNT

    def amount(self, order) -> Decimal:
        """What ``order`` earns points on (``AMOUNT``), as a ``Decimal`` rounded to cents."""
        value = getattr(order, self._amount_name())
        return Decimal(value).quantize(Decimal("0.01"))

    def voucher_codes(self, order) -> tuple[str, ...]:
        """The codes of the vouchers the order used: oscar's ``VoucherApplication`` rows, which
        ``OrderCreator`` writes with the order (what ``discount_status`` calls "used" too). A
        points voucher counts only when the order got its discount: oscar records every voucher
        in the basket, also one whose condition the basket no longer met."""
        VoucherApplication = _model("voucher", "VoucherApplication")
        OrderDiscount = _model("order", "OrderDiscount")
        paid_with = OrderDiscount._default_manager.filter(
            order_id=order.pk, voucher_id=OuterRef("voucher_id"), amount__gt=0
        )
        codes = (
            VoucherApplication._default_manager.filter(order_id=order.pk)
            .filter(~Q(voucher__offers__condition__proxy_class=points_condition_path()) | Exists(paid_with))
            .values_list("voucher__code", flat=True)
        )
        return tuple(sorted(set(codes)))

    def event(self, order, kind: str, occurred_at: datetime, amount: Decimal | None = None) -> OrderEvent:
        if order.user_id is not None:
            user_id, email = order.user_id, (getattr(order.user, "email", "") or "")
        else:
            user_id, email = None, order.guest_email or ""
        return OrderEvent(
            kind=kind,
            event_id=f"{self.EVENT_PREFIX}:{order.number}:{kind}",
            order_reference=str(order.number),
            amount=self.amount(order) if amount is None else amount,
            currency=order.currency,
            occurred_at=occurred_at,
            user_id=user_id,
            email=email,
            # Paid: the rewards' vouchers on it are marked used at once. Cancelled: points used
            # on it come back (also when it was never paid and its voucher not marked used).
            discount_codes=self.voucher_codes(order) if kind in (EventKind.PAID, EventKind.CANCELLED) else (),
        )

    def order_placed(self, sender, order, **kwargs) -> OrderEvent | None:
        if self.PAID_STATUSES and order.status not in self.PAID_STATUSES:
            return None  # paid later, when the order moves into a paid status
        return self.event(order, EventKind.PAID, order.date_placed)

    def order_status_changed(self, sender, order, old_status=None, new_status=None, **kwargs) -> OrderEvent | None:
        now = timezone.now()
        if new_status in self.CANCELLED_STATUSES:
            return self.event(order, EventKind.CANCELLED, now, amount=Decimal("0.00"))
        if new_status in self.REFUNDED_STATUSES:
            return self.event(order, EventKind.REFUNDED, now)
        if self.PAID_STATUSES and new_status in self.PAID_STATUSES:
            # The same event id whichever paid status comes first: a second one counts once.
            return self.event(order, EventKind.PAID, now)
        return None

    # --- backfill: oscar's past orders --------------------------------------------------

    def iter_historical_orders(self, *, since=None, after=None) -> Iterable[HistoricalOrder]:
        return oscar_historical_orders(self, since=since, after=after)

    # --- rewards -> oscar vouchers ------------------------------------------------------

    def new_code(self) -> str:
        return f"{self.CODE_PREFIX}-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))

    def all_products_range(self):
        Range = _model("offer", "Range")
        name = "Loyalty rewards: all products"
        found = Range._default_manager.filter(name=name).first()
        if found is None:
            try:
                with transaction.atomic():
                    found = Range._default_manager.create(name=name, includes_all_products=True, is_public=False)
            except IntegrityError:  # created meanwhile by another redemption
                found = Range._default_manager.get(name=name)
        return found

    def product_range(self, reward):
        """A range holding the one product a ``free_product`` reward names (by UPC, else by pk)."""
        Product = _model("catalogue", "Product")
        Range = _model("offer", "Range")
        ref = reward.product_reference.strip()
        product = (Product._default_manager.filter(upc=ref).first() if ref else None) or (
            Product._default_manager.filter(pk=int(ref)).first() if ref.isdigit() else None
        )
        if product is None:
            raise ValueError(f"Reward {reward.name!r} names product {ref!r}, which the shop does not have.")
        rng, _created = Range._default_manager.get_or_create(
            name=f"Loyalty rewards: product {product.pk}"[:128], defaults={"is_public": False}
        )
        rng.add_product(product)
        return rng

    def points_condition(self):
        """The one condition row all points vouchers share (:class:`MemberBasketCondition`)."""
        Condition = _model("offer", "Condition")
        path = points_condition_path()
        found = Condition._default_manager.filter(proxy_class=path).order_by("pk").first()
        if found is None:  # two made at once are harmless: the first is used from then on
            found = Condition._default_manager.create(
                proxy_class=path, type=Condition.COUNT, value=1, range=self.all_products_range()
            )
        return found

    def issue_discount(self, *, redemption) -> str:
        Benefit = _model("offer", "Benefit")
        Condition = _model("offer", "Condition")
        ConditionalOffer = _model("offer", "ConditionalOffer")
        Voucher = _model("voucher", "Voucher")

        reward = redemption.reward
        # What the voucher does: the reward's kind and value, or for points used at checkout a
        # fixed amount of the redemption's own size (Redemption.discount_*).
        kind, value = redemption.discount_kind, redemption.discount_value
        min_order_value = redemption.discount_min_order_value
        points = reward.kind == "points_discount"
        shop_currency = getattr(settings, "OSCAR_DEFAULT_CURRENCY", None)
        money_involved = kind == "fixed" or min_order_value is not None
        if money_involved and shop_currency and reward.program.currency != shop_currency:
            raise ValueError(
                f"Reward {reward.name!r} is in {reward.program.currency}; the shop sells in {shop_currency}."
            )

        everything = self.all_products_range()
        if kind == "fixed":
            benefit = Benefit(type=Benefit.FIXED, value=value, range=everything)
        elif kind == "percent":
            benefit = Benefit(type=Benefit.PERCENTAGE, value=value, range=everything)
        elif kind == "free_shipping":
            benefit = Benefit(type=Benefit.SHIPPING_PERCENTAGE, value=Decimal("100"))
        elif kind == "free_product":
            benefit = Benefit(
                type=Benefit.PERCENTAGE, value=Decimal("100"), range=self.product_range(reward), max_affected_items=1
            )
        else:
            raise ValueError(f"Reward {reward.name!r} has a kind oscar vouchers cannot express: {kind!r}.")
        benefit.full_clean()
        benefit.save()

        if points:
            # The member's own basket, and the smallest order the amount may come off.
            condition = self.points_condition()
        else:
            if min_order_value is not None:
                condition = Condition(type=Condition.VALUE, value=min_order_value, range=everything)
            elif kind == "free_product":  # the product is in the basket
                condition = Condition(type=Condition.COUNT, value=1, range=benefit.range)
            else:
                condition = Condition(type=Condition.COUNT, value=1, range=everything)
            condition.full_clean()
            condition.save()

        start = min(redemption.created_at or timezone.now(), timezone.now())
        end = redemption.expires_at or (start + timedelta(days=reward.code_valid_days))
        for _attempt in range(5):  # a clash of two random codes is all but impossible; still, draw again
            code = self.new_code()
            # Oscar shows a voucher as "<name> (<code>)": the name carries no code. Names are
            # unique in oscar, hence the redemption's number (MemberBasketCondition reads it); the
            # reward's name is in the shop's language, as staff wrote it.
            name = f"{reward.name[:90]} · #{redemption.pk}"
            try:
                with transaction.atomic():
                    offer = ConditionalOffer._default_manager.create(
                        name=f"{reward.name[:100]} ({code})",
                        description=reward.description,
                        offer_type=ConditionalOffer.VOUCHER,
                        condition=condition,
                        benefit=benefit,
                        max_global_applications=1,
                        # Points pay like money: they combine with the shop's other (non-exclusive) offers.
                        exclusive=not points,
                    )
                    voucher = Voucher._default_manager.create(
                        name=name, code=code, usage=Voucher.SINGLE_USE, start_datetime=start, end_datetime=end
                    )
                    voucher.offers.add(offer)
                return voucher.code
            except IntegrityError:
                continue
        raise RuntimeError("could not draw an unused voucher code")

    def _orders_using(self, voucher):
        """The orders that used ``voucher``: its applications; for a points voucher only the orders
        it took money off (an order that carried it without its discount spent no points)."""
        Order = _model("order", "Order")
        orders = Order._default_manager.filter(voucherapplication__voucher=voucher)
        if voucher.offers.filter(condition__proxy_class=points_condition_path()).exists():
            orders = orders.filter(discounts__voucher_id=voucher.pk, discounts__amount__gt=0)
        return orders

    def discount_status(self, *, code: str) -> str | None:
        Voucher = _model("voucher", "Voucher")
        with transaction.atomic():
            # The lock waits for a checkout placing an order with this voucher right now
            # (OrderCreator locks the basket's vouchers the same way).
            voucher = Voucher._default_manager.select_for_update().filter(code=code.upper()).first()
            if voucher is None:
                return None
            used = self._orders_using(voucher).exists()
        return DiscountStatus.USED if used else DiscountStatus.UNUSED

    def revoke_discount(self, *, code: str) -> bool:
        """End the voucher now, suspend its offer and take it off every basket not yet ordered.
        ``False`` when an order that was not cancelled used it."""
        Voucher = _model("voucher", "Voucher")
        Basket = _model("basket", "Basket")
        with transaction.atomic():
            voucher = Voucher._default_manager.select_for_update().filter(code=code.upper()).first()
            if voucher is None:
                return True
            if self._orders_using(voucher).exclude(status__in=self.CANCELLED_STATUSES).exists():
                return False
            now = timezone.now()
            if voucher.end_datetime > now:
                voucher.end_datetime = now
                voucher.start_datetime = min(voucher.start_datetime, now)
                voucher.save(update_fields=["start_datetime", "end_datetime"])
            for offer in voucher.offers.all():
                if not offer.is_suspended:
                    offer.suspend()
            Basket.vouchers.through._default_manager.filter(voucher_id=voucher.pk).exclude(
                basket__status=Basket.SUBMITTED
            ).delete()
            return True

    # --- points at checkout: oscar's basket -------------------------------------------------

    def _points_vouchers(self, basket) -> list:
        """The basket's vouchers for points used at checkout (one query)."""
        return list(basket.vouchers.filter(offers__condition__proxy_class=points_condition_path()).distinct())

    def checkout_reference(self, basket) -> str:
        """The checkout an oscar basket is for loyalty: its id, until an order submits it."""
        return f"oscar-basket-{basket.id}"

    def voucher_removed(self, sender, basket=None, voucher=None, **kwargs) -> None:
        """Oscar's own "Remove" took ``voucher`` off ``basket`` (``voucher_removal``, sent by its
        ``VoucherRemoveView``): a points voucher of this adapter gives its points back at once,
        as "Don't use points" does; any other voucher is none of loyalty's business. Never
        raises into oscar's view: on an error the points still come back when the voucher expires."""
        from ..services.checkout_points import points_discount_release

        if basket is None or voucher is None or not getattr(basket, "id", None):
            return None
        try:  # the release itself finds nothing for another voucher: no query of the voucher's offers first
            with transaction.atomic():
                points_discount_release(basket=self.checkout_reference(basket), code=voucher.code)
        except Exception:
            logger.exception(
                "Could not give back the points of voucher %r removed from basket %s; they come back when it expires.",
                getattr(voucher, "code", voucher),
                basket.id,
            )
        return None

    def checkout_basket(self, *, request) -> CheckoutBasket | None:
        """The request's oscar basket (``request.basket``, offers applied by oscar's
        ``BasketMiddleware``): its id, and its total after oscar's other discounts but before
        the points voucher's, incl. tax where known (as oscar's basket page shows it). A points
        voucher that stopped working (expired, ended) is taken off the basket here."""
        basket = getattr(request, "basket", None)
        if basket is None or not getattr(basket, "id", None) or basket.is_empty:
            return None
        code = ""
        points_off = Decimal("0.00")
        for voucher in self._points_vouchers(basket):
            if not voucher.is_active():
                basket.vouchers.remove(voucher)
                continue
            code = voucher.code
            points_off += sum(
                (d["discount"] for d in basket.voucher_discounts if d["voucher"].pk == voucher.pk), Decimal("0.00")
            )
        total = basket.total_incl_tax if basket.is_tax_known else basket.total_excl_tax
        return CheckoutBasket(
            reference=self.checkout_reference(basket),
            total=(Decimal(total) + points_off).quantize(Decimal("0.01")),
            currency=basket.currency,
            code=code,
        )

    def checkout_attach_code(self, *, request, code: str | None) -> None:
        """Put the points voucher ``code`` on the request's basket in place of the one before
        (``None``: take it off). Oscar applies it on the next request, as after its own
        "Add voucher" form."""
        from oscar.apps.basket.signals import voucher_addition

        Voucher = _model("voucher", "Voucher")
        basket = request.basket
        on_basket = False
        for voucher in self._points_vouchers(basket):
            if voucher.code == (code or "").upper():
                on_basket = True  # the same points again: already there
            else:
                basket.vouchers.remove(voucher)
        if code and not on_basket:
            voucher = Voucher._default_manager.filter(code=code.upper()).first()
            if voucher is None:
                raise ValueError(f"No oscar voucher has the code {code!r} (REWARD_CODES must be 'adapter' for oscar).")
            basket.vouchers.add(voucher)
            # As oscar's "Add voucher" does: its receiver counts the voucher's basket additions,
            # which its "Remove" button counts down again (below zero, the database refuses).
            voucher_addition.send(sender=type(self), basket=basket, voucher=voucher)
