"""Scale: the bench's generated namespace (bench/generate.py) at a small N is a valid snapshot whose
seeded failures the doctor finds, offline and live; the large-list machinery (slice-by-slice
parsing, shared parts) gives exactly the data a plain parse gives. No timing is asserted here:
``python -m bench`` measures."""
from __future__ import annotations

import os

import orjson
import pytest

from conftest import ROOT, doctor_json
from replay import ReplayServer

from bench import generate
from airflow_gke import compact as compact_mod
from airflow_gke import snapshot as snapshot_mod
from airflow_gke.redact import Redactor

N = 300
NS = "airflow"
PODS = f"k8s/api/v1/namespaces/{NS}/pods"
EVENTS = f"k8s/api/v1/namespaces/{NS}/events"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    dest = tmp_path_factory.mktemp("scale") / f"n{N}"
    generate.write(N, dest)
    return dest


def _found(doc: dict, check: str, kind: str, name: str) -> bool:
    return any(f["check"] == check and f["resource"]["kind"] == kind and f["resource"]["name"] == name
               for f in doc["findings"])


def test_generated_namespace_has_the_promised_shape(big):
    pods = orjson.loads((big / f"{PODS}.json").read_bytes())["items"]
    events = orjson.loads((big / f"{EVENTS}.json").read_bytes())["items"]
    task = [p for p in pods if p["metadata"]["labels"].get("kubernetes_executor") == "True"]
    assert len(task) >= N + 1          # N, the stuck one, and seed-incident's own
    assert len(events) == 4 * N
    assert len({e["metadata"]["name"] for e in events}) == len(events)
    assert len({p["metadata"]["name"] for p in pods}) == len(pods)
    for sub, n in (("persistentvolumeclaims", 1000), ("configmaps", 1000)):
        assert len(orjson.loads((big / f"k8s/api/v1/namespaces/{NS}/{sub}.json").read_bytes())["items"]) == n
    nodes = orjson.loads((big / "k8s/api/v1/nodes.json").read_bytes())["items"]
    assert len(nodes) == 200
    assert len({nd["metadata"]["labels"]["cloud.google.com/gke-nodepool"] for nd in nodes}) == 4
    st = [p["status"] for p in task]
    assert {s["phase"] for s in st} >= {"Succeeded", "Running", "Failed", "Pending"}
    assert any(s.get("reason") == "Evicted" for s in st)
    assert any(c["state"].get("terminated", {}).get("reason") == "OOMKilled"
               for s in st for c in s.get("containerStatuses") or [])
    assert any("initContainerStatuses" in s and s["phase"] == "Pending" for s in st)     # Init
    assert any("initContainerStatuses" not in s and s["phase"] == "Pending" for s in st)  # unschedulable
    logs = list(big.glob(f"k8s/api/v1/namespaces/{NS}/pods/*/log/*.log"))
    assert len(logs) >= N // 4          # the failing containers' logs


def test_generated_objects_validate_against_the_kubernetes_schemas(big):
    from test_fixtures import validator   # the fixtures' cached kubernetes-validate schemas

    pods = orjson.loads((big / f"{PODS}.json").read_bytes())["items"]
    by_shape: dict[tuple, dict] = {}
    for p in pods:
        s = p["status"]
        by_shape.setdefault((s.get("phase"), s.get("reason"), "initContainerStatuses" in s), p)
    samples = [("Pod", "v1", list(by_shape.values()))]
    for sub, kind in (("events", "Event"), ("persistentvolumeclaims", "PersistentVolumeClaim"),
                      ("configmaps", "ConfigMap")):
        samples.append((kind, "v1", orjson.loads((big / f"k8s/api/v1/namespaces/{NS}/{sub}.json").read_bytes())
                        ["items"][::97]))
    samples.append(("Node", "v1", orjson.loads((big / "k8s/api/v1/nodes.json").read_bytes())["items"][::23]))
    for kind, api, items in samples:
        v = validator(kind, api)
        for obj in items:
            errors = list(v.iter_errors({"kind": kind, "apiVersion": api, **obj}))
            assert not errors, (kind, obj["metadata"]["name"], errors[0].message)


def test_seeded_failures_are_found_offline(big, run_cli):
    code, doc = doctor_json(run_cli, big)
    assert code == 1
    for check, kind, name in generate.expected(big):
        assert _found(doc, check, kind, name), (check, kind, name)
    young = [f for f in doc["findings"] if f["check"] == "executor-pod-stuck-init"]
    assert [f["resource"]["name"] for f in young] == [n for c, _k, n in generate.expected(big)
                                                      if c == "executor-pod-stuck-init"]
    crashed = [(c["id"], c["reason"]) for c in doc["checks"] if c["status"] == "error"
               and "crashed" in (c["reason"] or "")]
    assert not crashed


