"""The application core (doctor/app.py) apart from the command line: one run request in, the run
report out, the same report the CLI renders; the report formats come from one table; the engine
imports no check and nothing imports the CLI."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from conftest import ROOT, scenario

DOCTOR = ROOT / "doctor"


def test_diagnose_returns_the_report_the_cli_prints(run_cli):
    from airflow_gke.app import RunRequest, diagnose
    from airflow_gke.report.json_report import render

    seed = str(scenario("seed-incident"))
    report = diagnose(RunRequest(snapshot=seed))
    doc = json.loads(render(report))
    cli = run_cli("doctor", "--snapshot", seed, "--output", "json").json
    assert report.exit_code("error") == 1
    assert doc["findings"] == cli["findings"] and doc["checks"][0]["id"] == cli["checks"][0]["id"]
    assert [(c["id"], c["status"], c["reason"]) for c in doc["checks"]] == \
        [(c["id"], c["status"], c["reason"]) for c in cli["checks"]]


def test_diagnose_raises_the_one_user_error_type(tmp_path):
    from airflow_gke.app import LiveTarget, RunRequest, diagnose
    from airflow_gke.errors import UserError

    with pytest.raises(UserError) as e:
        diagnose(RunRequest(snapshot=str(tmp_path / "nope")))
    assert not e.value.usage and "nope" in str(e.value)
    with pytest.raises(UserError) as e:
        diagnose(RunRequest(snapshot=str(scenario("seed-incident")), live=LiveTarget(project="p")))
    assert e.value.usage and str(e.value) == "--project applies to live mode only, not with --snapshot"
    with pytest.raises(UserError) as e:
        diagnose(RunRequest(snapshot=str(scenario("seed-incident")), include=("no-such-check",)))
    assert e.value.usage


def test_report_formats_are_one_table():
    """The --output choices, the config schema's enum (as loaded and as shipped) and --output-file's
    FORMAT: prefixes and extensions all come from FORMATS."""
    from airflow_gke import config
    from airflow_gke.cli import doctor
    from airflow_gke.report.formats import FORMATS, output_targets

    names = list(FORMATS)
    opt = next(p for p in doctor.params if p.name == "output")
    assert list(opt.type.choices) == names
    assert config.schema()["properties"]["doctor"]["properties"]["output"]["enum"] == names
    shipped = json.loads(config.SCHEMA_PATH.read_text())
    assert shipped["properties"]["doctor"]["properties"]["output"]["enum"] == names
    for name, fmt in FORMATS.items():
        assert output_targets("table", (f"{name}:r.out",), False) == [(name, Path("r.out"))]
        for ext in fmt.extensions:
            assert output_targets("table", (f"r{ext}",), False) == [(name, Path(f"r{ext}"))]
    helptext = next(p for p in doctor.params if p.name == "output_file").help
    assert all(n in helptext for n in names)


def _imports(path: Path) -> set[str]:
    """Absolute module names a module of the airflow_gke package imports (relative ones resolved)."""
    rel = path.relative_to(DOCTOR).with_suffix("")
    pkg = ["airflow_gke", *rel.parts[:-1]] if rel.name != "__init__" else ["airflow_gke", *rel.parts[:-1]]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_the_engine_imports_no_check_and_nothing_imports_the_cli():
    """doctor/ never imports a check module (the registry discovers them by package, and a check's
    post-run step is declared with registry.after_run); only the entry points import the CLI."""
    for path in sorted(DOCTOR.rglob("*.py")):
        mods = _imports(path)
        checks = sorted(m for m in mods if m.startswith(("airflow_gke.checks.", "checks")))
        assert not checks, f"{path.relative_to(ROOT)} imports {checks}"
        if path.name not in ("cli.py", "__main__.py"):
            assert not [m for m in mods if m == "airflow_gke.cli" or m.startswith("airflow_gke.cli.")], path
