"""The health floor: every chart component the release defines (scheduler, api-server or webserver,
dag-processor, triggerer, Celery workers, PgBouncer, Redis, statsd, the bundled PostgreSQL, the
migration and create-user Jobs) runs with its desired number of ready pods. A pod not ready beyond
a grace period is an ERROR naming the component, why in Kubernetes' own terms, since when and the
evidence, whatever the cause: a cause no specific check knows must never give an all-green report.

A specific finding that explains the same pods takes precedence: the runner folds this check's
finding under it as a symptom (doctor/fold.py), so a known failure prints once. Init containers
are judged here (and by the specific init checks: migrations-not-run, the git-sync checks);
``component-crashloop`` judges the application containers."""
from __future__ import annotations

import re
from datetime import timedelta

from airflow_gke.views import Context, Obj, Pod, as_dict, as_list, human_age, parse_time
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed
from airflow_gke.registry import Category, check
from airflow_gke.remediation import k8s_resource, ns, q, quote_event, release
from ._floor import GRACE, ROLLOUT_GRACE, Why, clip, clip_middle, log_tail, next_steps, readable, why

# The chart's components by their ``component`` label (tier=airflow), in the order a reader thinks
# of them; the bundled PostgreSQL (Bitnami subchart) is found by its app.kubernetes.io labels.
ORDER = ("scheduler", "api-server", "webserver", "dag-processor", "triggerer", "worker", "pgbouncer", "redis",
         "statsd", "postgresql", "run-airflow-migrations", "create-user")
IMPACT = {
    "scheduler": "No task is scheduled or queued while it is down, and task pods are not launched.",
    "api-server": "The UI and REST API fail while it is down, and Airflow 3 tasks cannot report to the Execution API.",
    "webserver": "The UI and REST API are unavailable while it is down.",
    "dag-processor": "DAG files are not parsed while it is down: new or changed DAGs do not appear.",
    "triggerer": "Deferred tasks (deferrable sensors and operators) never resume while it is down.",
    "worker": "Celery tasks wait in the queue while the workers are down.",
    "pgbouncer": "Components that connect through PgBouncer cannot reach the metadata database.",
    "redis": "The Celery broker is down: no task reaches a worker.",
    "statsd": "Airflow metrics are lost while it is down (Airflow itself keeps running).",
    "postgresql": "The bundled metadata database is down: every Airflow component fails.",
    "run-airflow-migrations": "Components wait in wait-for-airflow-migrations until the database is migrated.",
    "create-user": "The admin user is not created: nobody can log in to a fresh install.",
}


@check(id="component-not-ready", title="Every chart component has its desired number of ready pods",
       severity="error", category=Category.RUNTIME, needs=("pods", "deployments", "statefulsets"),
       uses=("jobs", "events", "logs"), floor=True,
       severity_note="warning when a stuck rollout leaves the previous version serving")
def run(ctx: Context) -> Result:
    """A chart component (Deployment, StatefulSet or Job of the release) has pods not ready beyond a grace period."""
    comps = components(ctx)
    if not comps:
        return passed()
    findings = []
    for comp, kind, ctrl in comps:
        f = _judge(ctx, comp, kind, ctrl)
        if f is not None:
            findings.append(f)
    return from_findings(findings)


def component_of(ctx: Context, o: Obj) -> str | None:
    """The chart component a controller runs, or None when it is not the release's."""
    rel = ctx.release
    lab = o.labels
    if lab.get("tier") == "airflow" and lab.get("component"):
        if rel is None or lab.get("release") == rel:
            c = lab["component"]
            return "create-user" if c == "create-user-job" else c
        return None
    if lab.get("app.kubernetes.io/name") == "postgresql" and rel and lab.get("app.kubernetes.io/instance") == rel:
        return "postgresql"
    return None


def components(ctx: Context) -> list[tuple[str, str, Obj]]:
    """(component, controller kind, controller) of the release, in ORDER."""
    out = []
    for kind, coll in (("Deployment", ctx.deployments), ("StatefulSet", ctx.statefulsets),
                       ("Job", _jobs(ctx))):
        for o in coll.values():
            c = component_of(ctx, o)
            if c is not None:
                out.append((c, kind, o))
    return sorted(out, key=lambda t: (ORDER.index(t[0]) if t[0] in ORDER else len(ORDER), t[0], t[2].name))


