"""The terminal report: causes first, each finding with its evidence, the commands that fix it and
the runbook; then what could not be checked; then one summary line. Colour only on a TTY and never
with NO_COLOR (rich honours both).

Reading: prose and evidence wrap at word boundaries with a hanging indent at the terminal's width
(``COLUMNS`` when the output is not a terminal, else 120); a command is never broken, however long.
Scale: the full report stays within ``LINE_BUDGET`` lines: when it would not, evidence is cut
first (fewer items, shorter ones), then messages; every finding keeps its title, its fix and its
commands, and a line says what was cut. ``compact`` prints one line per finding.
"""
from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from typing import TextIO

from ..model import Finding
from . import RunReport

_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}
_LABEL = {"error": "ERROR", "warning": "WARN ", "info": "INFO "}
LINE_BUDGET = 400          # lines of the full report, whatever the size of the namespace
PIPE_WIDTH = 120           # columns when the output is not a terminal and COLUMNS is not set
INDENT = 7


@dataclass(frozen=True)
class Detail:
    """How much of each finding the full report shows."""
    evidence: int | None     # evidence items (None: all)
    evidence_chars: int      # characters per evidence item
    message: bool            # the message paragraph
    names: int               # resources named for a finding over many


LEVELS = (Detail(None, 1200, True, 8), Detail(6, 500, True, 5), Detail(3, 240, True, 5),
          Detail(1, 200, False, 3), Detail(0, 0, False, 3))


