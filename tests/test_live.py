"""Live mode over loopback: the real kubernetes and Google clients read every fixture scenario
from the replay server (tests/replay.py), through the CLI entry point, and must see what snapshot
mode sees. No client library is patched: they are pointed at the server with a generated
kubeconfig and the AIRFLOW_GKE_ENDPOINT_<SERVICE> variables, as a user would point them at a
private endpoint.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, SCENARIOS
from replay import Fault, ReplayServer

# Another set of snapshot-v1 directories can be run through the same tests.
SCEN_DIR = Path(os.environ.get("AIRFLOW_GKE_TEST_SCENARIOS") or SCENARIOS)
PREFLIGHT = re.compile(r"^project preflight, no Kubernetes cluster was read \(.*?\): ")


def names() -> list[str]:
    if not SCEN_DIR.is_dir():
        return []
    return sorted(p.name for p in SCEN_DIR.iterdir() if (p / "meta.json").is_file())


def meta_of(root: Path) -> dict:
    return json.loads((root / "meta.json").read_text())


def has_k8s(root: Path) -> bool:
    return (root / "k8s").is_dir()


# --- one replay server per scenario, shared by the tests of this module ------------------------
_SERVERS: dict[str, ReplayServer] = {}


@pytest.fixture(scope="module", autouse=True)
def _stop_servers():
    yield
    for srv in _SERVERS.values():
        srv.stop()
    _SERVERS.clear()


def server(name: str) -> ReplayServer:
    """The scenario's started server (the few most recently used stay up, the rest are stopped:
    each holds one thread and socket per service)."""
    srv = _SERVERS.pop(name, None)
    if srv is None:
        srv = ReplayServer(SCEN_DIR / name).start()
    _SERVERS[name] = srv               # most recently used last
    while len(_SERVERS) > 3:
        _SERVERS.pop(next(iter(_SERVERS))).stop()
    srv.clear_faults()
    srv.log.clear()
    return srv


@pytest.fixture
def live(run_cli, monkeypatch, tmp_path):
    """``live(srv, *args)``: run ``airflow-gke`` against ``srv`` as a user would; a scenario
    without ``k8s/`` files runs as a project preflight (no kubeconfig at all)."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)

    def run(srv: ReplayServer, command: str, *args: str, kube: bool | None = None, env: dict | None = None):
        meta = srv.meta
        kube = has_k8s(srv.root) if kube is None else kube
        extra: list[str] = ["--now", meta["captured_at"]]
        if meta.get("release"):
            extra += ["--release", meta["release"]]
        if kube:
            kc = srv.write_kubeconfig(tmp_path / f"kubeconfig-{srv.root.name}")
            menv = srv.env(kubeconfig=kc)
            if srv.context_name == "replay":   # not a gke_<p>_<l>_<c> context: say what it is
                extra += [x for k in ("project", "location", "cluster") if meta.get(k) for x in (f"--{k}", meta[k])]
        else:
            menv = srv.env()
            menv["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
            extra += [x for k in ("project", "location", "cluster") if meta.get(k) for x in (f"--{k}", meta[k])]
            extra += ["--namespace", meta["namespace"]]
        return run_cli(command, *extra, *args, env={**menv, **(env or {})})

    return run


def comparable(doc: dict) -> dict:
    """What must not differ between a live and a snapshot run of the same data."""
    return {
        "checks": [(c["id"], c["status"], PREFLIGHT.sub("", c["reason"] or "")) for c in doc["checks"]],
        "findings": doc["findings"],
        "summary": doc["summary"],
        "run": {k: doc["run"][k] for k in ("project", "location", "cluster", "namespace", "release",
                                           "airflow_version", "chart_version")},
    }


def snapshot_doc(run_cli, path: Path) -> tuple[int, dict]:
    r = run_cli("doctor", "--snapshot", str(path), "--output", "json")
    assert r.code in (0, 1, 3), r.err
    return r.code, r.json


def _why_different(srv: ReplayServer) -> str:
    """A hint for a failed live == snapshot comparison: Kubernetes paths the live run read that the
    scenario does not store (in a snapshot an absent path means "not collected"; the replay server
    answers as a real API server would: an empty list, or 404 for an unknown type)."""
    absent = sorted({f"{e.service} {e.path}" for e in srv.log.entries
                     if e.service == "k8s" and not e.path.endswith("/log")
                     and not (srv.root / f"k8s{e.path}.json").exists()
                     and not (srv.root / f"k8s{e.path}.error.json").exists()})
    if not absent:
        return "live and snapshot findings differ"
    return ("live and snapshot findings differ; the live run read paths this scenario does not store "
            f"(regenerate the fixture with them if a data key was added): {', '.join(absent)}")


def assert_read_only_once(srv: ReplayServer) -> None:
    assert not srv.log.mutating(), [(e.method, e.path) for e in srv.log.mutating()]
    dups = srv.log.duplicates()
    assert not dups, f"read more than once: {dups}"


# --- every scenario: live == snapshot, collect -> snapshot == snapshot ---------------------------
@pytest.mark.parametrize("name", names())
def test_live_equals_snapshot_and_collect_roundtrip(name, live, run_cli, tmp_path):
    code_s, snap = snapshot_doc(run_cli, SCEN_DIR / name)
    srv = server(name)

    r = live(srv, "doctor", "--output", "json")
    assert r.code == code_s, r.err
    assert r.json["run"]["mode"] == "live"
    assert r.err == ""        # no progress display when stderr is not a terminal
    assert comparable(r.json) == comparable(snap), _why_different(srv)
    assert_read_only_once(srv)
    assert len(srv.log) > 0

    srv.log.clear()
    out = tmp_path / "collected"
    c = live(srv, "collect", "--dest", str(out))
    assert c.code == 0, c.err
    assert c.out.strip() == str(out)
    assert_read_only_once(srv)
    meta = meta_of(out)
    assert meta["format"] == "airflow-gke/snapshot@1" and isinstance(meta["redacted"], list)
    code_c, again = snapshot_doc(run_cli, out)
    assert code_c == code_s
    assert comparable(again) == comparable(snap)


# --- secrets planted in a copy of a scenario never come out -------------------------------------
PLANTED = ("S3cr3t-planted", "S3cr3t-planted2", "fernet-S3cr3t-planted3")


@functools.lru_cache(maxsize=None)
def _pick_scenario() -> str:
    """A scenario with an airflow.cfg and a stored container log that the live reader reads."""
    from airflow_gke.views import Context
    from airflow_gke.data import KEYS, Target
    from airflow_gke.live.plan import log_reads
    from airflow_gke.snapshot import open_snapshot

    for n in ["seed-incident"] + names():
        root = SCEN_DIR / n
        if not (root / "meta.json").is_file() or not has_k8s(root):
            continue
        with open_snapshot(root) as src:
            m = src.meta
            ctx = Context(src, Target(namespace=m.namespace, project=m.project, location=m.location,
                                      cluster=m.cluster, release=m.release), now=m.captured_at)
            reads, _ = log_reads(ctx, 50)
            stored = [r for r in reads if (root / (KEYS["logs"].path(ctx.target, **r[1]) + ".log")).is_file()]
            try:
                has_cfg = ctx.airflow_cfg is not None
            except Exception:  # noqa: BLE001
                has_cfg = False
        if stored and has_cfg:
            return n
    pytest.skip("no scenario with an airflow.cfg and a stored log the reader reads")


def plant_secrets(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    ns = meta_of(dst)["namespace"]
    cm_file = dst / f"k8s/api/v1/namespaces/{ns}/configmaps.json"
    cms = json.loads(cm_file.read_text())
    planted_cfg = False
    for cm in cms["items"]:
        data = cm.get("data") or {}
        if "airflow.cfg" in data:
            cfg = data["airflow.cfg"]
            line = "sql_alchemy_conn = postgresql://airflow:S3cr3t-planted@db/airflow\n"
            if re.search(r"(?m)^\[database\]\s*$", cfg):
                cfg = re.sub(r"(?m)^sql_alchemy_conn\s*=.*\n?", "", cfg)
                cfg = re.sub(r"(?m)^\[database\]\s*$\n?", "[database]\n" + line, cfg, count=1)
            else:
                cfg = cfg.rstrip("\n") + "\n\n[database]\n" + line
            data["airflow.cfg"] = cfg
            planted_cfg = True
    assert planted_cfg, "no airflow.cfg to plant a secret in"
    cm_file.write_text(json.dumps(cms, indent=1))
    pods_file = dst / f"k8s/api/v1/namespaces/{ns}/pods.json"
    pods = json.loads(pods_file.read_text())
    for p in pods["items"]:
        for c in (p.get("spec") or {}).get("containers") or []:
            c.setdefault("env", []).append({"name": "AIRFLOW__CORE__FERNET_KEY", "value": "fernet-S3cr3t-planted3"})
    pods_file.write_text(json.dumps(pods, indent=1))
    for log in dst.glob(f"k8s/api/v1/namespaces/{ns}/pods/*/log/*.log"):
        text = log.read_text()
        log.write_text(text + ("" if text.endswith("\n") or not text else "\n")
                       + "ERROR connecting to postgresql: password=S3cr3t-planted2 rejected\n")


def test_planted_secrets_appear_in_no_output_and_no_collected_file(live, run_cli, tmp_path):
    name = _pick_scenario()
    copy = tmp_path / name
    plant_secrets(SCEN_DIR / name, copy)
    srv = ReplayServer(copy).start()
    try:
        outputs = []
        for args in (("--output", "json"), ("--output", "table", "--verbose")):
            r = live(srv, "doctor", *args)
            assert r.code in (0, 1, 3), r.err
            outputs += [r.out, r.err]
        logs = [e for e in srv.log.entries if e.path.endswith("/log")]
        assert logs, "the planted log line was never read"
        d, tgz = tmp_path / "out-dir", tmp_path / "out.tar.gz"
        for dest in (d, tgz):
            c = live(srv, "collect", "--dest", str(dest), "--verbose")
            assert c.code == 0, c.err
            outputs += [c.out, c.err]
        s = run_cli("doctor", "--snapshot", str(tgz), "--output", "json")
        outputs += [s.out, s.err]
    finally:
        srv.stop()
    blob = "\n".join(outputs)
    files = [f for f in d.rglob("*") if f.is_file()]
    with tarfile.open(tgz) as tar:
        members = [tar.extractfile(m).read().decode() for m in tar if m.isfile()]
    for secret in PLANTED:
        assert secret not in blob
        for f in files:
            assert secret not in f.read_text(), f
        for text in members:
            assert secret not in text
    meta = meta_of(d)
    masked = "\n".join(meta["redacted"])
    assert "sql_alchemy_conn" in masked and "AIRFLOW__CORE__FERNET_KEY" in masked
    assert not any(s in masked for s in PLANTED)
    assert any("<redacted>" in f.read_text() for f in files if f.suffix == ".log")


# --- failures are data ----------------------------------------------------------------------------
def _snapshot_findings(root: Path) -> int:
    from airflow_gke.views import Context
    from airflow_gke.data import Target
    from airflow_gke.registry import load_checks
    from airflow_gke.runner import run_checks
    from airflow_gke.snapshot import open_snapshot

    with open_snapshot(root) as src:
        m = src.meta
        ctx = Context(src, Target(namespace=m.namespace, project=m.project, location=m.location,
                                  cluster=m.cluster, release=m.release), now=m.captured_at)
        runs = run_checks(ctx, list(load_checks().values()))
    return sum(len(r.findings) for r in runs) + sum(r.status == "error" for r in runs)


@functools.lru_cache(maxsize=None)
def _healthy() -> str:
    """A scenario with a cluster, Kubernetes data, no finding and no check in error."""
    for n in sorted(names(), key=lambda n: "healthy" not in n):
        root = SCEN_DIR / n
        if has_k8s(root) and meta_of(root).get("cluster") and _snapshot_findings(root) == 0:
            return n
    pytest.skip("no healthy scenario")


def _by_check(doc: dict) -> dict:
    findings = {}
    for f in doc["findings"]:
        findings.setdefault(f["check"], []).append(f)
    return {c["id"]: (c["status"], c["reason"], findings.get(c["id"], [])) for c in doc["checks"]}


def _fault_run(live, run_cli, fault: Fault, key: str, *args: str) -> tuple:
    from airflow_gke.data import KEYS
    from airflow_gke.registry import load_checks

    name = _healthy()
    _code, base = snapshot_doc(run_cli, SCEN_DIR / name)
    srv = server(name)
    srv.add_fault(fault)
    r = live(srv, "doctor", "--output", "json", *args)
    before, after = _by_check(base), _by_check(r.json)
    registry = load_checks()
    needers = {c.id for c in registry.values() if key in c.needs}
    users = {c.id for c in registry.values() if key in c.uses}
    assert needers, key
    for cid, res in after.items():
        if cid in needers:
            assert res[0] == "error", (cid, res)
        elif cid not in users:
            assert res == before[cid], cid       # untouched by the failure
    assert srv.log.faults(), "the fault never fired"
    assert not srv.log.mutating()
    return r, after, needers, KEYS[key]


def test_403_on_one_path_leaves_the_others_intact_and_exits_3(live, run_cli):
    r, after, needers, k = _fault_run(
        live, run_cli, Fault(service="k8s", path="/apis/storage.k8s.io/v1/storageclasses", status=403),
        "storageclasses")
    assert r.code == 3, r.err
    for cid in needers:
        reason = after[cid][1]
        assert "permission denied to list storageclasses (cluster-wide)" in reason
        assert "grant RBAC list on storageclasses" in reason and "airflow-gke permissions" in reason


def test_timeout_on_one_path_leaves_the_others_intact_and_exits_3(live, run_cli):
    r, after, needers, _ = _fault_run(
        live, run_cli, Fault(service="container", path="/v1/projects/*/clusters/*", hang=True), "cluster",
        "--request-timeout", "0.5")
    assert r.code == 3, r.err
    for cid in needers:
        assert "could not get cluster" in after[cid][1] and "no answer" in after[cid][1]


def test_service_disabled_on_the_cluster_get_feeds_container_api_disabled(live, run_cli):
    name = _healthy()
    srv = server(name)
    srv.add_fault(Fault(service="container", path="/v1/projects/*/clusters/*", status=403, reason="SERVICE_DISABLED"))
    srv.add_fault(Fault(service="serviceusage", path="*container.googleapis.com", status=403,
                        permission="serviceusage.services.get"))
    r = live(srv, "doctor", "--output", "json", "--check", "container-api-disabled")
    assert r.code == 1, r.err
    (f,) = r.json["findings"]
    assert f["check"] == "container-api-disabled"
    assert any("SERVICE_DISABLED" in e for e in f["evidence"])
    assert any(e.startswith("activation URL: ") for e in f["evidence"])


def test_private_nodes_read_the_regions_cloud_routers_once_and_a_403_blocks_only_the_nat_check(live, run_cli):
    """Compute Engine routers.list through google-auth's AuthorizedSession, only for a cluster with
    private nodes; its 403 names compute.routers.list and leaves every other check as it was."""
    srv = server("private-nodes-no-nat")
    r = live(srv, "doctor", "--output", "json")
    routers = "/compute/v1/projects/acme-data-prod/regions/europe-west1/routers"
    assert srv.log.count(routers, service="compute") == 1
    assert [f["check"] for f in r.json["findings"]] == ["private-nodes-no-egress"]
    srv.log.clear()
    srv.add_fault(Fault(service="compute", path=routers, status=403, permission="compute.routers.list"))
    r = live(srv, "doctor", "--output", "json")
    assert r.code == 1, r.err   # findings (the floor's) outrank the unread path's exit 3
    st = {c["id"]: (c["status"], c["reason"] or "") for c in r.json["checks"]}
    assert st["private-nodes-no-egress"][0] not in ("pass", "fail")
    assert "compute.routers.list" in st["private-nodes-no-egress"][1]
    # the floor's findings are top-level again: their cause could not be read
    assert {f["check"] for f in r.json["findings"]} == {"component-not-ready"}
    # a cluster with public nodes never reads Compute Engine
    srv = server(_healthy())
    live(srv, "doctor", "--output", "json")
    assert srv.log.select(service="compute") == []


def test_quota_events_read_the_regions_quotas_once_and_a_403_keeps_the_finding_from_the_event(live, run_cli):
    """Compute Engine regions.get through google-auth's AuthorizedSession, only when an event
    implicates a quota; denied, the autoscaler's 'GCE quota exceeded' still decides, saying the
    quotas were not read (compute.regions.get)."""
    srv = server("task-pods-cpu-quota")
    r = live(srv, "doctor", "--output", "json")
    region = "/compute/v1/projects/acme-data-prod/regions/europe-west1"
    assert srv.log.count(region, service="compute") == 1
    (f,) = [f for f in r.json["findings"] if f["check"] == "gcp-quota-exceeded"]
    assert any("quota CPUS: usage 24 of limit 24" in e for e in f["evidence"])
    srv.log.clear()
    srv.add_fault(Fault(service="compute", path=region, status=403, permission="compute.regions.get"))
    r = live(srv, "doctor", "--output", "json")
    (f,) = [f for f in r.json["findings"] if f["check"] == "gcp-quota-exceeded"]
    assert "compute.regions.get" in f["message"] and f["resource"]["name"] == "europe-west1"
    # the look-alike reads the quotas too (a back-off names no cause) and finds room: a pass
    srv = server("task-pods-scale-up-stockout")
    r = live(srv, "doctor", "--output", "json")
    assert srv.log.count(region, service="compute") == 1
    assert {c["id"]: c["status"] for c in r.json["checks"]}["gcp-quota-exceeded"] == "pass"


def test_unhealthy_ui_backend_reads_its_health_check_once_and_a_403_keeps_the_hedged_finding(live, run_cli):
    """Compute Engine healthChecks.get through google-auth's AuthorizedSession, only for the UNHEALTHY
    backend of the Airflow UI (named like it); read, it decides the fix; denied (compute.healthChecks.get),
    the finding stays, hedged, with the command that reads it: never a pass."""
    neg = "k8s1-63a73e83-data-pipelines-af2-webserver-8080-184241bb"
    hc = f"/compute/v1/projects/acme-data-prod/global/healthChecks/{neg}"
    srv = server("gce-ingress-unhealthy-af2")
    r = live(srv, "doctor", "--output", "json", "--check", "gce-ingress-unhealthy-backend")
    assert r.code == 1, r.err
    assert srv.log.count(hc, service="compute") == 1
    assert [e.path for e in srv.log.select(service="compute")] == [hc]   # the HEALTHY default backend is not read
    (f,) = r.json["findings"]
    assert any(e.startswith(f"health check {neg} (the load balancer's, compute.healthChecks.get): type HTTP, "
                            "requestPath /,") for e in f["evidence"])
    assert "unless" not in f["message"] and not any("health-checks describe" in c for c in f["remediation"]["commands"])
    srv.log.clear()
    srv.add_fault(Fault(service="compute", path=hc, status=403, permission="compute.healthChecks.get"))
    r = live(srv, "doctor", "--output", "json", "--check", "gce-ingress-unhealthy-backend")
    assert r.code == 1, r.err
    st = {c["id"]: c["status"] for c in r.json["checks"]}
    assert st["gce-ingress-unhealthy-backend"] == "fail"
    (f,) = r.json["findings"]
    assert "unless GKE copied a qualifying readinessProbe" in f["message"] and "compute.healthChecks.get" in f["message"]
    assert f["remediation"]["commands"][0].splitlines()[1].startswith(
        f"gcloud compute health-checks describe {neg} --global --project acme-data-prod")
    # a HEALTHY Airflow backend (another team's UNHEALTHY Ingress beside it) reads no health check
    srv = server("gce-ingress-healthy-af3")
    live(srv, "doctor", "--output", "json", "--check", "gce-ingress-unhealthy-backend")
    assert srv.log.select(service="compute") == []


def test_internal_ingress_reads_the_regional_health_check_once(live, run_cli, tmp_path):
    """class gce-internal: regionHealthChecks.get in the cluster's region, never the global one."""
    neg = "k8s1-63a73e83-data-pipelines-af2-webserver-8080-184241bb"
    root = tmp_path / "internal"
    shutil.copytree(SCEN_DIR / "gce-ingress-unhealthy-af2", root)
    ing = root / "k8s/apis/networking.k8s.io/v1/namespaces/data-pipelines/ingresses.json"
    body = json.loads(ing.read_text())
    body["items"][0]["metadata"]["annotations"]["kubernetes.io/ingress.class"] = "gce-internal"
    ing.write_text(json.dumps(body))
    hc = root / f"gcp/compute/compute/v1/projects/acme-data-prod/global/healthChecks/{neg}.json"
    regional = Path(str(hc).replace("/global/", "/regions/europe-west1/"))
    regional.parent.mkdir(parents=True)
    hc.rename(regional)
    srv = ReplayServer(root).start()
    try:
        r = live(srv, "doctor", "--output", "json", "--check", "gce-ingress-unhealthy-backend")
        assert r.code == 1, r.err
        assert [e.path for e in srv.log.select(service="compute")] == [
            f"/compute/v1/projects/acme-data-prod/regions/europe-west1/healthChecks/{neg}"]
        (f,) = r.json["findings"]
        assert "unless" not in f["message"] and "asks HTTP GET / on the serving port" in f["message"]
    finally:
        srv.stop()


def test_secret_manager_lists_every_page_of_the_backends_own_project(live, run_cli, tmp_path):
    """secrets.list of the backend's project_id (not the diagnosed project) through google-auth's
    AuthorizedSession, following nextPageToken: a server answering 100 names a page serves the 223
    in three pages, Airflow's own on the last, and the collected body holds all of them in one list."""
    srv = server("secrets-backend-sep-mismatch")
    srv.max_page_size = 100
    try:
        r = live(srv, "doctor", "--output", "json")
        pages = srv.log.select("/v1/projects/acme-shared-secrets/secrets", service="secretmanager")
        assert [e.params.get("pageSize") for e in pages] == ["500"] * 3
        assert [bool(e.params.get("pageToken")) for e in pages] == [False, True, True]
        # the cluster's own project is listed too (one page, no secrets): whether the secrets are there instead
        assert srv.log.count("/v1/projects/acme-data-prod/secrets", service="secretmanager") == 1
        assert srv.log.count("/v3/projects/acme-shared-secrets:getIamPolicy", service="cloudresourcemanager") == 1
        (f,) = [f for f in r.json["findings"] if f["check"] == "secrets-backend-prefix-mismatch"]
        assert "project acme-shared-secrets: 223 secret(s), none named airflow-connections_..." in f["evidence"]
        assert any(e.startswith("nearest existing secret name(s) for warehouse_db: airflow-connections-warehouse_db")
                   for e in f["evidence"])
        dest = tmp_path / "snap"
        c = live(srv, "collect", "--dest", str(dest))
        assert c.code == 0, c.err
        body = json.loads((dest / "gcp/secretmanager/v1/projects/acme-shared-secrets/secrets.json").read_text())
        assert len(body["secrets"]) == 223 and body["totalSize"] == 223 and "nextPageToken" not in body
    finally:
        srv.max_page_size = None


def test_retries_honour_retry_after_then_succeed(live, run_cli):
    name = _healthy()
    _c, base = snapshot_doc(run_cli, SCEN_DIR / name)
    srv = server(name)
    ns = srv.meta["namespace"]
    srv.add_fault(Fault(service="k8s", path=f"/api/v1/namespaces/{ns}/pods", status=429, retry_after=0.2, times=1))
    srv.add_fault(Fault(service="cloudresourcemanager", path="*:getIamPolicy", status=503, times=2))
    srv.add_fault(Fault(service="serviceusage", path="*/iam.googleapis.com", reset=True, times=1))
    r = live(srv, "doctor", "--output", "json")
    assert comparable(r.json) == comparable(base)
    assert srv.log.count(f"/api/v1/namespaces/{ns}/pods", "k8s") == 2
    assert srv.log.count("*:getIamPolicy", "cloudresourcemanager") == 3
    assert not srv.log.mutating()


def test_retries_are_bounded(live, run_cli):
    name = _healthy()
    srv = server(name)
    srv.add_fault(Fault(service="storage", path="/storage/v1/b/*", status=500, retry_after=0))
    r = live(srv, "doctor", "--output", "json", "--check", "gcs-log-write-denied")
    assert r.code in (0, 1, 3)
    for path, n in srv.log.paths("storage").items():
        assert n == 4, (path, n)    # the first try and 3 retries


def test_lists_are_paged_and_merged(live, run_cli):
    name = _healthy()
    _c, base = snapshot_doc(run_cli, SCEN_DIR / name)
    srv = server(name)
    r = live(srv, "doctor", "--output", "json", "--page-size", "1")
    assert comparable(r.json) == comparable(base)
    assert any("continue=" in e.query for e in srv.log.entries if e.service == "k8s")
    assert_read_only_once(srv)


def test_a_list_read_page_by_page_equals_the_list_read_whole(live, run_cli, tmp_path):
    """Each page of a list is compacted and redacted as it arrives (MemorySource.prepare): pods and
    events read two at a time over many pages give the same collected files, byte for byte, and
    the same report as the same lists read in one page each."""
    name = _pick_scenario()
    copy = tmp_path / name
    plant_secrets(SCEN_DIR / name, copy)      # env and log secrets: redaction per page, too
    ns = meta_of(copy)["namespace"]
    pods = json.loads((copy / f"k8s/api/v1/namespaces/{ns}/pods.json").read_text())["items"]
    events = json.loads((copy / f"k8s/api/v1/namespaces/{ns}/events.json").read_text())["items"]
    assert len(pods) >= 6 and len(events) >= 6, "too few pods or events for several pages"
    srv = ReplayServer(copy).start()
    try:
        dirs, docs = {}, {}
        for size in ("2", "100000"):
            srv.log.clear()
            dirs[size] = tmp_path / f"collected-{size}"
            c = live(srv, "collect", "--dest", str(dirs[size]), "--page-size", size)
            assert c.code == 0, c.err
            pages = Counter(e.path for e in srv.log.entries if "continue=" in e.query)
            if size == "2":
                assert pages[f"/api/v1/namespaces/{ns}/pods"] == (len(pods) + 1) // 2 - 1
                assert pages[f"/api/v1/namespaces/{ns}/events"] == (len(events) + 1) // 2 - 1
            else:
                assert not pages
            r = live(srv, "doctor", "--output", "json", "--page-size", size)
            assert r.code in (0, 1, 3), r.err
            docs[size] = r.json
    finally:
        srv.stop()
    files = {size: {f.relative_to(d).as_posix(): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}
             for size, d in dirs.items()}
    assert files["2"].keys() == files["100000"].keys()
    assert f"k8s/api/v1/namespaces/{ns}/pods.json" in files["2"]
    for rel, body in files["2"].items():
        assert body == files["100000"][rel], f"{rel} differs between page sizes 2 and 100000"
    for secret in PLANTED:
        assert not any(secret.encode() in body for body in files["2"].values())
    assert comparable(docs["2"]) == comparable(docs["100000"])
    assert docs["2"]["findings"], "no finding to compare"


def test_save_snapshot_reads_once_and_replays(live, run_cli, tmp_path):
    name = _healthy()
    _c, base = snapshot_doc(run_cli, SCEN_DIR / name)
    srv = server(name)
    out = tmp_path / "saved.tar.gz"
    r = live(srv, "doctor", "--output", "json", "--save-snapshot", str(out))
    assert comparable(r.json) == comparable(base)
    assert_read_only_once(srv)
    assert f"saved snapshot: {out}" in r.err
    _c2, again = snapshot_doc(run_cli, out)
    assert comparable(again) == comparable(base)


def test_max_logs_caps_log_reads(live, run_cli):
    name = _pick_scenario()
    srv = server(name)
    live(srv, "doctor", "--output", "json", "--max-logs", "0")
    assert not [e for e in srv.log.entries if e.path.endswith("/log")]


# --- discovery, preflight, nothing reachable ------------------------------------------------------
def test_project_only_preflight(live, run_cli):
    name = _healthy()
    srv = server(name)
    r = live(srv, "doctor", "--output", "json", kube=False)
    assert r.code == 0, r.err
    st = {c["id"]: c for c in r.json["checks"]}
    assert st["container-api-disabled"]["status"] == "pass"
    skipped = [c for c in st.values() if c["status"] == "skip"]
    assert skipped and all(PREFLIGHT.match(c["reason"]) for c in skipped)
    assert "no-such-kubeconfig does not exist" in skipped[0]["reason"]
    assert not [e for e in srv.log.entries if e.service == "k8s"]
    assert [e for e in srv.log.entries if e.service == "serviceusage"]


def test_project_flag_for_another_project_than_the_context_is_a_preflight(live, run_cli):
    name = _healthy()
    srv = server(name)
    r = live(srv, "doctor", "--output", "json", "--project", "another-project", "--verbose")
    assert r.json["run"]["project"] == "another-project" and r.json["run"]["cluster"] is None
    assert not [e for e in srv.log.entries if e.service == "k8s"]
    assert "is a cluster of project" in r.err and "pass --context" in r.err


def test_namespace_is_discovered_from_tier_airflow_deployments(live, run_cli, tmp_path):
    name = _healthy()
    srv = server(name)
    kc = tmp_path / "kc-nons"
    srv.write_kubeconfig(kc)
    doc = json.loads(kc.read_text())
    doc["contexts"][0]["context"].pop("namespace")
    kc.write_text(json.dumps(doc))
    r = run_cli("doctor", "--output", "json", "--now", srv.meta["captured_at"], "--verbose",
                env={**srv.env(kubeconfig=kc)})
    assert r.json["run"]["namespace"] == srv.meta["namespace"]
    assert srv.log.count("/apis/apps/v1/deployments", "k8s") == 1
    assert "holds the chart's tier=airflow Deployments" in r.err


def test_nothing_to_diagnose_is_one_line_exit_2(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    r = run_cli("doctor", env={"KUBECONFIG": str(tmp_path / "nope")})
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert "nothing to diagnose" in lines[0] and "KUBECONFIG" in lines[0]
    # the unusable credentials, and the exact command that sets them up, on their own line
    assert lines[1:] and "GOOGLE_APPLICATION_CREDENTIALS" in lines[1] and \
        lines[1].endswith("run: gcloud auth application-default login") and len(lines) == 2
    assert r.out == ""


def test_nothing_reachable_says_what_was_tried_exit_2(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with ReplayServer(SCEN_DIR / _healthy()) as srv:
        kc = srv.write_kubeconfig(tmp_path / "kc")
        dead = "http://127.0.0.1:9"
        kc.write_text(kc.read_text().replace(srv.k8s_url, dead))
        env = {"KUBECONFIG": str(kc), **{k: dead for k in srv.env()}}
    r = run_cli("doctor", "--timeout", "20", env=env)
    assert r.code == 2
    (line,) = r.err.strip().splitlines()
    assert "nothing reachable" in line and "Kubernetes API http://127.0.0.1:9" in line and "Google Cloud" in line


def test_bad_inputs_exit_2(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    r = run_cli("doctor", "--kubeconfig", str(tmp_path / "missing"), "--project", "p")
    assert r.code == 2 and "kubeconfig" in r.err
    r = run_cli("doctor", "--project", "p",
                env={"KUBECONFIG": str(tmp_path / "missing"), "AIRFLOW_GKE_ENDPOINT_CONTAINER": "http://example.com"})
    assert r.code == 2 and "only accepted on a loopback address" in r.err
    r = run_cli("doctor", "--snapshot", str(tmp_path), "--project", "p")
    assert r.code == 2 and "live mode only" in r.err


def test_plain_http_endpoint_must_be_loopback(tmp_path, monkeypatch):
    from airflow_gke.errors import UserError
    from airflow_gke.live.options import endpoint

    assert endpoint("container", {"AIRFLOW_GKE_ENDPOINT_CONTAINER": "http://127.0.0.1:8080/"}).anonymous
    assert endpoint("iam", {"AIRFLOW_GKE_ENDPOINT_IAM": "http://[::1]:80"}).anonymous
    ep = endpoint("storage", {"AIRFLOW_GKE_ENDPOINT_STORAGE": "https://private.googleapis.com"})
    assert ep.url == "https://private.googleapis.com" and not ep.anonymous
    with pytest.raises(UserError):
        endpoint("container", {"AIRFLOW_GKE_ENDPOINT_CONTAINER": "http://10.0.0.1"})


# --- output ----------------------------------------------------------------------------------------
def test_verbose_prints_call_and_check_timings(live, run_cli):
    name = _healthy()
    srv = server(name)
    r = live(srv, "doctor", "--verbose", "--output", "json")
    json.loads(r.out)   # stdout stays one JSON document
    assert re.search(r"(?m)^  k8s\s+GET\s+/api/v1/namespaces/\S+/pods\?limit=500\s+200\s+[\d.]+ ms", r.err)
    assert re.search(r"(?m)^  container\s+GET\s+/v1/projects/\S+/clusters/\S+\s+200\s+[\d.]+ ms", r.err)
    assert re.search(r"(?m)^live read: \d+ requests", r.err)
    assert re.search(r"(?m)^  (pass|fail|skip|error)\s+container-api-disabled\s+[\d.]+ ms", r.err)


def test_snapshot_and_meta_commands_do_not_import_the_client_libraries():
    snap = SCEN_DIR / names()[0] if names() else None
    cmds = [["--version"], ["checks"], ["explain", "gcs-log-write-denied"], ["permissions"]]
    if snap:
        cmds.append(["doctor", "--snapshot", str(snap), "--output", "json"])
    code = ("import sys\nfrom airflow_gke.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'google', 'grpc', 'proto'))\n"
            "sys.stderr.write('IMPORTED ' + ' '.join(bad[:5]) + '\\n')\n")
    for args in cmds:
        p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
        assert "IMPORTED \n" in p.stderr, (args, p.stderr[-500:])


# --- permissions -----------------------------------------------------------------------------------
def test_permissions_yaml_is_a_valid_least_privilege_role():
    import kubernetes_validate
    import yaml

    from airflow_gke.data import GUARD_KEYS, KEYS, reads_for
    from airflow_gke.registry import load_checks

    p = subprocess.run([sys.executable, "-m", "airflow_gke.cli", "permissions", "--output", "yaml", "-n", "data"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    assert [d["kind"] for d in docs] == ["Role", "ClusterRole"]
    assert docs[0]["metadata"]["namespace"] == "data"
    for d in docs:
        kubernetes_validate.validate(d, "1.30", strict=True)
        for rule in d["rules"]:
            assert set(rule["verbs"]) <= {"get", "list"}
            assert "secrets" not in rule["resources"]
    # exactly the reads the default checks declare (and what their per-item reads derive from)
    keys = {k for c in load_checks().values() if not c.extended for k in c.data_keys}
    keys = reads_for(keys)
    keys |= set(GUARD_KEYS)   # the target guard's reads, in every run
    want_ns = {(KEYS[k].rbac[0], KEYS[k].rbac[1], KEYS[k].rbac[2]) for k in keys
               if KEYS[k].scope == "k8s" and "namespace" in KEYS[k].requires}
    want_cl = {KEYS[k].rbac for k in keys if KEYS[k].scope == "k8s" and "namespace" not in KEYS[k].requires}

    def granted(doc):
        return {(g, r, v) for rule in doc["rules"] for g in rule["apiGroups"] for r in rule["resources"]
                for v in rule["verbs"]}

    assert granted(docs[0]) == want_ns and ("", "pods", "list") in want_ns and ("", "pods/log", "get") in want_ns
    assert granted(docs[1]) == want_cl and ("storage.k8s.io", "storageclasses", "list") in want_cl
    for k in keys:
        if KEYS[k].scope == "gcp" and KEYS[k].optional:   # listed apart, not in the custom role
            assert f"# OPTIONAL (the doctor runs without it): {KEYS[k].iam}\n" in p.stdout
            assert KEYS[k].iam not in next(x for x in p.stdout.splitlines() if "gcloud iam roles create" in x)
        elif KEYS[k].scope == "gcp":
            assert f"#   {KEYS[k].iam}\n" in p.stdout
    assert "gcloud iam roles create" in p.stdout


def test_permissions_follow_the_selected_checks(run_cli):
    r = run_cli("permissions", "--check", "container-api-disabled", "--project", "acme")
    assert r.code == 0
    # a project check reads no Kubernetes list itself: only the target guard's reads are granted
    rbac = r.out.split("Kubernetes RBAC", 1)[1].split("Apply:", 1)[0].split("\n")
    assert [x.strip() for x in rbac if x.strip().startswith("list")] == [
        "list configmaps in namespace airflow", "list deployments, statefulsets (apiGroup apps) in namespace airflow",
        "list deployments (apiGroup apps) cluster-wide"]
    assert "serviceusage.services.get" in r.out and "container.clusters.get" in r.out
    assert "--project acme" in r.out and "storage.buckets" not in r.out
    from airflow_gke.data import GUARD_KEYS, KEYS
    from airflow_gke.registry import load_checks

    chk = load_checks()["pvc-access-mode-unsupported"]
    r = run_cli("permissions", "--check", chk.id, "--output", "yaml")
    for name, k in KEYS.items():
        if k.scope == "k8s" and k.per is None:
            assert (f"- {k.rbac[1]}\n" in r.out) == (name in chk.data_keys or name in GUARD_KEYS), name


# --- optional: a real cluster ---------------------------------------------------------------------
@pytest.mark.live
def test_against_the_cluster_of_kubeconfig(request, run_cli):
    if "live" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("runs against $KUBECONFIG's cluster only when asked: pytest -m live")
    r = run_cli("doctor", "--output", "json", "--verbose")
    assert r.code in (0, 1, 3), r.err
    assert r.json["run"]["mode"] == "live"


def test_secret_manager_backend_reads_names_and_policies_only(live, run_cli):
    """The Secret Manager backend's reads go through the live reader once: the secrets' names (list),
    then a GET :getIamPolicy (Secret Manager's verb) of each secret under the prefixes; never a version."""
    srv = server("secrets-backend-access-denied")
    r = live(srv, "doctor", "--output", "json")
    assert r.code == 1, r.err
    assert [f["check"] for f in r.json["findings"]] == ["secrets-backend-access-denied"]
    sm = sorted((e.method, e.path) for e in srv.log.entries if e.service == "secretmanager")
    base = "/v1/projects/acme-data-prod/secrets"
    assert sm == [("GET", base)] + [("GET", f"{base}/{s}:getIamPolicy") for s in (
        "airflow-connections-slack_alerts", "airflow-connections-warehouse_db", "airflow-variables-env_name")]
    assert not any("/versions" in p for _m, p in sm)
    assert_read_only_once(srv)


def test_keda_scaled_objects_are_read_once_and_a_missing_crd_is_not_installed(live, run_cli, tmp_path):
    """KEDA ScaledObjects through the real kubernetes client: the chart's ScaledObject fires
    keda-scaler-failing; a 403 on the list errors that check only; without KEDA the API server (the
    replay server, from a snapshot that stores nothing under keda.sh) answers 404 for the unknown type,
    and the check is skipped as not installed, never failed."""
    import urllib.error
    import urllib.request

    so = "/apis/keda.sh/v1alpha1/namespaces/orchestration/scaledobjects"
    srv = server("keda-workers-through-pgbouncer")
    r = live(srv, "doctor", "--output", "json")
    assert [e.status for e in srv.log.select(so, service="k8s")] == [200]
    assert [f["check"] for f in r.json["findings"]] == ["keda-scaler-failing"]
    # a namespace with no ScaledObject: the type is served (its CRD is installed), so an empty list
    with urllib.request.urlopen(srv.k8s_url + "/apis/keda.sh/v1alpha1/namespaces/elsewhere/scaledobjects") as resp:
        assert resp.status == 200 and json.loads(resp.read())["items"] == []
    srv.log.clear()
    srv.add_fault(Fault(path=so, status=403))
    r = live(srv, "doctor", "--output", "json")
    st = {c["id"]: (c["status"], c["reason"] or "") for c in r.json["checks"]}
    assert st["keda-scaler-failing"][0] == "error" and "scaledobjects" in st["keda-scaler-failing"][1]
    assert r.json["findings"] == []
    assert st["pgbouncer-auth-mismatch"][0] == "pass"

    # no KEDA at all: a scenario copy that stores nothing under keda.sh
    root = tmp_path / "no-keda"
    shutil.copytree(SCEN_DIR / _healthy(), root)
    shutil.rmtree(root / "k8s/apis/keda.sh")
    with ReplayServer(root) as bare:
        ns = meta_of(root)["namespace"]
        try:
            urllib.request.urlopen(bare.k8s_url + f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects")
            raise AssertionError("an unknown type must answer 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404 and json.loads(e.read())["reason"] == "NotFound"
        bare.log.clear()
        r = live(bare, "doctor", "--output", "json")
        c = next(c for c in r.json["checks"] if c["id"] == "keda-scaler-failing")
        assert (c["status"], c["reason"]) == ("skip", "KEDA is not installed (the ScaledObject CRD answers 404): "
                                                      "not applicable")
        assert [e.status for e in bare.log.select(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects")] == [404]


def test_httproutes_are_read_once_and_a_missing_gateway_api_is_no_routes(live, run_cli, tmp_path):
    """Gateway API HTTPRoutes through the real kubernetes client: the route that strips /airflow in front
    of the api-server fires ui-base-url-path-mismatch; a 403 on the list errors that check only (an
    HTTPRoute could route the path); a cluster without the Gateway API answers 404 (the replay server
    serves no such type), which is no HTTPRoute, not a failure."""
    import urllib.error
    import urllib.request

    hr = "/apis/gateway.networking.k8s.io/v1/namespaces/airflow/httproutes"
    srv = server("api-server-base-url-httproute-rewrite-af3")
    r = live(srv, "doctor", "--output", "json")
    assert [e.status for e in srv.log.select(hr, service="k8s")] == [200]
    [f] = [f for f in r.json["findings"] if f["check"] == "ui-base-url-path-mismatch"]
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("HTTPRoute", "airflow-ui")
    srv.log.clear()
    srv.add_fault(Fault(path=hr, status=403))
    r = live(srv, "doctor", "--output", "json")
    st = {c["id"]: (c["status"], c["reason"] or "") for c in r.json["checks"]}
    assert st["ui-base-url-path-mismatch"][0] == "error" and "httproutes" in st["ui-base-url-path-mismatch"][1]
    assert not [f for f in r.json["findings"] if f["check"] == "ui-base-url-path-mismatch"]

    # the healthy release on a cluster without the Gateway API: the type is unknown, 404
    root = tmp_path / "no-gateway"
    shutil.copytree(SCEN_DIR / _healthy(), root)
    shutil.rmtree(root / "k8s/apis/gateway.networking.k8s.io")
    with ReplayServer(root) as bare:
        ns = meta_of(root)["namespace"]
        path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
        try:
            urllib.request.urlopen(bare.k8s_url + path)
            raise AssertionError("an unknown type must answer 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404 and json.loads(e.read())["reason"] == "NotFound"
        bare.log.clear()
        r = live(bare, "doctor", "--output", "json")
        c = next(c for c in r.json["checks"] if c["id"] == "ui-base-url-path-mismatch")
        assert c["status"] in ("pass", "skip") and "httproutes" not in (c["reason"] or "")
        assert [e.status for e in bare.log.select(path)] == [404]
