"""The import rules of shared/ARCHITECTURE.md, read from the source with ``ast``: imports
flow one way, the rewriter knows nothing of the rest, the storage drivers nothing outside
``storage/``, nothing but the entry point holds the middleware, and the responder only
carries out plans."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "consentgate"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    #: At module level and at run time: what Python executes on ``import importer``.
    module_level: bool
    #: Under ``if TYPE_CHECKING:`` (annotations only).
    type_only: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = importer.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    if node.module is None:  # from . import x: x may be a module
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Reader:
    """The imports of one module, each with where it sits (module level, type-only)."""

    def __init__(self, importer: str, is_package: bool) -> None:
        self.importer = importer
        self.is_package = is_package
        self.found: list[Import] = []

    def children(self, node: ast.AST, module_level: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    self.node(stmt, module_level, True)
                for stmt in child.orelse:
                    self.node(stmt, module_level, type_only)
                continue
            functions = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            self.node(child, module_level and not isinstance(child, functions), type_only)

    def node(self, node: ast.AST, module_level: bool, type_only: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = _resolve(self.importer, self.is_package, node)
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                run_time = module_level and not type_only
                self.found.append(Import(self.importer, name, run_time, type_only))
        self.children(node, module_level, type_only)


def _imports() -> list[Import]:
    found: list[Import] = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        reader = _Reader(_module_name(path), path.name == "__init__.py")
        reader.children(ast.parse(path.read_text(encoding="utf-8")), True, False)
        found.extend(reader.found)
    return found


IMPORTS = _imports()
MODULES = {_module_name(p) for p in (SRC / PACKAGE).rglob("*.py")}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_imports_are_read_from_the_source() -> None:
    # The reader itself: it sees relative, module-level, function-level and type-only imports.
    by_pair = {(i.importer, i.imported): i for i in IMPORTS}
    assert by_pair[("consentgate.rewrite.rewriter", "consentgate.rewrite.treemodel")].module_level
    config_rewrite = by_pair[("consentgate.config._wall", "consentgate.rewrite")]
    assert not config_rewrite.module_level and not config_rewrite.type_only
    assert by_pair[("consentgate.articles", "consentgate.wall.settings")].type_only
    assert len(MODULES) > 50


def test_imports_rewrite_knows_nothing_of_the_rest() -> None:
    outside = sorted(
        (i.importer, i.imported)
        for i in IMPORTS
        if _inside(i.importer, "consentgate.rewrite")
        and not _inside(i.imported, "consentgate.rewrite")
    )
    assert outside == []


@pytest.mark.parametrize("driver", ["sqlite", "postgres", "redis", "breaker"])
def test_imports_storage_drivers_stay_inside_storage(driver: str) -> None:
    module = f"consentgate.storage.{driver}"
    outside = sorted(
        i.imported
        for i in IMPORTS
        if i.importer == module
        and not i.type_only
        and not _inside(i.imported, "consentgate.storage")
    )
    assert outside == []


_DRIVERS = ("consentgate.storage.sqlite", "consentgate.storage.postgres")
# The layer written once for every SQL database: no driver, no database library.
_BELOW_DRIVERS = (
    "consentgate.storage.ports",
    "consentgate.storage.base",
    "consentgate.storage.records",
)


def test_imports_sql_layer_knows_no_driver() -> None:
    layer = {m for m in MODULES if _inside(m, "consentgate.storage.sql")} | set(_BELOW_DRIVERS)
    assert {"consentgate.storage.sql.store", "consentgate.storage.sql.queries"} <= layer
    found = sorted(
        (i.importer, i.imported)
        for i in IMPORTS
        if i.importer in layer
        and not i.type_only
        and (i.imported in _DRIVERS or i.imported == "consentgate.storage.urls")
    )
    assert found == []


def test_imports_only_the_url_opener_chooses_a_driver() -> None:
    # Drivers do not know each other, and nothing below storage/urls picks one: the
    # storage_from_url cycle (base importing both drivers) stays gone.
    storage_importers = sorted(
        {
            i.importer
            for i in IMPORTS
            if i.imported in _DRIVERS
            and _inside(i.importer, "consentgate.storage")
            and i.importer != "consentgate.storage"
            and not i.type_only
        }
    )
    assert storage_importers == ["consentgate.storage.urls"]


def test_imports_nothing_holds_the_middleware() -> None:
    # The composition root builds every service and gives each what it needs: no module,
    # not even for its annotations, knows the middleware but the package's entry point.
    holders = sorted(i.importer for i in IMPORTS if i.imported == "consentgate.middleware")
    assert holders == ["consentgate"]


def test_imports_responder_knows_no_domain_package() -> None:
    # The responder carries out a plan (plan.py) with the rewriter; why the plan says what
    # it says (consent, the wall, our pages, accounts) is the planner's business.
    domain = (
        "consentgate.consent",
        "consentgate.wall",
        "consentgate.web",
        "consentgate.accounts",
        "consentgate.articles",
        "consentgate.pipeline",
        "consentgate.planner",
        "consentgate.config",
    )
    reached = sorted(
        i.imported
        for i in IMPORTS
        if i.importer in ("consentgate.responder", "consentgate.plan")
        and any(_inside(i.imported, d) for d in domain)
    )
    assert reached == []


def test_imports_have_no_cycle_at_module_level() -> None:
    # Python executes these on import: a cycle among them breaks depending on which module
    # is imported first. (Function-level imports that close a circle are listed in the
    # architecture notes as debts, not checked here.)
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        # (A package's module importing its own package is how packages work.)
        if i.module_level and i.imported in MODULES and not _inside(i.importer, i.imported):
            graph[i.importer].add(i.imported)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_imports_account_parts_hold_no_parent() -> None:
    # The mail flows and the account page receive the account endpoints' kit
    # (web/account_kit.py), not the endpoints themselves: no part of them, not even for
    # its annotations or inside a function, knows web/accounts.py, which builds them.
    holders = sorted(
        i.importer
        for i in IMPORTS
        if i.imported == "consentgate.web.accounts" and i.importer.startswith("consentgate.web")
    )
    assert holders == []
