"""Fleet reports (``doctor --all-namespaces``, several contexts, ``airflow-gke report``): JSON is one document whose ``targets`` are the
single-target reports (docs/schema/fleet-v1.json); the terminal shows a summary table (target x
errors/warnings/incomplete) and then each target's own report; JUnit has one suite per target;
Markdown fits one comment (the summary table and the worst findings, pointing at the full JSON
and HTML); HTML is one page with a grid of targets x checks (report/html.py).
Each format's fleet renderer is named in the formats table (doctor/report/formats.py, ``fleet``):
FLEET_FORMATS are the formats that have one."""
from __future__ import annotations

import io
import sys
from typing import TextIO

import orjson

from .formats import FORMATS

FLEET_FORMATS = tuple(n for n, f in FORMATS.items() if f.fleet)


def render_json(fleet, fail_on: str) -> str:
    return orjson.dumps(fleet.to_dict(fail_on), option=orjson.OPT_INDENT_2).decode() + "\n"


def _age(row: dict) -> str:
    from .stored import age_text

    return age_text(row.get("age"))


def summary_lines(fleet, fail_on: str) -> list[str]:
    rows = fleet.rows(fail_on)
    width = max([len(r["target"]) for r in rows] + [len("TARGET")])
    aged = any("age" in r for r in rows)
    age_w = max([len(_age(r)) for r in rows] + [3]) if aged else 0
    head = fleet.heading(len(rows)) if hasattr(fleet, "heading") else \
        f"airflow-gke doctor · fleet · {fleet.mode} · {len(rows)} target(s)"
    out = [head, "",
           f"{'TARGET':<{width}}  " + (f"{'AGE':>{age_w}}  " if aged else "")
           + f"{'ERRORS':>6}  {'WARNINGS':>8}  {'INCOMPLETE':>10}  EXIT"]
    for r in rows:
        age = f"{_age(r):>{age_w}}  " if aged else ""
        if r["reason"]:
            out.append(f"{r['target']:<{width}}  {age}{'-':>6}  {'-':>8}  {'-':>10}  {r['exit_code']}  "
                       f"{'namespace not checked' if r.get('unchecked') else 'not diagnosed'}: "
                       f"{' '.join(r['reason'].split())}")     # one line per target
        else:
            out.append(f"{r['target']:<{width}}  {age}{r['errors']:>6}  {r['warnings']:>8}  {r['incomplete']:>10}  "
                       f"{r['exit_code']}")
    for n in fleet.notices:
        out.append(f"{n.get('level', 'warning')}: {n['message']}")
    return out


def finding_lines(fleet, width: int = 120) -> list[str]:
    """Under the summary, when a fleet prints no full reports (``airflow-gke report`` without
    ``--full``): each target with findings, then its findings one line each (causes first)."""
    from .terminal import wrap

    out: list[str] = []
    for rep in fleet.reports:
        fs = rep.findings
        if not fs:
            continue
        src = getattr(rep, "source", "")
        out += ["", f"── {fleet.label(rep)}" + (f" · {src}" if src else "")]
        for f in fs:
            sev = {"error": "ERROR", "warning": "WARN", "info": "INFO"}.get(f.severity or "info", "INFO")
            more = f" (+{f.count - 1} more)" if f.count > 1 else ""
            out += wrap(f"{sev:<5} {f.check} · {f.title}{more}", width, "  ", "        ")
    return out


def render_table(fleet, fail_on: str, file: TextIO | None = None, compact: bool = False) -> None:
    out = file or sys.stdout
    out.write("\n".join(summary_lines(fleet, fail_on)) + "\n")
    if not getattr(fleet, "full", True):
        from .terminal import width_of

        lines = finding_lines(fleet, width_of(out))
        out.write("\n".join(lines) + ("\n" if lines else ""))
        return
    for rep in fleet.reports:
        out.write(f"\n── {fleet.label(rep)} " + "─" * 20 + "\n")
        if file is None:     # stdout: the terminal report with colour when it is a TTY
            sys.stdout.flush()
            FORMATS["table"].print(rep, fail_on, compact=compact)
        else:
            out.write(FORMATS["table"].render(rep, fail_on, compact=compact))


def render_table_text(fleet, fail_on: str, compact: bool = False) -> str:
    buf = io.StringIO()
    render_table(fleet, fail_on, file=buf, compact=compact)
    return buf.getvalue()


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
    for u in fleet.unchecked:      # -A: a namespace that could not be searched for releases
        case = ET.Element("testcase", {"classname": "airflow-gke.namespace", "name": "readable", "time": "0"})
        ET.SubElement(case, "error", {"message": xml_safe(u.reason), "type": "not-checked"})
        suites.append((u.label, [case], None))
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


def render_markdown(fleet, fail_on: str = "error", json_path: str | None = None, html_path: str | None = None) -> str:
    """One comment: the table of targets and the worst findings (report/markdown.py render_fleet)."""
    from .markdown import render_fleet

    return render_fleet(fleet, fail_on, json_path=json_path, html_path=html_path)


def render(fleet, fmt: str, fail_on: str, compact: bool = False, **opts) -> str:
    """The fleet report in ``fmt`` as text, through the formats table's fleet renderer."""
    return FORMATS[fmt].render_fleet(fleet, fail_on, compact=compact, **opts)
