"""Regenerate the docs that come from the code: ``python -m airflow_gke.gendocs``.

README.md's table of checks, and the header of each runbook (docs/runbooks/<id>.md: id, title,
severity, category, tier), from the registry; the read tables of docs/security.md and the path
lists of docs/snapshot-format.md, from the data keys (doctor/data.py). ``--check`` exits 1 when one
is out of date (tests run the same comparison), so none can drift from the declarations.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

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


def _keys(scope: str) -> list:
    from .data import KEYS

    return [k for k in KEYS.values() if k.scope == scope]


def reads_table(scope: str) -> str:
    """docs/security.md: one row per data key of ``scope`` ("k8s" or "gcp")."""
    if scope == "k8s":
        lines = ["| read | RBAC | notes |", "|---|---|---|"]
        for k in _keys(scope):
            group, resource, verb = k.rbac
            lines.append(f"| `{k.describe}` | `{verb}` {resource}{f' ({group})' if group else ''} | {k.doc} |")
    else:
        lines = ["| read | IAM permission | notes |", "|---|---|---|"]
        for k in _keys(scope):
            lines.append(f"| `{k.describe}` | `{k.iam}` | {k.doc} |")
    return "\n".join(lines)


_SHORT = {"namespace": "ns", "project": "p", "location": "l", "cluster": "c"}


def snapshot_path(k) -> str:
    """A data key's snapshot-v1 file, with ``<ns>``-style placeholders."""
    path = re.sub(r"\{(\w+)\}", lambda m: f"<{_SHORT.get(m.group(1), m.group(1))}>", k.template)
    return path + (".log" if k.live == "log" else ".json")


def paths_list(scope: str) -> str:
    """docs/snapshot-format.md: one line per data key of ``scope``."""
    return "\n".join(f"- `{snapshot_path(k)}`" + (f": {k.doc}" if k.doc else "") for k in _keys(scope))


ROOT = Path(__file__).resolve().parent.parent
# docs file -> [(block name, generator)]; a block is the text between <!-- NAME:start --> and <!-- NAME:end -->.
DATA_BLOCKS: dict[str, list[tuple[str, Callable[[], str]]]] = {
    "docs/security.md": [("reads-k8s", lambda: reads_table("k8s")), ("reads-gcp", lambda: reads_table("gcp"))],
    "docs/snapshot-format.md": [("paths-k8s", lambda: paths_list("k8s")), ("paths-gcp", lambda: paths_list("gcp"))],
}


def render_blocks(text: str, blocks: list[tuple[str, Callable[[], str]]], name: str = "the file") -> str:
    for block, gen in blocks:
        start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
        if start not in text or end not in text:
            raise SystemExit(f"{name} has no {start} ... {end} markers")
        body = f"{start}\n{gen()}\n{end}"
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: body, text, flags=re.S)
    return text


def data_docs() -> dict[Path, str]:
    """Each docs file with read tables -> its text with the tables generated from the data keys."""
    return {ROOT / rel: render_blocks((ROOT / rel).read_text(encoding="utf-8"), blocks, rel)
            for rel, blocks in DATA_BLOCKS.items()}


def render(readme: str) -> str:
    block = f"{START}\n{checks_table()}\n{END}"
    if START not in readme:
        raise SystemExit(f"README.md has no {START} marker")
    return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, readme, flags=re.S)


def main(argv: list[str]) -> int:
    path = Path(__file__).resolve().parent.parent / "README.md"
    current = path.read_text(encoding="utf-8")
    new = render(current)
    books = {**runbooks(), **data_docs()}
    if "--check" in argv:
        stale = ([path.name] if new != current else []) + [
            p.relative_to(ROOT).as_posix() for p, text in books.items() if p.read_text(encoding="utf-8") != text]
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
