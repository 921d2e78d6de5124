"""The target guard: before any check runs, establish that the namespace and release the run
uses hold an Airflow deployment of the official chart, and say where that evidence came from.

A typo'd ``--namespace`` must not read as "healthy": against a real API server a namespace that
does not exist answers empty lists, and every check would pass on them. A wrong ``--release``
must not invent findings about components that belong to another release. So:

- the chart labels every object it creates ``tier=airflow`` and ``release=<release>``; the guard
  counts those objects in the namespace's Deployments, StatefulSets and ConfigMaps (read in every
  run), and only when those hold none of the release, in the Pods, ServiceAccounts, Services, PVCs
  and Jobs the checks read;
- a namespace whose lists were read and hold no chart object, or a release with no object, ends
  the run with exit 2, naming where Airflow *was* found: other namespaces' lists the run holds
  (a snapshot of several namespaces) and the cluster-wide look-up ``chart_deployments``
  (``list deployments -l tier=airflow`` in all namespaces, declared in doctor/data.py) when it was
  permitted;
- when the lists could not be read (no permission, no answer), the guard cannot decide: the run
  goes on (the checks report those reads) and the report says the target was not established;
- a run without Kubernetes data (a project preflight) has nothing to establish.

Snapshot and live behave the same: both hand the guard a source of entries.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .data import GUARD_KEYS, KEYS

# Lists of the namespace the guard looks at (when the run read them), with the kind they hold.
LISTS: tuple[tuple[str, str], ...] = (
    ("deployments", "Deployment"), ("statefulsets", "StatefulSet"), ("configmaps", "ConfigMap"),
    ("pods", "Pod"), ("serviceaccounts", "ServiceAccount"), ("k8s_services", "Service"),
    ("pvcs", "PersistentVolumeClaim"), ("jobs", "Job"),
)
LOOKUP = "chart_deployments"
# The lists a live run always reads for the guard (data.GUARD_KEYS): without them no decision.
CORE = tuple(k for k in GUARD_KEYS if k != LOOKUP)
_NAMES_SHOWN = 3

# release -> kind -> object names
Found = dict[str, dict[str, list[str]]]


@dataclass
class TargetVerdict:
    """What the guard established. ``verdict``: ``airflow`` (evidence found), ``no-airflow`` and
    ``no-release`` (exit 2), ``undetermined`` (lists unreadable), ``no-cluster-data`` (preflight)."""

    namespace: str
    namespace_from: str
    release: str | None
    release_from: str | None
    verdict: str
    evidence: list[str] = field(default_factory=list)
    found_elsewhere: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def blocks(self) -> bool:
        return self.verdict in ("no-airflow", "no-release")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "namespace_from": self.namespace_from,
                "release_from": self.release_from, "evidence": list(self.evidence),
                "found_elsewhere": list(self.found_elsewhere)}

    def summary(self) -> str:
        """One line for the report header: what was established and from what."""
        if self.verdict == "airflow":
            return (f"namespace {self.namespace} ({self.namespace_from}), release {self.release} "
                    f"({self.release_from}): " + "; ".join(self.evidence))
        return self.message


def _scan(items: Any, kind: str, into: Found, charts: Counter) -> None:
    """Add the chart's objects (``tier=airflow``) of one list, by release."""
    if not isinstance(items, list):
        return
    for o in items:
        md = o.get("metadata") if isinstance(o, dict) else None
        labels = md.get("labels") if isinstance(md, dict) else None
        if not isinstance(labels, dict) or labels.get("tier") != "airflow":
            continue
        rel = labels.get("release")
        rel = rel if isinstance(rel, str) and rel else "(no release label)"
        into.setdefault(rel, {}).setdefault(kind, []).append(str(md.get("name") or "(unnamed)"))
        chart = labels.get("chart")
        if isinstance(chart, str) and chart.startswith("airflow-"):
            charts[chart] += 1


def _items(entry) -> list | None:
    if entry is None or not entry.ok or not isinstance(entry.data, dict):
        return None
    items = entry.data.get("items", [])
    return items if isinstance(items, list) else None


