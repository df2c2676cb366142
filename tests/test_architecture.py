"""The boundaries the tree promises, checked on the source (import statements, read with ast).

- ``adapters`` imports neither web3 nor FastAPI: department formats know nothing of chain or HTTP.
- Only ``ledger_api.chain`` speaks to the chain (web3, eth-*, solc).
- Only ``ledger_api.gateway`` and the CLI that starts it import the web framework.
- Domain code never imports the web layer: only ``ledger_api.gateway`` and the CLI import it.
- The auditor's verifier reads chain and storage only, never the gateway's index.
- No import cycles between modules, counting imports inside functions: a late import hides a cycle, it
  does not break it (the two modules still cannot be understood, or moved, one without the other).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("ledger_api", "adapters")
CHAIN_LIBRARIES = ("web3", "eth_account", "eth_abi", "eth_utils", "eth_keys", "eth_typing", "hexbytes", "solcx")
WEB_LIBRARIES = ("fastapi", "starlette", "uvicorn")
INDEX_MODULES = ("ledger_api.index", "sqlmodel", "sqlalchemy")


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


MODULE_NAMES = {name for name, _ in modules()}


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` depends on the module pkg.sub when there is one, else on pkg itself.
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                found.add(qualified if qualified in MODULE_NAMES else node.module)
    return found


def uses(imported: set[str], libraries: tuple[str, ...]) -> set[str]:
    return {name for name in imported if name.split(".")[0] in libraries or name in libraries}


ALL_MODULES = dict(modules())


def test_the_scan_sees_the_tree() -> None:
    assert "ledger_api.chain.client" in ALL_MODULES
    assert "adapters.canonical" in ALL_MODULES


@pytest.mark.parametrize("module", [m for m in ALL_MODULES if m.startswith("adapters")])
def test_adapters_import_neither_web3_nor_fastapi(module: str) -> None:
    assert not uses(imports(ALL_MODULES[module]), (*CHAIN_LIBRARIES, *WEB_LIBRARIES, "ledger_api"))


@pytest.mark.parametrize("module", [m for m in ALL_MODULES if not m.startswith("ledger_api.chain")])
def test_only_the_chain_package_speaks_to_the_chain(module: str) -> None:
    assert not uses(imports(ALL_MODULES[module]), CHAIN_LIBRARIES)


@pytest.mark.parametrize(
    "module", [m for m in ALL_MODULES if not m.startswith(("ledger_api.gateway", "ledger_api.cli"))]
)
def test_only_the_gateway_imports_the_web_framework(module: str) -> None:
    assert not uses(imports(ALL_MODULES[module]), WEB_LIBRARIES)


@pytest.mark.parametrize(
    "module", [m for m in ALL_MODULES if not m.startswith(("ledger_api.gateway", "ledger_api.cli"))]
)
def test_domain_code_never_imports_the_gateway(module: str) -> None:
    # Top-level or inside a function: either way the domain would depend on the web layer.
    assert not {name for name in imports(ALL_MODULES[module]) if name.split(".")[:2] == ["ledger_api", "gateway"]}


#: The one module of the auditor's package allowed to open the index: the opt-in cross-check that names
#: edited index rows (``ledger audit verify --check-index``); the index is never evidence.
AUDIT_INDEX_CHECK = "ledger_api.audit.index_check"
VERIFIER_MODULES = [
    m
    for m in ALL_MODULES
    if m.startswith(("ledger_api.accesslog.audit", "ledger_api.audit")) and m != AUDIT_INDEX_CHECK
]


def reachable(module: str) -> set[str]:
    """Every ``ledger_api``/``adapters`` module ``module`` imports, directly or through others (any depth;
    imports inside functions too, since they run when the verifier does)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for name in imports(ALL_MODULES[current]):
            if name in ALL_MODULES and name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def test_the_verifier_rule_covers_the_audit_package() -> None:
    assert "ledger_api.audit.verifier" in VERIFIER_MODULES
    assert "ledger_api.audit.collect" in VERIFIER_MODULES
    assert AUDIT_INDEX_CHECK in ALL_MODULES


@pytest.mark.parametrize("module", VERIFIER_MODULES)
def test_the_auditors_verifier_never_reads_the_gateway_index(module: str) -> None:
    imported = imports(ALL_MODULES[module])
    assert not {name for name in imported if name.startswith(INDEX_MODULES)}
    # Nor through another module: no gateway code path (which writes the index) and no index import.
    through = {name for name in reachable(module) if name.startswith(("ledger_api.gateway", *INDEX_MODULES))}
    through |= {
        name for other in reachable(module) for name in imports(ALL_MODULES[other]) if name.startswith(INDEX_MODULES)
    }
    assert not through, f"{module} reaches {sorted(through)}"


def test_importing_the_verifier_loads_no_index_at_run_time() -> None:
    """Importing a module also runs its packages' ``__init__``, which the static scan above does not see:
    import the whole verifier in a fresh interpreter and look at what got loaded."""
    program = (
        "import importlib, sys\n"
        f"for name in {VERIFIER_MODULES!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({(*INDEX_MODULES, 'ledger_api.gateway')!r})))"
    )
    run = subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout


def import_graph() -> dict[str, set[str]]:
    """Module → the ``ledger_api``/``adapters`` modules it imports anywhere in its body (``TYPE_CHECKING``
    blocks included: they name the same dependency, only later)."""
    return {
        module: {name for name in imports(path) if name in ALL_MODULES and name != module}
        for module, path in ALL_MODULES.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    late = tmp_path / "late.py"
    late.write_text("def f() -> None:\n    from ledger_api.settings import Settings\n", encoding="utf-8")
    assert "ledger_api.settings" in imports(late)
    assert find_cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


#: The access rule is a domain module: grant terms, organisation states and a moment in, a decision out.
ACCESS_RULE = "ledger_api.access.decision"
ACCESS_RULE_FORBIDDEN = ("ledger_api.chain", "ledger_api.index", "sqlalchemy", "sqlmodel", "fastapi")


def test_the_access_rule_imports_no_chain_database_or_web_code() -> None:
    """Nor through another module of the tree: the rule can be read, tested and reused on its own."""
    assert ACCESS_RULE in ALL_MODULES
    reached = {ACCESS_RULE, *reachable(ACCESS_RULE)}
    imported = {name for module in reached for name in imports(ALL_MODULES[module])}
    assert not uses(imported, (*CHAIN_LIBRARIES, *WEB_LIBRARIES))
    assert not {name for name in imported | reached if name.startswith(ACCESS_RULE_FORBIDDEN)}