def width_of(file: TextIO) -> int:
    """The terminal's width; when piped, ``COLUMNS`` if it is set, else 120."""
    if _isatty(file):
        try:
            return max(40, os.get_terminal_size(file.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            pass
    try:
        cols = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        cols = 0
    return max(40, cols) if cols > 0 else PIPE_WIDTH


def _isatty(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


def _console(file: TextIO, width: int):
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR")) or not _isatty(file)
    return Console(file=file, no_color=no_color, highlight=False, emoji=False, width=width, soft_wrap=True)


def wrap(text: str, width: int, first: str = "", rest: str | None = None) -> list[str]:
    """A paragraph wrapped at word boundaries: ``first`` before its first line, ``rest`` (default:
    as many spaces) before the others. Words longer than a line (URLs, paths) are not split."""
    rest = " " * len(first) if rest is None else rest
    out: list[str] = []
    for i, para in enumerate(str(text).splitlines() or [""]):
        lines = textwrap.wrap(para, width=max(20, width - 1), initial_indent=first if i == 0 else rest,
                              subsequent_indent=rest, break_long_words=False, break_on_hyphens=False)
        out += lines or [(first if i == 0 else rest).rstrip()]
    return out


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(0, n - 1)].rstrip() + "…"


def render(report: RunReport, file: TextIO | None = None, verbose: bool = False, compact: bool = False,
           budget: int = LINE_BUDGET) -> None:
    from rich.markup import escape

    out = file or sys.stdout
    width = width_of(out)
    con = _console(out, width)
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
    head = wrap("airflow-gke doctor · " + " · ".join(where), width, "", "  ")
    lines: list[str] = [escape(head[0]).replace("airflow-gke doctor", "[bold]airflow-gke doctor[/bold]", 1)]
    lines += [escape(x) for x in head[1:]]
    t = r.target or {}
    if t.get("verdict") == "airflow" and t.get("evidence"):
        lines += [f"[dim]{escape(x)}[/dim]" for x in wrap(
            f"Target: namespace {r.namespace} ({t['namespace_from']}), release {r.release or ''} "
            f"({t['release_from'] or ''}): {'; '.join(t['evidence'])}", width, "", "  ")]
    lines.append("")
    plan = report.plan_lines()
    if plan:
        lines += [f"[bold]{escape(x)}[/bold]" for x in wrap(plan[0], width, "", "  ")]
        for ln in plan[1:]:
            mark = {"introduces": "[red]+[/red]", "fixes": "[green]-[/green]"}.get(ln.split(" ", 1)[0], " ")
            text = wrap(ln, width, "    ", "      ")
            lines += [f"  {mark} {escape(text[0][4:])}"] + [escape(x) for x in text[1:]]
        lines.append("")

    findings = report.findings
    by_id = {f.id: f for f in findings}
    by_id.update({x.finding.id: x.finding for x in report.suppressed if x.finding.id not in by_id})
    tail = _tail(report, width, escape, verbose)
    if compact:
        body = [_compact(f, escape) for f in findings] + ([""] if findings else [])
        cut = ""
    else:
        body, cut = _fit(findings, by_id, width, escape, budget - len(lines) - len(tail) - 2, budget)
        if cut and len(lines) + len(body) + len(tail) + 2 > budget:
            # still over: the checks skipped for reasons of their own share one line (JSON has each reason)
            tail = _tail(report, width, escape, verbose, brief=True)
    for ln in lines + body + tail:
        con.print(ln)
    if cut:
        con.print(f"[dim]{escape(cut)}[/dim]")
    con.print(_summary(report, width))


def _fit(findings: list[Finding], by_id: dict, width: int, escape, budget: int, total: int) -> tuple[list[str], str]:
    """The findings at the most detail that fits the budget, and a note on what was cut."""
    body: list[str] = []
    for level, d in enumerate(LEVELS):
        body = []
        for f in findings:
            body += _finding(f, by_id, width, escape, d)
        if len(body) <= budget:
            break
    if level == 0:
        return body, ""
    d = LEVELS[level]
    what = ("evidence shortened" if d.evidence else "evidence left out") + ("" if d.message else " and messages left out")
    return body, (f"{what} to keep this report under {total} lines; every finding's evidence is in "
                  "--output json (or --output-file json:report.json)")


def _compact(f: Finding, escape) -> str:
    sev = f.severity or "info"
    res = f.resource
    more = f" +{f.count - 1}" if f.count > 1 else ""
    return (f"[{_STYLE[sev]}]{_LABEL[sev]}[/{_STYLE[sev]}] {escape(f.check)} · {escape(f.title)} "
            f"[dim]({escape(res.kind)} {escape(res.name)}{more})[/dim]")


def _finding(f: Finding, by_id: dict, width: int, escape, d: Detail) -> list[str]:
    sev = f.severity or "info"
    pad = " " * INDENT
    res = f.resource
    where = f"{res.kind} {res.namespace + '/' if res.namespace else ''}{res.name}"
    if f.count > 1:
        where += f" and {f.count - 1} more"
    out: list[str] = []
    title = wrap(f.title, width, " " * 6, pad)
    out.append(f"[{_STYLE[sev]}]{_LABEL[sev]}[/{_STYLE[sev]}] [bold]{escape(title[0][6:])}[/bold]")
    out += [f"[bold]{escape(x)}[/bold]" for x in title[1:]]
    out += [f"[dim]{escape(x)}[/dim]" for x in wrap(f"{f.check} · {where}", width, pad)]
    if d.message:
        out += [escape(x) for x in wrap(f.message, width, pad)]
    if f.count > 1:
        names = [r.name for r in f.all_resources]
        shown = ", ".join(names[: d.names]) + (f" and {len(names) - d.names} more" if len(names) > d.names else "")
        out += [escape(x) for x in wrap(f"{f.count} {_kinds(f)}: {shown}", width, pad)]
    ev = list(f.evidence)
    keep = ev if d.evidence is None else ev[: d.evidence]
    if keep:
        out.append(f"{pad}[bold]Evidence[/bold]")
        for e in keep:
            out += [escape(x) for x in wrap(_clip(e, d.evidence_chars), width, pad + "  - ", pad + "    ")]
    if len(keep) < len(ev):
        out.append(f"{pad}  [dim]… {len(ev) - len(keep)} more evidence line{'s' if len(ev) - len(keep) != 1 else ''} "
                   "in --output json[/dim]")
    if f.caused_by:
        out.append(f"{pad}[bold]Caused by[/bold]")
        for cid in f.caused_by:
            cause = by_id.get(cid)
            text = f"{cause.title if cause else cid} ({cid})"
            out += [escape(x) for x in wrap(text, width, pad + "  - ", pad + "    ")]
    if f.symptoms:   # floor findings folded under this one (doctor/fold.py): the same failure, generically
        out.append(f"{pad}[bold]Also seen as[/bold]")
        for s in f.symptoms:
            out += [escape(x) for x in wrap(f"{_clip(s.title, 150)} ({s.check})", width, pad + "  - ", pad + "    ")]
    fix = wrap("Fix: " + f.remediation.summary, width, pad)
    out.append(escape(fix[0]).replace("Fix:", "[bold]Fix:[/bold]", 1))
    out += [escape(x) for x in fix[1:]]
    blocks = f.remediation.blocks
    for n, block in enumerate(blocks):       # each option its own block, a blank line between options
        if n:
            out.append("")
        cont = False
        for line in block:
            if line.lstrip().startswith("#") and not cont:
                out.append(f"[dim]{escape(f'{pad}  {line}')}[/dim]")
                continue
            out.append(escape(f"{pad}  {'  ' if cont else '$ '}{line}"))     # a command is never broken
            cont = line.rstrip().endswith("\\")
    out.append(f"{pad}[bold]Runbook[/bold]: {escape(f.runbook)}")
    out.append("")
    return out


def _kinds(f: Finding) -> str:
    kinds = {r.kind for r in f.all_resources}
    return f"{kinds.pop()}s" if len(kinds) == 1 else "resources"


def _tail(report: RunReport, width: int, escape, verbose: bool, brief: bool = False) -> list[str]:
    out: list[str] = []
    out += _accepted(report, width, escape)
    out += _not_checked(report, width, escape, brief)
    for e in report.errors:
        text = wrap(str(e.get("message", "")), width, "error ", "      ")
        out += ["[red]error[/red]" + escape(text[0][5:])] + [escape(x) for x in text[1:]]
    for n in report.notices:
        level = n.get("level", "warning")
        style = "yellow" if level == "warning" else "cyan"
        text = wrap(str(n.get("message", "")), width, f"{level} ", " " * (len(level) + 1))
        out += [f"[{style}]{level}[/{style}]" + escape(text[0][len(level):])] + [escape(x) for x in text[1:]]
    if report.notices:
        out.append("")
    if verbose:
        out.append("[bold]Checks[/bold]")
        for c in report.checks:
            out.append(f"  {c.status:5} {c.id:38} {c.duration_s * 1000:8.1f} ms  {escape(c.title)}")
        out.append("")
    return out


def _not_checked(report: RunReport, width: int, escape, brief: bool = False) -> list[str]:
    """One entry per cause (a disabled API, a missing permission ...) with its fix, its command on
    a line of its own, the API's answer once and the checks it blocked; then the checks no read
    explains, one entry each (doctor/report/_blocked.py)."""
    from ._blocked import entries

    problems = [c for c in report.checks if c.status in ("error", "skip")]
    if not problems:
        return []
    items = entries(report)
    causes = sum(1 for e in items if e.checks)
    if brief:   # over the line budget: the skips no cause explains on one line, their reasons in JSON
        alone = [e for e in items if not e.checks and e.status == "skip" and not e.details and not e.command]
        if len(alone) > 1:
            ids = ", ".join(e.head.split(": ", 1)[0] for e in alone)
            items = [e for e in items if e not in alone]
            items.append(type(alone[0])("skip", f"{len(alone)} checks not applicable or without their data "
                                                f"(reasons in --output json): {ids}"))
    out = [f"[bold]Not checked[/bold] [dim]({len(problems)} check{'s' if len(problems) != 1 else ''}"
           + (f", {causes} cause{'s' if causes != 1 else ''}" if causes else "") + ")[/dim]"]
    pad = " " * 8
    for e in items:
        style = "red" if e.status == "error" else "dim"
        text = wrap(e.head, width, "  " + " " * 6, pad)
        out.append(f"  [{style}]{e.status:5}[/{style}] {escape(text[0].lstrip())}")
        out += [escape(x) for x in text[1:]]
        for label, value in e.details:
            text = wrap(f"{label}: {value}", width, pad, pad + "  ")
            out.append(f"{pad}[bold]{escape(label)}[/bold]{escape(text[0][len(pad) + len(label):])}")
            out += [escape(x) for x in text[1:]]
        if e.command:
            out.append(f"{pad}  $ {escape(e.command)}")   # a command is never broken
        if e.checks:
            label = f"Blocks {len(e.checks)} check{'s' if len(e.checks) != 1 else ''}"
            text = wrap(f"{label}: {', '.join(e.checks)}", width, pad, pad + "  ")
            out.append(f"{pad}[bold]{escape(label)}[/bold]{escape(text[0][len(pad) + len(label):])}")
            out += [escape(x) for x in text[1:]]
    out.append("")
    return out


def _summary(report: RunReport, width: int) -> str:
    s = report.summary()
    ch, fi = s["checks"], s["findings"]
    passed = f"{ch['pass']} passed, {ch['fail']} failed, {ch['skip']} skipped, {ch['error']} errors"
    found = f"{fi['error']} errors, {fi['warning']} warnings, {fi['info']} info"
    style = "bold red" if fi["error"] else "bold yellow" if fi["warning"] else "bold green"
    if report.suppressed:
        found += f", {len(report.suppressed)} suppressed"
    lines = wrap(f"Findings: {found} · Checks: {passed} · {report.run.duration_s:.2f}s", width, "", "  ")
    head = f"Findings: {found}"
    out = [f"[{style}]{head}[/{style}]{lines[0][len(head):]}" if lines[0].startswith(head) else lines[0]]
    return "\n".join(out + lines[1:])


def _accepted(report: RunReport, width: int, escape) -> list[str]:
    """Suppressed findings (one entry each, with what suppressed them) and the write probe."""
    out: list[str] = []
    if report.suppressed:
        out.append("[bold]Suppressed[/bold] [dim](accepted: not counted by --fail-on)[/dim]")
        for x in report.suppressed:
            f, by = x.finding, x.by
            res = f.resource
            where = f"{res.kind} {res.namespace + '/' if res.namespace else ''}{res.name}"
            src = (f"{by.get('file', 'config')} #{by.get('index')}" if by.get("source") == "config"
                   else f"annotation on {by.get('object', '')}")
            until = f", until {by['expires']}" if by.get("expires") else ""
            out += [escape(ln) for ln in wrap(f"{(f.severity or 'info'):7} {f.title} ({f.check} · {where})",
                                              width, "  ", " " * 10)]
            # the suppression's source and reason stay one line: a path or ticket is not split
            out.append(f"          suppressed by {escape(src)}{escape(until)}: {escape(by.get('reason', ''))}")
        out.append("")
    p = report.probe
    if p is not None:
        style = "green" if p["verdict"] == "allowed" else "yellow" if p["verdict"] == "not-run" else "red"
        out.append(f"[bold]Write probe[/bold] [{style}]{p['verdict']}[/{style}] as {escape(p['identity'])} on "
                   f"{escape(p['object'] or p['folder'] or '-')}")
        for st in p["steps"]:
            out += [escape(ln) for ln in wrap(f"{st['step']:6} {'ok' if st['ok'] else 'FAILED'}  {st['detail']}",
                                              width, "  ", " " * 16)]
        out += [escape(ln) for ln in wrap(p["note"], width, "  ")]
        out.append("")
    return out
