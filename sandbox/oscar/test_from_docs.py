"""A django-oscar shop that is not ours gets loyalty by following docs/oscar.md, and only that.

The test starts a new Django project (``django-admin startproject frobshop``), makes it an
oscar shop as oscar's own "Building your own shop" does (``oscar_base.py``), then adds every
code block of docs/oscar.md marked ``<!-- sandbox: <path> -->`` (appended to the file when it
exists, created otherwise). It runs ``migrate`` and ``check`` in subprocesses and then
``scenario.py`` in the project: a real order through oscar's ``OrderCreator``, points, a
reward redeemed as an oscar voucher that oscar's ``Applicator`` applies, a cancellation, a
guest order, points used from oscar's basket page and taken off with oscar's own "Remove"
(back at once), then used again on an order placed through oscar's checkout views (then
cancelled: the points come back) and the account panel on oscar's profile page.

SQLite in the project directory; with ``DATABASE_URL`` set to PostgreSQL, a database of its
own named ``<name>_oscar_docs`` on that server (dropped and created by the test).
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from oscar_base import OSCAR_SETTINGS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DOC = REPO / "docs" / "oscar.md"
BLOCK = re.compile(r"<!-- sandbox: (?P<path>[^ ]+) -->\s*\n```[a-z]*\n(?P<code>.*?)\n```", re.S)

# What the test environment adds after the docs: where the database and the broker are.
ENVIRONMENT = """
# --- this test's environment (not from the docs) ---------------------------------------
import os
import environ as _environ

DATABASES = {"default": _environ.Env.db_url_config(os.environ["SANDBOX_DATABASE_URL"])}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # oscar's order confirmation
"""


def doc_blocks() -> list[tuple[str, str]]:
    blocks = [(m["path"], m["code"]) for m in BLOCK.finditer(DOC.read_text())]
    assert blocks, "docs/oscar.md has no <!-- sandbox: ... --> blocks"
    return blocks


def run(args, cwd, env, timeout=300):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}\n--- stdout\n{result.stdout[-6000:]}"
            f"\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture
def database_url(tmp_path):
    """SQLite in the project; on PostgreSQL (DATABASE_URL) a database of its own, dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'frobshop' / 'db.sqlite3'}"
        return
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_oscar_docs"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_blocks_are_marked_for_every_file_the_guide_asks_for():
    paths = [path for path, _code in doc_blocks()]
    assert {"frobshop/settings.py", "frobshop/urls.py", "frobshop/celery.py", "frobshop/__init__.py"} <= set(paths)
    assert "templates/oscar/customer/profile/profile.html" in paths
    assert "templates/oscar/basket/partials/basket_content.html" in paths  # "Use my points" in the basket


def test_an_oscar_shop_set_up_from_the_docs_awards_redeems_and_reverses(tmp_path, database_url):
    project = tmp_path / "frobshop"
    project.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # loyalty/ copied into the project, as install.md allows
        "SANDBOX_DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",  # the docs' settings read it from the environment
    }
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest-django's; manage.py sets frobshop.settings

    # 1. A new project, made an oscar shop as in oscar's "Building your own shop".
    run([sys.executable, "-m", "django", "startproject", "frobshop", "."], project, env)
    settings = project / "frobshop" / "settings.py"
    settings.write_text(settings.read_text() + OSCAR_SETTINGS)
    urls = project / "frobshop" / "urls.py"
    urls.write_text(
        "from django.apps import apps\n"
        "from django.contrib import admin\n"
        "from django.urls import include, path\n\n"
        "urlpatterns = [\n"
        '    path("i18n/", include("django.conf.urls.i18n")),\n'
        '    path("admin/", admin.site.urls),\n'
        '    path("", include(apps.get_app_config("oscar").urls[0])),\n'
        "]\n"
    )

    # 2. Everything docs/oscar.md says to add, in the order it says it.
    for relative, code in doc_blocks():
        target = project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        before = target.read_text() + "\n" if target.exists() else ""
        target.write_text(before + code + "\n")
    settings.write_text(settings.read_text() + ENVIRONMENT)

    # 3. migrate and check, as the guide's steps 4 and 10 say.
    run([sys.executable, "manage.py", "migrate", "-v", "0"], project, env)
    checked = run([sys.executable, "manage.py", "check"], project, env)
    assert "loyalty." not in checked.stdout + checked.stderr

    # 4. A customer's life in that shop, through oscar's code (scenario.py asserts every step).
    (project / "scenario.py").write_text((HERE / "scenario.py").read_text())
    result = run([sys.executable, "scenario.py"], project, env)
    assert "SCENARIO OK" in result.stdout, result.stdout
    print(result.stdout)