def _jobs(ctx: Context) -> dict[str, Obj]:
    e = ctx.entry("jobs")
    return ctx.jobs if e is not None and e.ok else {}


def pods_of(ctx: Context, kind: str, ctrl: Obj) -> list[Pod]:
    """The controller's pods (a Deployment's through its ReplicaSets: ``<name>-<pod-template-hash>``)."""
    if kind == "Deployment":   # its ReplicaSets are <name>-<pod-template-hash> (the hash has no dash)
        prefix = f"ReplicaSet/{ctrl.name}-"
        return [p for key, ps in ctx.pods_by_owner.items() if key.startswith(prefix) and "-" not in key[len(prefix):]
                for p in ps if not p.is_task_pod]
    return [p for p in ctx.pods_by_owner.get(f"{kind}/{ctrl.name}", []) if not p.is_task_pod]


def _desired(kind: str, ctrl: Obj) -> int:
    if kind == "Job":
        c = ctrl.spec.get("completions")
        return c if isinstance(c, int) else 1
    r = ctrl.spec.get("replicas")
    return r if isinstance(r, int) else 1


def _ready(kind: str, ctrl: Obj) -> int:
    v = ctrl.status.get("succeeded" if kind == "Job" else "readyReplicas")
    return v if isinstance(v, int) else 0


def _conditions(o: Obj) -> dict[str, dict]:
    return {str(c.get("type")): c for c in as_list(o.status.get("conditions")) if isinstance(c, dict)}


def rolling_out(kind: str, ctrl: Obj) -> bool:
    """The controller is rolling out a new version and has not given up (progress deadline)."""
    if kind == "Deployment":
        prog = _conditions(ctrl).get("Progressing", {})
        if prog.get("reason") == "ProgressDeadlineExceeded":
            return False
        gen, seen = ctrl.metadata.get("generation"), ctrl.status.get("observedGeneration")
        updated = ctrl.status.get("updatedReplicas")
        return (isinstance(gen, int) and isinstance(seen, int) and seen < gen) or \
            (isinstance(updated, int) and updated < _desired(kind, ctrl)) or \
            (prog.get("status") == "True" and prog.get("reason") in ("ReplicaSetUpdated", "NewReplicaSetCreated"))
    if kind == "StatefulSet":
        cur, upd = ctrl.status.get("currentRevision"), ctrl.status.get("updateRevision")
        return bool(cur and upd and cur != upd)
    return False


def _grace(ctx: Context, kind: str, ctrl: Obj) -> timedelta:
    if not rolling_out(kind, ctrl):
        return GRACE
    pds = ctrl.spec.get("progressDeadlineSeconds")
    return max(GRACE, timedelta(seconds=pds) if isinstance(pds, int) else ROLLOUT_GRACE)


def _judge(ctx: Context, comp: str, kind: str, ctrl: Obj) -> Finding | None:
    desired = _desired(kind, ctrl)
    if kind == "Job":
        conds = _conditions(ctrl)
        if conds.get("Complete", {}).get("status") == "True" or _ready(kind, ctrl) >= desired:
            return None
    elif desired == 0:
        return None
    pods = pods_of(ctx, kind, ctrl)
    grace = _grace(ctx, kind, ctrl)
    down: list[Why] = []
    for p in pods:
        if kind != "Job" and p.phase == "Failed":
            continue   # an evicted/failed pod of a Deployment is replaced: judge the replacement
        w = why(ctx, p)
        if w is None:
            continue
        age = ctx.age(w.since)
        started = ctx.age(p.started)
        if age is None or age < grace or (started is not None and started < grace and w.kind != "terminating"):
            continue
        down.append(w)
    ready = sum(1 for p in pods if p.phase != "Failed" and why(ctx, p) is None and p.phase != "Succeeded")
    if kind == "Job":
        failed = _conditions(ctrl).get("Failed", {})
        if failed.get("status") == "True":
            return _job_failed(ctx, comp, ctrl, pods, failed)
    if not down:
        if kind != "Job" and not pods and desired > 0:
            return _no_pods(ctx, comp, kind, ctrl, desired, grace)
        return None
    return _finding(ctx, comp, kind, ctrl, desired, ready, down)


