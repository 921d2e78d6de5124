"""Regenerate the parts of README.md that come from the registry: ``python -m airflow_gke.gendocs``.

``--check`` exits 1 when README.md is out of date (a test runs it), so the table of checks can
never drift from the code.
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


def render(readme: str) -> str:
    block = f"{START}\n{checks_table()}\n{END}"
    if START not in readme:
        raise SystemExit(f"README.md has no {START} marker")
    return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, readme, flags=re.S)


def main(argv: list[str]) -> int:
    path = Path(__file__).resolve().parent.parent / "README.md"
    current = path.read_text(encoding="utf-8")
    new = render(current)
    if "--check" in argv:
        if new != current:
            print("README.md check table is out of date: run `python -m airflow_gke.gendocs`", file=sys.stderr)
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
