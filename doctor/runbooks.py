"""Runbooks ship inside the wheel (docs/runbooks → airflow_gke/_runbooks) so ``explain`` works offline."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_DIRS = (_HERE / "_runbooks", _HERE.parent / "docs" / "runbooks")


def runbook_path(slug: str) -> Path | None:
    for d in _DIRS:
        p = d / f"{slug}.md"
        if p.is_file():
            return p
    return None


def runbook_text(slug: str) -> str | None:
    p = runbook_path(slug)
    return p.read_text(encoding="utf-8") if p else None


def print_runbook(text: str, console) -> None:
    """A runbook on a terminal: prose rendered as Markdown (wrapped to the width), code blocks
    printed line by line as they are, never wrapped, so a command pastes as one line."""
    import re

    from rich.markdown import Markdown
    from rich.text import Text

    fence = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$\n?", re.M | re.S)
    pos = 0
    for m in fence.finditer(text):
        prose = text[pos:m.start()]
        if prose.strip():
            console.print(Markdown(prose))
        for line in m.group(2).rstrip("\n").split("\n"):
            console.print(Text("    " + line, style="cyan", no_wrap=True, overflow="ignore"), soft_wrap=True)
        console.print()
        pos = m.end()
    if text[pos:].strip():
        console.print(Markdown(text[pos:]))
