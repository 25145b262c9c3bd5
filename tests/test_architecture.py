"""The loyalty app stays drop-in: it never imports the demo shop."""

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
