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
    reward_codes = loyalty_settings.REWARD_CODES
    if reward_codes not in ("adapter", "loyalty"):
        return [
            Error(
                f'settings.LOYALTY["REWARD_CODES"] = {reward_codes!r}: use "adapter" (the shop makes reward codes) '
                'or "loyalty" (loyalty\'s own codes, for shops without a discount model).',
                id="loyalty.E005",
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


@register()
def check_reward_codes(app_configs=None, **kwargs):
    """Rewards need someone to make their codes: the adapter's ``issue_discount``, or loyalty.
    Oscar's basket takes only the oscar adapter's own vouchers."""
    from .adapters.base import BaseAdapter
    from .conf import loyalty_settings

    try:
        adapter, reward_codes = loyalty_settings.ADAPTER, loyalty_settings.REWARD_CODES
    except Exception:  # reported by check_settings (loyalty.E001)  # noqa: BLE001
        return []
    if not (isinstance(adapter, type) and issubclass(adapter, BaseAdapter)):
        return []
    if reward_codes == "loyalty":
        from .adapters.oscar import OscarAdapter  # imports nothing of oscar's

        if issubclass(adapter, OscarAdapter):
            return [
                Error(
                    f'LOYALTY["ADAPTER"] is {adapter.__name__} (django-oscar) and LOYALTY["REWARD_CODES"] is '
                    '"loyalty": "Use my points" in oscar\'s basket fails with a ValueError (it puts the adapter\'s '
                    "own oscar voucher on the basket, and loyalty's own codes are not oscar vouchers), and oscar's "
                    "voucher form does not know loyalty's reward codes either.",
                    hint='Remove "REWARD_CODES" from LOYALTY in settings.py (the default, "adapter", makes oscar '
                    "vouchers for rewards and for points used in the basket; docs/oscar.md).",
                    id="loyalty.E009",
                )
            ]
        return []
    if reward_codes != "adapter":
        return []
    if adapter.issue_discount is BaseAdapter.issue_discount:
        return [
            Warning(
                f'{adapter.__name__} has no issue_discount() and LOYALTY["REWARD_CODES"] is "adapter": members '
                "cannot redeem rewards.",
                hint='A shop without a discount model: add "REWARD_CODES": "loyalty" to LOYALTY in settings.py and '
                "take the codes at checkout with code_quote/code_consume/code_release (docs/reward-codes.md). "
                "A shop with one: implement issue_discount in your adapter (docs/adapters.md).",
                id="loyalty.W007",
            )
        ]
    return []


#: Secret keys that were published (the demo project's former default): anyone can sign with them.
PUBLIC_SECRET_KEYS = frozenset({"demo-only-insecure-key-change-me-in-production-0123456789"})
#: Django's own recommendation (``security.W009``): at least 50 characters, at least 5 different ones.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


@register(Tags.security)
def check_secret_key(app_configs=None, **kwargs):
    """Every loyalty link (unsubscribe, survey, guest claim, tracking) is signed with SECRET_KEY:
    a known or short key lets anyone forge them. An error on every run, not only with --deploy."""
    from django.conf import settings

    key = str(getattr(settings, "SECRET_KEY", "") or "")
    if key in PUBLIC_SECRET_KEYS:
        return [
            Error(
                "SECRET_KEY is the demo project's published key: anyone can forge loyalty's signed links "
                "(unsubscribe, survey, guest claim) with it.",
                hint="Set SECRET_KEY to a new random value (docs/install.md).",
                id="loyalty.E007",
            )
        ]
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return [
            Error(
                f"SECRET_KEY has {len(key)} characters ({len(set(key))} different): loyalty's signed links need "
                f"at least {SECRET_KEY_MIN_LENGTH} characters and {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones.",
                hint="Set SECRET_KEY to a long random value, e.g. secrets.token_urlsafe(50) (docs/install.md).",
                id="loyalty.E008",
            )
        ]
    return []


# Broker URL schemes and the client library each needs (the worker dies on start without it).
BROKER_CLIENTS = {
    "redis": ("redis", '"django-loyalty-engine[redis]" (or "celery[redis]")'),
    "rediss": ("redis", '"django-loyalty-engine[redis]" (or "celery[redis]")'),
    "redis+socket": ("redis", '"django-loyalty-engine[redis]" (or "celery[redis]")'),
    "sentinel": ("redis", '"django-loyalty-engine[redis]" (or "celery[redis]")'),
    "sqs": ("boto3", '"celery[sqs]"'),
    "amqp": ("amqp", '"celery"'),
    "pyamqp": ("amqp", '"celery"'),
    "amqps": ("amqp", '"celery"'),
}
CELERY_HINT = (
    "Create the Celery app (celery.py, docs/install.md#4-celery) and import it where Django starts: "
    "in your project package's __init__.py, or at the end of settings.py in a flat project."
)


@register()
def check_celery(app_configs=None, **kwargs):
    """Loyalty's emails and tasks go through Celery: a broker nobody configured loses them silently."""
    from celery import current_app
    from django.conf import settings

    configured = getattr(settings, "CELERY_BROKER_URL", None) or getattr(settings, "BROKER_URL", None)
    return celery_problems(current_app._get_current_object(), settings_broker_url=configured)


def celery_problems(app, *, settings_broker_url=None) -> list:
    """What :func:`check_celery` reports for the Celery app ``app`` (the current one)."""
    from importlib import import_module
    from urllib.parse import urlsplit

    if app.conf.task_always_eager:
        return []  # tasks run in the calling process: no broker involved
    broker = app.conf.broker_url
    if app.main == "default" and not broker:  # Celery's fallback app: the project created none
        if settings_broker_url:
            message = (
                f"settings.CELERY_BROKER_URL is {settings_broker_url!r}, but no Celery app reads it: loyalty's "
                "tasks (member emails, campaigns, the health refresh) would go to Celery's default broker "
                "amqp://localhost and be lost."
            )
        else:
            message = (
                "No Celery app and no broker are configured: loyalty's tasks (member emails, campaigns, the "
                "health refresh) would go to Celery's default broker amqp://localhost and be lost."
            )
        return [
            Warning(
                message,
                hint=f'Add CELERY_BROKER_URL (e.g. "redis://localhost:6379/0") to settings.py. {CELERY_HINT}',
                id="loyalty.W004",
            )
        ]
    if not broker:
        return [
            Warning(
                f"The Celery app {app.main!r} has no broker URL: loyalty's tasks (member emails, campaigns, the "
                "health refresh) would go to Celery's default broker amqp://localhost and be lost.",
                hint='Add CELERY_BROKER_URL (e.g. "redis://localhost:6379/0") to settings.py; the app reads it '
                'with config_from_object("django.conf:settings", namespace="CELERY").',
                id="loyalty.W004",
            )
        ]
    first = (broker[0] if isinstance(broker, (list, tuple)) else str(broker)).split(";")[0]
    scheme = urlsplit(first).scheme.lower()
    if scheme in BROKER_CLIENTS:
        module, package = BROKER_CLIENTS[scheme]
        try:
            import_module(module)
        except ImportError:
            return [
                Error(
                    f"The Celery broker is {scheme}://, but its client library {module!r} is not installed: "
                    "workers die on start and loyalty's tasks are never run.",
                    hint=f"pip install {package}, and add it to your requirements file.",
                    id="loyalty.E006",
                )
            ]
    return []


@register(Tags.templates)
def check_base_template(app_configs=None, **kwargs):
    """Loyalty's own pages (redeem, preferences, how it works) extend the shop's layout."""
    from django.template import TemplateDoesNotExist, TemplateSyntaxError
    from django.template.loader import get_template

    from .conf import loyalty_settings

    try:
        name = loyalty_settings.BASE_TEMPLATE
    except Exception:  # reported by check_settings (loyalty.E001)  # noqa: BLE001
        return []
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return [
            Warning(
                f'LOYALTY["BASE_TEMPLATE"] = {name!r} cannot be loaded: loyalty\'s pages (redeem a reward, email '
                "preferences, how the programme works) extend it and fail with TemplateDoesNotExist.",
                hint=f'Set "BASE_TEMPLATE" in LOYALTY in settings.py to your layout (e.g. "shop/base.html"), or '
                f'create {name} with a {{% block content %}} in a directory of TEMPLATES[0]["DIRS"].',
                id="loyalty.W005",
            )
        ]
    except TemplateSyntaxError as exc:
        return [
            Warning(
                f'LOYALTY["BASE_TEMPLATE"] = {name!r} does not compile: {exc}',
                hint="Fix the template; loyalty's pages extend it.",
                id="loyalty.W005",
            )
        ]
    return []


@register(Tags.staticfiles)
def check_static_files(app_configs=None, **kwargs):
    """The account panel links its stylesheet with {% static %}: without static files it is unstyled."""
    from django.apps import apps
    from django.conf import settings

    return static_problems(
        staticfiles_installed=apps.is_installed("django.contrib.staticfiles"),
        static_url=getattr(settings, "STATIC_URL", None),
    )


def static_problems(*, staticfiles_installed: bool, static_url: str | None) -> list:
    if not staticfiles_installed:
        return [
            Warning(
                "django.contrib.staticfiles is not installed: nothing serves or collects loyalty/loyalty.css, so "
                "the account panel shows unstyled.",
                hint='Add "django.contrib.staticfiles" to INSTALLED_APPS and STATIC_URL = "static/" to settings.py '
                "(and run collectstatic when you deploy).",
                id="loyalty.W006",
            )
        ]
    if not static_url:
        return [
            Warning(
                "STATIC_URL is not set: the account panel cannot link loyalty/loyalty.css.",
                hint='Add STATIC_URL = "static/" to settings.py.',
                id="loyalty.W006",
            )
        ]
    return []


#: Cache backends whose counts live in one process (or nowhere): each web process throttles alone.
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches)
def check_throttle_cache(app_configs=None, **kwargs):
    """The API's redeem throttle counts in the default cache: per process, N workers allow N times the rate."""
    from django.conf import settings

    if settings.DEBUG:
        return []
    backend = (getattr(settings, "CACHES", {}) or {}).get("default", {}).get("BACKEND", "")
    if backend in PER_PROCESS_CACHES:
        return [
            Warning(
                f"The default cache is {backend.rsplit('.', 1)[-1]}: each web process counts the API's throttles "
                "(the redeem limit) on its own, so several processes allow several times the rate.",
                hint="Use a shared cache (Redis: set REDIS_URL or CACHE_URL in the demo project; docs/install.md).",
                id="loyalty.W008",
            )
        ]
    return []
