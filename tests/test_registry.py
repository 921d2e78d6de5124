"""One declaration per check: the registry refuses a check whose module is not named after its id,
an unknown category, or a function without its one-line docstring."""
from __future__ import annotations

import pytest

from airflow_gke.model import passed
from airflow_gke.registry import REGISTRY, Category, RegistryError, check, load_checks


def _declare(module: str, **kw):
    def run(ctx):
        """Something goes wrong."""
        return passed()

    run.__module__ = module
    args = dict(id="sample-check", title="All is well", severity="warning", category="runtime")
    args.update(kw)
    try:
        return check(**args)(run)
    finally:
        REGISTRY.pop(args["id"], None)


def test_builtin_checks_live_in_the_module_named_after_their_id():
    for cid, chk in load_checks().items():
        assert chk.module == "airflow_gke.checks." + cid.replace("-", "_")
        assert isinstance(chk.category, Category)


def test_a_builtin_check_in_another_module_is_refused():
    with pytest.raises(RegistryError, match=r"airflow_gke\.checks\.sample_check"):
        _declare("airflow_gke.checks.some_other_name")
    _declare("airflow_gke.checks.sample_check")   # the right module
    _declare("acme_plugins.checks")               # third-party plugins name their modules freely


def test_category_is_one_of_the_enum():
    with pytest.raises(RegistryError, match="category must be one of"):
        _declare("acme_plugins.checks", category="stroage")
    _declare("acme_plugins.checks", category=Category.STORAGE)


def test_a_check_without_docstring_is_refused():
    def run(ctx):
        return passed()

    run.__module__ = "acme_plugins.checks"
    with pytest.raises(RegistryError, match="docstring"):
        check(id="sample-check", title="t", severity="info", category="runtime")(run)
    assert "sample-check" not in REGISTRY


def test_every_check_has_its_own_test_module():
    """tests/checks/test_<id with - as _>.py holds the tests of one check; a new check without one
    fails here, and so does a module left behind by a removed or renamed check."""
    import ast
    from pathlib import Path

    here = Path(__file__).resolve().parent / "checks"
    registry = load_checks()
    for cid in registry:
        path = here / f"test_{cid.replace('-', '_')}.py"
        assert path.is_file(), f"{cid}: no test module tests/checks/{path.name}"
        tests = [n.name for n in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        assert tests, f"tests/checks/{path.name} has no test"
    modules = {p.stem[len("test_"):] for p in here.glob("test_*.py")}
    assert modules == {cid.replace("-", "_") for cid in registry}, "a test module without its check"
