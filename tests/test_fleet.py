"""``doctor --all-namespaces/-A`` (doctor/fleet.py, app.diagnose_fleet): every release of the
official chart in a cluster, each diagnosed with its own target, cluster-scoped and Google data read
once for all. The cluster here is built from three scenarios of the same cluster (acme-data-prod /
airflow-prod): namespace ``airflow`` holds seed-incident's broken release ``airflow``; namespace
``data-pipelines`` holds healthy-af2-celery's release ``af2`` and gcs-bucket-missing's release
``airflow`` (remote_base_log_folder names a deleted bucket: a typo'd config), moved there."""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import scenario
from replay import ReplayServer



def _renamespace(obj, old: str, new: str):
    """Every ``namespace: old`` field (metadata, subjects, involvedObject ...) becomes ``new``, and
    Workload Identity members ``<pool>[old/ksa]`` follow the KSAs they name."""
    if isinstance(obj, str) and old != new:
        return obj.replace(f".svc.id.goog[{old}/", f".svc.id.goog[{new}/")
    if isinstance(obj, dict):
        return {k: (new if k == "namespace" and v == old else _renamespace(v, old, new)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_renamespace(v, old, new) for v in obj]
    return obj


def _merge_list(dest: Path, body: dict) -> None:
    if dest.exists():
        have = json.loads(dest.read_text())
        names = {(i["metadata"].get("namespace"), i["metadata"]["name"]) for i in have.get("items", [])}
        have["items"] += [i for i in body.get("items", [])
                          if (i["metadata"].get("namespace"), i["metadata"]["name"]) not in names]
        body = have
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(body))


def _merge_iam(dest: Path, body: dict) -> None:
    have = json.loads(dest.read_text())
    roles = {b["role"]: b for b in have.get("bindings", [])}
    for b in body.get("bindings", []):
        if b["role"] in roles:
            roles[b["role"]]["members"] = sorted(set(roles[b["role"]]["members"]) | set(b["members"]))
        else:
            have.setdefault("bindings", []).append(b)
    dest.write_text(json.dumps(have))


def _add(dest_root: Path, src: Path, ns_from: str, ns_to: str) -> None:
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src).as_posix()
        if not f.is_file() or rel in ("meta.json", "SCENARIO.md"):
            continue
        rel = rel.replace(f"/namespaces/{ns_from}/", f"/namespaces/{ns_to}/")
        dest = dest_root / rel
        if f.suffix != ".json" or f.name.endswith(".error.json"):
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
            continue
        body = _renamespace(json.loads(f.read_text()), ns_from, ns_to)
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            _merge_list(dest, body)
        elif rel.endswith(":getIamPolicy.json") and dest.exists() and "cloudresourcemanager" in rel:
            _merge_iam(dest, body)
        elif not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(body))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fleet") / "three-releases"
    # The healthy scenario's cluster-scoped and project data win (first written): the cluster is
    # healthy, what is broken is in one release's namespace objects.
    _add(root, scenario("healthy-af2-celery"), "data-pipelines", "data-pipelines")
    _add(root, scenario("gcs-bucket-missing"), "airflow", "data-pipelines")
    _add(root, scenario("seed-incident"), "airflow", "airflow")
    meta = json.loads((scenario("seed-incident") / "meta.json").read_text())
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def srv(cluster):
    with ReplayServer(cluster) as s:
        yield s


@pytest.fixture
def live(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)

    def run(s: ReplayServer, *args: str):
        s.log.clear()
        kc = s.write_kubeconfig(tmp_path / "kubeconfig")
        return run_cli("doctor", "--now", s.meta["captured_at"], *args, env=s.env(kubeconfig=kc))

    return run


def _by_target(doc: dict) -> dict[tuple[str, str], dict]:
    return {(t["run"]["namespace"], t["run"]["release"]): t for t in doc["targets"]}


def _ids(report: dict, severity: str | None = None) -> set[str]:
    return {f["check"] for f in report["findings"] if severity is None or f["severity"] == severity}


def _validate_fleet(doc: dict) -> None:
    from conftest import validate_fleet

    validate_fleet(doc)
    bad = dict(doc, targets=[dict(doc["targets"][0], schema_version="2")])
    with pytest.raises(AssertionError):      # the fleet schema holds its targets to report-v1
        validate_fleet(bad)


def _single(run_cli, name: str) -> dict:
    r = run_cli("doctor", "--snapshot", str(scenario(name)), "--output", "json")
    return r.json


