"""Partial permissions: a service account allowed only some reads.

The replay server answers the denied reads with the real 403 bodies (Kubernetes RBAC ``Status``
with GKE's "requires one of [container.x.list]", ``google.rpc.Status`` with
``IAM_PERMISSION_DENIED`` ErrorInfo, the Cloud Storage JSON API's legacy ``forbidden`` body), for a
few realistic profiles. Across every registered check:

* a check that needs a denied read ends ``error`` and its reason names each denied read, the
  permission that allows it (RBAC verb and resource, or the IAM permission) and where to get the
  full list (``airflow-gke permissions``);
* no check claims ``pass`` (or ``skip``) without data: missing data never turns a result that
  fails with full permissions into a pass or a skip, and every ``error`` of these runs is a
  permission the run lacked;
* denying everything leaves no check passing.
"""
from __future__ import annotations

import os
import re

import pytest

from conftest import SCENARIOS, scenario_names
from replay import Fault, ReplayServer

CLUSTER_SCOPED = {"storageclasses", "nodes", "persistentvolumes", "clusterroles", "clusterrolebindings"}


def _keys():
    from airflow_gke.data import KEYS

    return KEYS


def profiles() -> dict[str, set[str]]:
    K = _keys()
    gcp = {n for n, k in K.items() if k.scope == "gcp"}
    return {
        # a Role in the namespace but no ClusterRole, and no right to read IAM policies
        "namespace-role-only": {n for n in K if n in CLUSTER_SCOPED} | {"project_iam", "bucket_iam", "gsa_iam"},
        # Kubernetes fully readable, nothing of Google Cloud
        "no-google": gcp,
        # Google fully readable, a Role without events and pod logs
        "no-events-no-logs": {"events", "logs"},
        "everything": set(K),
    }


def deny_rules(denied: set[str], meta: dict) -> list[Fault]:
    K = _keys()
    rules = []
    for name in sorted(denied):
        k = K[name]
        glob = re.sub(r"\{\w+\}", "*", k.template)
        glob = glob.replace("{namespace}", meta["namespace"])
        if k.scope == "k8s":
            path = "/" + glob.split("/", 1)[1]
            if name == "logs":
                path = "/api/v1/namespaces/*/pods/*/log"
            rules.append(Fault(service="k8s", path=path, status=403))
        else:
            rules.append(Fault(service=k.service, path="/" + glob.split("/", 2)[2], status=403,
                               permission=k.iam))
    return rules


@pytest.fixture
def live(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)

    def run(srv: ReplayServer):
        meta = srv.meta
        kc = srv.write_kubeconfig(tmp_path / "kubeconfig")
        extra = ["--now", meta["captured_at"]] + (["--release", meta["release"]] if meta.get("release") else [])
        return run_cli("doctor", "--output", "json", "--extended", *extra, env=srv.env(kubeconfig=kc))

    return run


def _statuses(doc: dict) -> dict[str, tuple[str, str | None]]:
    return {c["id"]: (c["status"], c["reason"]) for c in doc["checks"]}


def grant_text(name: str) -> str:
    k = _keys()[name]
    if k.rbac:
        return f"grant RBAC {k.rbac[2]} on {k.rbac[1]}"
    return f"grant IAM permission {k.iam}"


# private-nodes-no-nat: the only read planned from the cluster body (Compute Engine routers of its region);
# task-pods-cpu-quota: the region's quotas, planned from the events
SCENES = [n for n in ("seed-incident", "healthy-af3-k8s-wi", "private-nodes-no-nat", "task-pods-cpu-quota")
          if n in scenario_names()]


@pytest.fixture(scope="module")
def servers():
    started: dict[str, ReplayServer] = {}
    yield started
    for s in started.values():
        s.stop()


def _server(servers, name):
    if name not in servers:
        servers[name] = ReplayServer(SCENARIOS / name).start()
    s = servers[name]
    s.clear_faults()
    s.log.clear()
    return s


_FULL: dict[str, dict] = {}


