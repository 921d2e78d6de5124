"""Fuzzed snapshots: the doctor keeps its contract on any input a stranger can hand it.

Hypothesis takes real fixture scenarios and breaks them the way half-written objects, old or
new API versions, buggy collectors and hostile senders do: fields deleted or null, values of the
wrong type, unknown kinds, huge strings, non-UTF-8 log bytes, duplicate names, timestamps in the
future (or at the ends of the calendar), lists turned into dicts, items turned into strings, files
truncated, emptied, replaced by error files or by garbage. Then it runs the doctor in-process
through the real entry point and asserts the contract:

* never exit 4, never a traceback; exit 2 only when ``meta.json`` itself was broken;
* the JSON report is valid against docs/schema/report-v1.json (``run_cli`` validates it);
* every selected check reports; one that ends ``skip`` or ``error`` says why, and no check
  *crashes* (a ``check crashed: ...`` reason is a bug in that check, found here);
* checks whose data was not touched give exactly the results they give on the intact snapshot.

Examples are derandomized (same examples on every run, no example database), so a failure is
reproducible and CI time is fixed. ``AIRFLOW_GKE_FUZZ_EXAMPLES`` raises the count for a longer
local hunt (``AIRFLOW_GKE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py``).
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SCENARIOS, scenario_names

# Scenarios that together hold every kind of file the checks read: a cluster with logs and events,
# task pods in Init, Workload Identity with GSAs, bucket IAM, a 403'd cluster, a project preflight.
PREFERRED = ["seed-incident", "task-pod-init-stuck", "gcs-wi-missing-grant", "healthy-af3-k8s-wi",
             "api-disabled-cluster-403", "gcs-bucket-missing", "remote-logging-wi-readonly-scope"]
BASES = [n for n in PREFERRED if n in scenario_names()] or scenario_names()[:3]

SNAPSHOT_EXAMPLES = int(os.environ.get("AIRFLOW_GKE_FUZZ_EXAMPLES", "300"))
LIVE_EXAMPLES = int(os.environ.get("AIRFLOW_GKE_FUZZ_LIVE_EXAMPLES", "12"))

# Context views every check may touch through release / chart / Airflow configuration detection.
IMPLICIT_KEYS = {"pods", "deployments", "statefulsets", "configmaps", "serviceaccounts"}

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


# --- the bases, in memory ------------------------------------------------------------------------
_BASE_FILES: dict[str, dict[str, bytes]] = {}
_BASE_NODES: dict[tuple[str, str], list[tuple]] = {}


def base_files(name: str) -> dict[str, bytes]:
    if name not in _BASE_FILES:
        root = SCENARIOS / name
        _BASE_FILES[name] = {p.relative_to(root).as_posix(): p.read_bytes()
                             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "SCENARIO.md"}
    return _BASE_FILES[name]


def _nodes(obj: Any, path: tuple = ()) -> list[tuple]:
    """Every position in a JSON document (iteratively: documents can be deep)."""
    out, stack = [], [(obj, path)]
    while stack:
        cur, p = stack.pop()
        out.append(p)
        if isinstance(cur, dict):
            stack.extend((v, p + (k,)) for k, v in cur.items())
        elif isinstance(cur, list):
            stack.extend((v, p + (i,)) for i, v in enumerate(cur))
    out.sort(key=lambda p: [str(x) for x in p])
    return out


def nodes_of(name: str, rel: str, doc: Any) -> list[tuple]:
    key = (name, rel)
    if key not in _BASE_NODES:
        _BASE_NODES[key] = _nodes(doc)
    return _BASE_NODES[key]


# --- mutations -------------------------------------------------------------------------------------
WRONG_TYPES = [0, -1, 2**63, 1.5, float("1e308"), True, False, "", "x", "[bold red]markup[/]\\", [], {}, ["x"],
               {"a": 1}, [None], "\x00\u202e\ud7ff"]
TIMES = ["2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-13-45T99:99:99Z",
         "1970-01-01T00:00:00Z", "2026-11-20T10:00:00.123456789+05:30", "not a time", "2026-11-20"]
HUGE = "A" * 300_000
KINDS = ["FooBar", "", "Pod", "List", None]
LOG_JUNK = [b"\xff\xfe\x80\x81 invalid utf-8 \xc3\x28 \xed\xa0\x80\n", b"\x00\x00\x00 NUL bytes\n",
            b"\x1b[31mANSI red\x1b[0m [bold]rich markup[/bold] [link=http://x]x[/link] \\[\n",
            b"line with \r carriage return\r\n", b"B" * 200_000 + b"\n",
            b"".join(b"ERROR %d password=x denied 403 storage.googleapis.com\n" % i for i in range(5_000))]


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _deep(depth: int) -> Any:
    v: Any = "bottom"
    for _ in range(depth):
        v = [v]
    return v


NODE_OPS = ["delete", "null", "wrong_type", "huge_string", "time", "duplicate", "list_to_dict",
            "items_to_strings", "unknown_kind", "empty", "deep"]
FILE_OPS = ["truncate", "garbage", "remove", "to_error", "empty_file", "top_not_object", "drop_items_key"]
LOG_OPS = ["log_junk", "log_remove", "log_to_error", "log_empty"]


def mutate_json(data: st.DataObject, name: str, rel: str, raw: bytes) -> bytes | None:
    """One mutation of a JSON file: returns the new bytes, or None to delete the file."""
    op = data.draw(st.sampled_from(NODE_OPS * 3 + FILE_OPS), label=f"op on {rel}")
    if op == "truncate":
        return raw[: data.draw(st.integers(0, max(0, len(raw) - 1)), label="cut")]
    if op == "garbage":
        return data.draw(st.binary(min_size=1, max_size=64), label="garbage")
    if op == "remove":
        return None
    if op == "empty_file":
        return b""
    if op == "to_error":
        status = data.draw(st.sampled_from([403, 404, 401, 429, 500, 503, None, 0, 999, "403", True]), label="status")
        body = data.draw(st.sampled_from([{}, None, "text body", {"message": "m"}, {"error": "e"}, {"error": {}},
                                          {"error": {"details": "x", "errors": "y"}}, [1, 2]]), label="body")
        return b"\x00ERROR" + orjson.dumps({"status": status, "body": body})   # marker: written as .error.json
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:      # broken by an earlier mutation: only file-level damage left
        return raw + b"}"
    if op == "top_not_object":
        return orjson.dumps(data.draw(st.sampled_from([[], [1], "x", 1, None]), label="top"))
    if op == "drop_items_key":
        if isinstance(doc, dict):
            doc.pop("items", None)
        return _dump(doc)
    nodes = nodes_of(name, rel, doc) if raw == base_files(name).get(rel) else _nodes(doc)
    path = data.draw(st.sampled_from(nodes), label="at")
    doc = copy.deepcopy(doc) if len(raw) < 4096 else orjson.loads(raw)
    cur = _get(doc, path)
    if op == "delete":
        if not path:
            doc = {}
        else:
            parent = _get(doc, path[:-1])
            del parent[path[-1]]
    elif op == "null":
        doc = _set(doc, path, None)
    elif op == "wrong_type":
        doc = _set(doc, path, data.draw(st.sampled_from(WRONG_TYPES), label="value"))
    elif op == "huge_string":
        doc = _set(doc, path, HUGE)
    elif op == "time":
        doc = _set(doc, path, data.draw(st.sampled_from(TIMES), label="time"))
    elif op == "duplicate":
        if path and isinstance(_get(doc, path[:-1]), list):
            _get(doc, path[:-1]).insert(path[-1], copy.deepcopy(cur))
        elif isinstance(cur, list) and cur:
            cur.append(copy.deepcopy(cur[0]))
    elif op == "list_to_dict":
        if isinstance(cur, list):
            doc = _set(doc, path, {str(i): v for i, v in enumerate(cur)})
        elif isinstance(cur, dict):
            doc = _set(doc, path, list(cur.values()))
    elif op == "items_to_strings":
        if isinstance(cur, list):
            doc = _set(doc, path, [str(i) for i in range(len(cur))])
        elif isinstance(cur, dict):
            doc = _set(doc, path, {k: "x" for k in cur})
    elif op == "unknown_kind":
        target = cur if isinstance(cur, dict) else doc if isinstance(doc, dict) else None
        if target is not None:
            target["kind"] = data.draw(st.sampled_from(KINDS), label="kind")
            target["apiVersion"] = "example.com/v9"
    elif op == "empty":
        doc = _set(doc, path, {} if isinstance(cur, dict) else [] if isinstance(cur, list) else "")
    elif op == "deep":
        doc = _set(doc, path, _deep(data.draw(st.sampled_from([50, 900, 1100]), label="depth")))
    return _dump(doc)


def _dump(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:       # deeper than orjson goes
        return _dumps_deep(doc)


def _dumps_deep(doc: Any) -> bytes:
    import json

    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        return json.dumps(doc).encode()
    finally:
        sys.setrecursionlimit(old)


def mutate_log(data: st.DataObject, raw: bytes) -> bytes | None:
    op = data.draw(st.sampled_from(LOG_OPS * 1 + ["log_junk"] * 3), label="log op")
    if op == "log_remove":
        return None
    if op == "log_empty":
        return b""
    if op == "log_to_error":
        return b"\x00ERROR" + orjson.dumps({"status": 400, "body": {"kind": "Status", "message": "waiting to start"}})
    junk = data.draw(st.sampled_from(LOG_JUNK), label="junk")
    where = data.draw(st.sampled_from(["start", "end", "middle"]), label="where")
    if where == "start":
        return junk + raw
    if where == "end":
        return raw + junk
    return raw[: len(raw) // 2] + junk + raw[len(raw) // 2:]


META_MUTATIONS = [
    ("captured_at", "9999-12-31T23:59:59Z", True), ("captured_at", "0001-01-01T00:00:00Z", True),
    ("captured_at", "2999-01-01T00:00:00+14:00", True), ("captured_at", "2026-13-01T00:00:00Z", False),
    ("captured_at", None, False), ("format", "airflow-gke/snapshot@2", False), ("namespace", 7, False),
    ("namespace", "../../etc", True), ("project", 12, True), ("project", None, True), ("cluster", ["x"], True),
    ("location", None, True), ("release", {"a": 1}, True), ("release", "no-such-release", True),
    ("tool_version", None, True), ("context", "x" * 100_000, True), ("extra-field", [1], True),
]


def mutate_meta(data: st.DataObject, raw: bytes) -> tuple[bytes, str, bool]:
    """(new meta.json, the field changed, whether that value is valid there)."""
    field, value, valid = data.draw(st.sampled_from(META_MUTATIONS), label="meta")
    meta = orjson.loads(raw)
    meta[field] = value
    return orjson.dumps(meta), field, valid


# --- the example: mutate, write, which data keys were touched -------------------------------------
def data_key_of(rel: str, meta: dict) -> str | None:
    from airflow_gke.data import KEYS

    stem = re.sub(r"(\.error)?\.(json|log)$", "", rel)
    for k in KEYS.values():
        pattern = re.escape(k.template)
        for ph in re.findall(r"\{(\w+)\}", k.template):
            value = meta.get(ph) if ph in ("namespace", "project", "location", "cluster") else None
            pattern = pattern.replace(re.escape("{" + ph + "}"),
                                      re.escape(value) if isinstance(value, str) else r"[^/]+")
        if re.fullmatch(pattern, stem):
            return k.name
    return None


def build_example(data: st.DataObject, max_mutations: int = 4) -> tuple[str, dict, set[str], bool, list[str]]:
    """A mutated copy of a base scenario, in memory.

    Returns (base, files, data keys touched ("*" = everything), meta still valid, what was done)."""
    name = data.draw(st.sampled_from(BASES), label="base")
    files = dict(base_files(name))
    meta = orjson.loads(files["meta.json"])
    touched: set[str] = set()
    done: list[str] = []
    meta_fields: dict[str, bool] = {}      # field -> its last value is valid
    for _ in range(data.draw(st.integers(1, max_mutations), label="mutations")):
        rel = data.draw(st.sampled_from(sorted(files)), label="file")
        raw = files.pop(rel)
        if rel == "meta.json":
            new, field, ok = mutate_meta(data, raw)
            if field == "release" and orjson.loads(new)["release"] == "no-such-release":
                # a release the namespace does not hold is an input error (exit 2, the target guard)
                # wherever the snapshot holds the namespace's objects
                ok = not any(f.startswith("k8s/") for f in files)
            meta_fields[field] = ok
            touched.add("*")
            files[rel] = new
            done.append("meta.json")
            continue
        if rel.endswith(".log"):
            new = mutate_log(data, raw)
        else:
            new = mutate_json(data, name, rel, raw)
        stem = re.sub(r"(\.error)?\.(json|log)$", "", rel)
        if new is not None and new.startswith(b"\x00ERROR"):
            files[stem + ".error.json"] = new[len(b"\x00ERROR"):]
        elif new is not None:
            files[rel] = new
        touched.add(data_key_of(rel, meta) or "*unknown*")
        done.append(rel)
    return name, files, touched, all(meta_fields.values()), done


class Workspace:
    """One directory per base scenario, written once; an example changes only the files it
    mutated and puts them back afterwards (creating and removing whole trees per example costs
    more than running the doctor)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: dict[str, dict[str, bytes]] = {}

    def base(self, name: str) -> Path:
        dest = self.root / name
        if name not in self.written:
            for rel, raw in base_files(name).items():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(raw)
            self.written[name] = dict(base_files(name))
        return dest

    @contextlib.contextmanager
    def example(self, name: str, files: dict[str, bytes]):
        dest = self.base(name)
        base = self.written[name]
        changed = {rel for rel in files if base.get(rel) != files[rel]}
        removed = set(base) - set(files)
        try:
            for rel in changed:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(files[rel])
            for rel in removed:
                (dest / rel).unlink()
            yield dest
        finally:
            for rel in changed | removed:
                if rel in base:
                    (dest / rel).write_bytes(base[rel])
                else:
                    (dest / rel).unlink(missing_ok=True)


