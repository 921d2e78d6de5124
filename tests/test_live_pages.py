"""Live lists are compacted page by page (doctor/live/kube.py ``list_all``, doctor/source.py
``MemorySource.prepare``, doctor/compact.py ``share_leaves``): each page is shared and redacted
before the next one is asked for, and what comes out equals what a snapshot of the same list holds.
The end-to-end comparison through the replay server is in tests/test_live.py
(``test_a_list_read_page_by_page_equals_the_list_read_whole``)."""
from __future__ import annotations

import copy

import orjson

from airflow_gke.compact import Interner, share_leaves
from airflow_gke.live.calls import Answer
from airflow_gke.live.kube import list_all
from airflow_gke.snapshot import open_snapshot
from airflow_gke.source import MemorySource
from conftest import scenario


def _pages(items: list, size: int) -> list[dict]:
    out = []
    for i in range(0, len(items), size):
        md = {"resourceVersion": "42"}
        if i + size < len(items):
            md.update({"continue": f"tok{i + size}", "remainingItemCount": len(items) - i - size})
        out.append({"kind": "PodList", "apiVersion": "v1", "metadata": md, "items": items[i:i + size]})
    return out


def test_each_page_is_processed_before_the_next_is_asked_for():
    items = [{"metadata": {"name": f"p{i}"}} for i in range(7)]
    pages = _pages(items, 3)
    events: list[str] = []

    def get_page(query):
        q = dict(query)
        assert q["limit"] == "3"
        start = int(q.get("continue", "tok0")[3:])
        events.append(f"get {start}")
        return Answer(200, data=copy.deepcopy(pages[start // 3]))

    def on_page(body):
        events.append(f"page {body['items'][0]['metadata']['name']}")
        for it in body["items"]:
            it["seen"] = True
        return body

    ans = list_all("/api/v1/namespaces/x/pods", 3, get_page, on_page=on_page)
    assert events == ["get 0", "page p0", "get 3", "page p3", "get 6", "page p6"]
    assert ans.ok
    assert [i["metadata"]["name"] for i in ans.data["items"]] == [f"p{i}" for i in range(7)]
    assert all(i["seen"] for i in ans.data["items"])
    assert ans.data["metadata"] == {"resourceVersion": "42"}     # continue and count removed


def test_a_single_page_is_processed_too():
    body = _pages([{"metadata": {"name": "only"}}], 500)[0]
    ans = list_all("/api/v1/namespaces/x/pods", 500, lambda q: Answer(200, data=body),
                   on_page=lambda b: {**b, "processed": True})
    assert ans.data["processed"] is True


def test_pages_prepared_one_by_one_equal_the_snapshot_list_and_share_what_repeats():
    root = scenario("seed-incident")
    with open_snapshot(root) as snap:
        ns = snap.meta.namespace
        for kind in ("pods", "events"):
            path = f"k8s/api/v1/namespaces/{ns}/{kind}"
            want = snap.get(path).data
            raw = orjson.loads((root / f"{path}.json").read_bytes())
            src = MemorySource()
            merged: list = []
            for page in _pages(raw["items"], 2):
                merged += src.prepare(path, page)["items"]
            assert len(merged) > 4
            assert orjson.dumps(merged) == orjson.dumps(want["items"]), kind   # same content, redacted alike
    # what repeats within a page is one object: the task pods' security contexts, mount records, strings
    pods = orjson.loads((root / f"k8s/api/v1/namespaces/{ns}/pods.json").read_bytes())["items"]
    task = [p for p in pods if (p["metadata"].get("labels") or {}).get("kubernetes_executor") == "True"]
    assert len(task) >= 2
    task = task + copy.deepcopy(task)    # a page of more task pods of the same template
    src = MemorySource()
    shared = src.prepare(f"k8s/api/v1/namespaces/{ns}/pods", {"items": task})["items"]
    a, b = shared[-2], shared[-1]   # a dict is shared once what it holds repeats (the third of its kind on)
    ca, cb = a["spec"]["containers"][0], b["spec"]["containers"][0]
    assert ca["image"] is cb["image"]
    assert ca["securityContext"] == cb["securityContext"] and ca["securityContext"] is cb["securityContext"]
    assert a["spec"]["tolerations"] is b["spec"]["tolerations"]


def test_share_leaves_keeps_content_and_shares_from_the_leaves_up():
    items = [{"a": {"drop": ["ALL"]}, "b": [1, True, 1.0, None, "x"], "c": {"t": "2026-01-01T00:00:00Z"}},
             {"a": {"drop": ["ALL"]}, "b": [True, 1, 1.0, None, "x"], "c": {"t": "2026-01-01T00:00:00Z"}},
             {"a": {"drop": ["ALL"]}, "b": [1, True, 1.0, None, "x"], "c": {"t": "2026-01-01T00:00:01Z"}}]
    before = orjson.dumps(items)
    share_leaves(items, Interner())
    assert orjson.dumps(items) == before           # 1, True and 1.0 stay apart: compared by encoding
    assert items[0]["b"] is items[2]["b"] and items[0]["b"] is not items[1]["b"]
    assert items[1]["a"] is items[2]["a"]           # {"drop": [...]} once ["ALL"] repeats
    assert items[0]["c"] is items[1]["c"] and items[0]["c"] is not items[2]["c"]


def test_a_body_the_redactor_cannot_walk_is_withheld():
    src = MemorySource()
    e = src.put("gcp/storage/storage/v1/b/x", {1: "not a JSON key"})
    assert e.data is None and not e.ok
    assert "withheld" in e.message