def test_live_all_namespaces_each_release_its_own_findings(live, srv, run_cli):
    r = live(srv, "-A", "--output", "json")
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    _validate_fleet(doc)
    got = _by_target(doc)
    assert sorted(got) == [("airflow", "airflow"), ("data-pipelines", "af2"), ("data-pipelines", "airflow")]
    broken, healthy, typo = got["airflow", "airflow"], got["data-pipelines", "af2"], got["data-pipelines", "airflow"]
    # The broken release: the seed incident's own errors, as a run of that scenario alone finds them.
    assert {"pvc-access-mode-unsupported", "gcs-log-write-denied"} <= _ids(broken, "error")
    # The healthy release in the shared namespace stays clean: nothing of its neighbour leaks in.
    assert _ids(healthy) == set(), [(f["check"], f["title"]) for f in healthy["findings"]]
    assert healthy["summary"]["checks"]["error"] == 0
    # The typo'd bucket: that release alone, naming the bucket it names.
    assert _ids(typo, "error") == {"remote-log-bucket-missing"}
    (f,) = [f for f in typo["findings"] if f["check"] == "remote-log-bucket-missing"]
    assert "acme-airflow-logs-old" in json.dumps(f)
    assert all(t["run"]["target"]["verdict"] == "airflow" for t in doc["targets"])
    assert doc["summary"] == {"targets": 3, "diagnosed": 3, "unreachable": 0, "exit_code": 1}
    # Cluster-scoped and Google paths are read once in total; nothing twice at all.
    assert not srv.log.duplicates()
    paths = srv.log.paths()
    for p in ("/api/v1/nodes", "/api/v1/persistentvolumes", "/apis/storage.k8s.io/v1/storageclasses",
              "/apis/rbac.authorization.k8s.io/v1/clusterroles", "/apis/apps/v1/deployments"):
        assert srv.log.count(p, "k8s") == 1, (p, srv.log.count(p, "k8s"))
    google = Counter(e.path for e in srv.log if e.service != "k8s")
    assert google and max(google.values()) == 1, google
    assert not srv.log.mutating()


def test_live_all_namespaces_table_summary_then_each_target(live, srv):
    r = live(srv, "-A")
    assert r.code == 1, r.err
    lines = r.out.splitlines()
    head = lines.index(next(x for x in lines if x.startswith("TARGET")))
    rows = {x.split()[0]: x.split()[1:] for x in lines[head + 1:head + 4]}
    ctx = srv.meta["context"]
    assert rows[f"{ctx}/data-pipelines/af2"] == ["0", "0", rows[f"{ctx}/data-pipelines/af2"][2], "0"]
    assert rows[f"{ctx}/data-pipelines/airflow"][0] == "1" and rows[f"{ctx}/data-pipelines/airflow"][-1] == "1"
    assert rows[f"{ctx}/airflow/airflow"][-1] == "1"
    # then each target's own report, under its own heading
    for label in rows:
        assert f"── {label} " in r.out
    assert r.out.index(f"── {ctx}/airflow/airflow ") > head


def test_snapshot_of_several_namespaces_equals_live(run_cli, live, srv, cluster):
    snap = run_cli("doctor", "--snapshot", str(cluster), "-A", "--output", "json")
    lv = live(srv, "-A", "--output", "json")
    assert snap.code == lv.code == 1
    s, l_ = _by_target(json.loads(snap.out)), _by_target(json.loads(lv.out))
    assert sorted(s) == sorted(l_)
    for k in s:
        assert _ids(s[k]) == _ids(l_[k]), k


def test_all_namespaces_rejects_what_names_one_target(run_cli, cluster):
    for extra in (("--release", "af2"),):
        r = run_cli("doctor", "--snapshot", str(cluster), "-A", *extra)
        assert r.code == 2, (extra, r.err)
        assert "--all-namespaces" in r.err and "Traceback" not in r.err


def test_markdown_fits_one_comment_with_the_table_and_the_worst_findings(run_cli, cluster, tmp_path):
    r = run_cli("doctor", "--snapshot", str(cluster), "-A", "--output-file", str(tmp_path / "fleet.md"),
                "--output-file", str(tmp_path / "fleet.json"))
    assert r.code == 1, r.err
    # the comment points at the full JSON the same run wrote
    assert (tmp_path / "fleet.md").read_text().rstrip().endswith(f"evidence and fix: `{tmp_path / 'fleet.json'}`.")
    assert json.loads((tmp_path / "fleet.json").read_text())["summary"]["targets"] == 3
    r = run_cli("doctor", "--snapshot", str(cluster), "-A", "--output", "markdown")
    md = r.out
    assert md.startswith("## 🔴 airflow-gke doctor · fleet · snapshot · 3 target(s)")
    assert "| Target | Errors | Warnings | Incomplete | Exit |" in md
    ctx = json.loads((cluster / "meta.json").read_text())["context"]
    assert f"| {ctx}/data-pipelines/af2 | 0 | 0 | " in md
    # errors first across the fleet, each naming its target and check
    worst = [x for x in md.splitlines() if x.startswith("- **")]
    assert worst and all(x.startswith("- **ERROR**") for x in worst[:4])
    assert f"- **ERROR** `{ctx}/data-pipelines/airflow` · `remote-log-bucket-missing`: " in md
    assert md.rstrip().endswith("the JSON report (`--output-file json:airflow-gke.json`).")


