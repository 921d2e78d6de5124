"""The least privilege a live run needs, generated from what the selected checks declare
(doctor/data.py), so the documentation cannot drift from the code.

Kubernetes: a Role in the Airflow namespace (namespaced reads) and a ClusterRole (storage
classes, nodes), read-only verbs only, never Secrets. Google Cloud: the IAM permissions, and a
custom role that holds exactly them.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from .data import FLEET_KEYS, GUARD_KEYS, KEYS, reads_for

ROLE_NAME = "airflow-gke-doctor"
CUSTOM_ROLE_ID = "airflowGkeDoctor"


def keys_of(checks: Iterable) -> list[str]:
    keys: set[str] = set()
    for c in checks:
        keys.update(c.data_keys)
    keys = reads_for(keys)
    keys.update(GUARD_KEYS)   # the target guard reads these in every run (doctor/target_guard.py)
    return [k for k in KEYS if k in keys]   # catalogue order


def rbac_rules(keys: Iterable[str], all_namespaces: bool = False) -> tuple[list[dict], list[dict]]:
    """(namespaced rules, cluster-wide rules), one rule per API group, verbs merged. With
    ``all_namespaces`` (``doctor -A``) every rule is cluster-wide: the namespaced reads happen in
    every namespace that holds a release."""
    spaced: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    cluster: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name in keys:
        k = KEYS[name]
        if k.scope != "k8s" or k.rbac is None:
            continue
        group, resource, verb = k.rbac
        (spaced if "namespace" in k.requires and not all_namespaces else cluster)[group][resource].add(verb)

    def rules(by_group: dict) -> list[dict]:
        out = []
        for group in sorted(by_group):
            by_verbs: dict[tuple, list[str]] = defaultdict(list)
            for resource, verbs in sorted(by_group[group].items()):
                by_verbs[tuple(sorted(verbs))].append(resource)
            for verbs, resources in sorted(by_verbs.items()):
                out.append({"apiGroups": [group], "resources": resources, "verbs": list(verbs)})
        return out

    return rules(spaced), rules(cluster)


def iam_permissions(keys: Iterable[str]) -> list[str]:
    """The Google permissions the reads need (optional reads are listed apart: :func:`optional_reads`)."""
    return sorted({KEYS[k].iam for k in keys if KEYS[k].scope == "gcp" and KEYS[k].iam and not KEYS[k].optional})


def optional_reads(keys: Iterable[str]) -> list[tuple[str, str]]:
    """(permission, what its answer makes decisive) of the optional reads: without them the doctor
    runs and says what stays open."""
    return [(KEYS[k].iam, KEYS[k].optional) for k in keys if KEYS[k].optional and KEYS[k].iam]


# Where an optional permission is granted, when not through a project role.
OPTIONAL_WHERE = {
    "cloudidentity.groups.memberships.checkTransitiveMembership":
        "granted in Cloud Identity / Google Workspace, not by a project role: the Groups Reader admin role, "
        "or membership-visibility on the groups concerned",
}


def fleet_lines() -> list[str]:
    """What fleet runs read besides the checks' reads (data.FLEET_KEYS), each with when it is
    read: granted only to who runs them."""
    out = []
    for name in FLEET_KEYS:
        k = KEYS[name]
        if k.scope == "gcp":
            out += [f"{k.iam} on each project P (doctor --fleet-project P: {k.describe.format(project='P')})",
                    "  e.g. roles/container.clusterViewer (clusters.list and clusters.get, which the caller's token",
                    "  needs to be let into each cluster; its reads then need the RBAC above); a cluster reached",
                    "  at its DNS endpoint also asks container.clusters.connect"]
        else:
            group, resource, verb = k.rbac
            out += [f"{verb} {resource}{f' (apiGroup {group})' if group else ''} cluster-wide (optional; doctor -A "
                    "when the cluster-wide",
                    "  tier=airflow look-up is refused: the namespaces to search; without it only the context's",
                    "  namespace and --namespace values are)"]
    return out


def _yaml(doc: dict) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def manifests(keys: list[str], namespace: str, all_namespaces: bool = False) -> str:
    """Role + ClusterRole as YAML (``all_namespaces``: one ClusterRole holding every rule)."""
    ns_rules, cl_rules = rbac_rules(keys, all_namespaces)
    docs = []
    labels = {"app.kubernetes.io/name": "airflow-gke", "app.kubernetes.io/component": "doctor"}
    if ns_rules:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": {"name": ROLE_NAME, "namespace": namespace, "labels": labels},
                     "rules": ns_rules})
    if cl_rules:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": ROLE_NAME, "labels": labels},
                     "rules": cl_rules})
    return "---\n".join(_yaml(d) for d in docs)


def render_yaml(keys: list[str], namespace: str, project: str | None, checks: list[str],
                all_namespaces: bool = False) -> str:
    """YAML for ``kubectl apply -f -``; the Google part and the bindings as comments."""
    p = project or "PROJECT_ID"
    perms = iam_permissions(keys)
    head = [f"# airflow-gke doctor{' --all-namespaces' if all_namespaces else ''}: read-only access for the "
            f"checks {', '.join(checks)}",
            "# Generated by `airflow-gke permissions` from the data the checks declare.",
            f"# Apply:   airflow-gke permissions --output yaml {'-A' if all_namespaces else '-n ' + namespace} "
            "| kubectl apply -f -",
            "# Bind to who runs the doctor (a user, a group, or a Kubernetes service account):",
            *([] if all_namespaces else
              [f"#   kubectl create rolebinding {ROLE_NAME} -n {namespace} --role {ROLE_NAME} --user USER_EMAIL"]),
            f"#   kubectl create clusterrolebinding {ROLE_NAME} --clusterrole {ROLE_NAME} --user USER_EMAIL",
            "# The cluster-wide list of deployments (only those labelled tier=airflow are asked for) finds",
            "# the namespace when none is given and names where Airflow is when the target has none;",
            "# without that right the doctor still runs: it falls back to 'airflow' and searches no further.",
            ]
    if perms:
        head += ["#", "# Google Cloud IAM permissions (not Kubernetes objects):"]
        head += [f"#   {x}" for x in perms]
        head += ["# As a custom role:", f"#   {custom_role_command(perms, p)}"]
    for perm, what in optional_reads(keys):
        head += ["#", f"# OPTIONAL (the doctor runs without it): {perm}", f"#   makes decisive {what}"]
        if perm in OPTIONAL_WHERE:
            head.append(f"#   {OPTIONAL_WHERE[perm]}")
    head += ["#", "# Fleet runs only (not in the roles below; grant them to who runs these):"]
    head += [f"#   {x}" for x in fleet_lines()]
    body = manifests(keys, namespace, all_namespaces)
    return "\n".join(head) + "\n" + (body if body else "# (no Kubernetes reads for these checks)\n")


def custom_role_command(perms: list[str], project: str) -> str:
    return (f"gcloud iam roles create {CUSTOM_ROLE_ID} --project {project} "
            f"--title 'airflow-gke doctor (read-only)' --stage GA --permissions {','.join(perms)}")


def render_text(keys: list[str], namespace: str, project: str | None, checks: list[str],
                all_namespaces: bool = False) -> str:
    p = project or "PROJECT_ID"
    perms = iam_permissions(keys)
    lines = [f"Permissions that `airflow-gke doctor{' --all-namespaces' if all_namespaces else ''}` needs for: "
             f"{', '.join(checks)}"]
    ns_rules, cl_rules = rbac_rules(keys, all_namespaces)
    if ns_rules or cl_rules:
        lines += ["", "Kubernetes RBAC (read-only; Secrets are never read):"]
        for r in ns_rules:
            lines.append(f"  {', '.join(r['verbs'])} {', '.join(r['resources'])}"
                         f"{' (apiGroup ' + r['apiGroups'][0] + ')' if r['apiGroups'][0] else ''} in namespace {namespace}")
        for r in cl_rules:
            lines.append(f"  {', '.join(r['verbs'])} {', '.join(r['resources'])}"
                         f"{' (apiGroup ' + r['apiGroups'][0] + ')' if r['apiGroups'][0] else ''} cluster-wide")
        if all_namespaces:
            lines += ["", "  Apply:  airflow-gke permissions --output yaml -A | kubectl apply -f -",
                      f"  Bind:   kubectl create clusterrolebinding {ROLE_NAME} --clusterrole {ROLE_NAME} --user USER_EMAIL"]
        else:
            lines += ["", f"  Apply:  airflow-gke permissions --output yaml -n {namespace} | kubectl apply -f -",
                      f"  Bind:   kubectl create rolebinding {ROLE_NAME} -n {namespace} --role {ROLE_NAME} --user USER_EMAIL",
                      f"          kubectl create clusterrolebinding {ROLE_NAME} --clusterrole {ROLE_NAME} --user USER_EMAIL"]
    if perms:
        lines += ["", "Google Cloud IAM permissions:"]
        lines += [f"  {x}" for x in perms]
        lines += ["", "  As a custom role, granted on the project:",
                  f"    {custom_role_command(perms, p)}",
                  f"    gcloud projects add-iam-policy-binding {p} --member user:USER_EMAIL "
                  f"--role projects/{p}/roles/{CUSTOM_ROLE_ID}"]
        if any(x.startswith("storage.") for x in perms):
            lines += ["  (storage.buckets.* are read on the log bucket: the project grant covers it, or grant the",
                      "  role on that bucket instead.)"]
    lines += ["", "Fleet runs only (not in the role above; grant them to who runs these):"]
    lines += [f"  {x}" for x in fleet_lines()]
    opt = optional_reads(keys)
    if opt:
        lines += ["", "OPTIONAL (the doctor runs without them; each makes an answer decisive):"]
        for perm, what in opt:
            lines += [f"  {perm}", f"    makes decisive {what}"]
            if perm in OPTIONAL_WHERE:
                lines.append(f"    ({OPTIONAL_WHERE[perm]})")
    return "\n".join(lines) + "\n"
