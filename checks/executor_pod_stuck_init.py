"""KubernetesExecutor task pods stuck in their init containers (Init:0/1 for minutes,
Init:Error, Init:CrashLoopBackOff, image pulls that fail)."""
from __future__ import annotations

import os
import re
from datetime import timedelta

import orjson

from airflow_gke.views import Context, ContainerStatus, Pod, human_age
from airflow_gke.model import Finding, Remediation, Result, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, ns, q, quote_event


# Start-up of a healthy task pod (git-sync clone included) stays well under this.
THRESHOLD = timedelta(seconds=int(os.environ.get("AIRFLOW_GKE_INIT_THRESHOLD_S", "300")))
# Image pulls and config errors get a short grace period: kubelet retries them at first.
GRACE = timedelta(seconds=60)
PULL = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")

CAUSES = [
    ("host-key", re.compile(r"(?i)host key verification failed|no matching host key|known_hosts"),
     "SSH host key of the git server is not trusted (dags.gitSync.knownHosts)"),
    ("ssh-auth", re.compile(r"(?i)permission denied \(publickey\)|invalid (?:ssh )?key|load key .*: invalid format|"
                            r"no such identity|ssh: handshake failed"),
     "git SSH authentication failed (deploy key missing, wrong, or not authorized on the repository)"),
    ("https-auth", re.compile(r"(?i)authentication failed for|could not read username|invalid username or password|"
                              r"the requested url returned error: 40[13]|terminal prompts disabled"),
     "git HTTPS authentication failed (credentials Secret)"),
    ("not-found", re.compile(r"(?i)repository not found|remote branch .* not found|couldn't find remote ref|"
                             r"does not appear to be a git repository"),
     "the git repository or branch does not exist (or the credentials cannot see it)"),
    ("egress", re.compile(r"(?i)could not resolve host|temporary failure in name resolution|i/o timeout|"
                          r"connection timed out|network is unreachable|no route to host|dial tcp"),
     "the pod cannot reach the git server (DNS or egress: private nodes need Cloud NAT)"),
    ("secret", re.compile(r"(?i)secret \"?[\w.-]+\"? not found|couldn't find key .* in secret|"
                          r"MountVolume\.SetUp failed for volume .*secret"),
     "a Secret the pod mounts or reads does not exist (or lacks the key)"),
    ("image-403", re.compile(r"(?i)403 forbidden|unauthorized|permission \"artifactregistry|denied: "),
     "the node may not pull the image (registry permission)"),
    ("image-missing", re.compile(r"(?i)manifest unknown|not found|no such image|failed to resolve reference"),
     "the image or tag does not exist"),
    ("rate-limit", re.compile(r"(?i)toomanyrequests|rate limit"), "the registry rate-limits pulls (Docker Hub)"),
]


@check(id="executor-pod-stuck-init", title="KubernetesExecutor task pods get through their init containers",
       severity="error", category=Category.EXECUTOR, needs=("pods", "events"), uses=("configmaps", "logs"))
def run(ctx: Context) -> Result:
    """Task pods whose init containers wait, run or crash well beyond normal start-up."""
    pods = ctx.task_pods
    if not pods:
        return skipped("no KubernetesExecutor task pod at capture time")
    # _inspect reports only an init container that failed, waits or runs: an unhealthy status
    stuck = {id(p) for p in ctx.unhealthy_pods}
    findings = [f for f in (_inspect(ctx, p) for p in pods if id(p) in stuck) if f is not None]
    return from_findings(findings)


def _inspect(ctx: Context, pod: Pod) -> Finding | None:
    if pod.phase not in ("Pending", "Failed"):
        return None
    age = ctx.age(pod.started)
    for cs in pod.init_statuses:
        state, fields = cs.state
        reason = str(fields.get("reason") or "")
        last = cs.last_terminated
        if state == "terminated" and fields.get("exitCode") in (0, None):
            continue
        if state == "terminated":
            return _finding(ctx, pod, cs, f"Init:{reason or 'Error'}", f"exited {fields.get('exitCode')}", age)
        if state == "waiting" and reason == "CrashLoopBackOff":
            code = last.get("exitCode")
            return _finding(ctx, pod, cs, "Init:CrashLoopBackOff",
                            f"restarted {cs.restarts} times, last exit code {code}", age)
        if state == "waiting" and reason in PULL + CONFIG and age is not None and age >= GRACE:
            return _finding(ctx, pod, cs, f"Init:{reason}", str(fields.get("message") or reason), age)
        if state in ("running", "waiting") and age is not None and age >= THRESHOLD:
            since = human_age(age)
            return _finding(ctx, pod, cs, f"Init:{_index(pod, cs)}/{len(pod.init_statuses)}",
                            f"{state}{' (' + reason + ')' if reason else ''} for {since}", age)
        if state in ("running", "waiting"):
            return None   # still within normal start-up
    return None


