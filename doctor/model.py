"""The result model every report renders: check results, findings, resources, remediations.

Plain dataclasses, no behaviour beyond serialisation: checks build them, the runner collects
them, reports print them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]
Status = Literal["pass", "fail", "skip", "error"]

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    namespace: str | None = None
    uri: str | None = None

    @property
    def ref(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "uri": self.uri}


@dataclass
class Remediation:
    summary: str
    commands: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"summary": self.summary, "commands": list(self.commands)}


@dataclass
class Finding:
    """One problem on one resource. ``check``, ``severity`` and ``runbook`` are filled by the
    runner from the check's declaration when the check leaves them empty."""

    title: str
    message: str
    resource: Resource
    evidence: list[str]
    remediation: Remediation
    caused_by: list[str] = field(default_factory=list)
    severity: Severity | None = None
    check: str = ""
    runbook: str = ""
    # The objects the finding is about beyond ``resource`` (``Kind/namespace/name`` refs, e.g. the
    # not-ready pods a floor finding judges): what the runner matches when it folds a floor
    # finding under a specific finding that explains the same pods (doctor/fold.py).
    subjects: list[str] = field(default_factory=list)
    # Floor findings folded under this one by the runner: the same failure seen generically.
    symptoms: list["Finding"] = field(default_factory=list)

    @property
    def id(self) -> str:
        return finding_id(self.check, self.resource)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "resource": self.resource.to_dict(),
            "evidence": list(self.evidence),
            "remediation": self.remediation.to_dict(),
            "runbook": self.runbook,
            "caused_by": list(self.caused_by),
            **({"symptoms": [s.symptom_dict() for s in self.symptoms]} if self.symptoms else {}),
        }

    def symptom_dict(self) -> dict:
        """The finding as a symptom of another (JSON ``symptoms``): what it saw, not a second fix."""
        return {"id": self.id, "check": self.check, "severity": self.severity, "title": self.title,
                "message": self.message, "resource": self.resource.to_dict(), "evidence": list(self.evidence)}


def finding_id(check: str, resource: Resource) -> str:
    """Stable id of the finding a check makes on a resource: ``slug:Kind/namespace/name``."""
    return f"{check}:{resource.ref}"


@dataclass
class Result:
    """What a check function returns. Build it with the helpers below."""

    status: Status
    findings: list[Finding] = field(default_factory=list)
    reason: str | None = None


def passed() -> Result:
    return Result("pass")


def failed(*findings: Finding) -> Result:
    return Result("fail", list(findings))


def skipped(reason: str) -> Result:
    return Result("skip", reason=reason)


def errored(reason: str) -> Result:
    return Result("error", reason=reason)


def from_findings(findings: list[Finding]) -> Result:
    """``fail`` with the findings, or ``pass`` when there are none."""
    return Result("fail", findings) if findings else Result("pass")


@dataclass
class CheckRun:
    id: str
    title: str
    severity: Severity
    category: str
    status: Status
    reason: str | None
    duration_s: float
    findings: list[Finding]
    # Findings of a floor check that the runner folded under the specific finding explaining the
    # same pods (listed there as ``symptoms``): part of the check's verdict, not printed twice.
    folded: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 6),
        }