# --- baseline results of the intact bases ----------------------------------------------------------
_BASELINE: dict[str, dict] = {}


def baseline(run_cli, name: str, ws: Workspace) -> dict:
    """Results on the intact base, written from the same bytes the examples start from."""
    if name not in _BASELINE:
        dest = ws.base(name)
        r = run_cli("doctor", "--snapshot", str(dest), "--output", "json", "--extended")
        assert r.code in (0, 1, 3), r.err
        _BASELINE[name] = results(r.json)
    return _BASELINE[name]


def results(doc: dict) -> dict:
    """check id -> (status, reason, its findings). A floor check's findings are compared by id, top-level
    or folded under another check's finding (a symptom): whether one is folded depends on the other
    check's data, not on the floor check's own."""
    from airflow_gke.registry import load_checks

    floor = {cid for cid, chk in load_checks().items() if chk.floor}
    out = {}
    for c in doc["checks"]:
        if c["id"] in floor:
            found = sorted({f["id"] for f in doc["findings"] if f["check"] == c["id"]}
                           | {s["id"] for f in doc["findings"] for s in f.get("symptoms") or [] if s["check"] == c["id"]})
        else:
            found = sorted(orjson.dumps(f).decode() for f in doc["findings"] if f["check"] == c["id"])
        out[c["id"]] = (c["status"], c["reason"], found)
    return out


