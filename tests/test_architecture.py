"""The shape of the house (STYLE.md, "The shape we want"), checked from the code's imports:
front doors hold no SQL, imports point down, no package imports itself back in a loop."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exchange"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _imports(path: Path, module: str) -> set[str]:
    """Every module `path` imports (absolute names), type-checking-only imports included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = dict(_modules())
IMPORTS = {name: _imports(path, name) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    """The package (exchange.<x>) or top-level module a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2])


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if m.startswith(("exchange.api", "exchange.cli")))
)
def test_front_doors_hold_no_sql_and_no_models(module: str) -> None:
    """`api/` and `cli/` are front doors only: parse, call a use case, answer (no
    SQLAlchemy, not even its exceptions: `db.DatabaseError` names a failed database)."""
    forbidden = sorted(
        i
        for i in IMPORTS[module]
        if i == "sqlalchemy" or i.startswith("sqlalchemy.") or ".models" in i
    )
    assert forbidden == []


def test_domain_packages_never_import_flask_or_the_front_doors() -> None:
    # The demo drives the API as a client does (through the app's test client).
    front_doors = (
        "exchange.api",
        "exchange.cli",
        "exchange.app",
        "exchange.server",
        "exchange.__main__",
        "exchange.demo",
    )
    offenders = {
        module: sorted(
            i for i in imports if i.split(".")[0] == "flask" or i.startswith(front_doors)
        )
        for module, imports in IMPORTS.items()
        if not module.startswith(front_doors)
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_no_package_cycles() -> None:
    """Packages (and top-level modules) of `exchange` import each other without loops."""
    graph: dict[str, set[str]] = {}
    for module, imports in IMPORTS.items():
        source = _unit(module)
        targets = {
            _unit(i)
            for i in imports
            if i.startswith("exchange.") and _unit(i) in {_unit(m) for m in MODULES}
        }
        graph.setdefault(source, set()).update(t for t in targets if t != source)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
