"""GKE Autopilot rewrote the resources the chart asked for: its admission webhook records what it got
and what it set in the ``autopilot.gke.io/resource-adjustment`` annotation (``{"input": ...,
"output": ..., "modified": true}``) of the Deployments and StatefulSets it admitted (their pods come
from the rewritten template) and of bare pods (KubernetesExecutor task pods). Without pod bursting
Autopilot sets every limit equal to its request, so a container whose chart limit was above its
request runs with less memory, CPU or ephemeral storage than configured: it is OOMKilled, throttled
or evicted at the request.

Reported: a limit the chart set explicitly that Autopilot lowered, and a container without a chart
limit that was OOMKilled at the limit Autopilot gave it. Requests Autopilot only raised or defaulted
(minimums, CPU:memory ratio, 1Gi ephemeral storage) are not a failure and stay silent.

Severity: ``error`` when a container was OOMKilled at the lowered limit; ``warning`` otherwise."""
from __future__ import annotations

import re

from airflow_gke.views import Context, DataUnavailable, Obj, Pod, as_dict, dig, human_age, owner_of, quantity
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import CHART_KEY, cluster_name, doubled_memory, gke_flags, helm_upgrade, q, release, \
    release_resource

from ._autopilot import ANNOTATION, adjustment, containers
from ._runtime import finished_at

WARDEN = "autopilot.gke.io/warden-version"
RESOURCES = ("memory", "cpu", "ephemeral-storage")
BURSTING = (1, 30, 2, 1394000)     # GKE version from which Autopilot lets limits exceed requests
_SIDECARS = {"git-sync": "dags.gitSync", "git-sync-init": "dags.gitSync", "statsd": "statsd", "redis": "redis",
             "pgbouncer": "pgbouncer", "metrics-exporter": "pgbouncer.metricsExporterSidecar"}


@check(id="autopilot-resources-adjusted", title="Autopilot runs Airflow containers with the limits the chart set",
       severity="error", category=Category.RESOURCES, needs=("pods",),
       uses=("deployments", "statefulsets", "cluster", "configmaps"),
       severity_note="warning when no container was OOMKilled at a lowered limit")
def run(ctx: Context) -> Result:
    """Autopilot lowered limits the chart set (limits forced to requests), or OOMKilled a container at its default."""
    autopilot = ctx.has("cluster") and bool(dig(ctx.cluster, "autopilot", "enabled"))
    subjects = _annotated(ctx)
    if not subjects:
        if ctx.has("cluster") and not autopilot:
            return skipped("not an Autopilot cluster")
        return passed()
    cuts: list[dict] = []
    for where, obj, pods in subjects:
        cuts += _lowered(ctx, where, obj, pods)
    if not cuts:
        return passed()
    return from_findings([_finding(ctx, cuts)])


def _annotated(ctx: Context) -> list[tuple[str, Obj, list[Pod]]]:
    """(where, object carrying the annotation, pods that run with its output): the release's
    Deployments and StatefulSets, and bare Airflow pods (task pods)."""
    rel = ctx.release_or_given()
    workloads = []
    for kind_key, kind in (("deployments", "Deployment"), ("statefulsets", "StatefulSet")):
        try:
            coll = getattr(ctx, kind_key)
        except DataUnavailable:
            continue
        for w in coll.values():
            if ANNOTATION in w.annotations and w.labels.get("tier") == "airflow" and w.labels.get("release") in (None, rel):
                workloads.append((kind, w))
    by_owner: dict[tuple[str, str], list[Pod]] = {}
    if workloads:    # the pods of the annotated workloads (task pods have no owner: skipped cheaply)
        for p in ctx.pods:
            if p.metadata.get("ownerReferences"):
                o = owner_of(p)
                if o is not None:
                    by_owner.setdefault(o, []).append(p)
    out = [(f"{kind} {w.name}", w, by_owner.get((kind, w.name), [])) for kind, w in workloads]
    seen = {w.name for _w, w, _p in out}
    for p in ctx.pods:
        if ANNOTATION not in p.annotations or not ctx.is_airflow_pod(p):
            continue
        o = owner_of(p)
        if o is not None and o[1] in seen:
            continue     # its workload's annotation holds what the chart asked for
        out.append((f"{'task pod' if p.is_task_pod else 'Pod'} {p.name}", p, [p]))
    return out


def _lowered(ctx: Context, where: str, obj: Obj, pods: list[Pod]) -> list[dict]:
    doc = adjustment(obj)
    if doc is None:
        return []
    asked, got = containers(doc, "input"), containers(doc, "output")
    out = []
    for name, o in got.items():
        i = asked.get(name, {})
        in_lim, out_lim = as_dict(i.get("limits")), as_dict(o.get("limits"))
        in_req = as_dict(i.get("requests"))
        oom = _oom(ctx, pods, name)
        cut = {}
        for r in RESOURCES:
            a, b = quantity(in_lim.get(r)), quantity(out_lim.get(r))
            if a is not None and b is not None and b < a:
                cut[r] = (str(in_lim[r]), str(out_lim[r]))
            elif r == "memory" and a is None and b is not None and oom is not None:
                cut[r] = (None, str(out_lim[r]))
        if cut:
            out.append({"where": where, "obj": obj, "pods": pods, "container": name, "cut": cut, "oom": oom,
                        "asked": (in_req, in_lim), "got": (as_dict(o.get("requests")), out_lim)})
    return out


