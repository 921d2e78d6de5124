"""Adding a data source is one declaration in doctor/data.py: the live planner, the live reader,
``airflow-gke permissions``, the replay server and the docs follow from it. These tests hold the
declarations to what the code does: an item function reads only the keys its ``Items`` declares
(and needs each of them somewhere), every live read is one the reader knows how to make, and every
Google service a key names is served by the replay server."""
from __future__ import annotations

import pytest

from airflow_gke.data import KEYS, Items, Target, reads_for
from airflow_gke.live import gcloud
from airflow_gke.live.plan import PlanOptions
from airflow_gke.snapshot import open_snapshot
from airflow_gke.views import Context

from conftest import scenario, scenario_names
from replay import GOOGLE_SERVICES


class Recording(Context):
    """A context that remembers which data keys were asked for."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.asked: set[str] = set()

    def entry(self, key_name: str, **params: str):
        self.asked.add(key_name)
        return super().entry(key_name, **params)


def _items() -> dict[str, Items]:
    return {k.items.fn: k.items for k in KEYS.values() if k.items is not None}


_READ: dict[str, set[str]] = {}


@pytest.mark.parametrize("name", scenario_names())
def test_item_functions_read_only_what_their_declaration_names(name):
    with open_snapshot(scenario(name)) as src:
        m = src.meta
        target = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                        release=m.release)
        for fn, items in _items().items():
            ctx = Recording(src, target, now=m.captured_at)
            items.function()(ctx if items.reads else None, PlanOptions())
            extra = ctx.asked - set(items.reads)
            assert not extra, f"{fn} read {sorted(extra)}, which its Items(reads=...) in doctor/data.py does not name"
            _READ.setdefault(fn, set()).update(ctx.asked)


def test_every_declared_read_of_an_item_function_is_needed():
    if len(_READ) != len(_items()):
        pytest.skip("runs after the per-scenario test")
    for fn, items in _items().items():
        assert set(items.reads) == _READ[fn], (fn, sorted(set(items.reads) - _READ[fn]))


def test_every_key_says_how_a_live_run_reads_it():
    for k in KEYS.values():
        assert (k.per is None) == (k.items is None), f"{k.name}: a per-item key names its items, and only it"
        assert k.items is None or set(k.items.reads) <= set(KEYS), k.name
        assert k.template.startswith(f"{k.scope}/")
        if k.scope == "k8s":
            assert k.live in ("list", "log") and k.rbac is not None and k.iam is None, k.name
        else:
            assert k.live == "rest" or k.live in gcloud.READERS, k.name
            assert k.iam and k.rbac is None, k.name
            assert k.service in gcloud.services()
            assert k.service in GOOGLE_SERVICES, f"{k.name}: the replay server does not serve {k.service}"
    assert set(gcloud.READERS) == {k.live for k in KEYS.values() if k.scope == "gcp" and k.live != "rest"}


def test_reads_for_adds_what_per_item_keys_are_named_from():
    assert reads_for({"gsa"}) == {"gsa", "serviceaccounts", "configmaps", "pods", "deployments", "statefulsets"}
    assert reads_for({"logs", "nodes"}) == {"logs", "pods", "nodes"}
    assert reads_for({"services"}) == {"services"}
