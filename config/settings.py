"""Settings of the demo shop project, read from the environment with django-environ.

Safe by default: ``DEBUG`` is off unless the environment turns it on (``scripts/demo`` and the
tests do), and without ``DEBUG`` there is no secret key default: ``SECRET_KEY`` must be set or
the project refuses to start. Everything else has a default that runs on a fresh machine
(SQLite, a bundled broker started by ``scripts/demo``); ``DATABASE_URL`` and ``REDIS_URL`` switch
to PostgreSQL and Redis (and ``REDIS_URL`` also holds the shared cache). The variables of a
production deployment are listed in docs/install.md.
"""

import os
import secrets
from pathlib import Path

import django
import environ
from django.core.exceptions import ImproperlyConfigured

from loyalty.schedules import beat_schedule

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _development_secret_key() -> str:
    """With DEBUG on and no SECRET_KEY: a random key made once for this checkout (var/secret_key),
    so the demo's web server and worker sign links alike and nobody else knows the key."""
    path = VAR_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY to a long random value, e.g. "
            "SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DEBUG=1 for a local development run (docs/install.md)."
        )
    SECRET_KEY = _development_secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

# HTTPS: on by default without DEBUG (docs/install.md). Behind a proxy that ends TLS, set
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO so Django knows the request was secure.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env("SECURE_PROXY_SSL_HEADER", default=""):
    SECURE_PROXY_SSL_HEADER = (env("SECURE_PROXY_SSL_HEADER"), "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Above django.contrib.admin: loyalty's admin/index.html adds the dashboard card to the admin home.
    "loyalty",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_beat",
    # The loyalty REST API (loyalty/api/) and its OpenAPI schema; Swagger UI served locally (sidecar).
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The visitor's language: the set_language cookie, else Accept-Language (after sessions, before common).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.shop",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so a Celery worker thread in the tests sees committed rows;
    # one per test run, so parallel runs never share it.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test-{os.getpid()}.sqlite3")
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    # Take the write lock when a transaction starts: a worker that read first and then writes
    # would otherwise fail at once with "database is locked" instead of waiting its turn.
    if django.VERSION >= (5, 1):
        DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    else:  # Django 4.2 has no transaction_mode: the same through a thin backend.
        DATABASES["default"]["ENGINE"] = "config.sqlite_immediate"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "shop:login"
LOGIN_REDIRECT_URL = "shop:account"
LOGOUT_REDIRECT_URL = "shop:product_list"

LANGUAGE_CODE = "en"
# The shop speaks these; loyalty/locale, shop/locale and locale/ (project templates) hold the catalogues.
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("it", "Italiano")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="Europe/Berlin")
USE_I18N = True
# Dates and numbers are always localised (Django 5: no USE_L10N); shop_tags.money groups thousands itself.
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="shop@example.com")

# --- Shop -------------------------------------------------------------------------------
SHOP_NAME = env("SHOP_NAME", default="Bottega Verde")
SHOP_CURRENCY = env("SHOP_CURRENCY", default="EUR")

# --- Cache ------------------------------------------------------------------------------
# Throttles (the API's redeem limit) count in the cache: it must be shared by every web process.
# CACHE_URL, else REDIS_URL: Redis; neither: a per-process memory cache, which the check
# loyalty.W004 reports when DEBUG is off.
REDIS_URL = env("REDIS_URL", default="")
CACHE_URL = env("CACHE_URL", default=REDIS_URL)
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="shop"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A request never waits on the broker for more than about a second: loyalty's emails are
# outbox rows, and the after-commit nudge to the workers gives up fast (the beat sweep sends
# within a minute). docs/install.md explains each value.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=1.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=1.0),
    "socket_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=1.0),
    "retry_on_timeout": False,
    "max_retries": 0,  # a publish that cannot connect gives up at once (kombu would wait 2 s and retry)
    # A task a dead worker held goes back to the queue after this; longer than any loyalty
    # task runs (the longest, a nightly health chunk of 250,000 members, takes about a minute).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900),
}
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TIMEZONE = TIME_ZONE
# Schedules are data: beat reads them from the database (django-celery-beat), so staff can
# edit them in admin. The entries below are copied there when beat starts.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = USE_TZ
# Every loyalty beat task with its default time (loyalty/schedules.py). Campaigns have their
# own schedules (one periodic task per campaign, editable in admin).
CELERY_BEAT_SCHEDULE = beat_schedule()

# --- Loyalty ----------------------------------------------------------------------------
LOYALTY = {
    "ADAPTER": "config.loyalty_adapter.ShopAdapter",
    # Absolute links in emails (unsubscribe, tracking): where customers reach the shop.
    "SITE_URL": env("SITE_URL", default="http://localhost:8000"),
    "SHOP_NAME": SHOP_NAME,
}

# --- REST API (loyalty/api/, docs/api.md) -------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous request gets 401 with "WWW-Authenticate: Token".
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "loyalty.api.exceptions.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"loyalty_redeem": env("LOYALTY_REDEEM_RATE", default="10/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty API",
    "DESCRIPTION": "Customer and staff endpoints of the loyalty engine (docs/api.md).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "loyalty": {"handlers": ["console"], "level": env("LOYALTY_LOG_LEVEL", default="INFO")},
    },
}
