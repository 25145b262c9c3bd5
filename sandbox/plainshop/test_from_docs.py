"""A plain Django shop that is not ours gets loyalty by following docs/install.md, and only that.

``shop_base/`` is the shop before loyalty: a flat project (settings.py next to manage.py) with
an app ``orders`` (its own ``Order``, signals with names unlike the demo's, refunds without ids,
no discount model). The test copies it, adds every code block of docs/install.md marked
``<!-- sandbox: <path> -->`` (appended to the file when it exists, created otherwise), runs
``migrate`` and ``check`` in subprocesses, then ``scenario.py`` in the project: orders through
the shop's own checkout, refunds, a reward redeemed on loyalty's page, and the code taken at the
shop's checkout. Before the Celery blocks, ``check`` must warn that tasks would be lost.

SQLite in the project directory; with ``DATABASE_URL`` set to PostgreSQL, a database of its own
named ``<name>_plain_docs`` on that server (dropped and created by the test).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DOC = REPO / "docs" / "install.md"
BLOCK = re.compile(r"<!-- sandbox: (?P<path>[^ ]+) -->\s*\n```[a-z]*\n(?P<code>.*?)\n```", re.S)

# What the test environment adds after the docs: where the database is.
ENVIRONMENT = """
# --- this test's environment (not from the docs) ---------------------------------------
import environ as _environ  # noqa: E402

DATABASES = {"default": _environ.Env.db_url_config(os.environ["SANDBOX_DATABASE_URL"])}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
"""


def doc_blocks() -> list[tuple[str, str]]:
    blocks = [(m["path"], m["code"]) for m in BLOCK.finditer(DOC.read_text())]
    assert blocks, "docs/install.md has no <!-- sandbox: ... --> blocks"
    return blocks


def run(args, cwd, env, timeout=300):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}\n--- stdout\n{result.stdout[-6000:]}"
            f"\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def add_block(project: Path, relative: str, code: str) -> None:
    target = project / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    before = target.read_text() + "\n" if target.exists() else ""
    target.write_text(before + code + "\n")


@pytest.fixture
def database_url(tmp_path):
    """SQLite in the project; on PostgreSQL (DATABASE_URL) a database of its own, dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'plainshop' / 'db.sqlite3'}"
        return
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_plain_docs"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_blocks_are_marked_for_every_file_the_guide_asks_for():
    paths = [path for path, _code in doc_blocks()]
    assert {"settings.py", "urls.py", "celery_app.py", "orders/loyalty_adapter.py", "orders/checkout.py"} <= set(paths)
    assert "templates/account.html" in paths


def test_a_plain_shop_set_up_from_the_docs_earns_redeems_and_takes_the_code_at_its_checkout(tmp_path, database_url):
    project = tmp_path / "plainshop"
    shutil.copytree(HERE / "shop_base", project)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # loyalty/ copied into the project, as install.md allows
        "SANDBOX_DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",  # the docs' settings read it from the environment
    }
    for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "REDIS_URL"):
        env.pop(name, None)

    # 1. Every block of docs/install.md in its order; just before Celery is set up, the check
    #    must say that loyalty's tasks would go nowhere (the trap a shop owner fell into).
    blocks = doc_blocks()
    first_celery = next(i for i, (path, _code) in enumerate(blocks) if path == "celery_app.py")
    for relative, code in blocks[:first_celery]:
        add_block(project, relative, code)
    bare = {k: v for k, v in env.items() if k != "CELERY_BROKER_URL"}  # Celery's fallback app reads it too
    before = run([sys.executable, "manage.py", "check"], project, bare)
    assert "loyalty.W004" in before.stderr + before.stdout and "amqp://localhost" in before.stderr + before.stdout
    for relative, code in blocks[first_celery:]:
        add_block(project, relative, code)
    settings = project / "settings.py"
    settings.write_text(settings.read_text() + ENVIRONMENT)

    # 2. migrate and check, as the guide says: no loyalty message left.
    run([sys.executable, "manage.py", "migrate", "-v", "0"], project, env)
    checked = run([sys.executable, "manage.py", "check"], project, env)
    assert "loyalty." not in checked.stdout + checked.stderr, checked.stdout + checked.stderr

    # 3. A customer's life in that shop, through its own code (scenario.py asserts every step).
    (project / "scenario.py").write_text((HERE / "scenario.py").read_text())
    result = run([sys.executable, "scenario.py"], project, env)
    assert "SCENARIO OK" in result.stdout, result.stdout
    print(result.stdout)
