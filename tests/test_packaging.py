"""The `loyalty` app builds as its own wheel, django-loyalty-engine, with its data files.

The wheel is built offline with the venv's setuptools (`pip wheel --no-build-isolation`) from a
copy of the files it needs in a temporary directory, so parallel runs never share `build/` or
`*.egg-info` and nothing is left in the repository.
"""

import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LOYALTY = ROOT / "loyalty"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(LOYALTY, src / "loyalty", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(out)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


def repo_files(folder: str) -> list[str]:
    base = LOYALTY / folder
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in base.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def test_wheel_has_the_package_and_every_migration(wheel):
    names = set(wheel.namelist())
    assert "loyalty/__init__.py" in names
    migrations = repo_files("migrations")
    assert "loyalty/migrations/0001_initial.py" in migrations
    assert set(migrations) <= names, sorted(set(migrations) - names)


def test_wheel_has_templates_static_and_translations(wheel):
    names = set(wheel.namelist())
    for required in (
        "loyalty/templates/loyalty/account/panel.html",
        "loyalty/templates/loyalty/emails/base.html",
        "loyalty/locale/de/LC_MESSAGES/django.mo",
        "loyalty/locale/de/LC_MESSAGES/django.po",
        "loyalty/static/loyalty/loyalty.css",
    ):
        assert required in names
    for folder in ("templates", "static", "locale"):
        files = repo_files(folder)
        assert files, folder
        assert set(files) <= names, sorted(set(files) - names)


def test_wheel_has_only_the_loyalty_app(wheel):
    top_level = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert top_level == {"loyalty", "django_loyalty_engine-0.1.0.dist-info"}
    for excluded in ("shop/", "config/", "tests/", "bench/"):
        assert not any(name.startswith(excluded) for name in wheel.namelist()), excluded


def test_wheel_metadata(wheel):
    metadata = email.message_from_bytes(wheel.read("django_loyalty_engine-0.1.0.dist-info/METADATA"))
    assert metadata["Name"] == "django-loyalty-engine"
    assert metadata["Version"] == "0.1.0"
    assert metadata["Requires-Python"] == ">=3.10"
    requires = metadata.get_all("Requires-Dist")
    assert "Django>=4.2" in requires
    assert any(r.startswith("django-celery-beat") and 'extra == "beat"' in r for r in requires)
    # A Redis broker needs its client: the [redis] extra, and [oscar] for docs/oscar.md's redis:// broker.
    for extra in ("redis", "oscar"):
        assert any(r.startswith("celery[redis]") and f'extra == "{extra}"' in r for r in requires), extra


def test_migrations_do_not_need_django_celery_beat():
    # django-celery-beat is an optional extra: loyalty's migrations must run without it.
    for path in (LOYALTY / "migrations").glob("*.py"):
        assert "django_celery_beat" not in path.read_text(), path.name


def test_pyproject_leaves_ruff_and_pytest_to_their_own_files():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {})
    assert "ruff" not in tool
    assert "pytest" not in tool
