"""Injected faults: the live run against a sick API server and sick Google endpoints.

The replay server (tests/replay.py) answers a healthy scenario while its ``Fault`` rules make
chosen paths fail the way real servers and networks do: 500/502/503, 429 with ``Retry-After``,
connection resets, requests that hang, bodies cut short, bodies that are not JSON, slow answers.
The real kubernetes and Google clients read through them. The contract:

* transient faults are retried (reads only, a bounded number of times: the request log counts
  each try) and the result is what the snapshot run gives;
* a path that stays unreadable ends every check that needs it ``error`` naming what could not be
  read, the others keep their results, and the run exits 3;
* the whole run finishes within ``--timeout`` whatever hangs, and a ``Retry-After`` beyond it is
  not waited for.

Small timeouts via flags keep the wall time of this file low.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import SCENARIOS, scenario_names
from replay import Fault, ReplayServer

RETRIES = 3                     # LiveOptions.retries: attempts after the first
FAULTS_INJECTED: list[int] = []


def _healthy() -> str:
    names = scenario_names()
    for n in ("healthy-af3-k8s-wi", "healthy-af2-celery"):
        if n in names:
            return n
    pytest.skip("no healthy scenario with a cluster")


@pytest.fixture(scope="module")
def healthy():
    yield _healthy()
    print(f"\nfaults injected: {sum(FAULTS_INJECTED)} requests answered by a fault rule, "
          f"in {len(FAULTS_INJECTED)} live runs")


@pytest.fixture
def srv(healthy):
    s = ReplayServer(SCENARIOS / healthy).start()
    yield s
    FAULTS_INJECTED.append(len(s.log.faults()))
    s.stop()


@pytest.fixture
def live(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)

    def run(s: ReplayServer, *args: str):
        meta = s.meta
        kc = s.write_kubeconfig(tmp_path / "kubeconfig")
        extra = ["--now", meta["captured_at"]] + (["--release", meta["release"]] if meta.get("release") else [])
        t0 = time.perf_counter()
        r = run_cli("doctor", "--output", "json", "--extended", *extra, *args, env=s.env(kubeconfig=kc))
        r.seconds = time.perf_counter() - t0
        return r

    return run


_SNAP: dict[str, dict] = {}


def snapshot_results(run_cli, name: str) -> dict:
    if name not in _SNAP:
        r = run_cli("doctor", "--snapshot", str(SCENARIOS / name), "--output", "json", "--extended")
        assert r.code in (0, 1, 3), r.err
        _SNAP[name] = r.json
    return _SNAP[name]


def by_check(doc: dict) -> dict:
    out = {c["id"]: [c["status"], c["reason"], []] for c in doc["checks"]}
    for f in doc["findings"]:
        out[f["check"]][2].append(f)
    return out


def request_path(key_name: str, meta: dict, service_prefix: bool = False) -> str:
    """The HTTP path the live reader requests for a static data key."""
    from airflow_gke.data import KEYS, Target

    k = KEYS[key_name]
    t = Target(namespace=meta["namespace"], project=meta.get("project"), location=meta.get("location"),
               cluster=meta.get("cluster"))
    spath = k.path(t)
    return "/" + spath.split("/", 1)[1] if k.scope == "k8s" else "/" + spath.split("/", 2)[2]


def needers(key_name: str) -> set[str]:
    from airflow_gke.registry import load_checks

    return {c.id for c in load_checks().values() if key_name in c.needs}


def users(key_names: set[str]) -> set[str]:
    from airflow_gke.registry import load_checks

    return {c.id for c in load_checks().values() if set(c.data_keys) & key_names}


# --- transient faults: retried, result unchanged ----------------------------------------------------
def test_transient_faults_are_retried_and_change_nothing(srv, live, run_cli, healthy):
    m = srv.meta
    faults = {   # data key -> (rule, how many times it fires)
        "pods": (Fault(service="k8s", path=request_path("pods", m), status=500, times=1), 1),
        "events": (Fault(service="k8s", path=request_path("events", m), status=429, retry_after=0.3, times=2), 2),
        "configmaps": (Fault(service="k8s", path=request_path("configmaps", m), reset=True, times=1), 1),
        "deployments": (Fault(service="k8s", path=request_path("deployments", m), truncate=True, times=1), 1),
        "serviceaccounts": (Fault(service="k8s", path=request_path("serviceaccounts", m), status=503, times=3), 3),
        "project_iam": (Fault(service="cloudresourcemanager", path="*:getIamPolicy", status=503, times=2), 2),
        "cluster": (Fault(service="container", path=request_path("cluster", m), status=502, times=1), 1),
        "nodes": (Fault(service="k8s", path=request_path("nodes", m), delay=0.4), 0),
        "storageclasses": (Fault(service="k8s", path=request_path("storageclasses", m), status=504, times=1), 1),
    }
    for rule, _n in faults.values():
        srv.add_fault(rule)
    srv.add_fault(Fault(service="storage", path="/storage/v1/b/*", status=500, times=1))
    r = live(srv)
    assert r.code in (0, 1), r.err
    assert by_check(r.json) == by_check(snapshot_results(run_cli, healthy))
    for key_name, (rule, n) in faults.items():
        assert srv.log.count(rule.path, rule.service) == n + 1, (key_name, srv.log.count(rule.path, rule.service))
    assert not srv.log.mutating()
    hit = {(e.service, e.path) for e in srv.log.faults()}
    assert len(hit) >= len(faults)
    # the only repeated requests are the retries of faulted paths
    rules = [rule for rule, _n in faults.values()] + [Fault(service="storage", path="/storage/v1/b/*")]
    for (service, method, path, query), _n in srv.log.duplicates().items():
        assert any(rule.matches(service, method, path, query) for rule in rules), (service, path)
    assert r.seconds >= 0.6     # the two Retry-After: 0.3 waits were honoured


# --- persistent faults: each unreadable path named, exit 3 ---------------------------------------
def test_unreadable_paths_end_their_checks_error_naming_the_path_and_exit_3(srv, live, run_cli, healthy):
    from airflow_gke.data import KEYS, Target

    m = srv.meta
    t = Target(namespace=m["namespace"], project=m.get("project"), location=m.get("location"),
               cluster=m.get("cluster"))
    # data key -> (rule, requests expected for it, words its checks' reasons must hold)
    plan = {
        "events": (Fault(service="k8s", path=request_path("events", m), status=500), RETRIES + 1, "HTTP 500"),
        "pvcs": (Fault(service="k8s", path=request_path("pvcs", m), truncate=True), RETRIES + 1, ""),
        "configmaps": (Fault(service="k8s", path=request_path("configmaps", m), invalid_json=True), 1, "invalid JSON"),
        "storageclasses": (Fault(service="k8s", path=request_path("storageclasses", m), status=403), 1,
                           "permission denied"),
        "nodes": (Fault(service="k8s", path=request_path("nodes", m), hang=True), 1, "no answer"),
        "cluster": (Fault(service="container", path=request_path("cluster", m), status=429, retry_after=0),
                    RETRIES + 1, "HTTP 429"),
        "project_iam": (Fault(service="cloudresourcemanager", path="*:getIamPolicy", invalid_json=True), 1, ""),
    }
    for rule, _n, _w in plan.values():
        srv.add_fault(rule)
    r = live(srv, "--request-timeout", "0.5", "--timeout", "20")
    assert r.code == 3, r.err
    assert r.seconds < 15, r.seconds
    after = by_check(r.json)
    before = by_check(snapshot_results(run_cli, healthy))
    for key_name, (rule, n, words) in plan.items():
        assert srv.log.count(rule.path, rule.service) == n, (key_name, srv.log.count(rule.path, rule.service), n)
        what = KEYS[key_name].resource_text(t)
        for cid in needers(key_name):
            status, reason, findings = after[cid]
            assert status == "error" and not findings, (cid, status, reason)
            # the reason names one unreadable path (the first the check needs); each faulted key is
            # named by at least one check that needs it
        named = [cid for cid in needers(key_name) if what in (after[cid][1] or "")]
        assert not needers(key_name) or named, (key_name, what, {c: after[c][1] for c in needers(key_name)})
        for cid in named:
            assert words in after[cid][1], (cid, after[cid][1])
    faulted = set(plan)
    for cid, res in after.items():
        if cid not in users(faulted):
            assert res == before[cid], cid     # the others keep their results
        if any(cid in needers(k) for k in faulted):
            assert res[0] != "pass", cid       # nothing passes without its data
    assert not srv.log.mutating()
    errors = {e["check"] for e in r.json["errors"]}
    assert errors >= {cid for k in faulted for cid in needers(k)}


# --- the whole run's deadline ---------------------------------------------------------------------------
def test_the_whole_run_ends_within_timeout_when_everything_hangs(srv, live):
    srv.add_fault(Fault(hang=True))          # every request of every service
    r = live(srv, "--timeout", "2", "--request-timeout", "30")
    assert r.seconds < 2 + 2.5, r.seconds
    assert r.code == 2, r.err                # nothing answered: one line, exit 2
    (line,) = r.err.strip().splitlines()
    assert "nothing reachable" in line


def test_a_hung_cluster_api_ends_within_timeout_and_exits_3(srv, live):
    srv.add_fault(Fault(service="k8s", hang=True))
    r = live(srv, "--timeout", "2", "--request-timeout", "30")
    assert r.seconds < 2 + 2.5, r.seconds
    assert r.code == 3, r.err
    after = by_check(r.json)
    for cid in needers("pods"):
        assert after[cid][0] == "error" and "no answer" in after[cid][1], after[cid]
    assert after["container-api-disabled"][0] == "pass"   # Google still answered


def test_retry_after_beyond_the_deadline_is_not_waited_for(srv, live):
    m = srv.meta
    path = request_path("pods", m)
    srv.add_fault(Fault(service="k8s", path=path, status=429, retry_after=3600))
    r = live(srv, "--timeout", "4")
    assert r.seconds < 4, r.seconds
    assert srv.log.count(path, "k8s") == 1
    assert r.code == 3
    after = by_check(r.json)
    assert all(after[c][0] == "error" and "HTTP 429" in after[c][1] for c in needers("pods"))


def test_not_found_and_client_errors_are_not_retried(srv, live):
    m = srv.meta
    rules = [Fault(service="k8s", path=request_path("events", m), status=404),
             Fault(service="k8s", path=request_path("pvcs", m), status=400),
             Fault(service="k8s", path=request_path("configmaps", m), status=401),
             Fault(service="serviceusage", status=403, permission="serviceusage.services.get")]
    for f in rules:
        srv.add_fault(f)
    r = live(srv)
    assert r.code == 3
    for f in rules:
        for path, n in srv.log.paths(f.service).items():
            if f.path == "*" or path == f.path:
                assert n == 1, (f.service, path, n)


def test_slow_answers_everywhere_still_give_the_snapshot_result(srv, live, run_cli, healthy):
    srv.add_fault(Fault(delay=0.25))
    r = live(srv)
    assert by_check(r.json) == by_check(snapshot_results(run_cli, healthy))
    assert len(srv.log.faults()) == len(srv.log)
    assert r.seconds < len(srv.log) * 0.25      # the reads overlap (bounded pool), not one after another


def test_default_run_timeout_is_60_seconds():
    from airflow_gke.cli import doctor
    from airflow_gke.live.options import LiveOptions

    opt = next(p for p in doctor.params if p.name == "timeout")
    assert opt.default == 60.0 and LiveOptions().timeout == 60.0
