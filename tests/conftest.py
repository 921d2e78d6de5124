"""Shared test helpers: run the CLI in-process the way a user would, read its JSON."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "fixtures" / "scenarios"
SCHEMA = ROOT / "docs" / "schema" / "report-v1.json"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)


def scenario_names() -> list[str]:
    return sorted(p.name for p in SCENARIOS.iterdir() if (p / "meta.json").is_file()) if SCENARIOS.is_dir() else []


def scenario(name: str) -> Path:
    p = SCENARIOS / name
    assert (p / "meta.json").is_file(), f"fixture scenario {name} is missing"
    return p


_validator = None


def validate_report(doc: dict) -> None:
    """Every JSON report the tests see must validate against the published schema."""
    global _validator
    if _validator is None:
        import jsonschema

        schema = json.loads(SCHEMA.read_text())
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(_validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "report does not match docs/schema/report-v1.json:\n" + "\n".join(
        f"  {list(e.path)}: {e.message}" for e in errors[:10])


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``airflow-gke ARGS`` in-process through the real entry point; JSON outputs are
    validated against the schema on the way."""

    def run(*args: str, env: dict | None = None) -> CliResult:
        from doctor.cli import main

        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        res = CliResult(code, out, err)
        if "json" in args and args[0] == "doctor" and res.out.strip():
            validate_report(res.json)
        return res

    return run


def doctor_json(run_cli, name_or_path, *extra: str) -> tuple[int, dict]:
    path = name_or_path if isinstance(name_or_path, Path) else scenario(name_or_path)
    r = run_cli("doctor", "--snapshot", str(path), "--output", "json", *extra)
    assert r.code in (0, 1, 3), f"exit {r.code}: {r.err}"
    return r.code, r.json


def findings_of(doc: dict, check: str) -> list[dict]:
    return [f for f in doc["findings"] if f["check"] == check]


def status_of(doc: dict, check: str) -> str:
    return next(c["status"] for c in doc["checks"] if c["id"] == check)