def assert_contract(r, meta_ok: bool, what: str) -> None:
    assert r.code != 4, f"{what}: internal error (exit 4): {r.err[-2000:]}"
    assert "Traceback" not in r.err and "Traceback" not in r.out, f"{what}: traceback: {r.err[-2000:]}"
    if not meta_ok:
        assert r.code == 2, f"{what}: a broken meta.json must exit 2, got {r.code}"
        assert r.err.startswith("airflow-gke: error: ") and r.out == "", f"{what}: {r.err[-500:]}"
        return
    assert r.code in (0, 1, 3), f"{what}: exit {r.code}: {r.err[-2000:]}"


def assert_checks(doc: dict, registry: dict, what: str) -> None:
    ids = [c["id"] for c in doc["checks"]]
    assert sorted(ids) == sorted(registry), f"{what}: checks missing from the report"
    for c in doc["checks"]:
        if c["status"] in ("skip", "error"):
            assert isinstance(c["reason"], str) and c["reason"].strip(), f"{what}: {c['id']} {c['status']} without a reason"
        assert not (c["reason"] or "").startswith("check crashed"), f"{what}: {c['id']}: {c['reason']}"


def test_fuzzed_snapshots_keep_the_contract(run_cli, tmp_path):
    from airflow_gke.registry import load_checks

    registry = load_checks()
    ws = Workspace(tmp_path)
    for name in BASES:
        baseline(run_cli, name, ws)
    n = 0

    @settings(FUZZ, max_examples=SNAPSHOT_EXAMPLES)
    @given(data=st.data())
    def example(data):
        nonlocal n
        n += 1
        name, files, touched, meta_ok, done = build_example(data)
        fmt = data.draw(st.sampled_from(["json", "json", "json", "table"]), label="output")
        what = f"{name} with {done}"
        with ws.example(name, files) as dest:
            r = run_cli("doctor", "--snapshot", str(dest), "--output", fmt, "--extended")
        assert_contract(r, meta_ok, what)
        if not meta_ok or fmt != "json":
            return
        doc = r.json
        assert_checks(doc, registry, what)
        if "*" in touched or "*unknown*" in touched:
            return
        base = baseline(run_cli, name, ws)
        got_all = results(doc)
        for c in doc["checks"]:
            chk = registry[c["id"]]
            if (set(chk.data_keys) | IMPLICIT_KEYS) & touched:
                continue
            got = got_all[c["id"]]
            assert got == base[c["id"]], f"{what}: {c['id']} changed although none of its data was touched"

    example()
    print(f"\nfuzz: {n} snapshot examples")
    assert n >= min(SNAPSHOT_EXAMPLES, 50)