def test_lookup_forbidden_searches_each_listed_namespace_and_names_the_unreadable(live, srv):
    """The cluster-wide tier=airflow look-up is refused; the caller may list namespaces (on GKE,
    roles/container.clusterViewer alone grants that) but not read data-pipelines: each namespace
    is searched, airflow's release is diagnosed, data-pipelines is named as not checked."""
    from replay import Fault

    srv.faults = [Fault(path="/apis/apps/v1/deployments", status=403),
                  Fault(path="/apis/apps/v1/namespaces/data-pipelines/*", status=403),
                  Fault(path="/api/v1/namespaces/data-pipelines/*", status=403)]
    try:
        r = live(srv, "-A", "--output", "json")
        t = live(srv, "-A")
        md = live(srv, "-A", "--output", "markdown").out
    finally:
        srv.faults = []
    assert f"| {srv.meta['context']}/data-pipelines/* | - | - | - | 3 (namespace not checked: list deployments in " \
           "namespace data-pipelines: HTTP 403" in md, md
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    assert sorted(_by_target(doc)) == [("airflow", "airflow")]
    (u,) = doc["unchecked"]
    assert u["target"]["namespace"] == "data-pipelines" and u["target"]["context"] == srv.meta["context"]
    assert u["reason"].startswith("list deployments in namespace data-pipelines: HTTP 403") and \
        "list configmaps in namespace data-pipelines: HTTP 403" in u["reason"], u["reason"]
    assert doc["summary"]["unchecked_namespaces"] == 1
    (n,) = doc["notices"]
    assert "HTTP 403" in n["message"] and "each of the 2 namespace(s) of the namespace list was searched" in n["message"]
    assert srv.log.count("/api/v1/namespaces", "k8s") == 1
    (line,) = [x for x in t.out.splitlines() if x.startswith(f"{srv.meta['context']}/data-pipelines/* ")]
    assert line.split()[4] == "3" and "namespace not checked: list deployments in namespace data-pipelines" in line


def test_lookup_and_namespace_list_forbidden_search_the_context_namespace(live, srv):
    from replay import Fault

    srv.faults = [Fault(path="/apis/apps/v1/deployments", status=403), Fault(path="/api/v1/namespaces", status=403)]
    try:
        r = live(srv, "-A", "--output", "json")
        doc = json.loads(r.out)
        assert sorted(_by_target(doc)) == [("airflow", "airflow")]
        (n,) = doc["notices"]
        assert "list namespaces (cluster-wide) failed too (HTTP 403" in n["message"]
        assert "only namespace airflow (the kube context's) was searched; other namespaces were not (name them " \
               "with --namespace" in n["message"], n["message"]
        assert "unchecked" not in doc
        # ... and what the caller names is what is searched: no look-up, no namespace list
        r = live(srv, "-A", "-n", "data-pipelines", "-n", "airflow", "--output", "json")
        assert r.code == 1, r.err
        doc = json.loads(r.out)
        assert sorted(_by_target(doc)) == [("airflow", "airflow"), ("data-pipelines", "af2"),
                                           ("data-pipelines", "airflow")]
        assert srv.log.count("/apis/apps/v1/deployments", "k8s") == 0 and srv.log.count("/api/v1/namespaces", "k8s") == 0
        assert "notices" not in doc and "unchecked" not in doc
        # a named namespace the caller may not read: not checked, and the run is incomplete
        srv.faults.append(Fault(path="/api/v1/namespaces/team-x/*", status=403))
        srv.faults.append(Fault(path="/apis/apps/v1/namespaces/team-x/*", status=403))
        r = live(srv, "-A", "-n", "team-x", "--output", "json")
        assert r.code == 3, r.err
        doc = json.loads(r.out)
        assert doc["targets"] == [] and [u["target"]["namespace"] for u in doc["unchecked"]] == ["team-x"]
    finally:
        srv.faults = []


def test_several_namespaces_only_with_all_namespaces(run_cli, cluster):
    r = run_cli("doctor", "--snapshot", str(cluster), "-n", "airflow", "-n", "data-pipelines")
    assert r.code == 2 and "several only with --all-namespaces" in r.err
    r = run_cli("doctor", "--snapshot", str(cluster), "-A", "-n", "data-pipelines", "--output", "json")
    assert r.code == 1, r.err
    assert sorted(_by_target(r.json)) == [("data-pipelines", "af2"), ("data-pipelines", "airflow")]


# --- several contexts -------------------------------------------------------------------------

