"""Points as money at checkout: a member pays part of an order with points, in the cart.

It rides on the reward-code machinery: the programme's *points discount* reward (``Reward``
with ``kind = "points_discount"``) says what a point is worth there, the step, the fewest
points and the caps; using points is a :class:`~loyalty.models.Redemption` of it for a chosen
number of points, whose code (the shop's, through the adapter, or loyalty's own) takes
exactly their value off the order. The customer never sees or types that code: the shop's
glue attaches it to the basket.

Public functions (keep these signatures):

- :func:`checkout_token_issue` ``(*, member, basket) -> str``: a signed token for one basket
  (the shop's basket or checkout id) of one member, valid ``CHECKOUT_POINTS_VALID_MINUTES``.
- :func:`points_discount_quote` ``(*, member, order_total, currency, basket="", at=None) ->
  PointsDiscountQuote``: the choices (balance, value, step, fewest and most points usable,
  what is used now) for a basket. Writes nothing.
- :func:`points_discount_apply` ``(*, member, checkout_token, points, order_total, currency,
  at=None) -> Redemption``: debit the points and issue the code, idempotent per checkout: the
  same points again return the same redemption (``replayed``), other points replace its code
  and give its points back, in one transaction.
- :func:`points_discount_remove` ``(*, member, checkout_token, at=None) -> Redemption | None``:
  the customer takes the points off the order; they come back.
- :func:`points_discount_release` ``(*, basket, code, at=None) -> Redemption | None``: the
  shop took the code off the basket with its own button; the points come back, once.
- :func:`points_discount_order_cancelled` and :func:`points_discount_order_refunded`: what an
  order's cancellation or refund does to points used on it (called by the events service).

Every refusal is a :class:`~loyalty.exceptions.LoyaltyError` with a stable ``code`` and
writes nothing. Lock order, as for every redemption: the member, then the redemption.

What lives here: ``quote`` (the checkout token, the points discount reward, the quote), ``apply``
(apply, remove, the live redemption of a basket) and ``orders`` (cancellations and refunds).
Every public name is importable from ``loyalty.services.checkout_points``.
"""

from .apply import points_discount_apply, points_discount_live, points_discount_release, points_discount_remove
from .orders import points_discount_order_cancelled, points_discount_order_refunded
from .quote import (
    BASKET_MAX_LENGTH,
    CENT,
    GIVEN_BACK,
    LIVE,
    MAX_OPTIONS,
    TOKEN_SALT,
    PointsDiscountQuote,
    PointsOption,
    checkout_basket,
    checkout_token_issue,
    points_amount,
    points_discount_quote,
    points_discount_reward,
    valid_for,
)

__all__ = [
    "BASKET_MAX_LENGTH",
    "CENT",
    "GIVEN_BACK",
    "LIVE",
    "MAX_OPTIONS",
    "PointsDiscountQuote",
    "PointsOption",
    "TOKEN_SALT",
    "checkout_basket",
    "checkout_token_issue",
    "points_amount",
    "points_discount_apply",
    "points_discount_live",
    "points_discount_order_cancelled",
    "points_discount_order_refunded",
    "points_discount_quote",
    "points_discount_release",
    "points_discount_remove",
    "points_discount_reward",
    "valid_for",
]