def _readable(line: str) -> str:
    """git-sync v4 logs JSON objects; keep their message and error, not the whole record."""
    line = line.strip()
    if line.startswith("{"):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            rec = None
        if isinstance(rec, dict) and rec.get("msg"):
            err = rec.get("error") or rec.get("err")
            line = f"{rec['msg']}: {err}" if err else str(rec["msg"])
    line = " ".join(line.split())
    if len(line) > 400:
        hits = [m for _k, rx, _t in CAUSES for m in [rx.search(line)] if m]
        if hits and hits[0].start() > 250:
            at = hits[0].start()
            return f"{line[:200]} … {line[max(200, at - 80):at + 160]}"
    return line[:400]


def _log_excerpt(lines: list[str], most: int = 4) -> list[str]:
    """The log lines that explain a failure: those naming a known cause or an error, else the tail."""
    lines = [ln for ln in lines[-200:] if ln.strip()]
    telling = [ln for ln in lines if any(rx.search(ln) for _k, rx, _t in CAUSES)
               or re.search(r"(?i)\b(error|fatal|failed|denied)\b", ln)]
    chosen = telling[-most:] if telling else lines[-most:]
    out = []
    for ln in chosen:
        r = _readable(ln)
        if r not in out:
            out.append(r)
    return out


def _index(pod: Pod, cs: ContainerStatus) -> int:
    done = 0
    for s in pod.init_statuses:
        st, f = s.state
        if st == "terminated" and f.get("exitCode") == 0:
            done += 1
    return done


def _finding(ctx: Context, pod: Pod, cs: ContainerStatus, status: str, detail: str, age) -> Finding:
    evidence = [f"Pod {pod.name}: {status}, init container {cs.name} {detail} (image {cs.image}); "
                f"pod age {human_age(age)}"]
    state, fields = cs.state
    if fields.get("message"):
        evidence.append(f"{cs.name} state.{state}.message: {str(fields['message']).strip()[:400]}")
    last = cs.last_terminated
    if last:
        evidence.append(f"{cs.name} lastState.terminated: exitCode {last.get('exitCode')}, reason {last.get('reason')}")
    texts = [str(fields.get("message") or ""), str(last.get("message") or "")]
    for e in ctx.events_for("Pod", pod.name)[-4:]:
        if e.get("type") == "Warning":
            evidence.append(quote_event(e))
            texts.append(str(e.get("message") or ""))
    lines = ctx.log_lines(pod.name, cs.name) or ctx.log_lines(pod.name, cs.name, previous=True)
    for ln in _log_excerpt(lines):
        evidence.append(f"log {cs.name}: {ln}")
    texts += lines[-50:]
    cause_key, cause = _cause(texts, fields.get("reason"))
    if cause:
        evidence.append(f"likely cause: {cause}")
    dag, task = pod.labels.get("dag_id"), pod.labels.get("task_id")
    what = f" (dag {dag}, task {task})" if dag else ""
    return Finding(
        title=f"Task pod {pod.name} is stuck in {status}",
        message=(f"KubernetesExecutor task pod {pod.name}{what} has not got through init container {cs.name}: {detail}. "
                 "A few seconds in Init is normal; this is not. The task stays queued or fails."
                 + (f" The evidence points to: {cause}." if cause else "")),
        resource=k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(_summary(cause_key), _commands(ctx, pod, cs, cause_key)),
        caused_by=_gitsync_links(ctx, pod, cs, cause_key),
    )