def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                   # nothing listens there: connection refused, as for a deleted cluster
    return port


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory):
    """seed-incident's cluster (acme-data-prod) and healthy-minimal's (acme-data-dev), each with its
    own Kubernetes API; Google answers for both projects come from the second server's endpoints
    (one set of AIRFLOW_GKE_ENDPOINT_* per process), which holds both projects' Google data."""
    root = tmp_path_factory.mktemp("ctx")
    dev = root / "dev"
    shutil.copytree(scenario("healthy-minimal"), dev)
    shutil.copytree(scenario("seed-incident") / "gcp", dev / "gcp", dirs_exist_ok=True)
    with ReplayServer(scenario("seed-incident")) as prod_srv, ReplayServer(dev) as dev_srv:
        yield prod_srv, dev_srv


def _kubeconfig(path: Path, *servers: ReplayServer, gone: str | None = None) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for i, s in enumerate(servers):
        one = json.loads(s.write_kubeconfig(path.with_suffix(f".{i}")).read_text())
        for key in ("clusters", "users", "contexts"):
            doc[key] += one[key]
    if gone:
        doc["clusters"].append({"name": gone, "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}})
        doc["users"].append({"name": gone, "user": {"token": "replay-dummy-token"}})
        doc["contexts"].append({"name": gone, "context": {"cluster": gone, "user": gone, "namespace": "airflow"}})
    doc["current-context"] = doc["contexts"][0]["name"]
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    return path


GONE = "gke_acme-data-test_europe-west1_airflow-gone"


def test_three_contexts_one_unreachable(run_cli, monkeypatch, tmp_path, two_clusters):
    prod, dev = two_clusters
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kc = _kubeconfig(tmp_path / "kubeconfig", prod, dev, gone=GONE)
    env = dev.env(kubeconfig=kc)
    prod.log.clear()
    dev.log.clear()
    r = run_cli("doctor", "--now", dev.meta["captured_at"], "--all-contexts", "--parallel", "3",
                "--request-timeout", "2", "--output", "json", env=env)
    assert r.code == 1, r.err      # the worst target's: seed-incident's errors
    doc = json.loads(r.out)
    got = {t["run"]["context"]: t for t in doc["targets"]}
    assert sorted(got) == sorted([prod.meta["context"], dev.meta["context"]])
    assert {"pvc-access-mode-unsupported", "gcs-log-write-denied"} <= _ids(got[prod.meta["context"]], "error")
    assert _ids(got[dev.meta["context"]], "error") == set()
    (u,) = doc["unreachable"]
    assert u["target"]["context"] == GONE and u["reason"].startswith("unreachable: Kubernetes API http://127.0.0.1:")
    assert doc["summary"] == {"targets": 3, "diagnosed": 2, "unreachable": 1, "exit_code": 1}
    # each context read its own cluster
    assert prod.log.count("/api/v1/namespaces/airflow/pods", "k8s") == 1
    assert dev.log.count("/api/v1/namespaces/airflow/pods", "k8s") == 1

    t = run_cli("doctor", "--now", dev.meta["captured_at"], "--context", dev.meta["context"], "--context", GONE,
                "--request-timeout", "2", env=env)
    assert t.code == 3, t.err      # healthy + unreachable: incomplete
    (line,) = [x for x in t.out.splitlines() if x.startswith(GONE)]
    assert "not diagnosed: unreachable: Kubernetes API" in line
    (row,) = [x.split() for x in t.out.splitlines() if x.startswith(dev.meta["context"] + "/airflow/airflow ")]
    assert (row[1], row[2], row[-1]) == ("0", "0", "0")      # errors, warnings, exit code of the healthy one


def test_all_contexts_and_context_are_one_or_the_other(run_cli):
    r = run_cli("doctor", "--all-contexts", "--context", "a")
    assert r.code == 2 and "--all-contexts and --context" in r.err
    r = run_cli("collect", "--context", "a", "--context", "b")
    assert r.code == 2 and "one --context" in r.err


def test_junit_one_suite_per_target(run_cli, cluster, tmp_path):
    import xml.etree.ElementTree as ET

    r = run_cli("doctor", "--snapshot", str(cluster), "-A", "--output", "junit")
    assert r.code == 1, r.err
    root = ET.fromstring(r.out.split("\n", 1)[1])
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    ctx = json.loads((cluster / "meta.json").read_text())["context"]
    assert sorted(suites) == [f"{ctx}/airflow/airflow", f"{ctx}/data-pipelines/af2", f"{ctx}/data-pipelines/airflow"]
    typo = suites[f"{ctx}/data-pipelines/airflow"]
    failed = {c.get("name") for c in typo.findall("testcase") if c.find("failure") is not None}
    assert any("remote-log-bucket-missing" in n for n in failed), failed
    assert suites[f"{ctx}/data-pipelines/af2"].get("failures") == "0"
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in suites.values())


def test_an_unreached_target_is_one_errored_suite_and_one_row():
    import xml.etree.ElementTree as ET

    from airflow_gke.fleet import FleetReport, Unreached
    from airflow_gke.report import fleet as fleetfmt

    f = FleetReport("0", "live", "2026-11-21T15:40:00Z",
                    unreached=[Unreached({"context": GONE, "namespace": None, "release": None},
                                         "unreachable: Kubernetes API http://127.0.0.1:9: connection refused")])
    root = ET.fromstring(fleetfmt.render_junit(f, "error").split("\n", 1)[1])
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == f"{GONE}/?/?" and suite.get("errors") == "1"
    assert suite.find("testcase/error").get("message").startswith("unreachable: Kubernetes API")
    rows = [x for x in fleetfmt.summary_lines(f, "error") if x.startswith(GONE)]
    assert len(rows) == 1 and "not diagnosed: unreachable" in rows[0]
    assert f.exit_code("error") == 3 and f.exit_code("never") == 0


# --- the GKE clusters of a project (--fleet-project) -----------------------------------------------

TOKEN = "ya29.replay-adc-access-token"
LIST = "/v1/projects/acme-data-prod/locations/-/clusters"


def _cluster_body(snap: Path, meta: dict) -> dict:
    return json.loads((snap / "gcp/container/v1/projects" / meta["project"] / "locations" / meta["location"]
                       / "clusters" / f"{meta['cluster']}.json").read_text())


@pytest.fixture(scope="module")
def project_fleet(tmp_path_factory):
    """Project acme-data-prod with three GKE clusters, as clusters.list (locations/-) answers them:
    airflow-prod (seed-incident, europe-west1) and data-platform (remote-logging-readonly-scope,
    europe-west1-b) each with a Kubernetes API of its own over TLS with its own CA, accepting only
    the Application Default Credentials' token; airflow-gone's endpoint refuses connections. The
    first server also answers the Google APIs (both clusters' Google data: one project) and the
    OAuth 2.0 token endpoint the ADC file names."""
    import base64

    root = tmp_path_factory.mktemp("project")
    prod, dp = root / "prod", root / "dp"
    shutil.copytree(scenario("seed-incident"), prod)
    shutil.copytree(scenario("remote-logging-readonly-scope"), dp)
    for f in sorted((dp / "gcp").rglob("*")):     # one project: seed-incident's answers win where both have one
        dest = prod / f.relative_to(dp)
        if f.is_file() and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
    with ReplayServer(prod, tls=True, bearer=TOKEN, issue_token=TOKEN) as p, \
            ReplayServer(dp, tls=True, bearer=TOKEN) as d:
        clusters = []
        for srv, snap in ((p, prod), (d, dp)):
            body = _cluster_body(snap, srv.meta)
            # a real endpoint is an address on port 443; a loopback server has a port of its own
            body["endpoint"] = srv.k8s_address
            body["masterAuth"] = {"clusterCaCertificate": base64.b64encode(srv.ca_pem.encode()).decode()}
            clusters.append(body)
        gone = dict(clusters[0], name="airflow-gone", location="europe-west1-c", zone="europe-west1-c",
                    endpoint=f"127.0.0.1:{_closed_port()}",
                    selfLink=clusters[0]["selfLink"].replace("airflow-prod", "airflow-gone"))
        clusters.append(gone)
        # data-platform's address with airflow-prod's CA: the TLS handshake must fail
        clusters.append(dict(clusters[1], name="wrong-ca", selfLink=clusters[1]["selfLink"].replace("data-platform", "wrong-ca"),
                             masterAuth=clusters[0]["masterAuth"]))
        dest = prod / "gcp/container" / LIST.strip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.with_suffix(".json").write_text(json.dumps({"clusters": clusters}))
        p.invalidate()
        yield p, d


@pytest.fixture
def fleet_env(monkeypatch, tmp_path, project_fleet):
    p, _d = project_fleet
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)
    # no kubeconfig anywhere: the clusters are reached from the Container API's answer alone
    return {**p.env(), "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            "GOOGLE_APPLICATION_CREDENTIALS": str(p.write_adc(tmp_path / "adc.json"))}


def test_fleet_project_reaches_every_cluster_with_endpoint_ca_and_adc(run_cli, project_fleet, fleet_env, tmp_path):
    p, d = project_fleet
    p.log.clear()
    d.log.clear()
    r = run_cli("doctor", "--fleet-project", "acme-data-prod", "--parallel", "3", "--now", p.meta["captured_at"],
                "--request-timeout", "2", "--output", "json", env=fleet_env)
    assert r.code == 1, r.err          # the worst target's: seed-incident's errors
    doc = json.loads(r.out)
    got = {(t["run"]["project"], t["run"]["location"], t["run"]["cluster"]): t for t in doc["targets"]}
    assert sorted(got) == [("acme-data-prod", "europe-west1", "airflow-prod"),
                           ("acme-data-prod", "europe-west1-b", "data-platform")]
    prod_rep = got["acme-data-prod", "europe-west1", "airflow-prod"]
    dp_rep = got["acme-data-prod", "europe-west1-b", "data-platform"]
    assert {"pvc-access-mode-unsupported", "gcs-log-write-denied"} <= _ids(prod_rep, "error")
    assert {"node-storage-scope-read-only", "gcs-log-write-denied"} <= _ids(dp_rep, "error")
    assert (prod_rep["run"]["context"], dp_rep["run"]["release"]) == (None, "af2")   # no kube context at all
    u, bad_ca = sorted(doc["unreachable"], key=lambda x: x["target"]["cluster"])
    assert u["target"]["cluster"] == "airflow-gone" and u["target"]["location"] == "europe-west1-c"
    assert u["reason"].startswith("unreachable: Kubernetes API https://127.0.0.1:"), u["reason"]
    # the cluster's own CA is what verifies its endpoint: another CA fails the handshake
    assert bad_ca["target"]["cluster"] == "wrong-ca" and "CERTIFICATE_VERIFY_FAILED" in bad_ca["reason"], bad_ca
    assert doc["summary"] == {"targets": 4, "diagnosed": 2, "unreachable": 2, "exit_code": 1}
    # One clusters.list; every Kubernetes request over TLS carried the ADC token (a wrong or missing
    # one is answered 401); the token came from google-auth's refresh at the ADC file's token_uri.
    assert p.log.count(LIST, "container") == 1
    # the project's Google answers (IAM policy, API states ...) are asked once for both clusters
    google = Counter(e.path for e in p.log if e.service not in ("k8s", "oauth2"))
    assert google and max(google.values()) == 1, [x for x, n in google.items() if n > 1]
    assert not p.log.duplicates() and not d.log.duplicates()
    for srv in (p, d):
        k8s = [e for e in srv.log if e.service == "k8s"]
        assert k8s and all(e.status != 401 for e in k8s), [e.path for e in k8s if e.status == 401]
        assert srv.log.count("/api/v1/namespaces/airflow/pods", "k8s") == 1
    assert p.log.count("/token", "oauth2", "POST") == 1
    assert not (tmp_path / "no-kubeconfig").exists()
    # the table names each cluster project/location/cluster
    t = run_cli("doctor", "--fleet-project", "acme-data-prod", "--now", p.meta["captured_at"],
                "--request-timeout", "2", env=fleet_env)
    assert t.code == 1
    (line,) = [x for x in t.out.splitlines() if x.startswith("acme-data-prod/europe-west1-c/airflow-gone/")]
    assert "not diagnosed: unreachable: Kubernetes API https://127.0.0.1:" in line
    assert any(x.startswith("acme-data-prod/europe-west1-b/data-platform/airflow/af2 ") for x in t.out.splitlines())


def test_fleet_project_with_all_namespaces(run_cli, project_fleet, fleet_env):
    p, _d = project_fleet
    r = run_cli("doctor", "--fleet-project", "acme-data-prod", "-A", "--now", p.meta["captured_at"],
                "--request-timeout", "2", "--output", "json", env=fleet_env)
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    assert sorted((t["run"]["cluster"], t["run"]["namespace"], t["run"]["release"]) for t in doc["targets"]) == [
        ("airflow-prod", "airflow", "airflow"), ("data-platform", "airflow", "af2")]
    assert sorted(u["target"]["cluster"] for u in doc["unreachable"]) == ["airflow-gone", "wrong-ca"]


def test_fleet_project_bad_input_exit_2(run_cli, project_fleet, fleet_env, tmp_path):
    from replay import Fault

    p, _d = project_fleet
    base = ("doctor", "--now", p.meta["captured_at"], "--request-timeout", "2")
    # no Application Default Credentials: nothing can reach a cluster
    r = run_cli(*base, "--fleet-project", "acme-data-prod",
                env={**fleet_env, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "none.json")})
    assert r.code == 2 and "--fleet-project: no Google credentials" in r.err and "Traceback" not in r.err
    env = fleet_env
    # a project the caller may not list (or that does not exist: Google answers 403 alike)
    p.faults = [Fault(service="container", path="/v1/projects/acme-nosuch/locations/-/clusters", status=403,
                      permission="container.clusters.list")]
    try:
        r = run_cli(*base, "--fleet-project", "acme-nosuch", env=env)
    finally:
        p.faults = []
    assert r.code == 2 and "acme-nosuch" in r.err and "container.clusters.list" in r.err, r.err
    # the Kubernetes Engine API is off: no cluster there
    p.faults = [Fault(service="container", status=403, reason="SERVICE_DISABLED")]
    try:
        r = run_cli(*base, "--fleet-project", "acme-data-prod", env=env)
    finally:
        p.faults = []
    assert r.code == 2 and "Kubernetes Engine API is disabled" in r.err, r.err
    # a project without clusters: clusters.list answers {}
    empty = p.root / "gcp/container/v1/projects/acme-empty/locations/-/clusters.json"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("{}")
    p.invalidate()
    r = run_cli(*base, "--fleet-project", "acme-empty", env=env)
    assert r.code == 2 and "no GKE cluster in any location of project acme-empty" in r.err, r.err
    # ... beside one that has clusters it is a notice, not the end of the run
    r = run_cli(*base, "--fleet-project", "acme-empty", "--fleet-project", "acme-data-prod", "--output", "json",
                env=env)
    assert r.code == 1, r.err
    assert "project acme-empty has no GKE cluster (in any location)" in [n["message"] for n in r.json["notices"]]
    # flags that name one cluster
    r = run_cli(*base, "--fleet-project", "acme-data-prod", "--cluster", "airflow-prod", env=env)
    assert r.code == 2 and "--fleet-project diagnoses every cluster" in r.err


