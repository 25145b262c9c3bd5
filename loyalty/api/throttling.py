"""Throttles of the API. Rates live in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``."""

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class RedeemThrottle(UserRateThrottle):
    """Redemptions per user (``loyalty_redeem``, e.g. ``"10/min"``); reading the list is not throttled.

    The rate is read at use (DRF reads ``THROTTLE_RATES`` once, at import), so
    ``override_settings`` and the ``settings`` fixture change it in tests.
    """

    scope = "loyalty_redeem"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