def test_live_reads_each_path_once_with_bounded_logs(big, run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)
    with ReplayServer(big) as srv:
        env = srv.env(kubeconfig=srv.write_kubeconfig(tmp_path / "kubeconfig"))
        r = run_cli("doctor", "--output", "json", "--now", srv.meta["captured_at"], "--release", "airflow",
                    "--max-logs", "7", "--page-size", "100", env=env)
        assert r.code == 1, r.err
        entries = srv.log.entries
        assert not srv.log.duplicates()
        assert not srv.log.mutating()
        firsts = [(e.service, e.path) for e in entries if "continue=" not in e.query]
        assert len(firsts) == len(set(firsts))                        # one read per path
        assert any("continue=" in e.query for e in entries)          # lists of 1,000 came in pages
        log_reads = [e for e in entries if e.path.endswith("/log")]
        assert 0 < len(log_reads) <= 2 * 7                           # current + previous of 7 containers
    for check, kind, name in generate.expected(big):
        assert _found(r.json, check, kind, name), (check, kind, name)
    # the cap is spent across kinds of trouble: the one hanging git-sync-init is read although
    # dozens of failed task containers rank before it, so the live finding quotes its log as offline
    stuck = next(n for c, _k, n in generate.expected(big) if c == "executor-pod-stuck-init")
    assert any(e.path.endswith(f"/{stuck}/log") and "git-sync-init" in e.query for e in log_reads)
    _code, offline = doctor_json(run_cli, big)
    same = [f for f in offline["findings"] if f["check"] == "executor-pod-stuck-init"]
    assert [f for f in r.json["findings"] if f["check"] == "executor-pod-stuck-init"] == same


# --- slice-by-slice parsing and shared parts ---------------------------------------------------------

def test_sliced_and_compacted_lists_hold_exactly_the_parsed_data(big, monkeypatch):
    monkeypatch.setattr(snapshot_mod, "SLICED_MIN_BYTES", 0)
    monkeypatch.setattr(compact_mod, "SLICE_BYTES", 50_000)
    for path in (PODS, EVENTS):
        raw = (big / f"{path}.json").read_bytes()
        assert compact_mod.parse_list_in_slices(raw, lambda items: None) == orjson.loads(raw)
    with snapshot_mod.open_snapshot(big) as src:
        pods = src.get(PODS).data
        events = src.get(EVENTS).data
    for path, got in ((PODS, pods), (EVENTS, events)):
        want = Redactor().body(path, orjson.loads((big / f"{path}.json").read_bytes()))
        assert got == want
    task = [p for p in pods["items"] if p["metadata"]["labels"].get("kubernetes_executor") == "True"]
    envs = {id(p["spec"]["initContainers"][0]["env"]) for p in task}
    assert len(envs) <= 3   # one shared env list per pod template (seed-incident's release has two)


def test_slicing_gives_up_on_separators_that_are_not_between_items():
    # A nested array of objects that start with "metadata" (as a StatefulSet's volumeClaimTemplates):
    # its separators are not item boundaries; the slicer must refuse, not drop or merge items.
    nested = [{"metadata": {"name": f"t{i}"}, "spec": {}} for i in range(9)]
    items = [{"metadata": {"name": f"s{i}"}, "spec": {"volumeClaimTemplates": nested if i == 2 else []}}
             for i in range(9)]
    raw = orjson.dumps({"kind": "StatefulSetList", "apiVersion": "apps/v1", "metadata": {}, "items": items})
    for size in range(1, len(raw), 7):
        got = compact_mod.parse_list_in_slices(raw, lambda items: None, slice_bytes=size)
        assert got is None or got == orjson.loads(raw), size
    flat = orjson.dumps({"items": [{"metadata": {"name": f"p{i}"}} for i in range(50)]})
    assert compact_mod.parse_list_in_slices(flat, lambda items: None, slice_bytes=100) == orjson.loads(flat)
    assert compact_mod.parse_list_in_slices(b'{"items": [1, 2]}', lambda items: None, slice_bytes=2) is None


def test_bench_table_renders(tmp_path):
    """The bench's report code runs on a result document (no measuring here)."""
    import bench.__main__ as bench_main

    row = {"n": 10, "events": 40, "snapshot_mb": 1.0,
           "offline": {"wall_s": 0.5, "cpu_s": 0.4, "rss_mb": 50, "seeded": {"found": 5, "expected": 5},
                       "checks": [["x", 0.1]]},
           "live": {"wall_s": 1.0, "cpu_s": 0.8, "rss_mb": 80, "requests": 20, "distinct": 18, "continued_pages": 2,
                    "log_reads": 4, "repeated_reads": 0, "server_time_s": 0.1, "same_findings_as_offline": True}}
    text = bench_main.table({"sizes": [row]})
    assert "5/5" in text and "yes" in text and str(ROOT) not in text


def test_console_entry_ends_with_the_exit_code_and_the_whole_output(tmp_path):
    """The console script ends the process as soon as the report is out (doctor/cli.py _exit_now):
    the exit code and every byte of the output must survive that."""
    import json
    import subprocess
    import sys

    entry = "import sys; from airflow_gke.cli import main; sys.argv[0] = 'airflow-gke'; main()"
    seed = str(ROOT / "fixtures" / "scenarios" / "seed-incident")
    r = subprocess.run([sys.executable, "-c", entry, "doctor", "--snapshot", seed, "--output", "json"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["summary"]["findings"]["error"] >= 3
    r = subprocess.run([sys.executable, "-c", entry, "doctor", "--snapshot", str(tmp_path / "none")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "no such file or directory" in r.stderr
    r = subprocess.run([sys.executable, "-c", entry, "--version"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("airflow-gke ")