def test_fleet_project_endpoint_choice():
    """Which endpoint a cluster of clusters.list is reached at (the API's field names)."""
    import base64

    from airflow_gke.live.gke import clusters_of

    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    body = {"clusters": [
        {"name": "public", "location": "europe-west1", "status": "RUNNING", "endpoint": "34.1.2.3",
         "masterAuth": {"clusterCaCertificate": ca}},
        {"name": "dns", "location": "europe-west1", "status": "RUNNING", "endpoint": "10.0.0.2",
         "masterAuth": {"clusterCaCertificate": ca},
         "privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": True,
                                  "privateEndpoint": "10.0.0.2"},
         "controlPlaneEndpointsConfig": {
             "dnsEndpointConfig": {"endpoint": "gke-0123456789abcdef-123456789012.europe-west1.gke.goog",
                                   "allowExternalTraffic": True},
             "ipEndpointsConfig": {"enabled": True, "enablePublicEndpoint": False,
                                   "privateEndpoint": "10.0.0.2"}}},
        {"name": "private", "location": "europe-west1", "status": "RUNNING", "endpoint": "10.0.0.3",
         "masterAuth": {"clusterCaCertificate": ca},
         "controlPlaneEndpointsConfig": {"dnsEndpointConfig": {"endpoint": "gke-x.europe-west1.gke.goog"},
                                         "ipEndpointsConfig": {"enabled": True, "enablePublicEndpoint": False,
                                                               "privateEndpoint": "10.0.0.3"}}},
        {"name": "creating", "location": "europe-west1-b", "status": "PROVISIONING", "endpoint": "34.1.2.4",
         "masterAuth": {"clusterCaCertificate": ca}},
        {"name": "no-ca", "location": "europe-west1-b", "status": "RUNNING", "endpoint": "34.1.2.5"},
    ], "missingZones": ["us-central1-a"]}
    got, notes = clusters_of("acme", body)
    by = {c.name: c for c in got}
    assert (by["public"].url, by["public"].via, bool(by["public"].ca_pem)) == ("https://34.1.2.3", "public IP endpoint", True)
    # public IP endpoint off, DNS endpoint open to external traffic: Google's front end, system roots
    assert (by["dns"].url, by["dns"].ca_pem) == ("https://gke-0123456789abcdef-123456789012.europe-west1.gke.goog", None)
    assert (by["private"].url, by["private"].via) == ("https://10.0.0.3", "private IP endpoint")
    assert by["creating"].problem == "cluster status PROVISIONING"
    assert "clusterCaCertificate" in by["no-ca"].problem and by["no-ca"].url is None
    assert notes and "us-central1-a" in notes[0]


