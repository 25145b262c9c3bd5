"""Settings of the committed oscar project the adapter's unit tests run in (pytest-django).

An oscar shop as in ``oscar_base.py`` with loyalty added as docs/oscar.md says. The test that
follows the docs to the letter builds its own project instead (``test_from_docs.py``).
"""

import os
from pathlib import Path

from oscar_base import OSCAR_SETTINGS

BASE_DIR = Path(__file__).resolve().parent
# Long enough for the loyalty.E008 check; used by these tests only.
SECRET_KEY = "oscar-sandbox-tests-only-" + "k3y" * 12
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
TIME_ZONE = "Europe/London"
LANGUAGE_CODE = "en-gb"
STATIC_URL = "static/"
ROOT_URLCONF = "oscar_urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

exec(OSCAR_SETTINGS)  # INSTALLED_APPS, MIDDLEWARE, TEMPLATES, ... of oscar's guide

if os.environ.get("DATABASE_URL"):
    import environ

    DATABASES = {"default": environ.Env.db_url_config(os.environ["DATABASE_URL"])}
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_oscar_unit"}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

# --- loyalty, as docs/oscar.md adds it -------------------------------------------------------
INSTALLED_APPS = ["loyalty", *INSTALLED_APPS]  # noqa: F821 (set by exec above)
LOYALTY = {
    "ADAPTER": "loyalty.adapters.oscar.OscarAdapter",
    "BASE_TEMPLATE": "oscar/layout.html",
}
CELERY_BROKER_URL = "memory://"
CELERY_TASK_IGNORE_RESULT = True
