"""The layering the code promises (issue 10), read from the source with ``ast``:

- a check module imports from the engine only the views, the model, the registry and the
  remediation toolkit (plus its sibling check helpers, the standard library, third parties);
- nothing under doctor/ imports the checks, except the registry's plugin loader;
- the modules under doctor/ and checks/ form no import cycle.

Exceptions are listed by name below, and a test fails when one is no longer needed, so the list
only shrinks.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"doctor": "airflow_gke", "checks": "airflow_gke.checks"}

# What a check may import from the engine (a module or a package with its submodules).
CHECK_API = ("airflow_gke.views", "airflow_gke.model", "airflow_gke.registry", "airflow_gke.remediation")
# Engine modules checks may still import until they move into the views (none today).
CHECK_API_EXCEPTIONS: tuple[str, ...] = ()
# Import cycles through imports made inside functions, allowed until they are untangled (each a
# frozenset of module names; none today).
LAZY_CYCLE_EXCEPTIONS: set[frozenset[str]] = set()
# The one engine module that may import the checks: the registry loads them as plugins.
CHECK_LOADERS = {"airflow_gke.registry"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for folder, pkg in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            out[".".join([pkg] + parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@functools.lru_cache(maxsize=None)
def imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, made inside a function or class) of a module: ``from a import b`` names
    ``a.b`` when that is a module of ours, else ``a``."""
    path, is_pkg = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for n in tree.body:   # imports under ``if TYPE_CHECKING:`` / try at module level still run at import
        if isinstance(n, (ast.If, ast.Try)):
            top |= {id(x) for x in ast.walk(n)}
    out = []
    for node in ast.walk(tree):
        lazy = id(node) not in top
        if isinstance(node, ast.Import):
            out += [(a.name, lazy) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_pkg, node)
            for a in node.names:
                full = f"{target}.{a.name}"
                out.append((full if full in MODULES else target, lazy))
    return out


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _engine_imports_of_checks() -> set[tuple[str, str]]:
    out = set()
    for mod in MODULES:
        if not mod.startswith("airflow_gke.checks"):
            continue
        for target, _lazy in imports(mod):
            if target.split(".")[0] in ("doctor", "checks"):
                out.add((mod, target))   # the repository folders are not import packages
            elif _within(target, ("airflow_gke",)) and not _within(target, ("airflow_gke.checks",) + CHECK_API):
                out.add((mod, target))
    return out


def test_the_import_graph_sees_the_packages():
    assert "airflow_gke.views" in MODULES and "airflow_gke.checks.component_crashloop" in MODULES
    assert ("airflow_gke.views", False) in imports("airflow_gke.checks.component_crashloop")
    assert ("airflow_gke.remediation", False) in imports("airflow_gke.checks.component_crashloop")
    assert ("airflow_gke.views.base", False) in imports("airflow_gke.views.kube")


def test_checks_import_only_the_check_api():
    bad = {(m, t) for m, t in _engine_imports_of_checks() if not _within(t, CHECK_API_EXCEPTIONS)}
    assert not bad, ("check modules may import from airflow_gke only " + ", ".join(CHECK_API)
                     + f" (and sibling check modules): {sorted(bad)}")


def test_check_api_exceptions_are_still_needed():
    used = _engine_imports_of_checks()
    stale = [m for m in CHECK_API_EXCEPTIONS if not any(_within(t, (m,)) for _m, t in used)]
    assert not stale, f"no check imports {stale} any more: remove them from CHECK_API_EXCEPTIONS"


def test_the_engine_imports_no_check():
    bad = []
    for mod in MODULES:
        if mod.startswith("airflow_gke.checks") or mod in CHECK_LOADERS:
            continue
        for target, _lazy in imports(mod):
            if _within(target, ("airflow_gke.checks",)) or target.split(".")[0] == "checks":
                bad.append((mod, target))
    assert not bad, f"only the registry's plugin loader may import the checks: {bad}"


def _cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(frozenset(comp))
    return out


def _graph(with_lazy: bool) -> dict[str, set[str]]:
    return {m: {t for t, lazy in imports(m) if t in MODULES and t != m and (with_lazy or not lazy)}
            for m in MODULES}


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_import_time():
    assert _cycles(_graph(with_lazy=False)) == []


def test_no_import_cycle_through_imports_in_functions():
    found = set(_cycles(_graph(with_lazy=True)))
    assert found <= LAZY_CYCLE_EXCEPTIONS, f"import cycles: {[sorted(c) for c in found - LAZY_CYCLE_EXCEPTIONS]}"


def test_lazy_cycle_exceptions_are_still_needed():
    stale = LAZY_CYCLE_EXCEPTIONS - set(_cycles(_graph(with_lazy=True)))
    assert not stale, f"remove {[sorted(c) for c in stale]} from LAZY_CYCLE_EXCEPTIONS"