def _gitsync_links(ctx: Context, pod: Pod, cs: ContainerStatus, cause_key: str | None) -> list[str]:
    """A git failure that the long-running components show too (same repository) is the cause:
    link to their ``gitsync-auth-failed`` findings (the runner drops the links that do not exist)."""
    if cause_key not in ("host-key", "ssh-auth", "https-auth", "not-found"):
        return []
    from ._gitsync import gitsync_finding_ids

    return gitsync_finding_ids(ctx, _repo(pod, cs))


def _cause(texts: list[str], reason) -> tuple[str | None, str | None]:
    blob = "\n".join(t for t in texts if t)
    for key, rx, text in CAUSES:
        if key.startswith("image") or key == "rate-limit":
            if reason not in PULL and "pull" not in blob.lower():
                continue
        if rx.search(blob):
            return key, text
    if reason in PULL:
        return "image", "the image cannot be pulled"
    return None, None


def _repo(pod: Pod, cs: ContainerStatus) -> str | None:
    for c in pod.init_containers:
        if c.get("name") == cs.name:
            for e in c.get("env") or []:
                if isinstance(e, dict) and e.get("name") in ("GITSYNC_REPO", "GIT_SYNC_REPO") and e.get("value"):
                    return str(e["value"])
    return None


def _host(repo: str | None) -> str:
    if not repo:
        return "github.com"
    m = re.match(r"^(?:ssh://)?(?:[^@/]+@)?([^:/]+)", repo.split("://", 1)[-1] if "://" in repo and not repo.startswith("ssh://") else repo)
    return m.group(1) if m else "github.com"


def _summary(key: str | None) -> str:
    return {
        "host-key": "Give git-sync the git server's host key (dags.gitSync.knownHosts) and restart the failed tasks.",
        "ssh-auth": "Store the deploy key in a Secret with key gitSshKey, authorize it on the repository, point "
                    "dags.gitSync.sshKeySecret at it.",
        "https-auth": "Fix the credentials Secret (GITSYNC_USERNAME / GITSYNC_PASSWORD for git-sync v4).",
        "not-found": "Fix dags.gitSync.repo / dags.gitSync.ref (or branch) to an existing repository and branch.",
        "egress": "Give the nodes a route to the git server (Cloud NAT for private nodes) or mirror the repository.",
        "secret": "Create the missing Secret (or fix its name/key in the values), then let the tasks retry.",
        "image-403": "Grant the node service account roles/artifactregistry.reader on the repository.",
        "image-missing": "Use an image and tag that exist.",
        "rate-limit": "Pull from a mirror (Artifact Registry remote repository) or authenticate pulls.",
        "image": "Fix the init container's image reference or registry access.",
    }.get(key or "", "Read the init container's log and events below, fix the cause, and let the tasks retry; "
                     "avoid a per-pod git clone by baking DAGs into the image or a shared DAG volume.")


def _commands(ctx: Context, pod: Pod, cs: ContainerStatus, key: str | None) -> list[str]:
    n = q(ns(ctx))
    cmds = [f"kubectl logs {q(pod.name)} --namespace {n} --container {q(cs.name)}",
            f"kubectl describe pod {q(pod.name)} --namespace {n}"]
    repo = _repo(pod, cs)
    host = _host(repo)
    if key == "host-key":
        cmds += [f"ssh-keyscan {q(host)} > known_hosts",
                 helm_upgrade(ctx, "--set-file dags.gitSync.knownHosts=known_hosts")]
    elif key == "ssh-auth":
        cmds += [f"kubectl create secret generic airflow-git-ssh --namespace {n} --from-file=gitSshKey=$HOME/.ssh/airflow_deploy_key",
                 helm_upgrade(ctx, "--set dags.gitSync.sshKeySecret=airflow-git-ssh")]
    elif key == "https-auth":
        cmds += [f"kubectl create secret generic airflow-git-credentials --namespace {n} "
                 "--from-literal=GITSYNC_USERNAME=<user> --from-literal=GITSYNC_PASSWORD=<token>",
                 helm_upgrade(ctx, "--set dags.gitSync.credentialsSecret=airflow-git-credentials")]
    elif key == "egress":
        cmds += ["gcloud compute routers create airflow-nat-router --network <network> --region <region>",
                 "gcloud compute routers nats create airflow-nat --router airflow-nat-router --region <region> "
                 "--auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges"]
    elif key == "secret":
        cmds += [f"kubectl get secrets --namespace {n}"]
    return cmds
