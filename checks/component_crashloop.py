"""Airflow components (scheduler, api-server/webserver, triggerer, dag-processor, Celery workers)
in CrashLoopBackOff, restarting again and again, or unable to start their containers; with the
termination reason, the last log lines of the crashed instance, and a link to the finding that
explains it when another check has one."""
from __future__ import annotations

import re
from datetime import timedelta

from airflow_gke.views import container_spec, ContainerStatus, Context, env_source, human_age, owner_of, Pod
from airflow_gke.model import Finding, Remediation, Resource, Result, finding_id, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (CHART_KEY, clip, doubled_memory, grep, helm_upgrade, k8s_resource, ns, q,
                                     quote_event, release, resources_text, telling_lines)

from ._runtime import CANNOT_START, component_pods, finished_at, recent
from ._storage import logs_denied_ids

RESTARTS = 3                        # restarts within WINDOW that make a restart loop
WINDOW = timedelta(hours=1)
START_GRACE = timedelta(minutes=2)  # a missing Secret may still be on its way (External Secrets, a hook)

_SECRET_MISSING = re.compile(r'secret "([^"]+)" not found|couldn\'t find key (\S+) in Secret [^/\s]+/([\w.-]+)')
CAUSES: list[tuple[str, re.Pattern]] = [
    ("db", re.compile(r"(?i)(psycopg2?\.OperationalError|could not connect to server|connection to server at .* "
                      r"failed|password authentication failed|could not translate host name|too many clients already|"
                      r"sqlalchemy\.exc\.OperationalError)")),
    ("migrations", re.compile(r"(?i)(you need to (migrate|initialize) the database|unapplied migrations|"
                              r"run `?airflow db (migrate|upgrade))")),
    ("jwt", re.compile(r"(?i)api_auth/jwt_secret must be set")),
    ("rbac", re.compile(r'(?i)(pods is forbidden|cannot (create|list|watch|patch|delete|get) resource "pods")')),
    ("version", re.compile(r"(?i)(invalid choice: '(webserver|api-server|dag-processor)'|"
                           r"airflow command error: argument GROUP_OR_COMMAND)")),
    ("fernet", re.compile(r"(cryptography\.fernet\.InvalidToken|\bInvalidToken\b)")),
    ("import", re.compile(r"(ModuleNotFoundError|ImportError): (.*)")),
    ("permission", re.compile(r"(PermissionError|\[Errno 13\]|Permission denied)")),
]
CAUSE_TEXT = {
    "liveness": "the kubelet kills it because its liveness probe fails (see liveness-probe-restarts)",
    "oom": "it exceeds its memory limit and is OOMKilled",
    "secret": "a Secret (or key) its environment references does not exist",
    "db": "it cannot reach or log in to the metadata database (see metadata-db-unreachable)",
    "migrations": "the metadata database is not migrated to this Airflow version (see migrations-not-run)",
    "jwt": "Airflow 3 has no [api_auth] jwt_secret (see jwt-secret-mismatch)",
    "rbac": "its service account may not manage pods (see executor-rbac-forbidden)",
    "version": "the image runs another Airflow major version than the chart rendered for (see image-version-skew)",
    "fernet": "the fernet key cannot decrypt stored secrets (see fernet-key-changed)",
    "import": "Python cannot import a module the DAGs, plugins or config need (missing from the image)",
    "permission": "it may not write a file or directory it needs (volume ownership, fsGroup, runAsUser)",
}


@check(id="component-crashloop", title="Airflow components run without crash-looping", severity="error",
       category=Category.RUNTIME, needs=("pods", "events"),
       uses=("logs", "externalsecrets", "externalsecrets_v1beta1", "configmaps"))
