"""The scheduler's Kubernetes service account may not create, watch or delete pods in the namespace
where the KubernetesExecutor launches task pods: the Roles/RoleBindings (and ClusterRoleBindings)
that name it grant too little, or the scheduler's log shows the API server's 403
(``pods is forbidden: User "system:serviceaccount:<ns>:<sa>" cannot create resource "pods"``)."""
from __future__ import annotations

import re

from airflow_gke.views import Context, DataUnavailable, Pod, as_dict, as_list
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, grep, helm_upgrade, k8s_resource, q, release


NEEDED = ("create", "get", "list", "watch", "delete", "patch")
# Quotes may come escaped (\") when the Status body is logged as JSON.
_FORBIDDEN = re.compile(r'pods(?:/\w+)? is forbidden: User \\?"system:serviceaccount:([^:"\\]+):([^"\\]+)\\?" '
                        r'cannot (\w+) resource \\?"pods[^"\\]*\\?"(?: in API group \\?"[^"\\]*\\?")?'
                        r'(?: in the namespace \\?"([^"\\]+)\\?")?')
_403 = re.compile(r"(?i)\(403\)\s*Reason: Forbidden")
# Verbs on pods of the ClusterRoles every cluster has (used when clusterroles could not be read).
WELL_KNOWN = {"cluster-admin": set(NEEDED), "admin": set(NEEDED), "edit": set(NEEDED), "view": {"get", "list", "watch"}}


@check(id="executor-rbac-forbidden", title="The scheduler may create, watch and delete task pods",
       severity="error", category=Category.EXECUTOR, needs=("pods", "configmaps"),
       uses=("roles", "rolebindings", "clusterroles", "clusterrolebindings", "logs", "deployments"),
       evidence="config")
def run(ctx: Context) -> Result:
    """The scheduler's service account lacks RBAC on pods in the executor namespace (RBAC objects, 403 in its log)."""
    if "KubernetesExecutor" not in (ctx.executor or ""):
        return skipped(f"the executor is {ctx.executor or 'unknown'}: the scheduler launches no task pods")
    cfg = ctx.config("scheduler")
    home = ctx.target.namespace
    target = (cfg.get("kubernetes_executor", "namespace") or home).strip()
    multi = cfg.getboolean("kubernetes_executor", "multi_namespace_mode")
    scheds = [p for p in ctx.pods_by_component.get("scheduler", []) if not p.is_task_pod]
    ksa = scheds[0].service_account if scheds else _template_sa(ctx)
    logs = _log_hits(ctx, scheds)
    verdict, granted, detail = _evaluate(ctx, home, ksa, target)
    if verdict == "unknown" and not logs:
        raise detail if isinstance(detail, DataUnavailable) else DataUnavailable("skip", str(detail))
    if verdict == "granted" and not logs:
        return passed()
    return from_findings([_finding(ctx, ksa, target, multi, verdict, granted, detail, logs, scheds)])


def _template_sa(ctx: Context) -> str:
    for d in ctx.deployments.values() if ctx.has("deployments") else []:
        if d.labels.get("component") == "scheduler":
            return str(as_dict(as_dict(d.spec.get("template")).get("spec")).get("serviceAccountName") or "default")
    return f"{release(ctx)}-scheduler"


def _log_hits(ctx: Context, scheds: list[Pod]) -> list[str]:
    out = []
    for p in scheds:
        for c in p.containers:
            lines = ctx.log_history(p, str(c.get("name")))
            hits = grep(lines, _FORBIDDEN) or grep(lines, _403)
            for which, ln in hits[-2:]:
                out.append(f"{which} {p.name}/{c.get('name')}: {clip(ln)}")
    return out[:4]


def _subject_matches(sub: dict, binding_ns: str | None, home: str, ksa: str) -> bool:
    kind, name = sub.get("kind"), sub.get("name")
    if kind == "ServiceAccount":
        return name == ksa and (sub.get("namespace") or binding_ns) == home
    if kind == "User":
        return name == f"system:serviceaccount:{home}:{ksa}"
    if kind == "Group":
        return name in ("system:serviceaccounts", f"system:serviceaccounts:{home}", "system:authenticated")
    return False


def _pod_verbs(rules) -> set[str]:
    out: set[str] = set()
    for r in as_list(rules):
        r = as_dict(r)
        if r.get("resourceNames"):
            continue
        groups, resources = as_list(r.get("apiGroups")), as_list(r.get("resources"))
        if ("" in groups or "*" in groups) and ("pods" in resources or "*" in resources):
            verbs = {str(v) for v in as_list(r.get("verbs"))}
            out |= set(NEEDED) if "*" in verbs else verbs
    return out


