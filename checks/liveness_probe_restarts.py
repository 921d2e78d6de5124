"""Airflow containers restarted by the kubelet because their liveness probe failed (``Unhealthy``
``Liveness probe failed`` and ``Killing`` ``failed liveness probe, will be restarted`` events),
rather than because the process crashed.

Severity: a warning when the container was killed once or twice and is running again (a probe
budget that is too tight under a slow start or a burst of load: the component heals itself, but
each kill interrupts scheduling or running triggers); an error when the kills repeat (three or
more in the events' retention, about an hour) or the container is now in CrashLoopBackOff or not
ready, because then the component is effectively down."""
from __future__ import annotations

import re

from airflow_gke.views import as_dict, container_spec, ContainerStatus, Context, human_age, Pod
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (CHART_KEY, clip, helm_upgrade, k8s_resource, ns, q, quote_event, resources_text,
                                     telling_lines, workload_resource)

from ._runtime import component_pods, finished_at

_KILL = re.compile(r"(?i)failed liveness probe")
_UNHEALTHY = re.compile(r"(?i)^liveness probe (failed|errored)")
_TIMEOUT = re.compile(r"(?i)(timed out|timeout|context deadline exceeded)")
_NO_JOB = re.compile(r"(?i)no alive jobs found")
_REFUSED = re.compile(r"(?i)(connection refused|statuscode: 5\d\d)")
_NOT_FOUND = re.compile(r"(?i)statuscode: 404")
ERROR_KILLS = 3


@check(id="liveness-probe-restarts", title="Airflow containers are not restarted by their liveness probes",
       severity="warning", category=Category.RUNTIME, needs=("pods", "events"), uses=("logs",),
       severity_note="error when the kills repeat")
def run(ctx: Context) -> Result:
    """Containers restarted because their liveness probe failed (Unhealthy/Killing events), not because they crashed."""
    pods = component_pods(ctx)
    if not pods:
        return skipped("no Airflow component pod in the namespace")
    findings = []
    for pod in pods:
        for cs in pod.container_statuses:
            f = _inspect(ctx, pod, cs)
            if f is not None:
                findings.append(f)
                break   # one finding per pod: the first container the probe kills
    return from_findings(findings)


def _for_container(events: list[dict], name: str) -> list[dict]:
    out = []
    for e in events:
        fp = str(as_dict(e.get("involvedObject")).get("fieldPath") or "")
        if fp.endswith("{" + name + "}") or (not fp and f"container {name} " in str(e.get("message", "")).lower()):
            out.append(e)
    return out


def _count(e: dict) -> int:
    c = e.get("count") or as_dict(e.get("series")).get("count") or 1
    return c if isinstance(c, int) else 1