def run(ctx: Context) -> Result:
    """Scheduler, api-server/webserver, triggerer, dag-processor or workers crash-loop, keep restarting, or cannot start."""
    pods = component_pods(ctx)
    if not pods:
        return skipped("no Airflow component pod (scheduler, api-server/webserver, triggerer, dag-processor, "
                       "workers) in the namespace")
    findings: list[Finding] = []
    blocked: dict[tuple, list[tuple[Pod, ContainerStatus, str]]] = {}
    for p in pods:
        bad = [(cs, pr) for cs in p.init_statuses + p.container_statuses if (pr := _problem(ctx, p, cs))]
        crash = [(cs, pr) for cs, pr in bad if pr not in CANNOT_START]
        if crash:   # a pod that ran and crashes: its own finding
            findings.append(_inspect(ctx, p, crash))
        elif bad:   # never started: grouped by what keeps them from starting (one cause, one fix)
            cs, pr = bad[0]
            cause, detail = _cause(ctx, p, cs, pr, {}, [], [])
            blocked.setdefault((cause or pr, detail or (p.name if cause is None else "")), []).append((p, cs, pr))
    findings[:0] = [_cannot_start(ctx, key, group) for key, group in blocked.items()]
    return from_findings(findings)


def _cannot_start(ctx: Context, key: tuple, group: list[tuple[Pod, ContainerStatus, str]]) -> Finding:
    """Pods whose containers never ran (restartCount 0) for one reason: a missing Secret or key, a
    config error. Not a crash loop: nothing crashed, and the fix is the missing object, once."""
    cause, detail = key
    pod, cs, problem = group[0]
    comps = sorted({p.component or "pod" for p, _c, _pr in group})
    n = len(group)
    evidence = [_status_line(ctx, p, c, pr) for p, c, pr in group[:6]]
    if n > 6:
        evidence.append(f"and {n - 6} more pod(s) waiting the same way")
    state, fields = cs.state
    if fields.get("message"):
        evidence.append(f"{cs.name} state.waiting.message: {clip(str(fields['message']))}")
    events = [e for e in ctx.events_for("Pod", pod.name) if e.get("type") == "Warning"]
    for e in events[-2:]:
        evidence.append(quote_event(e))
    secret = cause == "secret"
    if secret:
        evidence.append(f"likely cause: {CAUSE_TEXT['secret']} ({detail})")
    caused_by = _links(ctx, pod, cs, "secret" if secret else None, detail if secret else None)
    summary, commands = _fix(ctx, pod, cs, "secret" if secret else None, detail if secret else None)
    what = f"Secret {detail} not found" if secret else f"{problem}"
    who = f"{n} {'pods' if n > 1 else 'pod'} ({', '.join(comps)})"
    return Finding(
        title=f"{who} cannot start: {what}",
        message=(f"The containers of {who} never started ({problem}, restartCount 0): "
                 + (f"{CAUSE_TEXT['secret']} ({detail})" if secret else f"{clip(str(fields.get('message') or problem), 200)}")
                 + ". Nothing crashed; they start by themselves once the cause is fixed. "
                 + " ".join(dict.fromkeys(_impact(c) for c in comps if _impact(c)))),
        resource=k8s_resource(ctx, "Secret", detail) if secret and detail else k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        caused_by=caused_by,
    )


def _problem(ctx: Context, pod: Pod, cs: ContainerStatus) -> str | None:
    """What is wrong with one container, or None."""
    if cs.name.startswith("git-sync") or "/git-sync" in cs.image:
        return None   # git-sync containers: gitsync-auth-failed, gitsync-credentials-mismatch
    state, fields = cs.state
    reason = str(fields.get("reason") or "")
    if state == "waiting" and reason in CANNOT_START:
        age = ctx.age(pod.created)
        return reason if age is not None and age >= START_GRACE else None
    if cs.init:
        return None   # init containers that crash: migrations-not-run, git-sync checks
    if state == "waiting" and reason == "CrashLoopBackOff":
        return "CrashLoopBackOff"
    last_end = finished_at(cs.last_terminated)
    if cs.restarts >= RESTARTS and recent(ctx, last_end, WINDOW):
        return "restarting"
    if state == "terminated" and fields.get("exitCode") not in (0, None) and cs.restarts >= 1:
        return "terminated"
    return None