def test_permissions_name_the_fleet_reads(run_cli):
    for args in ((), ("--output", "yaml")):
        r = run_cli("permissions", *args)
        assert r.code == 0, r.err
        fleet = r.out[r.out.index("Fleet runs only"):]
        assert "container.clusters.list on each project P (doctor --fleet-project P" in fleet
        assert "list namespaces cluster-wide (optional; doctor -A" in fleet
    # not in the checks' custom role: only who runs --fleet-project needs it
    role = next(x for x in run_cli("permissions").out.splitlines() if "gcloud iam roles create" in x)
    assert "container.clusters.list" not in role


def test_all_namespaces_markdown_and_html_name_each_target(run_cli, cluster, tmp_path):
    """-A writes every format: Markdown (one comment, worst target first, naming the HTML page and
    the JSON written by the same run as the full report) and HTML (the grid, one row per release)."""
    md, page, js = tmp_path / "fleet.md", tmp_path / "fleet.html", tmp_path / "fleet.json"
    r = run_cli("doctor", "--snapshot", str(cluster), "-A", "--output-file", str(md), "--output-file", str(page),
                "--output-file", str(js))
    assert r.code == 1, r.err
    ctx = json.loads((cluster / "meta.json").read_text())["context"]
    text = md.read_text()
    rows = [x for x in text.splitlines() if x.startswith(f"| {ctx}/")]
    assert [x.split(" | ")[0][2:] for x in rows] == [f"{ctx}/airflow/airflow", f"{ctx}/data-pipelines/airflow",
                                                      f"{ctx}/data-pipelines/af2"]     # the most errors first
    assert text.rstrip().endswith(f"evidence and fix: `{page}` (the page) and `{js}`.")
    bullet = next(x for x in text.splitlines() if "`remote-log-bucket-missing`" in x)
    assert bullet.startswith(f"- **ERROR** `{ctx}/data-pipelines/airflow` · `remote-log-bucket-missing`: ")
    assert " — fix: " in bullet
    html = page.read_text()
    assert html.count('<th class="row">') == 3 and html.count('<section class="target"') == 3


