"""The loyalty app stays drop-in (it never imports the demo shop, nor the shop loyalty), and its
layers depend one way: models and the health maths on nothing above them, services on no admin,
views, API or receivers; only the outbox and the tasks module hand work to Celery."""

import ast
from pathlib import Path

LOYALTY = Path(__file__).resolve().parent.parent / "loyalty"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_loyalty_module_imports_shop_or_the_project():
    offenders = {
        str(path.relative_to(LOYALTY.parent)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in {"shop", "config"}
        )
        for path in LOYALTY.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_reads_real_files():
    assert len(list(LOYALTY.rglob("*.py"))) > 10


def test_the_demo_shop_never_imports_loyalty():
    """The other direction: the shop knows nothing of loyalty; only the project's adapter joins them."""
    shop = Path(__file__).resolve().parent.parent / "shop"
    offenders = {
        str(path.relative_to(shop.parent)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "loyalty")
        for path in shop.rglob("*.py")
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


# --- layering inside loyalty ---------------------------------------------------------------------
# Dependencies point one way: admin, views, api, receivers and tasks call services; services call
# models; models and the pure health maths call neither. Celery gets work from two places only.

ROOT = LOYALTY.parent


def absolute_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved (``from .. import services`` in
    loyalty/admin/x.py gives ``loyalty.services``); imports inside functions count too."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # ``from . import tasks``
    return names


def _offenders(paths, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        bad = sorted(m for m in absolute_imports(path) if any(m == f or m.startswith(f"{f}.") for f in forbidden))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_models_and_the_health_maths_import_no_services():
    paths = [*(LOYALTY / "models").rglob("*.py"), *(LOYALTY / "health").rglob("*.py")]
    assert _offenders(paths, ("loyalty.services", "loyalty.selectors", "loyalty.admin", "loyalty.tasks")) == {}


def test_services_import_no_admin_views_api_or_receivers():
    forbidden = ("loyalty.admin", "loyalty.views", "loyalty.api", "loyalty.receivers")
    assert _offenders((LOYALTY / "services").rglob("*.py"), forbidden) == {}


def _may_hand_work_to_celery(path: Path) -> bool:
    relative = path.relative_to(LOYALTY).as_posix()
    return relative == "tasks.py" or relative.startswith("services/outbox")


def test_only_the_outbox_and_the_tasks_module_hand_work_to_celery():
    """The outbox is the one hand-off (a row first, then a nudge); everything else writes rows."""
    others = [path for path in LOYALTY.rglob("*.py") if not _may_hand_work_to_celery(path)]
    assert _offenders(others, ("loyalty.tasks",)) == {}
    calls = {}
    for path in others:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in {"delay", "apply_async", "send_task", "signature"}:
                    calls.setdefault(str(path.relative_to(ROOT)), []).append(f"line {node.lineno}: .{node.func.attr}()")
    assert calls == {}


def test_the_layering_checks_see_relative_imports():
    """The checks above would pass vacuously if relative imports were not resolved."""
    assert "loyalty.services.outbox" in absolute_imports(LOYALTY / "services" / "campaigns" / "selection.py")
    assert "loyalty.tasks" in absolute_imports(LOYALTY / "services" / "outbox" / "queue.py")
    assert "loyalty.services" in absolute_imports(LOYALTY / "admin" / "members.py")