def _inspect(ctx: Context, pod: Pod, bad: list[tuple[ContainerStatus, str]]) -> Finding:
    cs, problem = bad[0]
    comp = pod.component or "pod"
    state, fields = cs.state
    last = cs.last_terminated
    term = fields if state == "terminated" else last
    evidence = [_status_line(ctx, pod, cs, problem)]
    for other, p in bad[1:3]:
        evidence.append(_status_line(ctx, pod, other, p))
    if term:
        msg = str(term.get("message") or "").strip()
        evidence.append(f"{cs.name} {'state' if term is fields else 'lastState'}.terminated: exitCode "
                        f"{term.get('exitCode')}, reason {term.get('reason')}, finished "
                        f"{human_age(ctx.age(finished_at(term)))} ago" + (f", message: {clip(msg, 300)}" if msg else ""))
    if state == "waiting" and fields.get("message"):
        evidence.append(f"{cs.name} state.waiting.message: {clip(str(fields['message']))}")
    events = [e for e in ctx.events_for("Pod", pod.name) if e.get("type") == "Warning"]
    for e in events[-3:]:
        evidence.append(quote_event(e))
    lines = ctx.log_history(pod, cs.name) if problem not in CANNOT_START else []
    for which, ln in telling_lines(lines, 6):
        evidence.append(f"{which} {cs.name}: {clip(ln)}")
    cause, detail = _cause(ctx, pod, cs, problem, term, lines, ctx.events_for("Pod", pod.name))
    caused_by = _links(ctx, pod, cs, cause, detail)
    if cause:
        evidence.append(f"likely cause: {CAUSE_TEXT[cause]}" + (f" ({detail})" if detail else ""))
    summary, commands = _fix(ctx, pod, cs, cause, detail)
    what = {"CrashLoopBackOff": "is crash-looping", "restarting": f"restarted {cs.restarts} times",
            "terminated": "crashed and is restarting"}.get(problem, f"cannot start ({problem})")
    short = _short_reason(term, cause, detail, fields)
    plural = {"CrashLoopBackOff": "are crash-looping", "restarting": "keep restarting",
              "terminated": "crashed and are restarting"}.get(problem, f"cannot start ({problem})")
    return Finding(
        title=f"{comp} pod {pod.name} {what}" + (f": {short}" if short else ""),
        message=(f"Container {cs.name} of the {comp} pod {pod.name} {what}"
                 + (f"; {CAUSE_TEXT[cause]}" if cause else "") + ". "
                 + _impact(comp)),
        resource=k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        caused_by=caused_by,
        group_title="{n} Airflow pods " + plural + (f": {short}" if short else ""),
        group_message=("{n} Airflow pods " + plural + (f"; {CAUSE_TEXT[cause]}" if cause else "")
                       + ". Each component is down while its pod is (see the resources)."),
    )


def _status_line(ctx: Context, pod: Pod, cs: ContainerStatus, problem: str) -> str:
    state, fields = cs.state
    kind = "init container" if cs.init else "container"
    reason = f" ({fields.get('reason')})" if fields.get("reason") else ""
    return (f"Pod {pod.name} ({pod.component}): {kind} {cs.name} {state}{reason}, restartCount {cs.restarts}, "
            f"ready {str(cs.ready).lower()}; pod phase {pod.phase}, age {human_age(ctx.age(pod.created))}")


def _impact(comp: str) -> str:
    return {
        "scheduler": "While it is down no task is scheduled or queued, and task pods are not launched.",
        "api-server": "While it is down the UI and REST API fail, and Airflow 3 tasks cannot report to the Execution API.",
        "webserver": "While it is down the UI and REST API are unavailable.",
        "triggerer": "While it is down deferred tasks (sensors in deferrable mode) never resume.",
        "dag-processor": "While it is down DAG files are not parsed: new or changed DAGs do not appear.",
        "worker": "Tasks running on it are lost (Airflow reports them as killed externally) and queued tasks wait.",
    }.get(comp, "")


