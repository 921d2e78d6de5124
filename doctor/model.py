"""The result model every report renders: check results, findings, resources, remediations.

Plain dataclasses, no behaviour beyond serialisation: checks build them, the runner collects
them, reports print them.
"""
from __future__ import annotations

import re
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


_ALTERNATIVE = re.compile(r"^#\s*(option\b|or\b|alternatively\b)", re.I)


@dataclass
class Remediation:
    """What fixes a finding: a summary and shell commands. Each item of ``commands`` is one step
    (several lines when it holds comments or a sequence); an item whose first line is a comment
    naming an alternative (``# Option B: ...``, ``# or ...``) starts a new pasteable block, so that
    pasting one block never runs two alternatives."""

    summary: str
    commands: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"summary": self.summary, "commands": list(self.commands)}

    @property
    def blocks(self) -> list[list[str]]:
        """The commands as pasteable blocks of lines: steps to run together, one block per option."""
        return command_blocks(self.commands)


def command_blocks(commands: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    for cmd in commands:
        lines = cmd.splitlines() or [""]
        if not out or _ALTERNATIVE.match(lines[0].strip()):
            out.append(list(lines))
        else:
            out[-1] += lines
    return out


@dataclass
class Finding:
    """One problem: one cause with one fix, on one resource or on many (``resources``).

    ``check``, ``severity`` and ``runbook`` are filled by the runner from the check's declaration
    when the check leaves them empty. A check reports one finding per resource; the report merges
    the findings of one check that share their cause and their fix into one finding over all their
    resources (doctor/report/arrange.py), titled by ``group_title`` when the check gives one."""

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
    # What else this problem keeps from working (e.g. the pods that mount a Pending PVC): refs
    # ``Kind/namespace/name``. The report orders findings that block more first.
    blocks: list[str] = field(default_factory=list)
    # The title (and message) of the finding this one becomes when merged with others of the same
    # check, cause and fix; ``{n}`` is the number of resources. Empty: a generic title.
    group_title: str = ""
    group_message: str = ""
    # Set by the merge: every resource (``resource`` first) and the merged findings (id, title,
    # evidence) when there are several.
    resources: list[Resource] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return finding_id(self.check, self.resource)

    @property
    def all_resources(self) -> list[Resource]:
        return self.resources or [self.resource]

    @property
    def count(self) -> int:
        return len(self.all_resources)

    def to_dict(self) -> dict:
        out = {
            "id": self.id,
            "check": self.check,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "resource": self.resource.to_dict(),
            "count": self.count,
            "resources": [r.to_dict() for r in self.all_resources],
            "evidence": list(self.evidence),
            "remediation": self.remediation.to_dict(),
            "runbook": self.runbook,
            "caused_by": list(self.caused_by),
            **({"symptoms": [s.symptom_dict() for s in self.symptoms]} if self.symptoms else {}),
        }
        if self.blocks:
            out["blocks"] = list(self.blocks)
        if self.members:
            out["members"] = [dict(m) for m in self.members]
        return out

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
    # For a skip/error: (blockers.Cause, the read as text) of each read that kept it from running;
    # the reports group checks by cause. Serialised as ``blocked_by`` (the causes' ids).
    causes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 6),
        }
        ids = list(dict.fromkeys(c.id for c, _read in self.causes))
        if ids:
            d["blocked_by"] = ids
        return d
