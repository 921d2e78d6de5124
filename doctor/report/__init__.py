"""Reports: every output format renders the same run document (schema version "1")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import SEVERITY_RANK, CheckRun, Finding
from .arrange import merge, merge_suppressed, order

SCHEMA_VERSION = "1"


@dataclass
class RunInfo:
    mode: str
    context: str | None
    project: str | None
    location: str | None
    cluster: str | None
    namespace: str
    release: str | None
    airflow_version: str | None
    chart_version: str | None
    started_at: str
    duration_s: float = 0.0
    # What the target guard established (doctor/target_guard.py): verdict, where the namespace and
    # release came from, the chart objects found; optional in schema v1 (absent: not established).
    target: dict | None = None

    def to_dict(self) -> dict:
        d = dict(self.__dict__, duration_s=round(self.duration_s, 4))
        if d.get("target") is None:
            d.pop("target", None)
        return d


@dataclass
class RunReport:
    tool_version: str
    run: RunInfo
    checks: list[CheckRun]
    errors: list[dict] = field(default_factory=list)
    # Optional parts of schema v1 (present in the JSON only when not empty): findings accepted by a
    # suppression or annotation (doctor/suppress.py), run-level warnings, the --probe result.
    suppressed: list = field(default_factory=list)
    notices: list[dict] = field(default_factory=list)
    probe: dict | None = None
    # Planned mode (doctor --manifests): where the plan and the cluster came from, and the findings
    # the plan introduces/fixes compared with the release the namespace runs now (doctor/planned.py).
    plan: dict | None = None

    def __post_init__(self) -> None:
        # One finding per cause and fix (doctor/report/arrange.py): merged once, here, so that every
        # format renders, counts and gates on the same findings.
        renamed: dict[str, str] = {}
        for c in self.checks:
            if len(c.findings) > 1:
                c.findings, more = merge(c.findings)
                renamed.update(more)
        if len(self.suppressed) > 1:      # accepted by the same suppression, one cause and one fix: one entry
            self.suppressed = merge_suppressed(self.suppressed)
        if renamed:
            for c in self.checks:
                for f in c.findings:
                    f.caused_by = [x for x in dict.fromkeys(renamed.get(x, x) for x in f.caused_by) if x != f.id]

    @property
    def findings(self) -> list[Finding]:
        """Causes before what they explain, then the most severe, then what blocks the most."""
        return order([f for c in self.checks for f in c.findings])

    def plan_lines(self) -> list[str]:
        """Planned mode: what the plan changes compared with the running release, as plain lines
        (every format prints these)."""
        p = self.plan
        if not p:
            return []
        if p.get("compared_with") is None:
            return [f"Plan {p['manifests']}: the namespace does not run release {self.run.release or '?'} yet "
                    "(first deploy): every finding is new."]
        out = [f"Plan {p['manifests']} compared with the running release ({p['compared_with']}): introduces "
               f"{len(p['introduced'])}, fixes {len(p['fixed'])}, keeps {len(p['unchanged'])}."]
        for label, key in (("introduces", "introduced"), ("fixes", "fixed"), ("keeps", "unchanged")):
            for f in p[key]:
                out.append(f"{label} {f['severity']} {f['check']}: {f['title']}")
        return out

    def summary(self) -> dict:
        checks = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
        for c in self.checks:
            checks[c.status] += 1
        findings = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            findings[f.severity or "info"] += 1
        return {"checks": checks, "findings": findings}

    def all_errors(self) -> list[dict]:
        out = list(self.errors)
        out += [{"check": c.id, "message": c.reason or "error"} for c in self.checks if c.status == "error"]
        return out

    def blockers(self) -> tuple[list, list[CheckRun]]:
        """(the causes that kept checks from running, each with the checks it blocked; the
        skipped/errored checks no read explains): one cause, one line (doctor/blockers.py)."""
        from ..blockers import group

        return group(self.checks)

    def to_dict(self) -> dict[str, Any]:
        blockers = self.blockers()[0]
        return {
            "schema_version": SCHEMA_VERSION,
            "tool_version": self.tool_version,
            "run": self.run.to_dict(),
            "summary": self.summary(),
            "checks": [c.to_dict() for c in self.checks],
            "findings": [f.to_dict() for f in self.findings],
            "errors": self.all_errors(),
            **({"suppressed": [x.to_dict() for x in self.suppressed]} if self.suppressed else {}),
            **({"notices": list(self.notices)} if self.notices else {}),
            **({"probe": self.probe} if self.probe is not None else {}),
            **({"plan": self.plan} if self.plan is not None else {}),
            **({"blockers": [b.to_dict() for b in blockers]} if blockers else {}),
        }

    def exit_code(self, fail_on: str) -> int:
        """0 nothing at/above the threshold; 1 findings at/above it; 3 incomplete run."""
        if fail_on == "never":
            return 0
        threshold = SEVERITY_RANK[fail_on]
        if any(SEVERITY_RANK.get(f.severity or "info", 0) >= threshold for f in self.findings):
            return 1
        if any(c.status == "error" for c in self.checks) or self.errors:
            return 3
        return 0
