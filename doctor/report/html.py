"""``--output html``: one self-contained page to look at (a CI artifact, a file opened from disk).

Rendered with Jinja2 from the templates in ``templates/`` (shipped as package data) with
autoescaping on: titles, messages, evidence and resource names are text read from a cluster and
never become markup. The page loads nothing: its CSS and its script (copy buttons) are inline.

* One target: the verdict and counts, the target, the findings in the order of every report
  (doctor/report/arrange.py: causes first), each with its evidence, its causes as links to the
  causing finding ("Explains" links back), the symptoms folded under it ("Also seen as"), its fix
  with one copy button per pasteable block, and its runbook; then every check's result (each
  with an anchor), what could not be checked, suppressed findings and notices.
* A fleet (``render_fleet``): the summary table of the terminal report, a grid of targets x checks
  coloured by result (error, warn, info, pass, skip, incomplete; a target not diagnosed is one row
  with its reason), each cell a link to its finding (or to the check's line when there is none),
  then each target's section as above.
"""
from __future__ import annotations

import re
from typing import Any

from . import RunReport
from ._blocked import entries as blocked_entries
from ._text import at_or_above, where
from ..model import SEVERITY_RANK, Finding

# A cell's result, worst first (the grid's column order and the legend follow it).
RESULTS = ("error", "warn", "info", "incomplete", "skip", "pass")
_BY_SEVERITY = {"error": "error", "warning": "warn", "info": "info"}
_STATUS_RESULT = {"pass": "pass", "skip": "skip", "error": "incomplete"}