def _inspect(ctx: Context, pod: Pod, cs: ContainerStatus) -> Finding | None:
    if cs.restarts < 1:
        return None
    events = _for_container(ctx.events_for("Pod", pod.name), cs.name)
    kills = [e for e in events if e.get("reason") == "Killing" and _KILL.search(str(e.get("message", "")))]
    unhealthy = [e for e in events if e.get("reason") == "Unhealthy" and _UNHEALTHY.search(str(e.get("message", "")))]
    if not kills:
        return None
    n_kills = min(sum(_count(e) for e in kills), cs.restarts)
    state, fields = cs.state
    looping = state == "waiting" and fields.get("reason") == "CrashLoopBackOff"
    down = looping or not cs.ready
    severity = "error" if (n_kills >= ERROR_KILLS or down) else "warning"
    comp = pod.component or "pod"
    spec = container_spec(pod, cs.name)
    probe = as_dict(spec.get("livenessProbe"))
    evidence = [f"Pod {pod.name} ({comp}): container {cs.name} restartCount {cs.restarts}, {n_kills} restart(s) "
                f"by the liveness probe in the recorded events; now {state}"
                + (f" ({fields.get('reason')})" if fields.get("reason") else "") + f", ready {str(cs.ready).lower()}"]
    last = cs.last_terminated
    if last:
        evidence.append(f"{cs.name} lastState.terminated: exitCode {last.get('exitCode')}, reason {last.get('reason')}, "
                        f"finished {human_age(ctx.age(finished_at(last)))} ago")
    for e in (unhealthy[-2:] + kills[-1:]):
        evidence.append(quote_event(e))
    evidence.append(f"{cs.name} livenessProbe: {_probe_text(probe)}")
    if spec.get("startupProbe"):
        evidence.append(f"{cs.name} startupProbe: {_probe_text(as_dict(spec.get('startupProbe')))}")
    evidence.append(f"{cs.name} resources: {resources_text(spec)}")
    for which, ln in telling_lines(ctx.log_history(pod, cs.name), 3):
        evidence.append(f"{which} {cs.name}: {clip(ln)}")
    outputs = " ".join(str(e.get("message", "")) for e in unhealthy)
    caused_by = []
    if _NOT_FOUND.search(outputs):
        why = ("the probe's path answers 404: the server does not serve it there (a base_url path the probe does not "
               "carry, see ui-base-url-path-mismatch)")
        caused_by.append(finding_id("ui-base-url-path-mismatch", workload_resource(ctx, pod)))
    elif _NO_JOB.search(outputs):
        why = (f"the probe ran and found no recent {comp} heartbeat in the metadata database: the {comp} loop stalls "
               "(slow database, blocking DAG parsing or callbacks) rather than the probe being slow")
    elif (_TIMEOUT.search(outputs) or outputs.strip().endswith("failed:")) and "exec" in probe:
        why = ("the probe command did not finish within its timeout: `airflow jobs check` starts a Python interpreter "
               "and connects to the database, which takes longer than the timeout on a CPU-starved or busy container")
    elif _TIMEOUT.search(outputs):
        why = ("the HTTP endpoint did not answer within the probe timeout: the server's workers were busy, blocked or "
               "timing out (gunicorn WORKER TIMEOUT, memory pressure)")
    elif _REFUSED.search(outputs):
        why = "the HTTP endpoint did not answer (server busy, workers timing out, or still starting)"
    else:
        why = "the probe kept failing past its failure threshold"
    prev = " ".join(ln for _w, ln in ctx.log_history(pod, cs.name))
    if re.search(r"(?i)async thread was blocked|event loop.*blocked", prev):
        why += "; the previous log shows a trigger blocking the triggerer's event loop"
    evidence.append(f"likely cause: {why}")
    key = CHART_KEY.get(comp, comp)
    sets = [f"--set {key}.livenessProbe.timeoutSeconds=60", f"--set {key}.livenessProbe.failureThreshold=10"]
    req_cpu = as_dict(as_dict(spec.get("resources")).get("requests")).get("cpu")
    if not req_cpu or str(req_cpu).endswith("m") and int(str(req_cpu)[:-1] or 0) < 1000:
        sets.append(f"--set {key}.resources.requests.cpu=1")
    cmds = [] if caused_by else [helm_upgrade(ctx, *sets)]
    if comp in ("api-server", "webserver") and not caused_by:
        cmds.append(helm_upgrade(ctx, f"--set {key}.startupProbe.failureThreshold=30",
                                 f"--set {key}.startupProbe.periodSeconds=10"))
    cmds += [f"kubectl logs {q(pod.name)} --namespace {q(ns(ctx))} --container {q(cs.name)} --previous",
             f"kubectl get events --namespace {q(ns(ctx))} --field-selector involvedObject.name={pod.name}"]
    return Finding(
        title=f"{comp} container {cs.name} in {pod.name} was restarted {n_kills} time(s) by its liveness probe",
        message=(f"The kubelet killed container {cs.name} of the {comp} pod {pod.name} because its liveness probe failed "
                 f"({why}); the process itself did not crash. "
                 + (f"The kills repeat ({n_kills} recorded, or the container is not running): the component keeps "
                    "losing its work and may be down." if severity == "error" else
                    "It runs again now, but every kill interrupts its work.")),
        resource=k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(
            ("Make the probe ask a path the server serves (a longer budget does not help a 404): see "
             "ui-base-url-path-mismatch." if caused_by else
             f"Give the probe a realistic budget (timeout, failure threshold) and the {comp} enough CPU for it; if the "
             "heartbeat really stalls, look at the database latency and the previous log for what blocks the loop."),
            cmds),
        severity=severity,
        caused_by=caused_by,
    )


def _probe_text(p: dict) -> str:
    if not p:
        return "none"
    if "exec" in p:
        how = "exec " + " ".join(str(x) for x in as_dict(p["exec"]).get("command") or [])
        how = re.sub(r"\s+", " ", how).strip()
    elif "httpGet" in p:
        g = as_dict(p["httpGet"])
        how = f"httpGet {g.get('path', '/')} port {g.get('port')}"
    elif "tcpSocket" in p:
        how = f"tcpSocket port {as_dict(p['tcpSocket']).get('port')}"
    else:
        how = "probe"
    return (f"{clip(how, 160)}; initialDelaySeconds {p.get('initialDelaySeconds', 0)}, periodSeconds "
            f"{p.get('periodSeconds', 10)}, timeoutSeconds {p.get('timeoutSeconds', 1)}, failureThreshold "
            f"{p.get('failureThreshold', 3)}")