# --- live mode: the same broken data served over HTTP to the real clients --------------------------
def test_fuzzed_snapshots_served_live_keep_the_contract(run_cli, tmp_path, monkeypatch):
    from replay import ReplayServer

    from airflow_gke.registry import load_checks

    registry = load_checks()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    ws = Workspace(tmp_path)
    n = ran = 0

    @settings(FUZZ, max_examples=LIVE_EXAMPLES)
    @given(data=st.data())
    def example(data):
        nonlocal n, ran
        n += 1
        name, files, _touched, meta_ok, done = build_example(data, max_mutations=3)
        if not meta_ok:
            return     # the replay server needs a snapshot to serve
        what = f"live {name} with {done}"
        with ws.example(name, files) as dest:
            try:
                srv = ReplayServer(dest).start()
            except (ValueError, FileNotFoundError, OSError):
                return     # a meta.json the replay server cannot serve from (not the tool's concern)
            try:
                meta = srv.meta
                args = ["doctor", "--output", "json", "--extended", "--timeout", "20", "--request-timeout", "5"]
                if isinstance(meta.get("captured_at"), str):
                    args += ["--now", meta["captured_at"]]
                env = srv.env()
                if (dest / "k8s").is_dir() and isinstance(meta.get("namespace"), str):
                    env["KUBECONFIG"] = str(srv.write_kubeconfig(tmp_path / f"kc{n}"))
                else:
                    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
                for k in ("project", "location", "cluster"):
                    if isinstance(meta.get(k), str) and meta[k]:
                        args += [f"--{k}", meta[k]]
                if isinstance(meta.get("namespace"), str):
                    args += ["--namespace", meta["namespace"]]
                r = run_cli(*args, env=env)
                ran += 1
                assert not srv.log.mutating()
            finally:
                srv.stop()
        assert r.code != 4 and "Traceback" not in r.err, f"{what}: {r.err[-2000:]}"
        assert r.code in (0, 1, 2, 3), f"{what}: exit {r.code}: {r.err[-1000:]}"
        if r.code != 2:
            assert_checks(r.json, registry, what)

    example()
    print(f"\nfuzz: {n} live examples, {ran} served and read by the live reader")
    assert ran >= min(LIVE_EXAMPLES, 4) // 2
