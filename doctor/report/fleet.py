"""Fleet reports (``doctor --all-namespaces``): JSON is one document whose ``targets`` are the
single-target reports (docs/schema/fleet-v1.json); the terminal shows a summary table (target x
errors/warnings/incomplete) and then each target's own report. Other formats: see FLEET_FORMATS."""
from __future__ import annotations

import io
import sys
from typing import TextIO

import orjson

FLEET_FORMATS = ("table", "json")


def render_json(fleet, fail_on: str) -> str:
    return orjson.dumps(fleet.to_dict(fail_on), option=orjson.OPT_INDENT_2).decode() + "\n"


def summary_lines(fleet, fail_on: str) -> list[str]:
    rows = fleet.rows(fail_on)
    width = max([len(r["target"]) for r in rows] + [len("TARGET")])
    out = [f"airflow-gke doctor --all-namespaces · {fleet.mode} · {len(rows)} target(s)", "",
           f"{'TARGET':<{width}}  {'ERRORS':>6}  {'WARNINGS':>8}  {'INCOMPLETE':>10}  EXIT"]
    for r in rows:
        if r["reason"]:
            out.append(f"{r['target']:<{width}}  {'-':>6}  {'-':>8}  {'-':>10}  {r['exit_code']}  "
                       f"not diagnosed: {r['reason']}")
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


def render(fleet, fmt: str, fail_on: str, compact: bool = False) -> str:
    if fmt == "json":
        return render_json(fleet, fail_on)
    buf = io.StringIO()
    render_table(fleet, fail_on, file=buf, compact=compact)
    return buf.getvalue()