def _headline(ctx: Context, w: Why) -> str:
    detail = w.last_log and f"last log: {clip(w.last_log, 150)}" or w.event and clip_middle(w.event, 170)
    return f"{w.reason} for {w.duration(ctx)}" + (f" ({detail})" if detail else "")


def _finding(ctx: Context, comp: str, kind: str, ctrl: Obj, desired: int, ready: int, down: list[Why]) -> Finding:
    first = down[0]
    serving = kind != "Job" and ready >= desired
    more = f" (and {len(down) - 1} more pod{'s' if len(down) > 2 else ''})" if len(down) > 1 else ""
    if kind == "Job":
        title = f"{comp} Job {ctrl.name} has not completed: pod {first.pod.name} {_headline(ctx, first)}"
    elif serving:
        title = (f"{comp} rollout is stuck: new pod {first.pod.name} {_headline(ctx, first)}; "
                 f"the previous pod{'s' if ready > 1 else ''} still serve{'' if ready > 1 else 's'}")
    elif ready == 0:
        title = f"{comp} is not running: {_headline(ctx, first)}{more}"
    else:
        title = f"{comp}: {desired - ready} of {desired} pods not ready: {_headline(ctx, first)}{more}"
    counts = _counts(kind, ctrl, desired)
    evidence = [counts]
    for w in down[:3]:
        evidence += w.evidence
    if len(down) > 3:
        evidence.append(f"{len(down) - 3} more not-ready pods: {', '.join(w.pod.name for w in down[3:8])}")
    names = ", ".join(w.pod.name for w in down)
    message = (f"{kind} {ctrl.name} ({comp}) wants {desired} ready pod{'s' if desired != 1 else ''} and has "
               f"{ready}; not ready beyond the grace period: {names}. Kubernetes says: {first.reason}, for "
               f"{first.duration(ctx)}. " + ("The previous version still serves, so Airflow keeps running, but the "
                                             "new version never starts. " if serving else IMPACT.get(comp, "") + " ")
               + "The floor names what Kubernetes reports; the evidence and the commands show the cause.").strip()
    steps: list[str] = []
    for w in down[:2]:
        for c in next_steps(ctx, w):
            if c not in steps:
                steps.append(c)
    f = Finding(
        title=title,
        message=message,
        resource=k8s_resource(ctx, kind, ctrl.name),
        evidence=evidence,
        remediation=Remediation(
            f"Read why {first.pod.name} is not ready in its own words ({_what_to_read(first)}), fix that cause, "
            f"then let the {kind} replace the pod. Nothing here is a guess: these commands show the cause.",
            steps),
        subjects=[k8s_resource(ctx, "Pod", w.pod.name).ref for w in down],
    )
    if serving:
        f.severity = "warning"
    return f


def _what_to_read(w: Why) -> str:
    return {
        "crashloop": f"the previous log of {w.container}",
        "failed": f"the log of {w.container}",
        "terminated": f"the log of {w.container}",
        "pull": "the pull error in the pod's events",
        "config": "the container's waiting message",
        "mount": "the volume events",
        "unschedulable": "the scheduler's FailedScheduling event",
        "init-running": f"the log of {w.container}",
        "readiness": "the readiness probe events and the container log",
        "terminating": "the finalizers and the node",
    }.get(w.kind, "its events")


def _counts(kind: str, ctrl: Obj, desired: int) -> str:
    s = ctrl.status
    if kind == "Job":
        return (f"Job {ctrl.name}: completions {desired}, succeeded {s.get('succeeded', 0)}, active "
                f"{s.get('active', 0)}, failed {s.get('failed', 0)}")
    bits = [f"{kind} {ctrl.name}: {desired} desired", f"{s.get('readyReplicas', 0)} ready"]
    if "updatedReplicas" in s:
        bits.append(f"{s.get('updatedReplicas')} updated")
    if kind == "Deployment":
        bits.append(f"{s.get('unavailableReplicas', 0)} unavailable")
        prog = _conditions(ctrl).get("Progressing")
        if prog:
            bits.append(f"Progressing {prog.get('status')} ({prog.get('reason')})")
    return ", ".join(str(b) for b in bits)


