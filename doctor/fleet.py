"""A fleet: every release of the official chart a run can see (``doctor --all-namespaces/-A``).

Discovery works on a source of entries, so a snapshot of several namespaces and a live run find
releases the same way:

- the cluster-wide look-up ``chart_deployments`` (``list deployments -l tier=airflow`` in all
  namespaces, doctor/data.py) names the namespaces and, by their ``release`` label, the releases;
- each namespace's own Deployments and ConfigMaps (read in every run for the target guard) add the
  releases whose ``<release>-config`` ConfigMap is labelled ``tier=airflow, release=<release>``
  (a release whose Deployments are all scaled away or whose labels were edited still has its config).

Several releases in one namespace are separate targets, told apart by the ``release`` label. The
fleet report holds one single-target report (schema v1, unchanged) per target, and one line for a
target that could not be diagnosed (docs/schema/fleet-v1.json).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .data import KEYS, Target

FLEET_SCHEMA_VERSION = "1"
_DEPLOYMENTS = re.compile(r"^k8s/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments$")
_CONFIGMAPS = re.compile(r"^k8s/api/v1/namespaces/(?P<ns>[^/]+)/configmaps$")


def _items(entry) -> list:
    if entry is None or not entry.ok or not isinstance(entry.data, dict):
        return []
    items = entry.data.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _labels(obj: dict) -> tuple[dict, dict]:
    md = obj.get("metadata")
    md = md if isinstance(md, dict) else {}
    labels = md.get("labels")
    return md, labels if isinstance(labels, dict) else {}


def chart_namespaces(source, target: Target) -> tuple[list[str], str]:
    """Namespaces holding the chart's Deployments by the cluster-wide look-up, and a note when it
    could not be used ('' when it was)."""
    k = KEYS["chart_deployments"]
    entry = source.get(k.path(target))
    if entry is None:
        return [], f"the cluster-wide look-up ({k.describe}) was not read"
    if not entry.ok:
        why = f"HTTP {entry.status}" if entry.status else entry.message
        hint = ("; grant list on deployments (apiGroup apps) cluster-wide for -A"
                if entry.status in (401, 403) else "")
        return [], f"the cluster-wide look-up ({k.describe}) failed: {why}{hint}"
    out = set()
    for o in _items(entry):
        md, labels = _labels(o)
        if labels.get("tier") == "airflow" and isinstance(md.get("namespace"), str) and md["namespace"]:
            out.add(md["namespace"])
    return sorted(out), ""


def _failure(entry) -> str:
    """How a failed read is said: 'HTTP 403: <the API's message>' or what the transport said."""
    msg = entry.message
    if entry.status:
        return f"HTTP {entry.status}" + (f": {msg}" if msg and msg != f"HTTP {entry.status}" else "")
    return msg or "no answer"


def namespace_names(source, target: Target) -> tuple[list[str] | None, str]:
    """The names of ``list namespaces`` (cluster-wide), or (None, why it could not be used)."""
    k = KEYS["namespaces"]
    entry = source.get(k.path(target))
    if entry is None:
        return None, f"{k.describe} was not read"
    if not entry.ok:
        return None, f"{k.describe} failed too ({_failure(entry)})"
    names = []
    for o in _items(entry):
        md, _labels_ = _labels(o)
        if isinstance(md.get("name"), str) and md["name"]:
            names.append(md["name"])
    return sorted(set(names)), ""


# Namespaces GKE and Kubernetes run their own components in: not searched for Airflow releases when
# -A falls back to the namespace list (the caller usually may not read them, and no release lives there).
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "gmp-system", "gmp-public")


def is_system_namespace(name: str) -> bool:
    return name in SYSTEM_NAMESPACES or name.startswith("gke-")


def unreadable(source, target: Target) -> str:
    """Why the namespace of ``target`` could not be searched ('' when it could): neither its
    Deployments nor its ConfigMaps (where releases are found) could be read."""
    whys = []
    for name in ("deployments", "configmaps"):
        entry = source.get(KEYS[name].path(target))
        if entry is not None and entry.ok:
            return ""
        whys.append(f"{KEYS[name].resource_text(target)}: " + (_failure(entry) if entry is not None else "not read"))
    return "; ".join(whys)


