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
