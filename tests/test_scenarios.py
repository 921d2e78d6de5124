"""Every fixture scenario against the doctor: the findings are exactly those its story declares
(fixtures/build.py ``expected``), no more; every registered check has a runbook and fires in at
least one scenario and stays silent in another; healthy scenarios produce no finding at all."""
from __future__ import annotations

import re

import pytest

from conftest import doctor_json, scenario_names

from airflow_gke.registry import load_checks
from airflow_gke.runbooks import runbook_path


def _built():
    from fixtures.build import SCENARIOS

    return SCENARIOS


_RES = re.compile(r"^(\w+) `([^`]+)`")


def _expected(name: str) -> set[tuple[str, str, str, str]]:
    sc = _built()[name]()
    out = set()
    for f in sc.expected:
        m = _RES.match(f.resource)
        assert m, f"{name}: expectation resource {f.resource!r} is not 'Kind `ns/name`'"
        out.add((f.check, f.severity, m.group(1), m.group(2)))
    return out


def _actual(doc: dict) -> set[tuple[str, str, str, str]]:
    """(check, severity, kind, where) of every resource reported: a finding of one cause and one fix
    over several resources counts for each of them."""
    out = set()
    for f in doc["findings"]:
        for r in f.get("resources") or [f["resource"]]:
            where = f"{r['namespace']}/{r['name']}" if r["namespace"] else r["name"]
            out.add((f["check"], f["severity"], r["kind"], where))
    return out


_RESULTS: dict[str, dict] = {}


@pytest.fixture
def results(run_cli):
    def get(name: str) -> dict:
        if name not in _RESULTS:
            _RESULTS[name] = doctor_json(run_cli, name, "--extended")[1]
        return _RESULTS[name]

    return get


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_findings_are_exactly_the_declared_ones(name, results):
    doc = results(name)
    assert _actual(doc) == _expected(name), f"{name}: findings differ from fixtures/scenarios/{name}/SCENARIO.md"
    sc = _built()[name]()
    fired = {f["check"] for f in doc["findings"]}
    for check, why in sc.absent:
        m = re.match(r"^not for (\w+) `([^`]+)`", why)
        if m:   # must not report on that one resource
            on = {(c, k, w) for c, _s, k, w in _actual(doc)}
            assert (check, m.group(1), m.group(2)) not in on, f"{name}: {check} must not report {why}"
        else:
            assert check not in fired, f"{name}: {check} must not report ({why})"


@pytest.mark.parametrize("name", [n for n in scenario_names() if n.startswith("healthy")])
def test_healthy_scenarios_have_no_finding_and_no_error(name, results):
    doc = results(name)
    assert doc["findings"] == []
    assert [c["id"] for c in doc["checks"] if c["status"] == "error"] == []


def test_every_check_has_a_runbook_and_positive_and_negative_scenarios(results):
    registry = load_checks()
    fired: dict[str, set[str]] = {c: set() for c in registry}
    silent: dict[str, set[str]] = {c: set() for c in registry}
    for name in scenario_names():
        doc = results(name)
        for c in doc["checks"]:
            (fired if c["status"] == "fail" else silent if c["status"] == "pass" else {}).get(c["id"], set()).add(name)
    for cid in registry:
        assert runbook_path(cid) is not None, f"{cid}: no docs/runbooks/{cid}.md"
        assert fired[cid], f"{cid}: no fixture scenario where it reports a finding"
        assert silent[cid], f"{cid}: no fixture scenario where it passes"


def test_every_caused_by_link_names_a_registered_check(results):
    """A ``caused_by`` id is ``<check slug>:<resource>``: the slug must be a registered check's, in
    every scenario's report (a renamed check or a typo would leave a dangling link)."""
    registry = load_checks()
    links = 0
    for name in scenario_names():
        for f in results(name)["findings"]:
            for link in f["caused_by"]:
                slug, sep, resource = link.partition(":")
                assert sep and resource, f"{name}: {f['id']} links {link!r}, not '<check>:<resource>'"
                assert slug in registry, f"{name}: {f['id']} links {link!r}: no check {slug!r} is registered"
                links += 1
    assert links >= 10, f"only {links} caused_by links in all scenarios: the test would prove nothing"