@pytest.mark.parametrize("scene", SCENES)
@pytest.mark.parametrize("profile", list(profiles()))
def test_checks_without_their_data_name_the_permission_and_never_pass(scene, profile, live, servers):
    from airflow_gke.registry import load_checks

    registry = load_checks()
    K = _keys()
    srv = _server(servers, scene)
    if scene not in _FULL:
        full = live(srv)
        assert full.code in (0, 1), full.err
        _FULL[scene] = _statuses(full.json)
        srv.log.clear()
    full = _FULL[scene]
    denied = profiles()[profile]
    for rule in deny_rules(denied, srv.meta):
        srv.add_fault(rule)
    r = live(srv)
    errors_found = any(f["severity"] == "error" for f in r.json["findings"])
    assert r.code == (1 if errors_found else 3), (r.code, r.err)     # incomplete, unless findings already fail it
    assert r.json["errors"], "an incomplete run lists what it could not check"
    assert srv.log.faults(), "no read was denied"
    assert not srv.log.mutating()
    got = _statuses(r.json)
    assert set(got) == set(registry)
    for cid, (status, reason) in got.items():
        chk = registry[cid]
        denied_needs = [n for n in chk.needs if n in denied and K[n].per is None]
        if denied_needs:
            assert status == "error", (profile, cid, status, reason)
            for n in denied_needs:
                what = K[n].resource_text(_target(srv.meta))
                assert f"permission denied to {what}" in reason, (profile, cid, n, reason)
                assert grant_text(n) in reason, (profile, cid, n, reason)
            assert "airflow-gke permissions" in reason
        if status == "error":
            # every error of these runs is a permission the run lacked, said with how to grant it
            assert "permission denied to " in reason and "grant " in reason, (profile, cid, reason)
        if status == "pass":
            assert full[cid][0] == "pass", (profile, cid, "passes only because data was denied", full[cid])
        if status == "skip":
            assert full[cid][0] == "skip" or "permission denied" in (reason or ""), \
                (profile, cid, "skips only because data was denied:", reason, full[cid])
    if profile == "everything":
        assert not [cid for cid, (s, _r) in got.items() if s == "pass"]


def _target(meta: dict):
    from airflow_gke.data import Target

    return Target(namespace=meta["namespace"], project=meta.get("project"), location=meta.get("location"),
                  cluster=meta.get("cluster"), release=meta.get("release"))


def test_denied_reads_carry_the_real_error_bodies(servers, live):
    """What the user sees quotes the API's own words (GKE's IAM hint, IAM_PERMISSION_DENIED)."""
    scene = SCENES[0]
    srv = _server(servers, scene)
    for rule in deny_rules({"pods", "cluster", "bucket_iam"}, srv.meta):
        srv.add_fault(rule)
    r = live(srv)
    reasons = " | ".join(c["reason"] or "" for c in r.json["checks"])
    assert 'pods is forbidden: User "' in reasons and 'requires one of ["container.pods.list"]' in reasons
    assert "Permission 'container.clusters.get' denied on resource" in reasons
    assert "grant IAM permission container.clusters.get" in reasons


# --- every check, in every scenario where it reports, with each read it declares denied ------------
def _deny_each_read_cases():
    return [n for n in scenario_names()]


class DeniedSource:
    """A snapshot source whose reads of some data keys were answered 403 (the body a live run would
    have stored for them): a faster stand-in for the live run, whose equivalence with snapshot mode
    tests/test_live.py proves."""

    mode = "snapshot"

    def __init__(self, inner, patterns) -> None:
        self.inner, self.patterns = inner, patterns

    def get(self, path):
        from airflow_gke.source import Entry

        e = self.inner.get(path)
        if e is not None and any(p.fullmatch(path) for p in self.patterns):
            return Entry(path, status=403, error={"error": {"code": 403, "message": "The caller does not have permission",
                                                            "status": "PERMISSION_DENIED"}})
        return e

    def paths(self, prefix=""):
        return self.inner.paths(prefix)


def _pattern(name: str, meta) -> "re.Pattern":
    k = _keys()[name]
    t = k.template
    out = ""
    for part in re.split(r"(\{\w+\})", t):
        m = re.fullmatch(r"\{(\w+)\}", part)
        if m:
            v = getattr(meta, m.group(1), None) if m.group(1) in ("namespace", "project", "location", "cluster") else None
            out += re.escape(v) if v else r"[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


@pytest.mark.parametrize("scene", _deny_each_read_cases())
def test_no_check_passes_a_scenario_it_fails_when_a_read_it_declares_is_denied(scene):
    """Where a check reports a finding with every read allowed, denying any one of the reads it
    declares (needs or uses) must not make it pass, nor skip for a reason other than the denial."""
    from airflow_gke.views import Context
    from airflow_gke.data import Target
    from airflow_gke.registry import load_checks
    from airflow_gke.runner import run_check
    from airflow_gke.snapshot import open_snapshot

    registry = load_checks()
    violations = []
    with open_snapshot(SCENARIOS / scene) as src:
        m = src.meta
        target = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                        release=m.release)
        full = {cid: run_check(Context(src, target, now=m.captured_at), chk) for cid, chk in registry.items()}
        for cid, chk in registry.items():
            if full[cid].status != "fail":
                continue
            for name in chk.data_keys:
                denied = DeniedSource(src, [_pattern(name, m)])
                if not any(denied.patterns[0].fullmatch(p) for p in src.paths()):
                    continue   # not read in this scenario
                run = run_check(Context(denied, target, now=m.captured_at), chk)
                if run.status == "pass" or (run.status == "skip" and "permission denied" not in (run.reason or "")):
                    violations.append(f"{cid} with {name} denied: {run.status} ({run.reason})")
    assert not violations, f"{scene}: " + "; ".join(violations)
