"""System checks (``manage.py check``) with stable ids."""

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register()
def check_settings(app_configs=None, **kwargs):
    from .adapters.base import BaseAdapter
    from .conf import loyalty_settings

    try:
        adapter = loyalty_settings.ADAPTER
        processing = loyalty_settings.EVENT_PROCESSING
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="See loyalty/conf.py for the known keys.", id="loyalty.E001")]
    if processing not in ("inline", "deferred"):
        return [
            Error(
                f'settings.LOYALTY["EVENT_PROCESSING"] = {processing!r}: use "inline" or "deferred".',
                id="loyalty.E003",
            )
        ]
    if adapter is None:
        return [
            Warning(
                'settings.LOYALTY["ADAPTER"] is not set: no order events reach loyalty.',
                hint="Write an adapter (see docs/adapters.md) and name it in settings.",
                id="loyalty.W001",
            )
        ]
    if not (isinstance(adapter, type) and issubclass(adapter, BaseAdapter)):
        return [
            Error(
                f'settings.LOYALTY["ADAPTER"] = {adapter!r} is not a BaseAdapter subclass.',
                id="loyalty.E002",
            )
        ]
    from . import receivers

    if receivers.connection_error:
        return [
            Error(
                f"The loyalty adapter could not be connected to the shop's signals: {receivers.connection_error}",
                hint="Fix the adapter; until then no order events reach loyalty.",
                id="loyalty.E004",
            )
        ]
    return []


@register(Tags.urls)
def check_urls(app_configs=None, **kwargs):
    """The account panel links to loyalty's pages: without them it fails to render."""
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("loyalty:redeem", args=[1])
    except NoReverseMatch:
        return [
            Warning(
                "loyalty's URLs are not included: the account panel cannot link to its pages.",
                hint='Add path("loyalty/", include("loyalty.urls")) to your URLconf.',
                id="loyalty.W002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_site_url(app_configs=None, **kwargs):
    """``manage.py check --deploy``: email links (unsubscribe, tracking) are built from SITE_URL."""
    from urllib.parse import urlsplit

    from .conf import loyalty_settings

    try:
        site_url = loyalty_settings.SITE_URL
    except Exception:  # an invalid LOYALTY setting is reported as loyalty.E001  # noqa: BLE001
        return []
    host = urlsplit(site_url or "").hostname or ""
    if host in ("", "localhost", "127.0.0.1", "::1") or host.endswith(".localhost"):
        return [
            Warning(
                f'settings.LOYALTY["SITE_URL"] is {site_url!r}: links in emails (unsubscribe, tracking) would '
                "point at it.",
                hint='Set LOYALTY["SITE_URL"] to the shop\'s public address, e.g. "https://shop.example.com".',
                id="loyalty.W003",
            )
        ]
    return []
