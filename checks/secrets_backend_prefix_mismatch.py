"""The prefixes or ``sep`` of Airflow's Google Secret Manager backend (``backend_kwargs``
``connections_prefix``, ``sep``) match no secret of the backend's project, while a task or component
log shows ``AirflowNotFoundException: The conn_id `<id>` isn't defined``: the backend looked up
``<connections_prefix><sep><conn_id>``, which does not exist (the provider logs a missing secret at
debug level only, so the "isn't defined" is all the user sees). Judged from the secrets' names
(``secrets.list``, every page; never versions or payloads) and the logs the collection rule gathers.
The finding names the conn id, the secret name looked for and the nearest existing names, and the
fix sets the prefix/sep those secrets use. Not reported: the secret exists (the connection is then
missing for another reason, e.g. an Airflow 3 task that cannot reach the Execution API), or other
secrets do sit under the prefix (the one connection may live in the metadata database)."""
from __future__ import annotations

import difflib
import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import excerpt
from airflow_gke.views import Context
from airflow_gke.views.secrets import DEFAULTS, BackendUse, backend_uses, project_of, secret_ids, valid_project

from ._secrets import _components, _set_kwargs, _where

_NOT_DEFINED = re.compile(r"The conn_id `([A-Za-z0-9_.-]+)` isn't defined")


@check(id="secrets-backend-prefix-mismatch",
       title="The Secret Manager backend's prefixes and sep name the secrets Airflow looks up",
       severity="error", category=Category.SECRETS, needs=("configmaps", "pods"),
       uses=("deployments", "statefulsets", "logs", "sm_secrets"))
def run(ctx: Context) -> Result:
    """Tasks cannot find a connection and no secret sits under the backend's connections prefix and sep."""
    uses = [u for u in backend_uses(ctx) if u.kwargs is not None]
    if not uses:
        return skipped("not applicable: no component uses the Secret Manager secrets backend")
    by_comp = {u.component: u for u in uses}
    seen: dict[tuple[str, str, str], list[str]] = {}   # (project, prefix+sep, conn id) -> log excerpts
    use_of: dict[tuple[str, str], BackendUse] = {}
    for comp, pod, container, which, line, conn in _not_defined(ctx, by_comp):
        u = by_comp[comp]
        cp = u.kwargs.get("connections_prefix", DEFAULTS["connections_prefix"])
        sep = u.kwargs.get("sep", DEFAULTS["sep"])
        p = project_of(ctx, u)
        if not isinstance(cp, str) or not cp or not isinstance(sep, str) or not p or not valid_project(p):
            continue   # connections lookups are off (prefix null), or no project: nothing to compare
        seen.setdefault((p, cp + sep, conn), []).append(f"{which} of {pod}/{container}: {line}")
        use_of.setdefault((p, cp + sep), u)
    if not seen:
        return passed()
    findings = []
    gone: list[str] = []
    for (p, pre), u in use_of.items():
        listed = ctx.entry("sm_secrets", project=p)
        if listed is not None and not listed.ok and listed.error_reason == "CONSUMER_INVALID":
            gone.append(p)   # no such project: secrets-backend-kwargs-invalid's finding, whatever the prefixes
            continue
        ids = secret_ids(ctx, p)   # raises when the list is unreadable: not checked, never a pass
        if any(s.startswith(pre) for s in ids):
            continue
        conns = {c: lines for (pp, ppre, c), lines in seen.items() if (pp, ppre) == (p, pre)}
        missing = {c: lines for c, lines in conns.items() if pre + c not in ids}
        if missing:
            findings.append(_finding(ctx, p, pre, u, missing, ids, uses))
    if not findings and gone:
        return skipped(f"backend_kwargs project_id {', '.join(gone)} names no project (CONSUMER_INVALID): "
                       "secrets-backend-kwargs-invalid reports it")
    return from_findings(findings)


def _not_defined(ctx: Context, by_comp: dict[str, BackendUse]):
    """(component, pod, container, which log, excerpt, conn id) of each "isn't defined" line in the
    logs gathered of the components that use the backend (task pods included)."""
    for comp in by_comp:
        pods = ctx.task_pods if comp == "task" else [x for x in ctx.pods_by_component.get(comp, [])
                                                     if not x.is_task_pod]
        for pod in pods[:50]:
            for c in pod.containers:
                name = str(c.get("name") or "")
                for which, ln in ctx.recent_logs(pod, name):
                    m = _NOT_DEFINED.search(ln)
                    if m:
                        yield comp, pod.name, name, which, excerpt(ln, m, 240), m.group(1)