def test_each_target_lets_go_of_its_data_once_its_report_is_built(cluster, monkeypatch):
    """Memory stays flat across a fleet: once a namespace's last report is built, the source holds
    nothing of that namespace and no target's context survives, with the cyclic GC off as in a run."""
    import gc
    import weakref

    from airflow_gke import app
    from airflow_gke.source import in_namespace
    from airflow_gke.views import Context

    contexts: list = []
    init = Context.__init__

    def tracked(self, *a, **k):
        init(self, *a, **k)
        contexts.append(weakref.ref(self))

    held: list = []
    release = app.release_target

    def spy(source, ns):
        before = [p for p in source._cache if in_namespace(p, ns)]
        release(source, ns)
        held.append((ns, len(before), [p for p in source._cache if in_namespace(p, ns)],
                     sum(1 for r in contexts if r() is not None)))

    monkeypatch.setattr(Context, "__init__", tracked)
    monkeypatch.setattr(app, "release_target", spy)
    was = gc.isenabled()
    gc.disable()
    try:
        fleet = app.diagnose_fleet(app.RunRequest(snapshot=str(cluster)))
    finally:
        if was:
            gc.enable()
    assert len(fleet.reports) == 3 and len(contexts) == 3
    # released once per namespace, after its last release: data-pipelines holds two
    assert [h[0] for h in held] == ["airflow", "data-pipelines"]
    for ns, before, after, alive in held:
        assert before > 5 and after == [], ns
        assert alive == 0, f"a context survived its report ({ns})"


