"""``airflow-gke report SOURCE``: the fleet view of reports the doctor wrote earlier (a folder, or a
``gs://`` prefix the in-cluster CronJob writes to with ``--output-file gs://...``).

SOURCE holds single-target JSON reports (schema report-v1.json) and fleet documents
(fleet-v1.json); every ``.json`` file under it is read. The latest report of each target
(project, location, cluster, namespace, release) wins, by its ``run.started_at``; a target a fleet
document lists as unreachable stays a line when no later report diagnosed it. The result is a
:class:`StoredFleet`, a FleetReport the fleet renderers print like ``doctor -A`` (plus each
report's age); its JSON is a fleet document whose targets are the stored reports as they were
written.

A file that is not JSON, not a report of schema version 1, or not shaped like one is skipped
with one warning naming it; nothing valid at all is a UserError (exit 2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fleet import FleetReport, Unreached
from ..model import CheckRun, Finding, Remediation, Resource
from . import RunInfo, RunReport

MAX_FILE_BYTES = 64 * 1024 * 1024
_RUN_FIELDS = tuple(RunInfo.__dataclass_fields__)


class Invalid(ValueError):
    """A file that is not a report: why, in a few words."""


# --- from JSON back to the report model ------------------------------------------------------------

def _resource(d: Any) -> Resource:
    if not isinstance(d, dict) or not isinstance(d.get("kind"), str) or not isinstance(d.get("name"), str):
        raise Invalid("a finding's resource has no kind or name")
    return Resource(d["kind"], d["name"], d.get("namespace"), d.get("uri"))


def _strs(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def _finding(d: Any) -> Finding:
    if not isinstance(d, dict) or not isinstance(d.get("title"), str) or not isinstance(d.get("check"), str):
        raise Invalid("a finding has no title or check")
    rem = d.get("remediation") if isinstance(d.get("remediation"), dict) else {}
    res = _resource(d.get("resource"))
    resources = [_resource(r) for r in d.get("resources") or []] if isinstance(d.get("resources"), list) else []
    return Finding(
        title=d["title"], message=str(d.get("message") or ""), resource=res, evidence=_strs(d.get("evidence")),
        remediation=Remediation(str(rem.get("summary") or ""), _strs(rem.get("commands"))),
        caused_by=_strs(d.get("caused_by")), severity=d.get("severity") if d.get("severity") in
        ("error", "warning", "info") else "info", check=d["check"], runbook=str(d.get("runbook") or ""),
        symptoms=[_finding(dict(s, check=s.get("check") or d["check"])) for s in d.get("symptoms") or []
                  if isinstance(s, dict)],
        blocks=_strs(d.get("blocks")), resources=resources if len(resources) > 1 else [],
        members=[m for m in d.get("members") or [] if isinstance(m, dict)])


@dataclass
class StoredReport(RunReport):
    """A single-target report read back from its JSON: renders like the run that wrote it."""

    doc: dict = field(default_factory=dict)
    source: str = ""                 # the file or gs:// object it came from
    age_s: float | None = None       # seconds between its run and now
    ordered: list = field(default_factory=list)     # the findings in the order they were written

    def __post_init__(self) -> None:  # its findings were merged and ordered when it was written
        pass

    @property
    def findings(self) -> list[Finding]:
        return self.ordered

    def summary(self) -> dict:
        return self.doc["summary"]

    def all_errors(self) -> list[dict]:
        return list(self.doc.get("errors") or [])

    def to_dict(self) -> dict[str, Any]:
        return self.doc


def report_from_dict(doc: dict, source: str = "") -> StoredReport:
    """The report model of one single-target JSON report (raises Invalid)."""
    from ..blockers import Cause

    if not isinstance(doc, dict):
        raise Invalid("not a JSON object")
    if doc.get("schema_version") != "1":
        raise Invalid(f"schema_version {doc.get('schema_version')!r}, not \"1\"")
    run, checks, findings, summary = (doc.get(k) for k in ("run", "checks", "findings", "summary"))
    if not isinstance(run, dict) or not isinstance(run.get("namespace"), str) or not isinstance(run.get("started_at"), str):
        raise Invalid("no run (namespace, started_at)")
    if not isinstance(checks, list) or not isinstance(findings, list) or not isinstance(summary, dict) \
            or not isinstance(summary.get("findings"), dict) or not isinstance(summary.get("checks"), dict):
        raise Invalid("no checks, findings or summary")
    info = RunInfo(**{k: run.get(k) for k in _RUN_FIELDS if k != "duration_s"},
                   duration_s=float(run.get("duration_s") or 0.0))
    ordered = [_finding(f) for f in findings]
    by_check: dict[str, list[Finding]] = {}
    for f in ordered:
        by_check.setdefault(f.check, []).append(f)
    causes: dict[str, list] = {}
    for b in doc.get("blockers") or []:
        if not isinstance(b, dict) or not isinstance(b.get("id"), str):
            continue
        cause = Cause(b["id"], str(b.get("kind") or ""), str(b.get("status") or "error"), str(b.get("summary") or ""),
                      str(b.get("fix") or ""), b.get("message"), None, b.get("command"))
        for c in _strs(b.get("checks")):
            causes.setdefault(c, []).extend((cause, r) for r in (_strs(b.get("reads")) or [""]))
    runs = []
    for c in checks:
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or c.get("status") not in ("pass", "fail", "skip", "error"):
            raise Invalid("a check has no id or status")
        runs.append(CheckRun(id=c["id"], title=str(c.get("title") or c["id"]), severity=c.get("severity") or "error",
                             category="", status=c["status"], reason=c.get("reason"),
                             duration_s=float(c.get("duration_s") or 0.0), findings=by_check.get(c["id"], []),
                             causes=causes.get(c["id"], [])))
    errored = {(r.id, r.reason or "error") for r in runs if r.status == "error"}
    errors = [e for e in doc.get("errors") or [] if isinstance(e, dict)
              and (e.get("check"), e.get("message")) not in errored]
    from ..suppress import Suppressed

    suppressed = [Suppressed(_finding(x["finding"]), dict(x.get("suppression") or {}))
                  for x in doc.get("suppressed") or [] if isinstance(x, dict) and isinstance(x.get("finding"), dict)]
    rep = StoredReport(tool_version=str(doc.get("tool_version") or "?"), run=info, checks=runs, errors=errors,
                       suppressed=suppressed, notices=[n for n in doc.get("notices") or [] if isinstance(n, dict)],
                       probe=doc.get("probe") if isinstance(doc.get("probe"), dict) else None,
                       plan=doc.get("plan") if isinstance(doc.get("plan"), dict) else None, doc=doc, source=source,
                       ordered=ordered)
    return rep


# --- reading a source ---------------------------------------------------------------------------

def _parse_time(s: str | None) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def target_key(run) -> tuple:
    return (run.project, run.location, run.cluster, run.namespace, run.release)


def _read_folder(root: Path, warn) -> list[tuple[str, bytes]]:
    if not root.exists():
        raise UserError(f"report: {root}: no such folder (SOURCE is a folder or a gs://BUCKET/PREFIX/ of reports)")
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*.json") if p.is_file())
    else:
        raise UserError(f"report: {root}: not a folder or a file")
    out = []
    for p in files:
        try:
            if p.stat().st_size > MAX_FILE_BYTES:
                warn(f"skipped {p}: larger than a report can be ({p.stat().st_size} bytes)")
                continue
            out.append((str(p), p.read_bytes()))
        except OSError as e:
            warn(f"skipped {p}: cannot read it ({e.strerror or e})")
    return out


@dataclass
class StoredFleet(FleetReport):
    """Fleet of stored reports (``airflow-gke report``): labelled project/cluster/namespace/release,
    each row with the age of its report."""

    source: str = ""
    files: int = 0                   # valid report files read
    skipped: int = 0                 # invalid files skipped
    full: bool = False               # the terminal view: each target's whole report (else its findings, a line each)

    @staticmethod
    def label(report) -> str:
        r = report.run
        return "/".join(str(x or "?") for x in (r.project, r.cluster, r.namespace, r.release))

    def heading(self, n: int) -> str:
        return (f"airflow-gke report {self.source} · {n} target(s), the latest of {self.files} report(s)"
                + (f", {self.skipped} file(s) skipped" if self.skipped else ""))

    def rows(self, fail_on: str) -> list[dict]:
        rows = super().rows(fail_on)
        for row, rep in zip(rows, self.reports):
            row["age"] = rep.age_s
        return rows

    def to_dict(self, fail_on: str = "error") -> dict[str, Any]:
        d = super().to_dict(fail_on)
        d["run"]["source"] = self.source
        return d


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def load(source: str, warn, now: datetime | None = None, env: dict | None = None) -> StoredFleet:
    """The latest report per target under SOURCE, as a fleet (UserError when none is valid)."""
    import orjson

    from .. import __version__, gcs

    now = now or datetime.now(timezone.utc)
    if gcs.is_gs(source):
        files = gcs.read_all(gcs.parse(source, "report"), env=env if env is not None else dict(os.environ), warn=warn)
    else:
        files = _read_folder(Path(source), warn)
    latest: dict[tuple, tuple[datetime, str, StoredReport]] = {}
    gone: dict[tuple, tuple[datetime, Unreached]] = {}
    valid = skipped = 0
    for name, raw in files:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            warn(f"skipped {name}: not JSON ({e})")
            skipped += 1
            continue
        try:
            if isinstance(doc, dict) and doc.get("kind") == "fleet":
                if doc.get("schema_version") != "1" or not isinstance(doc.get("targets"), list):
                    raise Invalid("a fleet document without schema_version \"1\" and targets")
                reps = [report_from_dict(t, name) for t in doc["targets"]]
                when = _parse_time((doc.get("run") or {}).get("started_at")) if isinstance(doc.get("run"), dict) else None
                for u in doc.get("unreachable") or []:
                    if isinstance(u, dict) and isinstance(u.get("target"), dict) and when is not None:
                        t = u["target"]
                        key = tuple(str(t.get(k) or "") for k in ("context", "namespace", "release"))
                        if key not in gone or gone[key][0] < when:
                            gone[key] = (when, Unreached(dict(t), str(u.get("reason") or "unreachable")))
            else:
                reps = [report_from_dict(doc, name)]
        except (Invalid, TypeError, ValueError, KeyError, AttributeError) as e:
            warn(f"skipped {name}: not an airflow-gke report ({e})")
            skipped += 1
            continue
        valid += 1
        for rep in reps:
            when = _parse_time(rep.run.started_at)
            if when is None:
                continue
            key = target_key(rep.run)
            have = latest.get(key)
            if have is None or (when, name) > (have[0], have[1]):
                latest[key] = (when, name, rep)
    if not latest:
        what = f"{len(files)} .json file(s), none a valid report" if files else "no .json file"
        raise UserError(f"report: {source}: {what} (airflow-gke doctor --output json reports, or "
                        "--output-file gs://... objects)")
    reports = []
    for when, _name, rep in sorted(latest.values(), key=lambda x: StoredFleet.label(x[2])):
        rep.age_s = (now - when).total_seconds()
        reports.append(rep)
    # an unreachable line stays only while no later report diagnosed that context/namespace/release
    seen = {}
    for when, _n, rep in latest.values():
        r = rep.run
        for key in ((str(r.context or ""), r.namespace, str(r.release or "")), (str(r.context or ""), "", "")):
            seen[key] = max(seen.get(key, when), when)
    unreached = [u for key, (when, u) in sorted(gone.items())
                 if not any(seen.get(k, when) > when for k in (key, (key[0], "", "")))]
    started = min(w for w, _n, _r in latest.values())
    return StoredFleet(tool_version=__version__, mode="stored", started_at=started.isoformat().replace("+00:00", "Z"),
                       reports=reports, unreached=unreached, source=source, files=valid, skipped=skipped)