def _cause(ctx: Context, pod: Pod, cs: ContainerStatus, problem: str, term: dict, lines, events
           ) -> tuple[str | None, str | None]:
    if problem in CANNOT_START:
        msg = str(cs.state[1].get("message") or "")
        m = _SECRET_MISSING.search(msg)
        if m:
            return "secret", m.group(1) or m.group(3)
        return None, None
    for e in events:
        if e.get("reason") == "Killing" and "liveness probe" in str(e.get("message", "")).lower() and \
                cs.name in (str(e.get("message", "")) + str((e.get("involvedObject") or {}).get("fieldPath", ""))):
            return "liveness", None
    if str(term.get("reason") or "") == "OOMKilled":
        limit = (container_spec(pod, cs.name).get("resources") or {}).get("limits", {}).get("memory")
        return "oom", f"memory limit {limit or 'none'}"
    for key, rx in CAUSES:
        hits = grep(lines, rx)
        if hits:
            m = rx.search(hits[-1][1])
            detail = m.group(0) if m else None
            return key, clip(detail, 160) if detail else None
    return None, None


def _short_reason(term: dict, cause: str | None, detail: str | None, fields: dict) -> str:
    if cause == "secret":
        return f"Secret {detail} not found"
    if term:
        base = f"exit code {term.get('exitCode')} ({term.get('reason')})"
        if cause in ("import", "db", "jwt", "rbac", "version", "fernet", "migrations") and detail:
            return f"{base}, {detail}"
        if cause == "liveness":
            return f"{base}, killed by its liveness probe"
        return base
    return str(fields.get("reason") or "")