# --- progress: on a terminal only ------------------------------------------------------------------
def _on_a_terminal(srv: ReplayServer, tmp_path: Path, *args: str) -> tuple[int, bytes, bytes]:
    """Run ``airflow-gke doctor ARGS`` live against ``srv`` with stderr on a pseudo-terminal (120
    columns) and stdout not (a file): (exit code, what the terminal showed, stdout)."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    kc = srv.write_kubeconfig(tmp_path / "kubeconfig-tty")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW_GKE_ENDPOINT_") and k not in ("KUBERNETES_SERVICE_HOST", "NO_COLOR")}
    env.update(srv.env(kubeconfig=kc))
    env["TERM"] = "xterm-256color"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    stdout = (tmp_path / "stdout").open("w+b")    # a file: a full pipe would stop the run while the terminal is read
    p = subprocess.Popen([sys.executable, "-c", "from airflow_gke.cli import main; main()", "doctor",
                          "--now", srv.meta["captured_at"], *args],
                         stdin=subprocess.DEVNULL, stdout=stdout, stderr=slave, env=env)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:      # EIO: the terminal's other side is closed (the process ended)
            break
        if not chunk:
            break
        shown += chunk
    code = p.wait(timeout=120)
    os.close(master)
    stdout.seek(0)
    out = stdout.read()
    stdout.close()
    return code, shown, out


def test_progress_on_a_terminal_counts_reads_and_targets(srv, tmp_path):
    code, shown, out = _on_a_terminal(srv, tmp_path, "-A")
    assert code == 1, shown.decode(errors="replace")[-2000:]
    assert b"targets diagnosed" in shown and b"in flight" in shown
    assert b"3/3" in shown                              # three releases, all diagnosed
    assert b"targets diagnosed" not in out and b"airflow/airflow" in out   # the report itself on stdout


def test_no_progress_with_quiet_or_a_json_pipeline_or_without_a_terminal(srv, tmp_path, live):
    for args in (("-A", "--quiet"), ("-A", "--output", "json")):
        code, shown, out = _on_a_terminal(srv, tmp_path, *args)
        assert code == 1, shown.decode(errors="replace")[-2000:]
        assert b"in flight" not in shown and b"targets diagnosed" not in shown, args
        assert shown.strip() == b"", args   # nothing else either: stderr stays empty
    r = live(srv, "-A", "--output", "table")   # stderr not a terminal (captured)
    assert r.code == 1 and r.err == ""