_ORDER = {kind: i for i, (_n, kind) in enumerate(LISTS)}
_NAMED = ("Deployment", "StatefulSet", "ConfigMap")   # few, and their names say what they are


def _counted(kinds: dict[str, list[str]], names: bool = True) -> str:
    parts = []
    for kind, objs in sorted(kinds.items(), key=lambda kv: _ORDER.get(kv[0], 99)):
        text = f"{len(objs)} {kind}{'s' if len(objs) != 1 else ''}"
        if names and kind in _NAMED:
            shown = ", ".join(sorted(objs)[:_NAMES_SHOWN]) + (f", +{len(objs) - _NAMES_SHOWN}"
                                                              if len(objs) > _NAMES_SHOWN else "")
            text += f" ({shown})"
        parts.append(text)
    return ", ".join(parts)


def _list_patterns() -> list[tuple[re.Pattern, str]]:
    out = []
    for name, kind in LISTS:
        tpl = KEYS[name].template
        out.append((re.compile("^" + re.escape(tpl).replace(re.escape("{namespace}"), "(?P<ns>[^/]+)") + "$"), kind))
    return out


def _elsewhere(ctx, namespace: str) -> tuple[dict[str, Found], str]:
    """Where the chart's objects are outside ``namespace``: other namespaces' lists the source
    holds, and the cluster-wide look-up. Returns (namespace -> found, a note on the look-up)."""
    by_ns: dict[str, Found] = defaultdict(dict)
    charts: Counter = Counter()
    deployments_read: set[str] = set()   # namespaces whose own Deployments list the source holds
    paths = getattr(ctx.source, "paths", None)
    if paths is not None:
        pats = _list_patterns()
        for path in paths("k8s/"):
            for pat, kind in pats:
                m = pat.match(path)
                if m and m["ns"] != namespace:
                    items = _items(ctx.source.get(path))
                    if items is not None and kind == "Deployment":
                        deployments_read.add(m["ns"])
                    _scan(items, kind, by_ns[m["ns"]], charts)
                    break
    k = KEYS[LOOKUP]
    entry = ctx.source.get(k.path(ctx.target))
    if entry is None:
        note = f"the cluster-wide look-up ({k.describe}) was not read"
    elif not entry.ok:
        note = (f"the cluster-wide look-up ({k.describe}) was not permitted (HTTP {entry.status}), so other "
                f"namespaces were not searched; grant list on deployments (apiGroup apps) cluster-wide for it"
                if entry.status in (401, 403) else
                f"the cluster-wide look-up ({k.describe}) failed: {entry.message}")
    else:
        note = ""
        for o in _items(entry) or []:
            md = o.get("metadata") if isinstance(o, dict) else None
            ns = md.get("namespace") if isinstance(md, dict) else None
            if isinstance(ns, str) and ns and ns != namespace and ns not in deployments_read:
                _scan([o], "Deployment", by_ns[ns], charts)
    return {ns: f for ns, f in sorted(by_ns.items()) if f}, note


def _where_text(elsewhere: dict[str, Found]) -> list[str]:
    out = []
    for ns, found in elsewhere.items():
        rels = "; ".join(f"release {r}: {_counted(kinds, names=False)}" for r, kinds in sorted(found.items()))
        out.append(f"namespace {ns} ({rels})")
    return out