def _job_failed(ctx: Context, comp: str, ctrl: Obj, pods: list[Pod], failed: dict) -> Finding:
    evidence = [_counts("Job", ctrl, _desired("Job", ctrl)),
                f"Job {ctrl.name} condition Failed: {failed.get('reason')}: {clip(failed.get('message') or '')}"]
    last = sorted(pods, key=lambda p: p.created.isoformat() if p.created else "")
    ws = [w for w in (why(ctx, p) for p in last[-1:]) if w is not None]
    if not ws:   # failed pods are Failed, not Succeeded: read the last one's container
        for p in last[-1:]:
            for cs in p.init_statuses + p.container_statuses:
                if cs.state[0] == "terminated" and cs.state[1].get("exitCode") not in (0, None):
                    evidence.append(f"Pod {p.name}: container {cs.name} terminated, exit code "
                                    f"{cs.state[1].get('exitCode')} ({cs.state[1].get('reason')})")
                    evidence += [f"{w} {cs.name}: {readable(ln)}" for w, ln in log_tail(ctx, p, cs.name)[0]]
                    break
    for w in ws:
        evidence += w.evidence
    evidence += [quote_event(e) for e in ctx.events_for("Job", ctrl.name) if e.get("type") == "Warning"][-2:]
    n = q(ns(ctx))
    pod = last[-1].name if last else None
    cmds = [f"kubectl describe job {q(ctrl.name)} --namespace {n}"]
    if pod:
        cmds.append(f"kubectl logs {q(pod)} --namespace {n} --all-containers")
    return Finding(
        title=f"{comp} Job {ctrl.name} failed ({failed.get('reason') or 'Failed'})",
        message=(f"Job {ctrl.name} ({comp}) failed: {clip(failed.get('message') or failed.get('reason') or '')}. "
                 + IMPACT.get(comp, "")).strip(),
        resource=k8s_resource(ctx, "Job", ctrl.name),
        evidence=evidence,
        remediation=Remediation("Read the failed pod's log and the Job's events, fix the cause, then run the Job "
                                "again (helm upgrade re-creates a hook Job).", cmds),
        subjects=[k8s_resource(ctx, "Pod", p.name).ref for p in last[-1:]],
    )


_RS = re.compile(r'ReplicaSet "([\w.-]+)"')


def _no_pods(ctx: Context, comp: str, kind: str, ctrl: Obj, desired: int, grace: timedelta) -> Finding | None:
    """A controller that wants pods and has none (quota, admission webhook, a missing service account)."""
    conds = _conditions(ctrl)
    since = None
    for c in conds.values():
        t = c.get("lastUpdateTime") or c.get("lastTransitionTime")
        since = t if isinstance(t, str) and (since is None or t > since) else since
    age = ctx.age(parse_time(since) if since else ctrl.created)
    if age is None or age < grace:
        return None
    evs = [e for e in ctx.events_for(kind, ctrl.name) if e.get("type") == "Warning"]
    for c in conds.values():
        m = _RS.search(str(c.get("message") or ""))
        if m:
            evs += [e for e in ctx.events_for("ReplicaSet", m.group(1)) if e.get("type") == "Warning"]
    n = q(ns(ctx))
    failure = conds.get("ReplicaFailure", {})   # the Deployment's own words: FailedCreate and why
    what = (failure.get("message") if failure.get("status") == "True" else None) or (
        evs[-1].get("message") if evs else None)
    extra = [f"{kind} {ctrl.name} condition ReplicaFailure ({failure.get('reason')}): {clip(failure.get('message'))}"] \
        if failure.get("status") == "True" else []
    return Finding(
        title=f"{comp} is not running: {kind} {ctrl.name} wants {desired} pod{'s' if desired != 1 else ''} and has none"
              + (f" ({clip(what, 160)})" if what else ""),
        message=(f"{kind} {ctrl.name} ({comp}) wants {desired} pod{'s' if desired != 1 else ''} but none exists "
                 f"(for {human_age(age)}): its pods are not even created. " + IMPACT.get(comp, "")).strip(),
        resource=k8s_resource(ctx, kind, ctrl.name),
        evidence=[_counts(kind, ctrl, desired)] + extra + [quote_event(e) for e in evs[-3:]],
        remediation=Remediation(f"Read why the {kind} cannot create its pods (FailedCreate events: quota, admission "
                                "webhook, service account), fix that cause.",
                                [f"kubectl describe {kind.lower()} {q(ctrl.name)} --namespace {n}",
                                 f"kubectl get events --namespace {n} --field-selector type=Warning "
                                 "--sort-by=.lastTimestamp"]),
    )
