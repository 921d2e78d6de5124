"""Regenerate the docs that come from the registry: ``python -m airflow_gke.gendocs``.

README.md's table of checks, and the header of each runbook (docs/runbooks/<id>.md: id, title,
severity, category, tier). ``--check`` exits 1 when one is out of date (tests run the same
comparison), so neither can drift from the checks' declarations.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

START, END = "<!-- checks:start -->", "<!-- checks:end -->"


def checks_table() -> str:
    from .registry import load_checks

    rows = sorted(load_checks().values(), key=lambda c: (c.extended, c.category, c.id))
    lines = ["| Check | Severity | Category | On a plan | Good state | Runbook |", "|---|---|---|---|---|---|"]
    for c in rows:
        tier = " (extended)" if c.extended else ""
        plan = "yes" if c.on_plan else "runtime only"
        lines.append(f"| `{c.id}`{tier} | {c.severity} | {c.category} | {plan} | {c.title} | "
                     f"[runbook](docs/runbooks/{c.id}.md) |")
    return "\n".join(lines)


RUNBOOKS = Path(__file__).resolve().parent.parent / "docs" / "runbooks"


def runbook_header(c) -> str:
    """The first lines of a check's runbook, from its declaration."""
    sev = c.severity + (f" ({c.severity_note})" if c.severity_note else "")
    tier = " · **Tier:** extended (`--extended`)" if c.extended else ""
    return f"# {c.id}: {c.title}\n\n**Severity:** {sev} · **Category:** {c.category}{tier}\n"


def render_runbook(text: str, c) -> str:
    """``text`` with its header (the title line, a blank line, the severity line) regenerated."""
    lines = text.split("\n")
    if len(lines) < 3 or not lines[0].startswith("# ") or lines[1] or not lines[2].startswith("**Severity:**"):
        raise SystemExit(f"docs/runbooks/{c.id}.md does not start with '# id: title', a blank line, '**Severity:** ...'")
    return runbook_header(c) + "\n".join(lines[3:])


def runbooks() -> dict[Path, str]:
    """Each registered check's runbook path -> its text with the generated header."""
    from .registry import load_checks

    out = {}
    for c in load_checks().values():
        path = RUNBOOKS / f"{c.id}.md"
        if not path.is_file():
            raise SystemExit(f"{c.id}: no runbook docs/runbooks/{c.id}.md")
        out[path] = render_runbook(path.read_text(encoding="utf-8"), c)
    return out


def render(readme: str) -> str:
    block = f"{START}\n{checks_table()}\n{END}"
    if START not in readme:
        raise SystemExit(f"README.md has no {START} marker")
    return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, readme, flags=re.S)


def main(argv: list[str]) -> int:
    path = Path(__file__).resolve().parent.parent / "README.md"
    current = path.read_text(encoding="utf-8")
    new = render(current)
    books = runbooks()
    if "--check" in argv:
        stale = ([path.name] if new != current else []) + [
            f"docs/runbooks/{p.name}" for p, text in books.items() if p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"out of date: {', '.join(stale)}: run `python -m airflow_gke.gendocs`", file=sys.stderr)
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    for p, text in books.items():
        if p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
