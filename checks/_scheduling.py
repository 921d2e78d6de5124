"""kube-scheduler and cluster-autoscaler messages, read reason by reason with their counts.

kube-scheduler explains a ``FailedScheduling`` with one line per attempt::

    0/7 nodes are available: 3 node(s) didn't match Pod's node affinity/selector, 4 Insufficient cpu.
    preemption: 0/7 nodes are available: 3 Preemption is not helpful for scheduling, 4 No preemption
    victims found for incoming pod.

Each reason carries the number of nodes it applies to, and a node counts under one reason only
(the first filter that rejected it). So "3 didn't match the selector, 4 Insufficient cpu" means the
selector *does* match 4 nodes, which lack CPU: changing the selector would be the wrong fix. The
cluster autoscaler's ``NotTriggerScaleUp`` uses the same shape with node *groups* (``pod didn't
trigger scale-up: 1 max node group size reached, 2 node(s) didn't match Pod's node affinity/selector``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_HEAD = re.compile(r"(\d+)/(\d+) nodes are available:\s*")
_SCALE_HEAD = re.compile(r"pod didn't trigger scale-up(?: \(it wouldn't fit if a new node is added\))?:\s*")

SELECTOR = re.compile(r"didn't match Pod's node affinity/selector|didn't match node selector|"
                      r"node\(s\) didn't match Pod's node affinity")
INSUFFICIENT = re.compile(r"^Insufficient ([\w./-]+)")
TAINT = re.compile(r"(?:had untolerated taint(?:\(s\))?|had taints? that the pod didn't tolerate)\s*\{?([^}]*)\}?")
MAX_SIZE = re.compile(r"(?i)max node group size reached")
QUOTA = re.compile(r"(?i)quota")
TOO_MANY = re.compile(r"Too many pods")
PVC = re.compile(r"(?i)unbound immediate PersistentVolumeClaims|persistentvolumeclaim \"[^\"]+\" not found")
ZONE = re.compile(r"(?i)volume node affinity conflict")


@dataclass(frozen=True)
class Reason:
    count: int
    text: str

    @property
    def kind(self) -> str:
        if SELECTOR.search(self.text):
            return "selector"
        if INSUFFICIENT.match(self.text):
            return "resources"
        if TAINT.search(self.text):
            return "taint"
        if MAX_SIZE.search(self.text):
            return "max-size"
        if QUOTA.search(self.text):
            return "quota"
        if TOO_MANY.search(self.text):
            return "pods"
        if PVC.search(self.text):
            return "pvc"
        if ZONE.search(self.text):
            return "zone"
        return "other"

    @property
    def resource(self) -> str | None:
        m = INSUFFICIENT.match(self.text)
        return m.group(1) if m else None

    @property
    def taint(self) -> str | None:
        m = TAINT.search(self.text)
        return m.group(1).strip() if m else None


@dataclass(frozen=True)
class Verdict:
    """One scheduling attempt: ``available``/``total`` nodes and why the others were rejected."""
    available: int
    total: int
    reasons: tuple[Reason, ...]

    def count(self, kind: str) -> int:
        return sum(r.count for r in self.reasons if r.kind == kind)

    @property
    def selector_matches(self) -> int:
        """Nodes the pod's nodeSelector/affinity matches (every node not rejected for it)."""
        return self.total - self.count("selector")

    def beyond_selector(self) -> tuple[Reason, ...]:
        """Why the nodes the selector matches were rejected."""
        return tuple(r for r in self.reasons if r.kind != "selector")


def parse_scheduler(message: str) -> Verdict | None:
    """The first ``N/M nodes are available: ...`` clause of a scheduler message (preemption's
    clause is about victims, not fit, and is left out)."""
    m = _HEAD.search(message or "")
    if not m:
        return None
    body = message[m.end():]
    cut = body.find(" preemption:")
    if cut >= 0:
        body = body[:cut]
    return Verdict(int(m.group(1)), int(m.group(2)), _items(body))


def parse_autoscaler(message: str) -> tuple[Reason, ...]:
    m = _SCALE_HEAD.search(message or "")
    return _items(message[m.end():]) if m else ()


def _items(body: str) -> tuple[Reason, ...]:
    body = body.strip().rstrip(".")
    out = []
    for part in re.split(r",\s+(?=\d+\s)", body):
        m = re.match(r"(\d+)\s+(.+)$", part.strip(), re.S)
        if m:
            out.append(Reason(int(m.group(1)), m.group(2).strip().rstrip(".")))
    return tuple(out)


def describe(reasons: tuple[Reason, ...]) -> str:
    return ", ".join(f"{r.count} {r.text}" for r in reasons)
