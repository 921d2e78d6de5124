"""How a report arranges the findings of a run: one finding per cause and fix, causes first.

* **Grouping.** Checks report one finding per resource. Findings of one check with the same
  severity, the same causes and the same fix (summary and commands, once each finding's own
  resource name is set aside) are one problem: they become one finding whose ``resources`` are all
  of theirs (``count``), titled by the check's ``group_title`` (``{n}`` = count). Its id is the
  first member's (members sorted by resource), so a finding on one resource keeps the id it had,
  and a finding that names another member in ``caused_by`` names the group.
* **Order.** Causes before everything they explain, transitively; among findings free to come
  next, the most severe first, then the one blocking the most resources (its own resources, what it
  ``blocks`` and, for a cause, what its effects block), then check and id. A cause takes the
  severity of the worst finding it explains, so a warning that causes an error comes before
  unrelated errors.
"""
from __future__ import annotations

import heapq
import re
from dataclasses import replace

from ..model import SEVERITY_RANK, Finding, Remediation

_PLACEHOLDER = "\x00"


def _norm(text: str, names: tuple[str, ...]) -> str:
    for n in names:
        if n and len(n) >= 3:
            text = re.sub(rf"(?<![\w.-]){re.escape(n)}(?![\w-])", _PLACEHOLDER, text)
    return text


def group_key(f: Finding) -> tuple:
    """What makes two findings of one check one problem: severity, causes and fix."""
    names = (f.resource.name,)
    return (f.check, f.severity, tuple(sorted(f.caused_by)),
            _norm(f.remediation.summary, names),
            tuple(_norm(c, names) for c in f.remediation.commands))


def merge(findings: list[Finding]) -> tuple[list[Finding], dict[str, str]]:
    """Merge findings of one cause and one fix; returns the findings (check order kept) and the
    ids that became another finding's id (member -> group)."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault(group_key(f), []).append(f)
    out: list[Finding] = []
    renamed: dict[str, str] = {}
    done: set[int] = set()
    for f in findings:
        members = groups[group_key(f)]
        if id(members) in done:
            continue
        done.add(id(members))
        if len(members) == 1:
            out.append(f)
            continue
        g = _merged(sorted(members, key=lambda m: m.resource.ref))
        for m in members:
            if m.id != g.id:
                renamed[m.id] = g.id
        out.append(g)
    return out, renamed


def merge_suppressed(suppressed: list) -> list:
    """Suppressed findings (``Suppressed(finding, by)``) merged like findings, within each suppression."""
    from dataclasses import replace as _replace

    groups: dict[tuple, list] = {}
    for x in suppressed:
        key = (repr(sorted(x.by.items(), key=lambda kv: kv[0])) if isinstance(x.by, dict) else repr(x.by),
               group_key(x.finding))
        groups.setdefault(key, []).append(x)
    out, done = [], set()
    for x in suppressed:
        key = (repr(sorted(x.by.items(), key=lambda kv: kv[0])) if isinstance(x.by, dict) else repr(x.by),
               group_key(x.finding))
        if key in done:
            continue
        done.add(key)
        members = groups[key]
        if len(members) == 1:
            out.append(x)
        else:
            out.append(_replace(x, finding=_merged(sorted((m.finding for m in members), key=lambda f: f.resource.ref))))
    return out


def _merged(members: list[Finding]) -> Finding:
    first = members[0]
    resources: list = []
    seen: set = set()
    for m in members:
        for r in m.all_resources:
            if r.ref not in seen:
                seen.add(r.ref)
                resources.append(r)
    n = len(resources)
    kinds = sorted({r.kind for r in resources})
    kind = kinds[0] if len(kinds) == 1 else "resource"
    if first.group_title:
        title = first.group_title.replace("{n}", str(n))
    else:
        title = f"{first.title} (and {n - 1} more {kind}{'s' if n > 2 else ''} with the same cause and fix)"
    message = first.group_message.replace("{n}", str(n)) if first.group_message else first.message
    evidence = [f"{n} {kind}s share this cause and fix; the evidence below is {first.resource.name}'s "
                "(each one's: members in --output json)"]
    evidence += list(first.evidence)
    blocks = list(dict.fromkeys(b for m in members for b in m.blocks))
    return replace(
        first, title=title, message=message, evidence=evidence,
        remediation=Remediation(first.remediation.summary, list(first.remediation.commands)),
        caused_by=list(dict.fromkeys(c for m in members for c in m.caused_by)),
        blocks=blocks, resources=resources, symptoms=[s for m in members for s in m.symptoms],
        members=[{"id": m.id, "title": m.title, "evidence": list(m.evidence)} for m in members])


def blocked(f: Finding) -> int:
    """How many resources a finding keeps from working: its own and what it names in ``blocks``."""
    return len({r.ref for r in f.all_resources} | set(f.blocks))


def order(findings: list[Finding]) -> list[Finding]:
    """Causes before what they explain (transitively); then severity, then resources blocked."""
    n = len(findings)
    at: dict[str, list[int]] = {}
    for i, f in enumerate(findings):
        at.setdefault(f.id, []).append(i)
    effects: list[list[int]] = [[] for _ in range(n)]
    waiting = [0] * n
    for i, f in enumerate(findings):
        cs = {j for c in f.caused_by for j in at.get(c, ()) if j != i}
        waiting[i] = len(cs)
        for j in cs:
            effects[j].append(i)

    def rank(f: Finding) -> int:
        return SEVERITY_RANK.get(f.severity or "info", 0)

    key: list[tuple] = []
    for i, f in enumerate(findings):
        tree: set[int] = set()          # everything it explains, transitively
        stack = list(effects[i])
        while stack:
            x = stack.pop()
            if x not in tree and x != i:
                tree.add(x)
                stack.extend(effects[x])
        refs = {r.ref for r in f.all_resources} | set(f.blocks)
        for x in tree:
            refs |= {r.ref for r in findings[x].all_resources} | set(findings[x].blocks)
        sev = max([rank(f)] + [rank(findings[x]) for x in tree])
        key.append((-sev, -len(refs), -rank(f), f.check, f.id, i))

    heap = [key[i] for i in range(n) if waiting[i] == 0]
    heapq.heapify(heap)
    out: list[Finding] = []
    emitted = [False] * n
    while len(out) < n:
        if not heap:   # a cycle of causes: release the best-placed finding still waiting
            i = min((i for i in range(n) if not emitted[i]), key=lambda x: key[x])
            heap.append(key[i])
        i = heapq.heappop(heap)[-1]
        if emitted[i]:
            continue
        emitted[i] = True
        out.append(findings[i])
        for e in effects[i]:
            waiting[e] -= 1
            if waiting[e] == 0 and not emitted[e]:
                heapq.heappush(heap, key[e])
    return out
