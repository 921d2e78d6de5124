"""``--output markdown``: the report for a pull-request comment or a ticket.

A heading with the verdict, the target, a summary table (one row per check), then each finding
(causes first) with its evidence and each pasteable block of commands in its own fence, the
suppressed findings, what could not be checked, and the notices. GitHub-flavoured Markdown; nothing
that needs HTML.

It fits one GitHub comment (``COMMENT_LIMIT`` characters): when the full report would not, evidence
is cut first (fewer items, shorter ones, then none), then messages; every finding keeps its title,
its fix and its commands, and a note under the heading says what was cut and where the full JSON is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import RunReport
from ._blocked import entries as blocked_entries, note as blocked_note
from ._text import at_or_above, where
from ..model import Finding

_ICON = {"error": "🔴", "warning": "🟠", "info": "🔵"}
_STATUS = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭️ skip", "error": "⚠️ error"}


def text(s: str | None) -> str:
    """Prose from the cluster (messages, titles): no raw HTML gets through."""
    return str(s or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cell(s: str | None) -> str:
    """Text safe inside a table cell: one line, pipes escaped, no raw HTML."""
    t = re.sub(r"\s*\n\s*", " ", text(s)).replace("|", "\\|")
    return t or " "


def code(text: str) -> str:
    """Inline code that survives backticks inside."""
    ticks = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (ticks + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced(lines: list[str], lang: str = "") -> list[str]:
    body = "\n".join(lines)
    ticks = max((len(m) for m in re.findall(r"`{3,}", body)), default=0)
    fence = "`" * max(3, ticks + 1)
    return [f"{fence}{lang}", *lines, fence]


COMMENT_LIMIT = 65_536     # characters of one GitHub issue or pull-request comment


@dataclass(frozen=True)
class Detail:
    evidence: int | None     # evidence items per finding (None: all)
    evidence_chars: int      # characters per evidence item
    message: bool
    names: int               # resources named for a finding over many


LEVELS = (Detail(None, 4000, True, 20), Detail(8, 600, True, 10), Detail(4, 300, True, 10),
          Detail(2, 200, True, 5), Detail(0, 0, True, 5), Detail(0, 0, False, 3))


def render(report: RunReport, fail_on: str = "error", json_path: str | None = None,
           limit: int = COMMENT_LIMIT, html_path: str | None = None) -> str:
    """The report, within ``limit`` characters when it can be (see the module's docstring);
    ``json_path`` is where this run wrote its JSON report, named in the note on what was cut."""
    text = ""
    for level, d in enumerate(LEVELS):
        text = _render(report, fail_on, d, "")
        if len(text) <= limit:
            break
    if level == 0:
        return text
    where = (f"the full report with all evidence is in {full_report(json_path, html_path)}" if json_path or html_path
             else "the full report with all evidence: run with `--output-file json:airflow-gke.json`")
    cut = ("evidence shortened" if LEVELS[level].evidence else "evidence left out") + \
          ("" if LEVELS[level].message else " and messages left out")
    note = (f"> **Shortened to fit one comment ({limit:,} characters)**: {cut}; every finding keeps its title, "
            f"fix and commands; {where}.")
    text = _render(report, fail_on, LEVELS[level], note)
    if len(text) > limit:          # still too long (thousands of findings): cut the tail, say so
        tail = f"\n\n> **Cut at {limit:,} characters**; {where}.\n"
        text = text[: limit - len(tail)].rsplit("\n", 1)[0] + tail
    return text


def _render(report: RunReport, fail_on: str, d: Detail, note: str) -> str:
    r = report.run
    s = report.summary()
    fi, ch = s["findings"], s["checks"]
    gate = report.exit_code(fail_on)
    verdict = {0: "passed", 1: "failed", 3: "incomplete"}.get(gate, "failed")
    out = [f"## airflow-gke doctor: {verdict} — {fi['error']} error{'s' if fi['error'] != 1 else ''}, "
           f"{fi['warning']} warning{'s' if fi['warning'] != 1 else ''}, {fi['info']} info"
           + (f", {len(report.suppressed)} suppressed" if report.suppressed else ""), ""]
    target = [f"{r.mode}"]
    for label, v in (("project", r.project), ("cluster", (f"{r.location}/" if r.location else "") + r.cluster
                                                 if r.cluster else None),
                     ("namespace", r.namespace), ("release", r.release), ("Airflow", r.airflow_version),
                     ("chart", r.chart_version)):
        if v:
            target.append(f"{label} {code(v)}")
    out += [" · ".join(target), ""]
    t = r.target or {}
    if t.get("verdict") == "airflow" and t.get("evidence"):
        out += [f"Target: namespace {code(r.namespace)} ({text(t['namespace_from'])}), release "
                f"{code(r.release or '')} ({text(t['release_from'] or '')}): {text('; '.join(t['evidence']))}", ""]
    plan = report.plan_lines()
    if plan:
        out += [f"**{cell(plan[0])}**", ""] + [f"- {cell(ln)}" for ln in plan[1:]] + ([""] if plan[1:] else [])
    if note:
        out += [note, ""]
    out += [f"Checks: {ch['pass']} passed, {ch['fail']} failed, {ch['skip']} skipped, {ch['error']} errors · "
            f"exit code {gate} with `--fail-on {fail_on}` · {r.duration_s:.2f} s · airflow-gke {report.tool_version}",
            ""]

    by_check: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    supp_by_check: dict[str, int] = {}
    for x in report.suppressed:
        supp_by_check[x.finding.check] = supp_by_check.get(x.finding.check, 0) + 1
    order = {"fail": 0, "error": 1, "skip": 2, "pass": 3}
    shown = [c for c in report.checks if c.status != "pass" or c.reason]
    if shown:
        out += ["| Check | Severity | Status | Findings | Note |", "| --- | --- | --- | --- | --- |"]
        for c in sorted(shown, key=lambda c: (order.get(c.status, 9), c.id)):
            n = len(by_check.get(c.id, []))
            extra = f" (+{supp_by_check[c.id]} suppressed)" if c.id in supp_by_check else ""
            out.append(f"| {code(c.id)} {cell(c.title)} | {c.severity} | {_STATUS.get(c.status, c.status)} | "
                       f"{n}{extra} | {cell(blocked_note(c) or c.reason)} |")
        out.append("")
    quiet = sorted(c.id for c in report.checks if c.status == "pass" and not c.reason)
    if quiet:
        out += [f"Passed ({len(quiet)}): " + ", ".join(code(x) for x in quiet), ""]

    titles = {f.id: f.title for f in report.findings}
    titles.update({x.finding.id: x.finding.title for x in report.suppressed})
    if report.findings:
        out += ["### Findings", ""]
        for f in report.findings:
            out += _finding(f, titles, fail_on, d)
    if report.suppressed:
        out += ["### Suppressed findings", "",
                "Accepted by a suppression or an annotation: listed, not counted by `--fail-on`.", "",
                "| Finding | Resource | Severity | Suppressed by | Reason | Expires |",
                "| --- | --- | --- | --- | --- | --- |"]
        for x in report.suppressed:
            f, by = x.finding, x.by
            src = (f"{by.get('file', 'config')} #{by.get('index')}" if by.get("source") == "config"
                   else f"annotation on {by.get('object', '')}")
            out.append(f"| {code(f.check)} {cell(f.title)} | {cell(where(f))} | {f.severity} | {cell(src)} | "
                       f"{cell(by.get('reason'))} | {cell(by.get('expires') or '')} |")
        out.append("")
    problems = [c for c in report.checks if c.status in ("skip", "error")]
    if problems or report.errors:
        out += ["### Not checked", ""]
        items = blocked_entries(report)
        alone = [e for e in items if not e.checks and e.status == "skip"]
        if not d.message and len(alone) > 1:   # the tightest cut: skips without a cause on one line
            items = [e for e in items if e not in alone]
            out.append("- **skip** (each reason is in the JSON report): "
                       + ", ".join(code(e.head.partition(": ")[0]) for e in alone))
        for e in items:
            if e.checks:
                out.append(f"- **{e.status}**: {cell(e.head)}")
                out += [f"  - {label}: {cell(txt)}" for label, txt in e.details]
                if e.command:
                    out.append(f"  - Command: {code(e.command)}")
                out.append(f"  - Blocks {len(e.checks)} check{'s' if len(e.checks) != 1 else ''}: "
                           + ", ".join(code(x) for x in e.checks))
            else:
                cid, _, reason = e.head.partition(": ")
                out.append(f"- {code(cid)} **{e.status}**: {cell(reason)}")
        for e in report.errors:
            out.append(f"- **error**: {cell(e.get('message'))}")
        out.append("")
    if report.probe is not None:
        p = report.probe
        out += ["### Write probe", "",
                f"**{p['verdict']}** as {code(p['identity'])} on {code(p['object'] or p['folder'] or '-')}"
                + (" — overrides the IAM inference" if p["overrides"] else ""), ""]
        out += fenced([f"{s['step']}: {'ok' if s['ok'] else 'FAILED'} {s['detail']}" for s in p["steps"]], "text")
        out += ["", cell(p["note"]), ""]
    if report.notices:
        out += ["### Notices", ""]
        for n in report.notices:
            out.append(f"- **{n.get('level', 'warning')}**: {cell(n.get('message'))}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: max(0, n - 1)].rstrip() + "…"


def _finding(f: Finding, titles: dict, fail_on: str, d: Detail = LEVELS[0]) -> list[str]:
    sev = f.severity or "info"
    gate = "" if at_or_above(sev, fail_on) else f" _(below `--fail-on {fail_on}`)_"
    more = f" and {f.count - 1} more" if f.count > 1 else ""
    out = [f"#### {_ICON.get(sev, '')} {sev.upper()}: {cell(f.title)}{gate}", "",
           f"{code(f.check)} · {code(where(f))}{more}", ""]
    if d.message:
        out += [text(f.message), ""]
    if f.count > 1:
        names = [r.name for r in f.all_resources]
        shown = ", ".join(code(n) for n in names[: d.names])
        out += [f"**{f.count} resources**: {shown}" + (f" and {len(names) - d.names} more" if len(names) > d.names
                                                        else ""), ""]
    ev = list(f.evidence) if d.evidence is None else list(f.evidence)[: d.evidence]
    if ev:
        out += ["**Evidence**", ""] + fenced([_clip(e, d.evidence_chars) for e in ev], "text")
        if len(ev) < len(f.evidence):
            out += ["", f"_{len(f.evidence) - len(ev)} more evidence line(s) in the JSON report_"]
        out.append("")
    if f.caused_by:
        out += ["**Caused by**", ""]
        out += [f"- {cell(titles.get(c, c))} ({code(c)})" for c in f.caused_by]
        out.append("")
    if f.symptoms:
        out += ["**Also seen as**", ""]
        out += [f"- {cell(s.title)} ({code(s.check)})" for s in f.symptoms]
        out.append("")
    out += [f"**Fix**: {cell(f.remediation.summary)}", ""]
    for block in f.remediation.blocks:          # each option its own pasteable block
        out += fenced(block, "sh") + [""]
    out += [f"Runbook: [{f.check}]({f.runbook})", ""]
    return out


# ---------------------------------------------------------------------------------------------
# A fleet (doctor -A, several contexts, airflow-gke report): one comment with the summary table and
# the worst findings.

FLEET_FINDINGS = 30      # the worst findings a fleet comment lists at most


def full_report(json_path: str | None, html_path: str | None) -> str:
    """Where every finding's evidence and fix is: the files the same run writes, else the flags."""
    if html_path and json_path:
        return f"{code(html_path)} (the page) and {code(json_path)}"
    if html_path or json_path:
        return code(html_path or json_path)
    return ("the HTML page (`--output-file html:airflow-gke.html`) or the JSON report "
            "(`--output-file json:airflow-gke.json`)")


def render_fleet(fleet, fail_on: str = "error", json_path: str | None = None, html_path: str | None = None,
                 limit: int = COMMENT_LIMIT) -> str:
    """The fleet within ``limit`` characters: the verdict, one table row per target (worst first,
    with each report's age when read from a store; past half the limit the rest are counted, not
    listed), then the worst findings across the fleet (errors, then warnings, each target's in the
    order of its own report; at most FLEET_FINDINGS, as many as fit), one line each with its fix's
    summary; a note says what was left out, and the last line where the full report is."""
    from ._text import where as where_of

    rows = fleet.rows(fail_on)
    for r, rep in zip(rows, fleet.reports):
        r["findings"] = rep.findings
    aged = any("age" in r for r in rows)
    rows.sort(key=lambda r: (-(r["errors"] or 0), -(r["warnings"] or 0), not r["reason"], r["target"]))
    code_ = fleet.exit_code(fail_on)
    errors = sum(r["errors"] or 0 for r in rows)
    warnings = sum(r["warnings"] or 0 for r in rows)
    icon = "🔴" if errors else "🟠" if warnings else "✅"
    heading = fleet.heading(len(rows)) if hasattr(fleet, "heading") else \
        f"airflow-gke doctor · fleet · {fleet.mode} · {len(rows)} target(s)"
    gone = sum(1 for r in rows if r["reason"])
    head = [f"## {icon} {text(heading)}", "",
            f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
            + (f", {gone} target{'s' if gone != 1 else ''} not diagnosed" if gone else "")
            + f" · exit code {code_} with `--fail-on {fail_on}`", ""]

    def age(r) -> str:
        if not aged:
            return ""
        from .stored import age_text

        return f"{age_text(r.get('age'))} | "

    def row(r) -> str:
        if r["reason"]:
            return (f"| {cell(r['target'])} | {age(r)}- | - | - | {r['exit_code']} "
                    f"({'namespace not checked' if r.get('unchecked') else 'not diagnosed'}: "
                    f"{cell(_clip(r['reason'], 300))}) |")
        return f"| {cell(r['target'])} | {age(r)}{r['errors']} | {r['warnings']} | {r['incomplete']} | {r['exit_code']} |"

    table = ["| Target | " + ("Age | " if aged else "") + "Errors | Warnings | Incomplete | Exit |",
             "|---|" + ("---:|" if aged else "") + "---:|---:|---:|---:|"]
    size = sum(len(x) + 1 for x in head + table)
    listed = 0
    for r in rows:
        line = row(r)
        if size + len(line) + 1 > limit // 2:
            break
        table.append(line)
        size += len(line) + 1
        listed += 1
    cut_rows = len(rows) - listed
    if cut_rows:
        table.append(f"| … {cut_rows} more target{'s' if cut_rows != 1 else ''} (fewer findings) | "
                     + ("| " if aged else "") + "| | | |")

    worst = [(r["target"], f) for sev in ("error", "warning") for r in rows for f in r.get("findings", ())
             if f.severity == sev]
    total = len(worst)
    full = full_report(json_path, html_path)

    def bullet(target: str, f: Finding) -> str:
        more = f" (+{f.count - 1} more)" if f.count > 1 else ""
        return (f"- **{(f.severity or 'info').upper()}** {code(target)} · {code(f.check)}: "
                f"{text(_clip(f.title, 240))}{more} · {code(where_of(f))} — fix: {cell(_clip(f.remediation.summary, 240))}")

    def finish(lines: list[str]) -> str:
        body = list(head)
        cut = []
        if cut_rows:
            cut.append(f"{cut_rows} of {len(rows)} targets counted, not listed")
        if len(lines) < min(total, FLEET_FINDINGS):
            cut.append(f"{len(lines)} of the {min(total, FLEET_FINDINGS)} worst findings listed")
        if cut:
            body += [f"> **Shortened to fit one comment ({limit:,} characters)**: {'; '.join(cut)}; every "
                     f"target and finding is in {full}.", ""]
        body += table
        if lines:
            body += ["", f"### Worst findings ({len(lines)} of {total})", ""] + lines
        for n in fleet.notices:
            body += ["", f"> {text(n.get('level', 'warning'))}: {cell(n.get('message'))}"]
        body += ["", f"Every finding with its evidence and fix: {full}."]
        return "\n".join(body) + "\n"

    lines: list[str] = []
    size = len(finish([])) + 300            # room for the note and the list's heading
    for target, f in worst[:FLEET_FINDINGS]:
        b = bullet(target, f)
        if size + len(b) + 1 > limit:
            break
        lines.append(b)
        size += len(b) + 1
    out = finish(lines)
    while len(out) > limit and lines:      # the note grew past the reserve: drop from the end
        lines.pop()
        out = finish(lines)
    return out
