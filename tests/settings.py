"""Settings of the test run: the project's own settings (config/settings.py), with what the
tests need said explicitly rather than left to defaults.

- A secret key: random for each run (a subprocess a test starts inherits it through the
  environment). The project has no default outside DEBUG.
- Plain HTTP: the test client and the live server speak http://, so no HTTPS redirect and no
  secure-only cookies (production keeps the defaults, docs/install.md).
- Throttle counters in a memory cache of each test process: parallel test processes share one
  Redis, and tests clear the cache between them.
"""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from config.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
