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


def validate_fleet(doc: dict) -> None:
    """A fleet document (doctor --all-namespaces): docs/schema/fleet-v1.json, whose targets are
    single-target reports of docs/schema/report-v1.json (each validated as one, too)."""
    import jsonschema
    from referencing import Registry, Resource

    fleet = json.loads((SCHEMA.parent / "fleet-v1.json").read_text())
    single = json.loads(SCHEMA.read_text())
    reg = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in (fleet, single)])
    cls = jsonschema.validators.validator_for(fleet)
    cls.check_schema(fleet)
    errors = list(cls(fleet, registry=reg).iter_errors(doc))
    assert not errors, "fleet report does not match docs/schema/fleet-v1.json:\n" + "\n".join(
        f"  {list(e.path)}: {e.message}" for e in errors[:10])
    for t in doc["targets"]:
        validate_report(t)


def validate_report(doc: dict) -> None:
    """Every JSON report the tests see must validate against the published schema."""
    if doc.get("kind") == "fleet":
        return validate_fleet(doc)
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
        from airflow_gke.cli import main

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


# --- the read-only guarantee, across every test of the session ------------------------------------
# Every replay server records each request in tests/replay.py's session registry. When the session
# ends, no mutating request may be in it except (a) the explicit write probe (`doctor --probe`):
# an object created, read or deleted under an ``airflow-gke-probe`` folder on a server started with
# ``allow_writes=True``; (b) requests a test marked ``replay_sends_writes`` sent itself, to prove the
# server refuses them. Anything else fails the session, naming the request and the test.
_SENDS_WRITES: set[str] = set()
_READ_ONLY: dict = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "replay_sends_writes: the test itself sends mutating requests to a replay "
                                       "server (to prove they are refused); exempt from the session read-only check")


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("replay_sends_writes"):
            _SENDS_WRITES.add(item.nodeid)


def is_probe_write(req, allow_writes: bool) -> bool:
    """The one write the tool makes: ``--probe``'s object under ``.airflow-gke-probe/``."""
    import fnmatch

    if not allow_writes or req.service != "storage":
        return False
    name = ""
    if req.method == "POST" and fnmatch.fnmatchcase(req.path, "/upload/storage/v1/b/*/o"):
        name = req.params.get("name", "") + " " + req.body[:4096].decode("utf-8", "replace")
    elif req.method == "DELETE" and fnmatch.fnmatchcase(req.path, "/storage/v1/b/*/o/*"):
        name = req.path
    return "airflow-gke-probe/" in name


# `doctor --output-file gs://...`: <prefix>/<project>/<cluster>/<namespace>/<timestamp>[-<release>].json
_REPORT_OBJECT = r"(?:[^/]+/)*[^/]+/[^/]+/[^/]+/\d{8}T\d{6}Z(?:-[^/]+)?\.json"


def is_report_write(req, allow_writes: bool) -> bool:
    """The other write the tool makes: ``--output-file gs://...``'s report object, created (never
    replaced: ``ifGenerationMatch=0``) by one upload, named by the report's target and time; no
    delete, no other object."""
    import fnmatch
    import re

    if not allow_writes or req.service != "storage" or req.method != "POST":
        return False
    if not fnmatch.fnmatchcase(req.path, "/upload/storage/v1/b/*/o") or req.params.get("ifGenerationMatch") != "0":
        return False
    name = req.params.get("name", "")
    if req.params.get("uploadType") == "multipart":
        from replay import _parse_multipart

        try:
            name = _parse_multipart(req.headers.get("Content-Type", ""), req.body)[0].get("name", "")
        except ValueError:
            return False
    return bool(re.fullmatch(_REPORT_OBJECT, name or ""))


def unexpected_writes(records, sends_writes: set[str]) -> list[str]:
    """The mutating requests of ``records`` ((request, server allowed writes, PYTEST_CURRENT_TEST))
    that neither the write probe, a report written to gs://, nor a ``replay_sends_writes`` test explains."""
    out = []
    for req, allow_writes, test in records:
        nodeid = test.rsplit(" (", 1)[0]
        if is_probe_write(req, allow_writes) or is_report_write(req, allow_writes) or nodeid in sends_writes:
            continue
        out.append(f"{req.method} {req.service} {req.path} (answered {req.status}) during {nodeid or 'no test'}")
    return out


def pytest_sessionfinish(session, exitstatus):
    replay = sys.modules.get("replay")
    if replay is None or not hasattr(replay, "SESSION_WRITES"):
        return
    records = list(replay.SESSION_WRITES)
    bad = unexpected_writes(records, _SENDS_WRITES)
    _READ_ONLY.update(requests=sum(replay.SESSION_REQUESTS.values()), writes=len(records), bad=bad,
                      probe=sum(is_probe_write(r, a) for r, a, _t in records),
                      reports=sum(is_report_write(r, a) for r, a, _t in records))
    if bad and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if not _READ_ONLY:
        return
    r = _READ_ONLY
    terminalreporter.write_line(
        f"read-only: {r['requests']} requests to replay servers, {r['writes']} mutating: {r['probe']} by the write "
        f"probe, {r['reports']} reports written to gs://, "
        f"{r['writes'] - r['probe'] - r['reports'] - len(r['bad'])} sent by tests proving they are refused, "
        f"{len(r['bad'])} unexpected")
    for line in r["bad"]:
        terminalreporter.write_line(f"  UNEXPECTED WRITE: {line}", red=True)
