"""Which checks a run selects: ``--include``/``--check``, ``--exclude``/``--skip``, ``--min-severity``.

A pattern is one of

* a check slug or a shell glob over slugs (``gcs-*``),
* ``category:NAME`` (a glob too: ``category:stor*``),
* ``severity:LEVEL`` (``error``, ``warning`` or ``info``: the severity a check declares).

With no include pattern the run selects every check of the default tier (extended checks only with
``--extended``); with include patterns it selects the checks that match any of them. A heuristic
(extended) check is selected by a pattern only with ``--extended``, or when its slug is named
exactly. Exclude patterns then remove checks. ``--min-severity`` selects no check: it filters the
findings by their own severity after the run (a check declared ``warning`` can report an error), see
``suppress.apply_min_severity``.

An include pattern that matches no check is a usage error (exit 2): a typo must not silently run
nothing. An exclude pattern that names an unknown slug exactly is one too; an exclude glob,
category or severity that matches nothing is accepted, so one configuration file works across
versions that add or remove checks.
"""
from __future__ import annotations

import fnmatch
from typing import Iterable

from .errors import UserError


SEVERITIES = ("error", "warning", "info")
_GLOB_CHARS = set("*?[")


def _is_glob(s: str) -> bool:
    return bool(_GLOB_CHARS & set(s))


def matches(chk, pattern: str) -> bool:
    """Does ``pattern`` (slug glob, ``category:``, ``severity:``) match the check?"""
    kind, sep, value = pattern.partition(":")
    if sep and kind == "category":
        return fnmatch.fnmatchcase(chk.category, value)
    if sep and kind == "severity":
        return chk.severity == value
    return fnmatch.fnmatchcase(chk.id, pattern)


def _validate(pattern: str, registry: dict, role: str) -> None:
    kind, sep, value = pattern.partition(":")
    if not pattern.strip():
        raise UserError(f"empty {role} pattern", usage=True)
    if sep and kind == "severity" and value not in SEVERITIES:
        raise UserError(f"{role} {pattern!r}: severity must be one of {', '.join(SEVERITIES)}", usage=True)
    if sep and kind not in ("category", "severity"):
        raise UserError(f"{role} {pattern!r}: a prefix must be category: or severity: "
                        "(or give a check slug or a glob)", usage=True)
    if sep and kind == "category" and not value:
        raise UserError(f"{role} {pattern!r}: name a category; known: {', '.join(categories(registry))}", usage=True)


def categories(registry: dict) -> list[str]:
    return sorted({c.category for c in registry.values()})


def select(registry: dict, include: Iterable[str] = (), exclude: Iterable[str] = (), extended: bool = False,
           min_severity: str | None = None) -> list:
    """The selected checks, in registry order (raises UserError)."""
    include, exclude = tuple(include), tuple(exclude)
    for p in include:
        _validate(p, registry, "--include")
    for p in exclude:
        _validate(p, registry, "--exclude")
    if min_severity is not None and min_severity not in SEVERITIES:
        raise UserError(f"--min-severity must be one of {', '.join(SEVERITIES)}", usage=True)
    unmatched = [p for p in include if not any(matches(c, p) for c in registry.values())]
    if unmatched:
        raise UserError(_nothing_matches(unmatched, registry), usage=True)
    unknown = [p for p in exclude if ":" not in p and not _is_glob(p) and p not in registry]
    if unknown:
        raise UserError(f"unknown check {', '.join(unknown)}; see `airflow-gke checks`", usage=True)
    chosen = []
    for cid, chk in registry.items():
        if include:
            hit = [p for p in include if matches(chk, p)]
            if not hit:
                continue
            if chk.extended and not extended and cid not in hit:
                continue        # heuristics only when named exactly or with --extended
        elif chk.extended and not extended:
            continue
        if any(matches(chk, p) for p in exclude):
            continue
        chosen.append(chk)
    return chosen


def _nothing_matches(patterns: list[str], registry: dict) -> str:
    cats = ", ".join(categories(registry))
    parts = []
    for p in patterns:
        if p.startswith("category:"):
            parts.append(f"no check in {p} (categories: {cats})")
        elif p.startswith("severity:"):
            parts.append(f"no check declares {p}")
        elif _is_glob(p):
            parts.append(f"no check matches {p!r}")
        else:
            parts.append(f"unknown check {p}")
    return "; ".join(parts) + "; see `airflow-gke checks`"