def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # autoescape on for every template: the data is untrusted cluster text (tests/test_html.py)
    env = Environment(loader=PackageLoader("airflow_gke.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    return env


def _safe_url(url: str | None) -> str | None:
    """A link target only for http(s) URLs (a runbook base could be anything typed)."""
    return url if url and re.match(r"^https?://", url, re.I) else None


def _verdict(code: int) -> str:
    return {0: "passed", 1: "failed", 3: "incomplete"}.get(code, "failed")


def _result_of(check, findings: list[Finding], folded_into: dict[str, Finding]) -> tuple[str, Finding | None]:
    """A check's result on one target and the finding a cell opens (None: the check's own line)."""
    if check.status == "fail":
        own = [f for f in findings if f.check == check.id]
        if own:
            worst = max(own, key=lambda f: SEVERITY_RANK.get(f.severity or "info", 0))
            return _BY_SEVERITY.get(worst.severity or "info", "info"), own[0]
        host = folded_into.get(check.id)    # folded as a symptom of another check's finding
        if host is not None:
            sev = max((s.severity or "info" for s in host.symptoms if s.check == check.id),
                      key=lambda s: SEVERITY_RANK.get(s, 0), default="info")
            return _BY_SEVERITY.get(sev, "info"), host
        return "pass", None                 # every finding suppressed: listed below, not counted
    return _STATUS_RESULT.get(check.status, "incomplete"), None


def target_model(report: RunReport, fail_on: str, prefix: str = "") -> dict[str, Any]:
    """What the templates show of one target; anchors start with ``prefix`` (unique per target)."""
    r = report.run
    s = report.summary()
    code = report.exit_code(fail_on)
    findings = report.findings
    anchor = {f.id: f"{prefix}f{i + 1}" for i, f in enumerate(findings)}
    titles = {f.id: f.title for f in findings}
    titles.update({x.finding.id: x.finding.title for x in report.suppressed})
    explains: dict[str, list[Finding]] = {}
    for f in findings:
        for c in f.caused_by:
            explains.setdefault(c, []).append(f)
    folded_into: dict[str, Finding] = {}
    for f in findings:
        for sym in f.symptoms:
            folded_into.setdefault(sym.check, f)

    items = []
    for i, f in enumerate(findings):
        sev = f.severity or "info"
        blocks = [{"id": f"{anchor[f.id]}-fix{j + 1}", "text": "\n".join(b)}
                  for j, b in enumerate(f.remediation.blocks)]
        items.append({
            "anchor": anchor[f.id], "id": f.id, "severity": sev, "result": _BY_SEVERITY.get(sev, "info"),
            "title": f.title, "check": f.check, "where": where(f), "more": f.count - 1,
            "below_gate": not at_or_above(sev, fail_on), "fail_on": fail_on, "message": f.message,
            "resources": [x.ref for x in f.all_resources] if f.count > 1 else [],
            "evidence": list(f.evidence),
            "causes": [{"anchor": anchor.get(c), "title": titles.get(c, c), "id": c} for c in f.caused_by],
            "explains": [{"anchor": anchor[e.id], "title": e.title} for e in explains.get(f.id, [])],
            "symptoms": [{"title": x.title, "check": x.check, "where": where(x), "severity": x.severity or "info",
                          "evidence": list(x.evidence)} for x in f.symptoms],
            "fix": f.remediation.summary, "blocks": blocks,
            "runbook": f.runbook, "runbook_url": _safe_url(f.runbook),
        })

    checks = []
    for c in sorted(report.checks, key=lambda c: c.id):
        result, opens = _result_of(c, findings, folded_into)
        n = sum(1 for f in findings if f.check == c.id)
        checks.append({"id": c.id, "title": c.title, "status": c.status, "result": result,
                       "anchor": f"{prefix}check-{c.id}", "opens": anchor[opens.id] if opens else None,
                       "findings": n, "reason": c.reason or ""})

    head = [("mode", r.mode)]
    for label, v in (("project", r.project),
                     ("cluster", ((f"{r.location}/" if r.location else "") + r.cluster) if r.cluster else None),
                     ("namespace", r.namespace), ("release", r.release), ("Airflow", r.airflow_version),
                     ("chart", r.chart_version)):
        if v:
            head.append((label, v))
    t = r.target or {}
    target_line = None
    if t.get("verdict") == "airflow" and t.get("evidence"):
        target_line = (f"Target: namespace {r.namespace} ({t['namespace_from']}), release {r.release or ''} "
                       f"({t['release_from'] or ''}): {'; '.join(t['evidence'])}")
    not_checked = [{"status": e.status, "head": e.head, "details": e.details, "checks": e.checks,
                    "command": e.command,
                    "anchor": None if e.checks else f"{prefix}check-{e.head.partition(': ')[0]}"}
                   for e in blocked_entries(report)]
    suppressed = []
    for x in report.suppressed:
        by = x.by
        src = (f"{by.get('file', 'config')} #{by.get('index')}" if by.get("source") == "config"
               else f"annotation on {by.get('object', '')}")
        suppressed.append({"title": x.finding.title, "check": x.finding.check, "where": where(x.finding),
                           "severity": x.finding.severity or "info", "by": src, "reason": by.get("reason") or "",
                           "expires": by.get("expires") or ""})
    return {
        "prefix": prefix, "head": head, "target_line": target_line, "plan": report.plan_lines(),
        "verdict": _verdict(code), "exit_code": code, "fail_on": fail_on,
        "counts": s["findings"], "checks_count": s["checks"], "suppressed_count": len(report.suppressed),
        "duration": f"{r.duration_s:.2f}", "tool_version": report.tool_version, "started_at": r.started_at,
        "findings": items, "checks": checks, "not_checked": not_checked, "errors": list(report.errors),
        "suppressed": suppressed, "notices": list(report.notices), "probe": report.probe,
    }


def render(report: RunReport, fail_on: str = "error") -> str:
    """The page of one target."""
    t = target_model(report, fail_on)
    return _env().get_template("report.html.j2").render(t=t, results=RESULTS, page="target")


def fleet_model(fleet, fail_on: str) -> dict[str, Any]:
    targets = []
    for i, rep in enumerate(fleet.reports):
        m = target_model(rep, fail_on, prefix=f"t{i + 1}-")
        m["label"] = fleet.label(rep)
        m["anchor"] = f"t{i + 1}"
        targets.append(m)
    # columns: every check any target ran, the worst result anywhere first, then by id
    worst: dict[str, int] = {}
    titles: dict[str, str] = {}
    for m in targets:
        for c in m["checks"]:
            rank = RESULTS.index(c["result"])
            worst[c["id"]] = min(worst.get(c["id"], rank), rank)
            titles.setdefault(c["id"], c["title"])
    columns = [{"id": cid, "title": titles[cid], "worst": RESULTS[worst[cid]]}
               for cid in sorted(worst, key=lambda c: (worst[c], c))]
    rows = []
    for m in sorted(targets, key=lambda m: (-m["counts"]["error"], -m["counts"]["warning"], m["label"])):
        by_id = {c["id"]: c for c in m["checks"]}
        cells = []
        for col in columns:
            c = by_id.get(col["id"])
            if c is None:
                cells.append(None)
            else:
                cells.append({"result": c["result"], "href": "#" + (c["opens"] or c["anchor"]),
                              "title": f"{m['label']} · {c['id']}: {c['result']}"
                                       + (f" ({c['findings']} finding{'s' if c['findings'] != 1 else ''})"
                                          if c["findings"] else "")})
        rows.append({"label": m["label"], "anchor": m["anchor"], "cells": cells, "counts": m["counts"],
                     "exit_code": m["exit_code"], "reason": None})
    unreached = []
    for u, reason in [*((u, u.reason) for u in fleet.unreached),
                      *((u, f"namespace not checked: {u.reason}") for u in getattr(fleet, "unchecked", ()))]:
        unreached.append({"label": u.label, "reason": reason})
        rows.append({"label": u.label, "anchor": None, "cells": [], "counts": None, "exit_code": 3,
                     "reason": reason})
    totals = {"error": sum(m["counts"]["error"] for m in targets),
              "warning": sum(m["counts"]["warning"] for m in targets),
              "incomplete": sum(m["checks_count"]["error"] for m in targets)}
    code = fleet.exit_code(fail_on)
    summary = fleet.rows(fail_on)        # diagnosed targets in fleet.reports order, then the unreached
    aged = any("age" in r for r in summary)
    for i, r in enumerate(summary):
        r["anchor"] = f"t{i + 1}" if i < len(targets) and not r["reason"] else None
        if aged:
            from .stored import age_text

            r["age_text"] = age_text(r.get("age"))
    heading = fleet.heading(len(summary)) if hasattr(fleet, "heading") else None
    return {"targets": targets, "columns": columns, "rows": rows, "unreached": unreached, "totals": totals,
            "exit_code": code, "verdict": _verdict(code), "fail_on": fail_on, "mode": fleet.mode,
            "started_at": fleet.started_at, "duration": f"{fleet.duration_s:.2f}",
            "tool_version": fleet.tool_version, "notices": list(fleet.notices),
            "summary": summary, "aged": aged, "heading": heading}


def render_fleet(fleet, fail_on: str = "error") -> str:
    """The page of a fleet: summary, grid, then every target."""
    return _env().get_template("fleet.html.j2").render(f=fleet_model(fleet, fail_on), results=RESULTS,
                                                       page="fleet")