def releases(source, target: Target) -> list[tuple[str, str]]:
    """Every (namespace, release) of the official chart the source holds: the look-up's Deployments
    by their ``release`` label, each namespace's own Deployments, and ``<release>-config`` ConfigMaps."""
    found: dict[str, set[str]] = defaultdict(set)
    k = KEYS["chart_deployments"]
    for o in _items(source.get(k.path(target))):
        md, labels = _labels(o)
        if labels.get("tier") == "airflow" and isinstance(labels.get("release"), str) and md.get("namespace"):
            found[md["namespace"]].add(labels["release"])
    for path in source.paths("k8s/"):
        m = _DEPLOYMENTS.match(path)
        if m:
            for o in _items(source.get(path)):
                _md, labels = _labels(o)
                if labels.get("tier") == "airflow" and isinstance(labels.get("release"), str) and labels["release"]:
                    found[m["ns"]].add(labels["release"])
            continue
        m = _CONFIGMAPS.match(path)
        if m:
            for o in _items(source.get(path)):
                md, labels = _labels(o)
                rel = labels.get("release")
                if (labels.get("tier") == "airflow" and isinstance(rel, str) and rel
                        and md.get("name") == f"{rel}-config"):
                    found[m["ns"]].add(rel)
    return sorted((ns, r) for ns, rels in found.items() for r in rels)


def where(context=None, project=None, location=None, cluster=None) -> str:
    """How a target's cluster is named: its kube context, else (``--fleet-project``, no context)
    ``project/location/cluster``, else the cluster name."""
    if context:
        return context
    if project and location and cluster:
        return f"{project}/{location}/{cluster}"
    return cluster or "snapshot"


@dataclass
class Unreached:
    """A target that produced no report (unreachable cluster, bad credentials, no Airflow ...)."""
    target: dict
    reason: str

    @property
    def label(self) -> str:
        t = self.target
        return "/".join([where(*(t.get(k) for k in ("context", "project", "location", "cluster"))),
                         str(t.get("namespace") or "?"),
                         str(t.get("release") or "?") if "release" in t else "*"])   # a namespace: any release

    def to_dict(self) -> dict[str, Any]:
        return {"target": dict(self.target), "status": "unreachable", "reason": self.reason}


@dataclass
class FleetReport:
    tool_version: str
    mode: str
    started_at: str
    reports: list = field(default_factory=list)        # RunReport, one per target diagnosed
    unreached: list[Unreached] = field(default_factory=list)
    notices: list[dict] = field(default_factory=list)  # fleet-level warnings (namespaces not searched ...)
    duration_s: float = 0.0
    unchecked: list[Unreached] = field(default_factory=list)   # -A: namespaces that could not be searched

    @staticmethod
    def label(report) -> str:
        r = report.run
        return f"{where(context=r.context, project=r.project, location=r.location, cluster=r.cluster)}/" \
               f"{r.namespace}/{r.release or '?'}"

    def rows(self, fail_on: str) -> list[dict]:
        """One row per target: label, errors, warnings, incomplete (checks that ended error, as exit 3 counts them; a skip is not applicable, not incomplete), exit code."""
        out = []
        for rep in self.reports:
            s = rep.summary()
            out.append({"target": self.label(rep), "errors": s["findings"]["error"],
                        "warnings": s["findings"]["warning"],
                        "incomplete": s["checks"]["error"],   # checks that could not judge (exit 3); a skip is "not applicable"
                        "exit_code": rep.exit_code(fail_on), "reason": ""})
        for u in self.unreached:
            t = u.target
            out.append({"target": u.label,
                        "errors": None, "warnings": None, "incomplete": None, "exit_code": 3,
                        "reason": u.reason})
        for u in self.unchecked:
            out.append({"target": u.label, "errors": None, "warnings": None, "incomplete": None, "exit_code": 3,
                        "reason": u.reason, "unchecked": True})
        return out

    def exit_code(self, fail_on: str) -> int:
        """The worst target's: 1 (findings at/above --fail-on) over 3 (incomplete, unreached) over 0."""
        if fail_on == "never":
            return 0
        codes = {rep.exit_code(fail_on) for rep in self.reports} | ({3} if self.unreached or self.unchecked else set())
        return 1 if 1 in codes else 3 if 3 in codes else 0

    def to_dict(self, fail_on: str = "error") -> dict[str, Any]:
        return {
            "schema_version": FLEET_SCHEMA_VERSION,
            "kind": "fleet",
            "tool_version": self.tool_version,
            "run": {"mode": self.mode, "started_at": self.started_at, "duration_s": round(self.duration_s, 4)},
            "summary": {"targets": len(self.reports) + len(self.unreached),
                        "diagnosed": len(self.reports), "unreachable": len(self.unreached),
                        **({"unchecked_namespaces": len(self.unchecked)} if self.unchecked else {}),
                        "exit_code": self.exit_code(fail_on)},
            "targets": [rep.to_dict() for rep in self.reports],
            **({"unreachable": [u.to_dict() for u in self.unreached]} if self.unreached else {}),
            **({"unchecked": [{"target": dict(u.target), "reason": u.reason} for u in self.unchecked]}
               if self.unchecked else {}),
            **({"notices": list(self.notices)} if self.notices else {}),
        }