def _split(name: str, conn: str, pre: str, sep: str) -> tuple[str, str] | None:
    """(prefix, sep) under which ``name`` is the secret of ``conn``: the configured prefix kept when
    the name starts with it, else the configured sep kept, else the last - or _ before the id."""
    if not name.endswith(conn) or len(name) == len(conn):
        return None
    head = name[:-len(conn)]
    prefix = pre[:-len(sep)] if sep else pre
    if head.startswith(prefix) and len(head) > len(prefix):
        return prefix, head[len(prefix):]
    if sep and head.endswith(sep) and len(head) > len(sep):
        return head[:-len(sep)], sep
    if head[-1] in "-_" and len(head) > 1:
        return head[:-1], head[-1]
    return None


def _finding(ctx: Context, p: str, pre: str, u: BackendUse, missing: dict[str, list[str]], ids: list[str],
             uses: list[BackendUse]) -> Finding:
    cp = u.kwargs.get("connections_prefix", DEFAULTS["connections_prefix"])
    sep = u.kwargs.get("sep", DEFAULTS["sep"])
    conns = sorted(missing)
    evidence: list[str] = []
    for c in conns[:4]:
        evidence.append(f"conn id {c}: the backend looked up secret {pre}{c} in project {p}; "
                        f"{missing[c][0]}")
    evidence.append(f"{u.kwargs_source}: connections_prefix = {cp!r}, sep = {sep!r}"
                    + ("" if "sep" in u.kwargs else " (the default)"))
    evidence.append(f"project {p}: {len(ids)} secret(s), none named {pre}...")
    near: list[str] = []
    split: tuple[str, str] | None = None
    for c in conns:
        cands = [s for s in ids if s.endswith(c) and s != c] + difflib.get_close_matches(pre + c, ids, n=3, cutoff=0.6)
        cands = list(dict.fromkeys(cands))[:3]
        if cands:
            evidence.append(f"nearest existing secret name(s) for {c}: {', '.join(cands)}")
            near += cands
        for s in cands:
            split = split or _split(s, c, pre, sep)
    same = [x for x in uses if (x.kwargs or {}).get("connections_prefix", DEFAULTS["connections_prefix"]) == cp
            and (x.kwargs or {}).get("sep", DEFAULTS["sep"]) == sep and project_of(ctx, x) == p]
    if split is not None:
        new_cp, new_sep = split
        others = [s for s in ids if s.startswith(new_cp + new_sep)]
        evidence.append(f"{len(others)} secret(s) of project {p} start with {new_cp}{new_sep}: "
                        + ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else ""))
        value = dict(u.kwargs)
        if new_cp != cp:
            value["connections_prefix"] = new_cp
        if new_sep != sep:
            value["sep"] = new_sep
        what = " and ".join(x for x in (f"connections_prefix {new_cp!r}" if new_cp != cp else "",
                                        f"sep {new_sep!r}" if new_sep != sep else "") if x)
        summary = (f"Set {what} in backend_kwargs: the secrets are named {new_cp}{new_sep}<conn_id>. Renaming the "
                   "secrets instead would break whatever else reads them.")
        if new_sep != sep:
            vp = value.get("variables_prefix", DEFAULTS["variables_prefix"])
            vs = [s for s in ids if isinstance(vp, str) and vp and s.startswith(vp + new_sep)]
            summary += (" sep applies to variables and config as well"
                        + (f" (their secrets are named with it too: {vs[0]})." if vs else "."))
        cmds = _set_kwargs(ctx, same or [u], value)
    else:
        summary = (f"Name the secrets {pre}<conn_id> (the backend's connections_prefix and sep), or set "
                   "connections_prefix and sep to how they are named. Secret Manager cannot rename a secret: create it "
                   "under the name the backend looks up.")
        cmds = [f"# the value is the connection's URI or JSON (Airflow's secret format); nothing here reads it\n"
                f"printf '%s' \"$CONNECTION_URI\" | gcloud secrets create {pre}{c} --project {p} "
                "--replication-policy=automatic --data-file=-" for c in conns]
    return Finding(
        title=(f"No secret of project {p} is under the Secret Manager backend's {pre!r}: "
               + (f"conn id {conns[0]} is not found" if len(conns) == 1 else f"{len(conns)} conn ids are not found")),
        message=(f"{_components(same or [u])} look up connections in Secret Manager as {pre}<conn_id> (connections_prefix "
                 f"{cp!r}, sep {sep!r}), and project {p} holds no secret with that prefix, so "
                 + ", ".join(f"`{pre}{c}`" for c in conns[:3]) + (" and more" if len(conns) > 3 else "")
                 + (" does" if len(conns) == 1 else " do") + " not exist: tasks fail with `AirflowNotFoundException: The conn_id ... isn't defined`."
                 + (f" The nearest secrets are {', '.join(dict.fromkeys(near))}." if near else "")),
        resource=_where(ctx, same or [u]),
        evidence=evidence,
        remediation=Remediation(summary=summary, commands=cmds),
    )
