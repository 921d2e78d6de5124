"""The terminal report: errors first, each with its evidence, the commands that fix it and the
runbook; then what could not be checked; then one summary line. Colour only on a TTY and never
with NO_COLOR (rich honours both)."""
from __future__ import annotations

import os
import sys
from typing import TextIO

from ..model import Finding
from . import RunReport

_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}
_LABEL = {"error": "ERROR", "warning": "WARN ", "info": "INFO "}


def _console(file: TextIO):
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR")) or not file.isatty()
    return Console(file=file, no_color=no_color, highlight=False, emoji=False,
                   width=None if file.isatty() else 120, soft_wrap=False)


def render(report: RunReport, file: TextIO | None = None, verbose: bool = False) -> None:
    from rich.markup import escape

    out = file or sys.stdout
    con = _console(out)
    r = report.run
    where = [f"{r.mode}"]
    if r.project:
        where.append(f"project {r.project}")
    if r.cluster:
        where.append(f"cluster {r.location + '/' if r.location else ''}{r.cluster}")
    where.append(f"namespace {r.namespace}")
    if r.release:
        where.append(f"release {r.release}")
    if r.airflow_version:
        where.append(f"Airflow {r.airflow_version}")
    if r.chart_version:
        where.append(f"chart {r.chart_version}")
    con.print(f"[bold]airflow-gke doctor[/bold] · {escape(' · '.join(where))}")
    t = r.target or {}
    if t.get("verdict") == "airflow" and t.get("evidence"):
        con.print(f"[dim]Target: namespace {escape(r.namespace)} ({escape(t['namespace_from'])}), release "
                  f"{escape(r.release or '')} ({escape(t['release_from'] or '')}): {escape('; '.join(t['evidence']))}[/dim]",
                  soft_wrap=True)
    con.print()
    lines = report.plan_lines()
    if lines:
        con.print(f"[bold]{escape(lines[0])}[/bold]", soft_wrap=True)
        for ln in lines[1:]:
            mark = {"introduces": "[red]+[/red]", "fixes": "[green]-[/green]"}.get(ln.split(" ", 1)[0], " ")
            con.print(f"  {mark} {escape(ln)}", soft_wrap=True)
        con.print()

    by_id = {f.id: f for f in report.findings}
    by_id.update({x.finding.id: x.finding for x in report.suppressed if x.finding.id not in by_id})
    for f in report.findings:
        _finding(con, f, by_id, escape)
    _accepted(con, report, escape)

    problems = [c for c in report.checks if c.status in ("error", "skip")]
    if problems:
        con.print("[bold]Not checked[/bold]")
        for c in problems:
            style = "red" if c.status == "error" else "dim"
            con.print(f"  [{style}]{c.status:5}[/{style}] {escape(c.id)}: {escape(c.reason or '')}", soft_wrap=True)
        con.print()
    for e in report.errors:
        con.print(f"[red]error[/red] {escape(e.get('message', ''))}", soft_wrap=True)
    for n in report.notices:
        style = "yellow" if n.get("level") == "warning" else "cyan"
        con.print(f"[{style}]{n.get('level', 'warning')}[/{style}] {escape(n.get('message', ''))}", soft_wrap=True)
    if report.notices:
        con.print()
    if verbose:
        con.print("[bold]Checks[/bold]")
        for c in report.checks:
            con.print(f"  {c.status:5} {c.id:38} {c.duration_s * 1000:8.1f} ms  {escape(c.title)}")
        con.print()

    s = report.summary()
    ch, fi = s["checks"], s["findings"]
    passed = f"{ch['pass']} passed, {ch['fail']} failed, {ch['skip']} skipped, {ch['error']} errors"
    found = f"{fi['error']} errors, {fi['warning']} warnings, {fi['info']} info"
    style = "bold red" if fi["error"] else "bold yellow" if fi["warning"] else "bold green"
    if report.suppressed:
        found += f", {len(report.suppressed)} suppressed"
    con.print(f"[{style}]Findings: {found}[/{style}] · Checks: {passed} · {r.duration_s:.2f}s")


