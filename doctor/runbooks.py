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
