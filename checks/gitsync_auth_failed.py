"""git-sync in the long-running Airflow components (scheduler, dag-processor, triggerer, Celery
workers) cannot clone the DAG repository: SSH key refused, host key unknown, HTTPS credentials
refused, repository or branch not found, or the SSH key Secret missing. Task pods are
``executor-pod-stuck-init``'s; their findings link here when the same repository fails."""
from __future__ import annotations

from airflow_gke.views import as_dict, Context, describe_state, human_age, Pod, status_of, unhealthy
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, helm_upgrade, k8s_resource, ns, q, quote_event, release

from ._gitsync import (CAUSE_TEXT, FAILING, SECRET_MOUNT, Settings, cause_of, gitsync_containers, readable,
                       repo_host, settings, workload_key)


@check(id="gitsync-auth-failed", title="The git-sync containers of the Airflow components can clone the DAG repository",
       severity="error", category=Category.DAGS, needs=("pods", "events"), uses=("logs", "configmaps"))
def run(ctx: Context) -> Result:
    """git-sync init/sidecar containers of long-running components fail to clone (auth, host key, not found)."""
    groups: dict[tuple[str, str], list[tuple[Pod, dict, str, list[str], list[str]]]] = {}
    for pod in ctx.pods:
        if pod.is_task_pod or not ctx.is_airflow_pod(pod):
            continue
        gs = gitsync_containers(pod)
        if not gs:
            continue
        # A Secret the pod mounts for git-sync is missing: the pod never starts.
        for e in ctx.events_for("Pod", pod.name, "FailedMount"):
            m = SECRET_MOUNT.search(str(e.get("message") or ""))
            if m:
                groups.setdefault(workload_key(ctx, pod), []).append(
                    (pod, gs[0][0], "ssh-secret-missing", [quote_event(e)], []))
                break
        for c, _init in gs:
            cs = status_of(pod, str(c.get("name")))
            if cs is None or not unhealthy(cs):
                continue
            logs = ctx.recent_logs(pod, cs.name)
            failing = [ln for _w, ln in logs if FAILING.search(ln)]
            texts = [ln for _w, ln in logs] + [str(cs.state[1].get("message") or "")]
            cause = cause_of(failing or texts)
            if cause is None:
                continue
            quoted = list(dict.fromkeys(f"{w} {cs.name}: {clip(readable(ln))}" for w, ln in logs
                                        if FAILING.search(ln)))[-2:]
            groups.setdefault(workload_key(ctx, pod), []).append(
                (pod, c, cause, [f"Pod {pod.name} container {cs.name}: {describe_state(cs)}"], quoted))
    findings = [_finding(ctx, key, items) for key, items in sorted(groups.items())]
    return from_findings(findings)


def _known_hosts(ctx: Context) -> list[str] | None:
    try:
        cm = ctx.config_map
    except Exception:  # noqa: BLE001 - configmaps are optional here
        return None
    text = as_dict(cm.raw.get("data")).get("known_hosts") if cm else None
    if not isinstance(text, str):
        return None
    hosts = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            hosts += line.split()[0].split(",")
    return hosts


def _finding(ctx: Context, key: tuple[str, str], items) -> Finding:
    kind, name = key
    pod, c, cause, state_ev, log_ev = items[0]
    causes = list(dict.fromkeys(i[2] for i in items))
    s: Settings = settings(pod, c)
    host, port = repo_host(s.repo)
    evidence: list[str] = []
    for p, _c, _cause, st, _lg in items:
        evidence += [f"{x} (pod age {human_age(ctx.age(p.started))})" if x.startswith("Pod ") else x for x in st]
    for _p, _c, _cause, _st, lg in items:
        evidence += lg
    evidence.append(f"git-sync settings ({c.get('name')}): repo {s.repo}, ref {s.ref}, image {s.image}, "
                    + (f"SSH on, key volume git-sync-ssh-key from Secret {s.key_volume}" if s.ssh and s.key_volume
                       else "SSH on, NO git-sync-ssh-key volume mounted" if s.ssh
                       else f"HTTPS, credentials Secret {s.cred_secret or '(none)'}"))
    hosts = _known_hosts(ctx)
    if s.ssh:
        if s.known_hosts is False:
            evidence.append("host key checking is off (GIT_KNOWN_HOSTS=false / GITSYNC_SSH_KNOWN_HOSTS=false: "
                            "dags.gitSync.knownHosts is not set)")
        elif hosts is not None:
            want = f"[{host}]:{port}" if port and port != "22" else host
            evidence.append(f"known_hosts (ConfigMap {release(ctx)}-config) has entries for {', '.join(hosts) or 'nothing'}"
                            + ("" if want in hosts else f"; none for {want}"))
    text = "; ".join(CAUSE_TEXT[k] for k in causes)
    caused_by = []
    if "https-auth" in causes and s.cred_secret:
        caused_by.append(finding_id("gitsync-credentials-mismatch", k8s_resource(ctx, "Secret", s.cred_secret)))
    return Finding(
        title=f"git-sync in {kind} {name} cannot clone {s.repo or 'the DAG repository'}",
        message=(f"The git-sync containers of {kind} {name} fail to fetch {s.repo} ({s.ref}): {text}. Until they "
                 "succeed the component has no DAGs (init container) or stale DAGs (sidecar), and pods that wait "
                 "for git-sync-init do not start."),
        resource=k8s_resource(ctx, kind, name),
        evidence=evidence,
        remediation=Remediation(_summary(causes[0]), _commands(ctx, pod, c, s, causes[0], host, port)),
        caused_by=caused_by,
    )