def establish(ctx, namespace_from: str, release_from: str | None) -> TargetVerdict:
    """Establish the target of ``ctx`` (see the module docstring). ``namespace_from`` and
    ``release_from`` say where the namespace and a given release came from (``--namespace``,
    the snapshot's meta.json, the kube context, discovery ...); ``release_from`` None: detected."""
    ns = ctx.target.namespace
    given_release = ctx.target.release
    here: Found = {}
    charts: Counter = Counter()
    read, failed, absent = [], [], []
    for name, kind in LISTS:
        if name not in CORE and here and (given_release is None or given_release in here):
            break   # the chart's workloads and config are the evidence: no walk over 10,000 task pods
        entry = ctx.entry(name)
        if entry is None:
            absent.append(name)
            continue
        items = _items(entry)
        if items is None:
            failed.append(f"{KEYS[name].resource_text(ctx.target)}: "
                          + (f"HTTP {entry.status}" if entry.status else entry.message))
            continue
        read.append(name)
        _scan(items, kind, here, charts)
    v = TargetVerdict(ns, namespace_from, given_release, release_from or "detected from the chart's labels",
                      "airflow")
    if here:
        rel = given_release
        if rel is None:
            try:
                rel = ctx.release
            except Exception:  # noqa: BLE001 - a view over odd data: fall back to the guard's own count
                rel = None
            if rel is None or rel not in here:
                rel = max(here, key=lambda r: sum(len(x) for x in here[r].values()))
            v.release = rel
        if rel not in here:
            others = ", ".join(sorted(here))
            elsewhere, note = _elsewhere(ctx, ns)
            v.verdict = "no-release"
            v.found_elsewhere = [f"namespace {ns} ({'; '.join(f'release {r}: ' + _counted(k, names=False) for r, k in sorted(here.items()))})"] \
                + _where_text(elsewhere)
            v.message = (f"release {rel} ({v.release_from}) has no objects in namespace {ns}: the official chart's "
                         f"objects there (labelled tier=airflow) belong to release {others}. Pass --release "
                         f"{sorted(here)[0]}" + (" (or leave --release out to detect it)" if release_from == "--release"
                                                 else "") + "."
                         + (f" Airflow was also found in {'; '.join(_where_text(elsewhere))}." if elsewhere else ""))
            return v
        chart = f", chart {charts.most_common(1)[0][0]}" if charts else ""
        v.evidence = [f"{_counted(here[rel])} labelled tier=airflow, release={rel}{chart}"]
        if len(here) > 1:
            v.evidence.append("other releases in this namespace: " + ", ".join(
                f"{r} ({_counted(k, names=False)})" for r, k in sorted(here.items()) if r != rel)
                + " (pass --release to diagnose another)")
        if failed:
            v.evidence.append("could not read: " + "; ".join(failed))
        return v
    if not any(True for _ in ctx.source.paths("k8s/")):
        v.verdict = "no-cluster-data"
        v.message = "no Kubernetes data was read (project checks only): the Airflow deployment was not established"
        return v
    core_absent = [n for n in CORE if n in absent]
    if failed or (read and core_absent):
        # Unreadable lists, or a snapshot that holds some lists of the namespace but not the
        # chart's workloads and config: no decision either way.
        v.verdict = "undetermined"
        v.message = (f"could not establish that namespace {ns} holds Airflow: "
                     + "; ".join(failed + [f"{KEYS[n].resource_text(ctx.target)}: not collected" for n in core_absent])
                     + (f" (read, without chart objects: {', '.join(KEYS[n].rbac[1] for n in read)})" if read else ""))
        return v
    elsewhere, note = _elsewhere(ctx, ns)
    v.found_elsewhere = _where_text(elsewhere)
    if read:
        what = (f"namespace {ns} ({namespace_from}) holds no Airflow of the official chart: no object labelled "
                f"tier=airflow in its {', '.join(KEYS[n].rbac[1] for n in read)}")
    else:
        meta_ns = getattr(getattr(ctx.source, "meta", None), "namespace", None)
        what = (f"this snapshot holds no data for namespace {ns} ({namespace_from})"
                + (f"; it was collected in namespace {meta_ns}" if meta_ns and meta_ns != ns else ""))
    v.verdict = "no-airflow"
    if elsewhere:
        first = next(iter(elsewhere))
        tail = f"Airflow was found in {'; '.join(v.found_elsewhere)}: pass --namespace {first}."
    else:
        tail = "Airflow was found in no other namespace" + (f" ({note})" if note else "") + \
            ": pass --namespace with the namespace of the Helm release (helm list --all-namespaces)."
    v.message = f"{what}. {tail}"
    return v