def _oom(ctx: Context, pods: list[Pod], container: str) -> tuple[Pod, dict] | None:
    """The latest OOMKilled termination of ``container`` in ``pods`` (state or lastState)."""
    best = None
    for p in pods:
        for cs in p.container_statuses + p.init_statuses:
            if cs.name != container:
                continue
            st, fields = cs.state
            for term in ((fields if st == "terminated" else {}), cs.last_terminated):
                if term.get("reason") == "OOMKilled":
                    if best is None or str(term.get("finishedAt") or "") > str(best[1].get("finishedAt") or ""):
                        best = (p, term)
    return best


def _values_key(ctx: Context, cut: dict) -> str | None:
    """The chart values key whose ``.resources`` renders this container."""
    name = cut["container"]
    pods = cut["pods"]
    comp = pods[0].component if pods else as_dict(cut["obj"].labels).get("component")
    if pods and pods[0].is_task_pod or name == "base":
        return "workers"
    if name in _SIDECARS:
        return _SIDECARS[name]
    key = CHART_KEY.get(comp or "")
    if key is None:
        return None
    if name.endswith("log-groomer"):
        return f"{key}.logGroomerSidecar"
    if name in (comp, "worker", "wait-for-airflow-migrations"):
        return key
    return None


def _text(req: dict, lim: dict) -> str:
    def side(d: dict) -> str:
        return ", ".join(f"{r} {d[r]}" for r in ("cpu", "memory", "ephemeral-storage") if r in d) or "none"
    return f"requests {side(req)}; limits {side(lim)}"


def _version(v: str) -> tuple[int, ...] | None:
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)-gke\.(\d+)", v or "")
    return tuple(int(x) for x in m.groups()) if m else None


def _finding(ctx: Context, cuts: list[dict]) -> Finding:
    evidence, sets, subjects = [], [], []
    ooms = [c for c in cuts if c["oom"] is not None]
    for c in cuts:
        (req_a, lim_a), (req_g, lim_g) = c["asked"], c["got"]
        lowered = ", ".join(f"{r} {a or 'none'} -> {b}" for r, (a, b) in c["cut"].items())
        evidence.append(f"{c['where']} container {c['container']}: the chart asked {_text(req_a, lim_a)}; Autopilot "
                        f"set {_text(req_g, lim_g)} ({ANNOTATION}); limits lowered: {lowered}")
        if c["oom"] is not None:
            p, term = c["oom"]
            evidence.append(f"Pod {p.name}: container {c['container']} terminated OOMKilled (exit "
                            f"{term.get('exitCode')}) {human_age(ctx.age(finished_at(term)))} ago at the lowered "
                            f"memory limit {lim_g.get('memory')}")
        subjects += [f"Pod/{ctx.target.namespace}/{p.name}" for p in c["pods"]]
        key = _values_key(ctx, c)
        if key is None:
            evidence.append(f"container {c['container']} is not one the chart's values size: set its resources where "
                            "it is defined (extraContainers)")
            continue
        for r, (a, b) in c["cut"].items():
            want = a if a is not None else doubled_memory(b)
            for side in ("requests", "limits"):
                s = f"--set-string {key}.resources.{side}.{r}={want}"
                if s not in sets:
                    sets.append(s)
    warden = next((o.annotations.get(WARDEN) for o in (c["obj"] for c in cuts) if o.annotations.get(WARDEN)), None)
    if warden:
        evidence.append(f"{WARDEN}: {warden}")
    version = str(dig(ctx.cluster, "currentMasterVersion") or "") if ctx.has("cluster") else ""
    v = _version(version)
    if v is not None and v < BURSTING:
        evidence.append(f"cluster {cluster_name(ctx)} runs GKE {version}: Autopilot lets limits exceed requests (pod "
                        "bursting) only from 1.30.2-gke.1394000, so every limit is set to its request")
    elif v is not None:
        evidence.append(f"cluster {cluster_name(ctx)} runs GKE {version}, which supports pod bursting, yet these "
                        "objects were admitted with limits equal to requests (bursting needs the control plane "
                        "restarted after the upgrade and cgroup v2 nodes)")
    comps = sorted({c["where"] for c in cuts})
    what = ", ".join(comps[:4]) + (f" and {len(comps) - 4} more" if len(comps) > 4 else "")
    severity = "error" if ooms else "warning"
    cmds = [helm_upgrade(ctx, *sets)] if sets else []
    cmds.append(f"kubectl get deployments,statefulsets --namespace {q(ctx.target.namespace)} -l release={q(release(ctx))} "
                f"-o custom-columns='NAME:.metadata.name,ADJUSTED:.metadata.annotations.autopilot\\.gke\\.io/"
                "resource-adjustment'")
    if v is not None and v < BURSTING:
        cmds.append(f"# or keep requests and let limits exceed them: upgrade the control plane to 1.30.2-gke.1394000 or "
                    f"later (nodes are recreated on the new version)\ngcloud container clusters upgrade "
                    f"{q(cluster_name(ctx))} --master --cluster-version 1.30 {gke_flags(ctx)}")
    return Finding(
        title=(f"Autopilot lowered the limits the chart set for {what}"
               + (" and the containers are OOMKilled at the lowered limit" if ooms else "")),
        message=("GKE Autopilot admitted these Airflow workloads with other resources than the chart asked for: without "
                 "pod bursting it sets each limit equal to its request, so containers whose limit was above their request "
                 "run with the request as their ceiling"
                 + (" and are OOMKilled there (Airflow reports their tasks as failed or killed externally)" if ooms else
                    ": they will be OOMKilled, throttled or evicted at the request under load")
                 + ". Set requests equal to the limits you want: Autopilot keeps requests and bills them."),
        resource=release_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            "Give each container requests equal to the limit it needs (the values below are the limits the chart "
            "asked for, or twice the lowered limit where it set none); the upgrade restarts these pods.", cmds),
        severity=severity,
        subjects=list(dict.fromkeys(subjects)),
    )
