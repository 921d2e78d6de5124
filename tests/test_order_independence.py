"""A check's verdict never depends on which other checks ran, nor in which order.

For every scenario and every data key the scenario holds, each read of that key is replaced by a
403 and, separately, by a read that got no answer. Every check then runs alone on a fresh context,
and all checks run together forward and in reverse registry order: each check's status and
findings must be the same in all three. (Before derived values carried their failed reads, a
denied nodes list made ``overprivileged-identity`` error alone and pass after
``default-compute-sa-nodes`` had cached what it derived from the nodes.)
"""
from __future__ import annotations

import re

import pytest

from airflow_gke.data import KEYS, Target
from airflow_gke.registry import load_checks
from airflow_gke.runner import run_checks
from airflow_gke.snapshot import open_snapshot
from airflow_gke.source import Entry, Source
from airflow_gke.views import Context

from conftest import scenario, scenario_names

FAULTS = {
    "403": lambda path: Entry(path, status=403, error={"kind": "Status", "code": 403, "reason": "Forbidden",
                                                       "message": f"forbidden: {path}"}),
    "no-answer": lambda path: Entry(path, error="no answer: the request timed out"),
}


class Faulty(Source):
    """A snapshot whose reads of one data key all fail."""

    def __init__(self, base: Source, rx: re.Pattern, fault) -> None:
        self.base, self.rx, self.fault = base, rx, fault
        self.mode = base.mode
        self._faults: dict[str, Entry] = {}

    def get(self, path: str) -> Entry | None:
        if self.rx.fullmatch(path):
            if path not in self._faults:
                self._faults[path] = self.fault(path)
            return self._faults[path]
        return self.base.get(path)

    def paths(self, prefix: str = "") -> list[str]:
        return list(self.base.paths(prefix))


def key_patterns(target: Target) -> dict[str, re.Pattern]:
    """Each data key -> the regex of its paths for the target (per-item placeholders match anything)."""
    out = {}
    values = {f: getattr(target, f) for f in ("namespace", "project", "location", "cluster")}
    for k in KEYS.values():
        if any(values.get(f) is None for f in k.requires):
            continue
        parts = re.split(r"(\{[a-z_]+\})", k.template)
        rx = "".join(re.escape(str(values[p[1:-1]])) if p[1:-1] in values and values[p[1:-1]] is not None
                     else ".+" if p.startswith("{") else re.escape(p) for p in parts)
        out[k.name] = re.compile(rx)
    return out


def verdicts(runs) -> dict[str, tuple]:
    # A floor check's findings folded under a specific finding (doctor/fold.py) are still its verdict:
    # folding is presentation, decided after every check ran.
    return {r.id: (r.status, tuple(sorted(f.id for f in r.findings + r.folded))) for r in runs}


@pytest.mark.parametrize("name", scenario_names())
def test_every_check_has_the_same_verdict_alone_and_in_any_order_when_one_read_fails(name):
    checks = list(load_checks().values())
    base = open_snapshot(scenario(name))
    try:
        m = base.meta
        target = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                        release=m.release, context=m.context)
        held = list(base.paths())
        problems: list[str] = []
        for key_name, rx in key_patterns(target).items():
            if not any(rx.fullmatch(p) for p in held):
                continue   # the scenario never read it: nothing to fail
            for fault_name, fault in FAULTS.items():
                src = Faulty(base, rx, fault)
                forward = verdicts(run_checks(Context(src, target, now=m.captured_at), checks))
                reverse = verdicts(run_checks(Context(src, target, now=m.captured_at), checks[::-1]))
                for chk in checks:
                    alone = verdicts(run_checks(Context(src, target, now=m.captured_at), [chk]))[chk.id]
                    if not alone == forward[chk.id] == reverse[chk.id]:
                        problems.append(f"{key_name} {fault_name}: {chk.id} alone {alone}, "
                                        f"forward {forward[chk.id]}, reverse {reverse[chk.id]}")
        assert not problems, "\n".join(problems[:20])
    finally:
        base.close()


def test_the_order_test_fails_on_a_view_that_swallows_its_failed_reads():
    """The test above can fail: a helper cached outside ``derive`` (as checks once cached in the
    context's ``__dict__``) lets the second check that uses it pass on a denied read."""
    from airflow_gke.model import passed
    from airflow_gke.registry import Check
    from airflow_gke.source import MemorySource

    src = MemorySource(mode="snapshot")
    src.put("k8s/api/v1/nodes", status=403, error={"message": "forbidden"})

    def cached_badly(c):
        if "v" not in c.__dict__:
            c.__dict__["v"] = c.has("nodes")
        return passed()

    def cached_well(c):
        c.derive("v", lambda: c.has("nodes"))
        return passed()

    for func, same in ((cached_badly, False), (cached_well, True)):
        chks = [Check(f"c{i}", "good state", "error", "test", func, (), ("nodes",)) for i in (1, 2)]
        together = verdicts(run_checks(Context(src, Target(namespace="airflow")), chks))
        alone = verdicts(run_checks(Context(src, Target(namespace="airflow")), chks[1:]))
        assert (together["c2"] == alone["c2"]) is same, (func.__name__, together, alone)
