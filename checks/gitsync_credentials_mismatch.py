"""The git-sync credentials Secret's key names, or the env names the pod spec reads them into, do
not match the git-sync major version in use: v3 reads ``GIT_SYNC_USERNAME``/``GIT_SYNC_PASSWORD``,
v4 reads ``GITSYNC_USERNAME``/``GITSYNC_PASSWORD`` (and still accepts the v3 names)."""
from __future__ import annotations

import re

from airflow_gke.views import Context, describe_state, image_tag, Pod, status_of, unhealthy
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, helm_upgrade, k8s_resource, ns, q

from ._gitsync import CAUSES, gitsync_containers, major, settings, workload_key

MISSING_KEY = re.compile(r"(?i)couldn't find key (\S+) in Secret (\S+?)/(\S+?)(?:\s|$|,)")
V4_PASSWORD = re.compile(r"(?i)--password(?: or --password-file)? must be (?:set|specified) when --username")
V3_UNKNOWN = re.compile(r"(?i)unknown flag: --(?:ref|link|period|max-failures|ssh-known-hosts)|flag provided but not "
                        r"defined: -(?:ref|link|period)")
HTTPS_AUTH = dict(CAUSES)["https-auth"]
V3 = ("GIT_SYNC_USERNAME", "GIT_SYNC_PASSWORD")
V4 = ("GITSYNC_USERNAME", "GITSYNC_PASSWORD")


@check(id="gitsync-credentials-mismatch",
       title="The git-sync credentials use the key and env names of the git-sync version in use",
       severity="error", category=Category.DAGS, needs=("pods",), uses=("logs", "events"))
def run(ctx: Context) -> Result:
    """Credentials Secret keys / env names that the running git-sync major version does not read."""
    groups: dict[tuple[str, str], list[tuple[Pod, str, str]]] = {}
    for pod in ctx.unhealthy_pods:   # a container must be unhealthy to be reported
        if not ctx.is_airflow_pod(pod):
            continue
        for c, _init in gitsync_containers(pod):
            cs = status_of(pod, str(c.get("name")))
            if cs is None or not unhealthy(cs):
                continue
            s = settings(pod, c)
            ver = major(s.image)
            state, fields = cs.state
            msg = str(fields.get("message") or "")
            logs = ctx.recent_logs(pod, cs.name)
            lines = [ln for _w, ln in logs]
            where = f"Pod {pod.name} container {cs.name} (image {s.image}): {describe_state(cs)}"
            m = MISSING_KEY.search(msg)
            if m and m.group(1) in V3 + V4:
                groups.setdefault(("Secret", m.group(3)), []).append(
                    (pod, where, f"{cs.name} state.waiting.message: {clip(msg)}"))
                continue
            if ver == 3 and s.cred_secret and not (set(V3) & set(s.cred_keys)) and (
                    set(V4) & set(s.cred_keys)) and any(HTTPS_AUTH.search(ln) for ln in lines):
                bad = next(ln for ln in lines if HTTPS_AUTH.search(ln))
                groups.setdefault(("Secret", s.cred_secret), []).append(
                    (pod, where, f"git-sync v3 reads GIT_SYNC_USERNAME/GIT_SYNC_PASSWORD, but the container gets only "
                                 f"{', '.join(s.cred_keys)}; log: {clip(bad)}"))
                continue
            hit = next((ln for ln in lines if V4_PASSWORD.search(ln)), None) if ver == 4 else None
            if hit:
                groups.setdefault(("Secret", s.cred_secret) if s.cred_secret else workload_key(ctx, pod), []).append(
                    (pod, where, f"log {cs.name}: {clip(hit)}"))
                continue
            hit = next((ln for ln in lines if V3_UNKNOWN.search(ln)), None) if ver == 3 else None
            if hit:
                groups.setdefault(workload_key(ctx, pod), []).append((pod, where, f"log {cs.name}: {clip(hit)}"))
    findings = [_finding(ctx, key, items) for key, items in sorted(groups.items())]
    return from_findings(findings)


def _finding(ctx: Context, key: tuple[str, str], items: list[tuple[Pod, str, str]]) -> Finding:
    kind, name = key
    pod = items[0][0]
    c = next(c for c, _ in gitsync_containers(pod))
    s = settings(pod, c)
    ver = major(s.image)
    evidence = []
    for _p, where, detail in items[:6]:
        evidence += [where, detail]
    if len(items) > 6:
        evidence.append(f"... and {len(items) - 6} more git-sync containers")
    if s.cred_keys:
        evidence.append(f"env read from Secret {s.cred_secret}: {', '.join(s.cred_keys)} "
                        f"(git-sync {image_tag(s.image)} reads {'GITSYNC_* and GIT_SYNC_*' if ver == 4 else 'GIT_SYNC_* only' if ver == 3 else 'unknown names'})")
    n = q(ns(ctx))
    secret = name if kind == "Secret" else (s.cred_secret or "git-credentials")
    commands = [f"kubectl get secret {q(secret)} --namespace {n} -o jsonpath='{{.data}}' | jq 'keys'",
                f"kubectl create secret generic {q(secret)} --namespace {n} "
                "--from-literal=GIT_SYNC_USERNAME=<user> --from-literal=GIT_SYNC_PASSWORD=<token> "
                "--from-literal=GITSYNC_USERNAME=<user> --from-literal=GITSYNC_PASSWORD=<token> "
                "--dry-run=client -o yaml | kubectl apply -f -"]
    if ver == 3:
        commands.append(helm_upgrade(ctx, "--set images.gitSync.tag=v4.4.2"))
    kinds = {}
    for p, _w, _d in items:
        k, wname = workload_key(ctx, p)
        if k in ("Deployment", "StatefulSet"):
            kinds[(k, wname)] = None
    for k, wname in kinds:
        commands.append(f"kubectl rollout restart {k.lower()} {q(wname)} --namespace {n}")
    summary = ("Give the credentials Secret both key sets (GIT_SYNC_USERNAME/GIT_SYNC_PASSWORD for git-sync v3 and "
               "GITSYNC_USERNAME/GITSYNC_PASSWORD for v4): the chart maps both, and a key the Secret lacks stops the "
               "container from being created. Then restart the pods; the values are read only at container start.")
    what = (f"Secret {name} lacks credential keys the pods' git-sync containers read" if kind == "Secret"
            else f"git-sync in {kind} {name} is given settings its version does not understand")
    return Finding(
        title=what,
        message=(f"git-sync {image_tag(s.image)} is used with credentials wired for the other major version. "
                 "git-sync v3 reads GIT_SYNC_USERNAME/GIT_SYNC_PASSWORD; v4 reads GITSYNC_USERNAME/GITSYNC_PASSWORD "
                 "(and the v3 names). Charts from 1.15 map both sets from dags.gitSync.credentialsSecret, so a Secret "
                 f"created for the old chart with only one set leaves {len(items)} git-sync container(s) unable to "
                 "start or to authenticate."),
        resource=k8s_resource(ctx, kind, name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
    )