def _summary(cause: str) -> str:
    return {
        "host-key": "Put the git server's current host key into dags.gitSync.knownHosts (for ssh:// URLs with a port "
                    "the entry must read [host]:port), then restart the component.",
        "ssh-key-missing": "Store the private key in a Secret under the key gitSshKey and point dags.gitSync.sshKeySecret "
                           "at it, so the chart mounts it as volume git-sync-ssh-key.",
        "ssh-auth": "Add the public half of the deploy key to the repository (read access), or store the right private "
                    "key in the Secret under the key gitSshKey; then restart the component.",
        "https-auth": "Put a valid username and token into the credentials Secret under both the git-sync v3 and v4 key "
                      "names, then restart the component.",
        "not-found": "Point dags.gitSync.repo and dags.gitSync.ref (branch) at a repository and branch that exist and "
                     "that the credentials can read.",
        "ssh-secret-missing": "Create the SSH key Secret the values name (key gitSshKey) in this namespace.",
    }[cause]


def _commands(ctx: Context, pod: Pod, c: dict, s: Settings, cause: str, host: str, port: str | None) -> list[str]:
    n = q(ns(ctx))
    cmds = [f"kubectl logs {q(pod.name)} --namespace {n} --container {q(str(c.get('name')))}"]
    secret = s.key_volume or "airflow-ssh-secret"
    if cause == "host-key":
        scan = f"ssh-keyscan -p {port} {q(host)}" if port and port != "22" else f"ssh-keyscan {q(host)}"
        cmds += [f"{scan} > known_hosts && ssh-keygen -lf known_hosts",
                 helm_upgrade(ctx, "--set-file dags.gitSync.knownHosts=known_hosts")]
    elif cause in ("ssh-key-missing", "ssh-auth", "ssh-secret-missing"):
        cmds += [f"ssh -T -i $HOME/.ssh/airflow_deploy_key git@{host}" + (f" -p {port}" if port else ""),
                 f"kubectl create secret generic {q(secret)} --namespace {n} "
                 "--from-file=gitSshKey=$HOME/.ssh/airflow_deploy_key --dry-run=client -o yaml | kubectl apply -f -",
                 helm_upgrade(ctx, f"--set dags.gitSync.sshKeySecret={q(secret)}")]
    elif cause == "https-auth":
        cs = s.cred_secret or "git-credentials"
        cmds += [f"kubectl create secret generic {q(cs)} --namespace {n} "
                 "--from-literal=GIT_SYNC_USERNAME=<user> --from-literal=GIT_SYNC_PASSWORD=<token> "
                 "--from-literal=GITSYNC_USERNAME=<user> --from-literal=GITSYNC_PASSWORD=<token> "
                 "--dry-run=client -o yaml | kubectl apply -f -",
                 helm_upgrade(ctx, f"--set dags.gitSync.credentialsSecret={q(cs)}")]
    elif cause == "not-found":
        cmds += [f"git ls-remote {q(s.repo or '<repo>')} {q(s.ref or 'HEAD')}",
                 helm_upgrade(ctx, "--set dags.gitSync.repo=<repository URL>", "--set dags.gitSync.branch=<branch>")]
    kind, name = workload_key(ctx, pod)
    if kind in ("Deployment", "StatefulSet"):
        cmds.append(f"kubectl rollout restart {kind.lower()} {q(name)} --namespace {n}")
    return cmds
