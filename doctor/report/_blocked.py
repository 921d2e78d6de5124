"""The "not checked" part of the terminal and Markdown reports: one entry per cause (a disabled
API, a missing permission, data not collected ...) with its fix, the API's answer once and the
checks it blocked; then, one line each, the checks no read explains (a crash, not applicable)."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import RunReport
from ..blockers import reported_by

READS_SHOWN = 3


@dataclass
class Entry:
    status: str                       # error | skip
    head: str                         # the cause, or "<check>: <reason>"
    details: list[tuple[str, str]] = field(default_factory=list)   # (label, text)
    checks: list[str] = field(default_factory=list)
    command: str | None = None        # the fix's command, printed whole on a line of its own


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def entries(report: RunReport) -> list[Entry]:
    blockers, alone = report.blockers()
    finding_checks = {f.check for f in report.findings}
    out: list[Entry] = []
    for b in blockers:
        c = b.cause
        by = reported_by(c, finding_checks)
        head = _cap(c.summary) + (f"; reported above ({by})" if by else "")
        reads = b.reads[:READS_SHOWN]
        more = f" and {len(b.reads) - READS_SHOWN} more" if len(b.reads) > READS_SHOWN else ""
        details = [("Read" if len(b.reads) == 1 else f"Reads ({len(b.reads)})", ", ".join(reads) + more)]
        if c.message and not by:
            details.append(("Answer", c.message))
        details.append(("Fix", c.fix))
        out.append(Entry(c.status, head, details, list(b.checks), c.command))
    for r in alone:
        out.append(Entry(r.status, f"{r.id}: {r.reason or ''}"))
    return out


def note(run) -> str | None:
    """A short note for a check blocked by causes (the Markdown table), or None."""
    causes = list(dict.fromkeys(c for c, _read in (getattr(run, "causes", None) or [])))
    if not causes:
        return None
    more = f" (+{len(causes) - 1} more)" if len(causes) > 1 else ""
    return f"blocked: {causes[0].summary}{more} (see Not checked)"