def _links(ctx: Context, pod: Pod, cs: ContainerStatus, cause: str | None, detail: str | None) -> list[str]:
    n = ctx.target.namespace
    main = container_spec(pod, cs.name, cs.init) or pod.main_container
    out: list[str] = []
    if cause == "liveness":
        out.append(finding_id("liveness-probe-restarts", k8s_resource(ctx, "Pod", pod.name)))
    elif cause == "oom" and pod.component == "worker":
        out.append(finding_id("task-pod-oomkilled", k8s_resource(ctx, "Pod", pod.name)))
    elif cause == "secret" and detail:
        for es in _external_secrets_for(ctx, detail):
            out.append(finding_id("external-secret-not-synced", Resource("ExternalSecret", es, n)))
    elif cause == "db":
        src = env_source(main, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        secret = src[1] if src and src[0] == "secret" else None
        if secret:
            out.append(finding_id("metadata-db-unreachable", k8s_resource(ctx, "Secret", secret)))
    elif cause == "migrations":
        out.append(finding_id("migrations-not-run", k8s_resource(ctx, "Job", f"{release(ctx)}-run-airflow-migrations")))
    elif cause in ("jwt", "version"):
        out.append(finding_id("jwt-secret-mismatch" if cause == "jwt" else "image-version-skew",
                              Resource("HelmRelease", release(ctx), n)))
    elif cause == "permission":
        out += logs_denied_ids(ctx, pod)
    elif cause == "rbac":
        out.append(finding_id("executor-rbac-forbidden", k8s_resource(ctx, "ServiceAccount", pod.service_account)))
    elif cause == "fernet":
        src = env_source(main, "AIRFLOW__CORE__FERNET_KEY")
        if src and src[0] == "secret" and src[1]:
            out.append(finding_id("fernet-key-changed", k8s_resource(ctx, "Secret", src[1])))
    return out


def _external_secrets_for(ctx: Context, secret: str) -> list[str]:
    """ExternalSecrets whose target is ``secret`` (by default an ExternalSecret's target has its name)."""
    names: list[str] = []
    for key in ("externalsecrets", "externalsecrets_v1beta1"):
        e = ctx.entry(key)
        if e is None or not e.ok or not isinstance(e.data, dict):
            continue
        for es in e.data.get("items") or []:
            if not isinstance(es, dict):
                continue
            name = str((es.get("metadata") or {}).get("name") or "")
            target = ((es.get("spec") or {}).get("target") or {}).get("name") or name
            if target == secret and name not in names:
                names.append(name)
    return names or [secret]


def _fix(ctx: Context, pod: Pod, cs: ContainerStatus, cause: str | None, detail: str | None
         ) -> tuple[str, list[str]]:
    n = q(ns(ctx))
    comp = pod.component or ""
    key = CHART_KEY.get(comp, comp)
    logs = f"kubectl logs {q(pod.name)} --namespace {n} --container {q(cs.name)} --previous"
    describe = f"kubectl describe pod {q(pod.name)} --namespace {n}"
    ctrl = owner_of(pod)
    restart = f"kubectl rollout restart {ctrl[0].lower()} {q(ctrl[1])} --namespace {n}" \
        if ctrl and ctrl[0] in ("Deployment", "StatefulSet") else f"kubectl delete pod {q(pod.name)} --namespace {n}"
    spec = container_spec(pod, cs.name, cs.init)
    if cause == "oom":
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        new = doubled_memory(limit)
        return (f"Give the {comp} more memory (its limit is {limit or 'unset'}; {resources_text(spec)}), or reduce what "
                "it loads (parsing processes, worker concurrency).",
                [helm_upgrade(ctx, f"--set {key}.resources.limits.memory={new}",
                              f"--set {key}.resources.requests.memory={new}"), describe])
    if cause == "liveness":
        return ("The container is healthy enough to start but fails its liveness probe under load: give the probe "
                "more time and the container more CPU (see the liveness-probe-restarts finding), then read the previous "
                "log for the stall.",
                [helm_upgrade(ctx, f"--set {key}.livenessProbe.timeoutSeconds=60",
                              f"--set {key}.livenessProbe.failureThreshold=10"), logs])
    if cause == "secret":
        es = _external_secrets_for(ctx, detail or "")
        return (f"Create Secret {detail} (or fix the name/key the values reference); when External Secrets manages it, "
                "fix the ExternalSecret so it syncs (see external-secret-not-synced). The pod starts by itself once the "
                "Secret exists.",
                [f"kubectl get secret {q(detail or '')} --namespace {n}",
                 f"kubectl describe externalsecret {q(es[0])} --namespace {n}", describe])
    if cause == "import":
        mod = re.search(r"No module named '([\w.]+)'", detail or "")
        image = str(spec.get("image") or pod.main_container.get("image") or "<image>")
        cmds = [logs]
        if mod:
            cmds.append(f"kubectl run import-check --rm -i --restart=Never --namespace {n} --image={q(image)} "
                        f"--command -- python -c {q('import ' + mod.group(1))}")
        return ("Add the missing package to the image (extend apache/airflow and pip install it, pinned with the "
                "Airflow constraints file), or remove the import from plugins/airflow_local_settings, then roll the "
                "component.", cmds + [restart])
    if cause == "permission":
        return ("Let the airflow user (uid 50000, gid 0) write the path in the error: keep the chart's securityContext "
                "(runAsUser 50000, fsGroup 0), or fix the ownership of the volume.", [logs, describe])
    if cause in ("db", "migrations", "jwt", "rbac", "version", "fernet"):
        return (f"Fix the cause named in the linked finding ({CAUSE_TEXT[cause]}); the container recovers on its next "
                "restart, or roll it.", [logs, restart])
    return ("Read the crashed instance's log (the lines above are its end) and the pod's events, fix the cause, then "
            "roll the component.", [logs, describe, restart])