def _accepted(con, report: RunReport, escape) -> None:
    """Suppressed findings (one line each, with what suppressed them) and the write probe."""
    if report.suppressed:
        con.print("[bold]Suppressed[/bold] [dim](accepted: not counted by --fail-on)[/dim]")
        for x in report.suppressed:
            f, by = x.finding, x.by
            res = f.resource
            where = f"{res.kind} {res.namespace + '/' if res.namespace else ''}{res.name}"
            src = (f"{by.get('file', 'config')} #{by.get('index')}" if by.get("source") == "config"
                   else f"annotation on {by.get('object', '')}")
            until = f", until {by['expires']}" if by.get("expires") else ""
            con.print(f"  [dim]{(f.severity or 'info'):7}[/dim] {escape(f.title)} [dim]({escape(f.check)} · "
                      f"{escape(where)})[/dim]", soft_wrap=True)
            con.print(f"          suppressed by {escape(src)}{escape(until)}: {escape(by.get('reason', ''))}",
                      soft_wrap=True)
        con.print()
    p = report.probe
    if p is not None:
        style = "green" if p["verdict"] == "allowed" else "yellow" if p["verdict"] == "not-run" else "red"
        con.print(f"[bold]Write probe[/bold] [{style}]{p['verdict']}[/{style}] as {escape(p['identity'])} on "
                  f"{escape(p['object'] or p['folder'] or '-')}", soft_wrap=True)
        for st in p["steps"]:
            con.print(f"  {st['step']:6} {'ok' if st['ok'] else 'FAILED'}  {escape(st['detail'])}", soft_wrap=True)
        con.print(f"  {escape(p['note'])}", soft_wrap=True)
        con.print()


def _indented(con, text: str, left: int = 7, bold_prefix: str = "") -> str:
    """A paragraph wrapped inside a left margin (continuation lines stay indented, no trailing
    spaces), returned as escaped markup."""
    import textwrap

    from rich.markup import escape

    width = max(40, (con.width or 100) - 1)
    pad = " " * left
    wrapped = textwrap.fill(bold_prefix + text, width=width, initial_indent=pad, subsequent_indent=pad,
                            break_long_words=False, break_on_hyphens=False)
    out = escape(wrapped)
    if bold_prefix:
        out = out.replace(escape(bold_prefix), f"[bold]{escape(bold_prefix.rstrip())}[/bold] ", 1)
    return out


def _finding(con, f: Finding, by_id: dict, escape) -> None:
    sev = f.severity or "info"
    res = f.resource
    where = f"{res.kind} {res.namespace + '/' if res.namespace else ''}{res.name}"
    con.print(f"[{_STYLE[sev]}]{_LABEL[sev]}[/{_STYLE[sev]}] [bold]{escape(f.title)}[/bold]", soft_wrap=True)
    con.print(f"       [dim]{escape(f.check)} · {escape(where)}[/dim]", soft_wrap=True)
    con.print(_indented(con, f.message), soft_wrap=True)
    if f.evidence:
        con.print("       [bold]Evidence[/bold]")
        for ev in f.evidence:
            con.print(f"         - {escape(ev)}", soft_wrap=True)
    if f.caused_by:
        con.print("       [bold]Caused by[/bold]")
        for cid in f.caused_by:
            cause = by_id.get(cid)
            con.print(f"         - {escape(cause.title if cause else cid)} [dim]({escape(cid)})[/dim]", soft_wrap=True)
    if f.symptoms:   # floor findings folded under this one (doctor/fold.py): the same failure, generically
        con.print("       [bold]Also seen as[/bold]")
        for s in f.symptoms:
            con.print(f"         - {escape(s.title)} [dim]({escape(s.check)})[/dim]", soft_wrap=True)
    con.print(_indented(con, f.remediation.summary, bold_prefix="Fix: "), soft_wrap=True)
    for cmd in f.remediation.commands:
        for i, line in enumerate(cmd.splitlines()):
            con.print(f"         {'$ ' if i == 0 else '  '}{escape(line)}", soft_wrap=True)
    con.print(f"       [bold]Runbook[/bold]: {escape(f.runbook)}", soft_wrap=True)
    con.print()
