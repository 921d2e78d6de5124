"""Fleet reports (``doctor --all-namespaces``, several contexts): JSON is one document whose ``targets`` are the
single-target reports (docs/schema/fleet-v1.json); the terminal shows a summary table (target x
errors/warnings/incomplete) and then each target's own report. Other formats: see FLEET_FORMATS."""
from __future__ import annotations

import io
import sys
from typing import TextIO

import orjson

FLEET_FORMATS = ("table", "json", "junit")


def render_json(fleet, fail_on: str) -> str:
    return orjson.dumps(fleet.to_dict(fail_on), option=orjson.OPT_INDENT_2).decode() + "\n"


def summary_lines(fleet, fail_on: str) -> list[str]:
    rows = fleet.rows(fail_on)
    width = max([len(r["target"]) for r in rows] + [len("TARGET")])
    out = [f"airflow-gke doctor · fleet · {fleet.mode} · {len(rows)} target(s)", "",
           f"{'TARGET':<{width}}  {'ERRORS':>6}  {'WARNINGS':>8}  {'INCOMPLETE':>10}  EXIT"]
    for r in rows:
        if r["reason"]:
            out.append(f"{r['target']:<{width}}  {'-':>6}  {'-':>8}  {'-':>10}  {r['exit_code']}  "
                       f"not diagnosed: {' '.join(r['reason'].split())}")     # one line per target
        else:
            out.append(f"{r['target']:<{width}}  {r['errors']:>6}  {r['warnings']:>8}  {r['incomplete']:>10}  "
                       f"{r['exit_code']}")
    for n in fleet.notices:
        out.append(f"{n.get('level', 'warning')}: {n['message']}")
    return out


def render_table(fleet, fail_on: str, file: TextIO | None = None, compact: bool = False) -> None:
    from .formats import FORMATS

    out = file or sys.stdout
    out.write("\n".join(summary_lines(fleet, fail_on)) + "\n")
    for rep in fleet.reports:
        out.write(f"\n── {fleet.label(rep)} " + "─" * 20 + "\n")
        if file is None:     # stdout: the terminal report with colour when it is a TTY
            sys.stdout.flush()
            FORMATS["table"].print(rep, fail_on, compact=compact)
        else:
            out.write(FORMATS["table"].render(rep, fail_on, compact=compact))


def render_junit(fleet, fail_on: str) -> str:
    """One ``<testsuite>`` per target (named by it) holding that target's test cases as its own
    JUnit report has them; a target not diagnosed is a suite with one errored case saying why."""
    import xml.etree.ElementTree as ET

    from ._text import xml_safe
    from .junit import render as junit_render

    root = ET.Element("testsuites", {"name": "airflow-gke doctor (fleet)"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = []
    for rep in fleet.reports:
        one = ET.fromstring(junit_render(rep, fail_on).split("\n", 1)[1])
        cases = [c for suite in one.findall("testsuite") for c in suite.findall("testcase")]
        suites.append((fleet.label(rep), cases, one.findall("testsuite")[0].find("properties")))
    for u in fleet.unreached:
        label = u.label
        case = ET.Element("testcase", {"classname": "airflow-gke.target", "name": "reachable", "time": "0"})
        ET.SubElement(case, "error", {"message": xml_safe(u.reason), "type": "unreachable"})
        suites.append((label, [case], None))
    for i, (label, cases, props) in enumerate(suites):
        counts = {k: sum(1 for c in cases if c.find(k) is not None) for k in ("failure", "error", "skipped")}
        suite = ET.SubElement(root, "testsuite", {
            "name": xml_safe(label), "tests": str(len(cases)), "failures": str(counts["failure"]),
            "errors": str(counts["error"]), "skipped": str(counts["skipped"]), "id": str(i)})
        if props is not None:
            suite.append(props)
        suite.extend(cases)
        totals["tests"] += len(cases)
        for k in ("failure", "error", "skipped"):
            totals[k + ("s" if k != "skipped" else "")] += counts[k]
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(fleet, fmt: str, fail_on: str, compact: bool = False) -> str:
    if fmt == "json":
        return render_json(fleet, fail_on)
    if fmt == "junit":
        return render_junit(fleet, fail_on)
    buf = io.StringIO()
    render_table(fleet, fail_on, file=buf, compact=compact)
    return buf.getvalue()
