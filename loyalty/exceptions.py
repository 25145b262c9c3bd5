"""Errors loyalty raises. Each has a stable ``code`` an API or a page can show or map."""

from __future__ import annotations

from typing import Any


class LoyaltyError(Exception):
    code = "loyalty_error"

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class InvalidEvent(LoyaltyError):
    """An adapter produced an event that cannot be recorded."""

    code = "invalid_event"


class NoProgram(LoyaltyError):
    code = "no_program"


class InsufficientPoints(LoyaltyError):
    code = "insufficient_points"


class InvalidAdjustment(LoyaltyError):
    code = "invalid_adjustment"


class RewardUnavailable(LoyaltyError):
    """The reward cannot be redeemed now: switched off, outside its window, another programme."""

    code = "reward_unavailable"


class RewardOutOfStock(RewardUnavailable):
    code = "reward_out_of_stock"


class RedemptionLimitReached(LoyaltyError):
    code = "redemption_limit_reached"


class TierTooLow(LoyaltyError):
    """The reward needs a higher tier than the member has."""

    code = "tier_too_low"


class DiscountNotIssued(LoyaltyError):
    """The shop (through the adapter) could not create the discount code; nothing was debited."""

    code = "discount_not_issued"


class RedemptionNotCancellable(LoyaltyError):
    code = "redemption_not_cancellable"


class CodeRefused(LoyaltyError):
    """A reward code cannot be used on this order. ``code`` says why: ``code_unknown``,
    ``code_expired``, ``code_not_yet_valid``, ``code_used``, ``code_revoked``, ``below_minimum``,
    ``wrong_currency``, ``wrong_customer``, ``product_not_in_order``."""

    code = "code_refused"


class StaffPolicyRefused(LoyaltyError):
    """Staff may not do this (``services.staff``): the API answers 403 with the code."""

    code = "staff_policy_refused"


class OwnMembership(StaffPolicyRefused):
    """Staff adjust or give rewards to other people's memberships, never to their own."""

    code = "own_membership"


class AdjustLimitExceeded(StaffPolicyRefused):
    """More points in one adjustment (or a free reward worth more) than a support agent may move."""

    code = "adjust_limit_exceeded"


class DailyAdjustLimitExceeded(StaffPolicyRefused):
    """The adjustment would take the support agent's total of the day past ``SUPPORT_DAILY_ADJUST_LIMIT``."""

    code = "daily_adjust_limit_exceeded"


class PointsDiscountRefused(LoyaltyError):
    """Points cannot be used at this checkout now (``services.checkout_points``). ``code`` says
    why: ``points_discount_unavailable``, ``points_above_cap``, ``wrong_currency``,
    ``below_minimum``, ``checkout_token_invalid``, ``checkout_token_expired``,
    ``checkout_token_foreign``, ``checkout_completed``; too few points is
    :class:`InsufficientPoints`, a tier below the reward's :class:`TierTooLow`."""

    code = "points_discount_refused"


class InvalidPointsAmount(PointsDiscountRefused):
    """The points asked for are not a valid amount: ``points_not_whole``, ``points_not_positive``,
    ``points_not_in_step``, ``points_below_minimum``. Bad input: the API answers 400."""

    code = "invalid_points_amount"
