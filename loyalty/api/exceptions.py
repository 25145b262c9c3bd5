"""One error shape for the whole API: ``{"code": "...", "detail": "...", "fields": {...}}``.

``code`` is stable (what clients branch on); ``detail`` is a human message (translated);
``fields`` maps an input field to its messages and is present for invalid input only.
:class:`~loyalty.exceptions.LoyaltyError` refusals become 409 (400 for bad input, 403 for the staff policy).
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from ..exceptions import (
    InvalidAdjustment,
    InvalidEvent,
    InvalidPointsAmount,
    LoyaltyError,
    NoProgram,
    StaffPolicyRefused,
)

logger = logging.getLogger("django.request")

#: LoyaltyError subclasses that mean "your input is wrong" rather than "not now / not allowed".
BAD_INPUT = (InvalidAdjustment, InvalidEvent, InvalidPointsAmount)
NOT_FOUND = (NoProgram,)
#: The staff policy (own membership, limits): not allowed, whatever the state.
FORBIDDEN = (StaffPolicyRefused,)


def loyalty_error_status(exc: LoyaltyError) -> int:
    if isinstance(exc, FORBIDDEN):
        return status.HTTP_403_FORBIDDEN
    if isinstance(exc, BAD_INPUT):
        return status.HTTP_400_BAD_REQUEST
    if isinstance(exc, NOT_FOUND):
        return status.HTTP_404_NOT_FOUND
    return status.HTTP_409_CONFLICT


def _messages(detail: Any) -> Any:
    """DRF's nested ErrorDetail lists/dicts as plain strings."""
    if isinstance(detail, dict):
        return {key: _messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_messages(value) for value in detail]
    return str(detail)


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """``REST_FRAMEWORK["EXCEPTION_HANDLER"]``: LoyaltyError and every DRF error as JSON with a code."""
    if isinstance(exc, LoyaltyError):
        return Response({"code": exc.code, "detail": str(exc.message)}, status=loyalty_error_status(exc))
    response = drf_exception_handler(exc, context)  # Http404 and Django's PermissionDenied included
    if response is None:
        # A bug: logged with its traceback as Django would, answered in the API's shape.
        request = context.get("request")
        logger.error(
            "Internal Server Error: %s", getattr(request, "path", "?"), exc_info=exc, extra={"status_code": 500}
        )
        set_rollback()
        return Response(
            {"code": "server_error", "detail": "Something went wrong on our side; please try again later."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        body = {"code": "invalid", "detail": "Invalid input.", "fields": _messages(fields)}
    elif isinstance(exc, exceptions.APIException):
        code = _code_of(exc)
        body = {"code": code, "detail": _messages(exc.detail)}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            body["wait"] = round(exc.wait)
    else:  # Http404 / PermissionDenied mapped by DRF
        body = {"code": "not_found" if response.status_code == 404 else "permission_denied", "detail": "Not found."}
        if response.status_code != 404:
            body["detail"] = "You do not have permission to perform this action."
    response.data = body
    return response