def _evaluate(ctx: Context, home: str, ksa: str, target: str):
    """("granted" | "denied" | "unknown", verbs granted on pods, list of grant texts or the reason)."""
    granted: set[str] = set()
    grants: list[str] = []
    unknown: list[str] = []
    try:
        croles = ctx.cluster_roles
    except DataUnavailable:
        croles = None

    def role_verbs(kind: str, name: str, roles: dict | None) -> set[str] | None:
        if kind == "Role":
            return _pod_verbs(roles[name].raw.get("rules")) if roles is not None and name in roles else set()
        if croles is not None:
            return _pod_verbs(croles[name].raw.get("rules")) if name in croles else set()
        return WELL_KNOWN.get(name)

    if target == home:
        try:
            roles = ctx.roles
            bindings = ctx.role_bindings
        except DataUnavailable as e:
            return "unknown", granted, e
        for b in bindings:
            if not any(_subject_matches(as_dict(s), b.namespace, home, ksa) for s in as_list(b.raw.get("subjects"))):
                continue
            ref = as_dict(b.raw.get("roleRef"))
            verbs = role_verbs(str(ref.get("kind")), str(ref.get("name")), roles)
            if verbs is None:
                unknown.append(f"RoleBinding {b.name} → ClusterRole {ref.get('name')} (rules not read)")
                continue
            granted |= verbs
            grants.append(f"RoleBinding {b.name} → {ref.get('kind')} {ref.get('name')}: pods "
                          f"[{', '.join(sorted(verbs)) or 'nothing'}]")
    try:
        cbindings = ctx.cluster_role_bindings
    except DataUnavailable as e:
        if set(NEEDED) <= granted:
            return "granted", granted, grants
        return "unknown", granted, e
    for b in cbindings:
        if not any(_subject_matches(as_dict(s), None, home, ksa) for s in as_list(b.raw.get("subjects"))):
            continue
        ref = as_dict(b.raw.get("roleRef"))
        verbs = role_verbs("ClusterRole", str(ref.get("name")), None)
        if verbs is None:
            unknown.append(f"ClusterRoleBinding {b.name} → ClusterRole {ref.get('name')} (rules not read)")
            continue
        granted |= verbs
        grants.append(f"ClusterRoleBinding {b.name} → ClusterRole {ref.get('name')}: pods "
                      f"[{', '.join(sorted(verbs)) or 'nothing'}]")
    if set(NEEDED) <= granted:
        return "granted", granted, grants
    if target != home:
        return "unknown", granted, DataUnavailable(
            "skip", f"the executor launches pods in namespace {target}; its RoleBindings are outside the snapshot "
                    f"(namespace {home}) and no ClusterRoleBinding grants the scheduler pods")
    if unknown:
        return "unknown", granted, DataUnavailable("skip", "; ".join(unknown))
    return "denied", granted, grants


def _finding(ctx: Context, ksa: str, target: str, multi: bool, verdict: str, granted: set[str], detail,
             logs: list[str], scheds: list[Pod]) -> Finding:
    home = ctx.target.namespace
    missing = [v for v in NEEDED if v not in granted]
    from_log = []
    for ln in logs:
        m = _FORBIDDEN.search(ln)
        if m and m.group(3) not in from_log:
            from_log.append(m.group(3))
    evidence = [f"[kubernetes_executor] namespace = {target}" + (" (multi_namespace_mode True)" if multi else "")
                + f"; the scheduler runs as ServiceAccount {home}/{ksa}"
                + (f" (pod {scheds[0].name})" if scheds else "")]
    if verdict == "denied":
        evidence += list(detail) or [f"no RoleBinding in {home} and no ClusterRoleBinding names ServiceAccount {ksa}"]
        evidence.append(f"missing verbs on pods in namespace {target}: {', '.join(missing)}")
    elif isinstance(detail, list) and detail:
        evidence += detail
    evidence += logs
    who = f"system:serviceaccount:{home}:{ksa}"
    n = q(target)
    verbs_text = ", ".join(from_log or missing)
    will = ctx.mode == "planned"   # before the deploy: the values are the fix, nothing to query or create yet
    cmds = [] if will else [f"kubectl auth can-i {v} pods --as={who} --namespace {n}"
                            for v in (from_log or missing or ["create"])[:2]]
    sets = ["--set rbac.create=true", "--set allowPodLaunching=true"] + (["--set multiNamespaceMode=true"]
                                                                          if target != home or multi else [])
    cmds.append(helm_upgrade(ctx, *sets))
    cmds += [] if will else [f"kubectl create role airflow-pod-launcher --namespace {n} --verb={','.join(NEEDED)} --resource=pods",
             f"kubectl create rolebinding airflow-pod-launcher --namespace {n} --role=airflow-pod-launcher "
             f"--serviceaccount={home}:{ksa}"]
    return Finding(
        title=f"Scheduler service account {ksa} {'will not be allowed to' if will else 'may not'} "
              f"{verbs_text or 'manage'} pods in namespace {target}",
        message=(f"The KubernetesExecutor runs in the scheduler as {who} and needs {', '.join(NEEDED)} on pods in "
                 f"namespace {target}. "
                 + (f"No RBAC binding grants {', '.join(missing)}. " if verdict == "denied" else "")
                 + ("The API server refuses its requests with 403 (quoted below): " if logs else "")
                 + "task pods are never created (tasks stay queued), or not watched and cleaned up, and after a "
                   "scheduler restart running task pods cannot be adopted."),
        resource=k8s_resource(ctx, "ServiceAccount", ksa),
        evidence=evidence,
        remediation=Remediation(
            "Let the chart create the pod-launcher Role and RoleBinding for the scheduler's service account "
            "(rbac.create and allowPodLaunching; multiNamespaceMode when tasks run in other namespaces), or create "
            "them by hand.", cmds),
    )

