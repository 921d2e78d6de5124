"""``--output junit``: the report as JUnit XML (the Jenkins/Ant format GitHub Actions reporters,
GitLab, Jenkins and Azure DevOps read).

One ``<testsuite>`` per check category; in it one ``<testcase>`` per check, or, for a check that
found problems, one per finding (check and resource: ``classname`` is ``airflow-gke.<category>``,
``name`` is ``<slug>: <Kind/namespace/name>``):

* a finding at or above ``--fail-on`` is a ``<failure>`` (``type`` = its severity, ``message`` = its
  title, text = message, evidence, causes, commands, runbook); a finding below the threshold passes
  and carries the same text in ``<system-out>``, so the test view is red exactly when the gate is;
* a suppressed finding is ``<skipped>`` with the suppression's reason;
* a check that could not run is ``<skipped>`` (``skip``) or ``<error>`` (``error``) with the reason;
* run-level errors and notices go in a last suite, ``airflow-gke: run``.

Validated in the tests against ``tests/data/junit.xsd``.
"""
from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections import defaultdict

from . import RunReport
from ._text import at_or_above, finding_text, xml_safe

PREFIX = "airflow-gke"


def _t(x: float) -> str:
    return f"{max(x, 0.0):.3f}"


def render(report: RunReport, fail_on: str = "error") -> str:
    titles = {f.id: f.title for f in report.findings}
    titles.update({s.finding.id: s.finding.title for s in report.suppressed})
    suppressed_by_check: dict[str, list] = defaultdict(list)
    for s in report.suppressed:
        suppressed_by_check[s.finding.check].append(s)

    suites: dict[str, list[ET.Element]] = defaultdict(list)
    for run in report.checks:
        cls = f"{PREFIX}.{run.category}"
        cases = []
        per = run.duration_s / max(1, len(run.findings) + len(suppressed_by_check.get(run.id, [])))
        for f in run.findings:
            tc = _case(cls, f"{run.id}: {f.resource.ref}", per)
            body = finding_text(f, titles)
            if at_or_above(f.severity, fail_on):
                el = ET.SubElement(tc, "failure", {"type": f.severity or "info", "message": xml_safe(f.title)})
                el.text = xml_safe(body)
            else:
                ET.SubElement(tc, "system-out").text = xml_safe(
                    f"{f.severity} below --fail-on {fail_on} (does not fail the run)\n\n{body}")
            cases.append(tc)
        for s in suppressed_by_check.get(run.id, []):
            f = s.finding
            tc = _case(cls, f"{run.id}: {f.resource.ref}", per)
            why = s.by.get("reason", "")
            exp = s.by.get("expires")
            el = ET.SubElement(tc, "skipped", {"message": xml_safe(f"suppressed: {why}"
                                                                   + (f" (until {exp})" if exp else ""))})
            el.text = xml_safe(finding_text(f, titles))
            cases.append(tc)
        if not cases:
            tc = _case(cls, f"{run.id}: {run.title}", run.duration_s)
            if run.status == "skip":
                ET.SubElement(tc, "skipped", {"message": xml_safe(run.reason or "skipped")})
            elif run.status == "error":
                el = ET.SubElement(tc, "error", {"type": "check-error", "message": xml_safe(run.reason or "error")})
                el.text = xml_safe(run.reason or "error")
            elif run.reason:
                ET.SubElement(tc, "system-out").text = xml_safe(run.reason)
            cases.append(tc)
        suites[run.category].extend(cases)

    run_cases = []
    for e in report.errors:
        tc = _case(f"{PREFIX}.run", "run error", 0.0)
        el = ET.SubElement(tc, "error", {"type": "run-error", "message": xml_safe(e.get("message", ""))})
        el.text = xml_safe(e.get("message", ""))
        run_cases.append(tc)
    if report.notices:
        tc = _case(f"{PREFIX}.run", "notices", 0.0)
        ET.SubElement(tc, "system-out").text = xml_safe(
            "\n".join(f"{n.get('level', 'warning')}: {n.get('message', '')}" for n in report.notices))
        run_cases.append(tc)
    if report.probe is not None:
        p = report.probe
        tc = _case(f"{PREFIX}.run", "write probe", 0.0)
        steps = "\n".join(f"  {s['step']}: {'ok' if s['ok'] else 'FAILED'} {s['detail']}" for s in p["steps"])
        ET.SubElement(tc, "system-out").text = xml_safe(
            f"probe {p['verdict']} as {p['identity']} on {p['object'] or p['folder']}\n{steps}\n{p['note']}")
        run_cases.append(tc)

    r = report.run
    root = ET.Element("testsuites", {"name": f"{PREFIX} doctor"})
    totals = defaultdict(int)
    hostname = socket.gethostname() or "localhost"
    names = sorted(suites)
    groups = [(f"{PREFIX}: {c}", suites[c]) for c in names]
    if run_cases:
        groups.append((f"{PREFIX}: run", run_cases))
    for i, (name, cases) in enumerate(groups):
        counts = {k: sum(1 for c in cases if c.find(k) is not None) for k in ("failure", "error", "skipped")}
        t = sum(float(c.get("time", "0")) for c in cases)
        suite = ET.SubElement(root, "testsuite", {
            "name": name, "tests": str(len(cases)), "failures": str(counts["failure"]),
            "errors": str(counts["error"]), "skipped": str(counts["skipped"]), "time": _t(t),
            "timestamp": (r.started_at or "")[:19], "hostname": hostname, "id": str(i),   # Ant: no zone
            "package": PREFIX,
        })
        props = ET.SubElement(suite, "properties")
        for k, v in (("mode", r.mode), ("project", r.project), ("location", r.location), ("cluster", r.cluster),
                     ("namespace", r.namespace), ("release", r.release), ("airflow_version", r.airflow_version),
                     ("chart_version", r.chart_version), ("tool_version", report.tool_version), ("fail_on", fail_on),
                     *((("plan." + k, str(len(report.plan[k]))) for k in ("introduced", "fixed", "unchanged"))
                       if report.plan and report.plan.get("compared_with") else ())):
            if v is not None:
                ET.SubElement(props, "property", {"name": k, "value": xml_safe(str(v))})
        suite.extend(cases)
        totals["tests"] += len(cases)
        totals["failures"] += counts["failure"]
        totals["errors"] += counts["error"]
        totals["skipped"] += counts["skipped"]
        totals["time"] += t
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("skipped", str(totals["skipped"]))
    root.set("time", _t(r.duration_s or totals["time"]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case(classname: str, name: str, seconds: float) -> ET.Element:
    return ET.Element("testcase", {"classname": classname, "name": xml_safe(name), "time": _t(seconds)})
