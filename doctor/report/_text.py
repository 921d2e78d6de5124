"""Plain-text pieces the file formats (JUnit, Markdown) share."""
from __future__ import annotations

import re

from ..model import SEVERITY_RANK, Finding

# Characters XML 1.0 cannot carry (log lines can hold any byte): shown as \xNN instead.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_safe(text: str) -> str:
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def where(f: Finding) -> str:
    r = f.resource
    return f"{r.kind} {r.namespace + '/' if r.namespace else ''}{r.name}"


def at_or_above(severity: str | None, fail_on: str) -> bool:
    """Does a finding of ``severity`` reach the ``--fail-on`` threshold?"""
    if fail_on == "never":
        return False
    return SEVERITY_RANK.get(severity or "info", 0) >= SEVERITY_RANK[fail_on]


def finding_text(f: Finding, titles: dict[str, str] | None = None) -> str:
    """A finding as plain text: message, evidence, causes, fix with commands, runbook."""
    lines = [f.title, f"{f.check} · {where(f)} · {f.severity}", "", f.message]
    if f.evidence:
        lines += ["", "Evidence:"] + [f"  - {e}" for e in f.evidence]
    if f.caused_by:
        lines += ["", "Caused by:"] + [f"  - {(titles or {}).get(c, c)} ({c})" for c in f.caused_by]
    if f.symptoms:
        lines += ["", "Also seen as:"] + [f"  - {s.title} ({s.check})" for s in f.symptoms]
    lines += ["", f"Fix: {f.remediation.summary}"]
    for cmd in f.remediation.commands:
        for i, line in enumerate(cmd.splitlines() or [""]):
            lines.append(f"  {'$ ' if i == 0 else '  '}{line}")
    lines += ["", f"Runbook: {f.runbook}"]
    return "\n".join(lines)
