"""The Cloud SQL Auth Proxy added as a regular container (``workers.extraContainers``,
``migrateDatabaseJob.extraContainers``) next to a container that is meant to finish: the proxy
never exits on its own, so when ``base`` (a KubernetesExecutor task) or the Job's container ends
the pod stays ``Running`` / ``NotReady``: task pods keep their executor slot, and the migration or
create-user Job never completes, so ``helm upgrade`` waits for it until it times out
(apache/airflow#40359, airflow-helm/charts#868, cal-itp/data-infra#1422). Reported from the pods'
spec and status: a container whose image is the Cloud SQL Auth Proxy (``cloud-sql-proxy``,
``cloudsql-proxy``, ``cloud_sql_proxy``) in ``spec.containers`` still running while the pod's
main container has terminated. The fix runs the proxy as a native sidecar (an init container with
``restartPolicy: Always``, Kubernetes 1.29+), which the kubelet stops once the main containers end.
This is the cause behind the executor floor's "task pods hold their slots" for the same pods."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, kubectl, q, release
from airflow_gke.views import Context, DataUnavailable, Pod, as_dict, as_list, human_age, owner_of, parse_time

PROXY_IMAGE = re.compile(r"(?i)(?:^|/)(?:cloud-sql-proxy|cloudsql-proxy|cloud_sql_proxy|gce-proxy)(?::|@|$)")
GRACE = timedelta(minutes=2)   # a regular sidecar never exits: minutes after the main container ended, it is stuck
JOB_KEYS = {"run-airflow-migrations": "migrateDatabaseJob", "create-user-job": "createUserJob",
            "create-user": "createUserJob"}
EXAMPLES = 3


@check(id="cloudsql-proxy-sidecar", title="A Cloud SQL Auth Proxy sidecar ends with the pod's task or Job",
       severity="error", category=Category.DATABASE, needs=("pods",), uses=("configmaps", "jobs", "nodes"))
def run(ctx: Context) -> Result:
    """A Cloud SQL Auth Proxy container keeps task or Job pods Running after their main container ended."""
    tasks: list[tuple[Pod, dict, datetime]] = []
    jobs: dict[str, list[tuple[Pod, dict, datetime]]] = {}
    for p in ctx.pods:
        if p.phase != "Running" or p.metadata.get("deletionTimestamp"):
            continue
        o = owner_of(p)
        is_job = o is not None and o[0] == "Job"
        if not (p.is_task_pod or is_job):
            continue
        hit = _held(ctx, p)
        if hit is None:
            continue
        if p.is_task_pod:
            tasks.append((p, *hit))
        else:
            jobs.setdefault(o[1], []).append((p, *hit))
    findings = []
    if tasks:
        findings.append(_task_finding(ctx, tasks))
    for job, held in sorted(jobs.items()):
        findings.append(_job_finding(ctx, job, held))
    return from_findings(findings) if findings else passed()


def _proxies(p: Pod) -> list[dict]:
    """The regular (not native-sidecar) containers of ``p`` that run the Cloud SQL Auth Proxy."""
    return [c for c in p.containers if PROXY_IMAGE.search(str(c.get("image") or ""))]


def _held(ctx: Context, p: Pod) -> tuple[dict, datetime] | None:
    """(proxy container spec, when the main container ended) when a proxy keeps ``p`` Running."""
    proxies = _proxies(p)
    if not proxies:
        return None
    names = {str(c.get("name")) for c in proxies}
    main = [cs for cs in p.container_statuses if cs.name not in names]
    running = [cs for cs in p.container_statuses if cs.name in names and cs.state[0] == "running"]
    if not main or not running or any(cs.state[0] != "terminated" for cs in main):
        return None
    ends = [parse_time(cs.state[1].get("finishedAt")) for cs in main if isinstance(cs.state[1].get("finishedAt"), str)]
    ends = [e for e in ends if e is not None]
    if not ends:
        return None
    end = max(ends)
    age = ctx.age(end)
    if age is None or age < GRACE:
        return None
    proxy = next(c for c in proxies if c.get("name") == running[0].name)
    return proxy, end


def _main_exit(p: Pod, proxy: dict) -> str:
    cs = next((cs for cs in p.container_statuses if cs.name != proxy.get("name")), None)
    if cs is None:
        return "?"
    return f"{cs.name} exit code {cs.state[1].get('exitCode')}, {cs.state[1].get('reason')}"


def _native_ok(ctx: Context) -> tuple[bool | None, str]:
    """Whether every node's kubelet runs Kubernetes >= 1.29 (native sidecars on by default)."""
    try:
        nodes = ctx.nodes
    except DataUnavailable:
        return None, "node versions not read"
    versions = set()
    for n in nodes.values():
        v = str(as_dict(as_dict(n.raw.get("status")).get("nodeInfo")).get("kubeletVersion") or "")
        m = re.match(r"v?(\d+)\.(\d+)", v)
        if m:
            versions.add((int(m.group(1)), int(m.group(2)), v))
    if not versions:
        return None, "node versions not read"
    low = min(versions)
    return (low[0], low[1]) >= (1, 29), f"oldest kubelet {low[2]}"


def _native(proxy: dict) -> dict:
    """The proxy container as a native sidecar (what goes into extraInitContainers)."""
    keep = ("name", "image", "command", "args", "env", "envFrom", "ports", "resources", "securityContext",
            "volumeMounts")
    out = {k: proxy[k] for k in keep if k in proxy}
    mounts = [m for m in as_list(out.get("volumeMounts")) if isinstance(m, dict)   # the API adds the token mount
              and not str(m.get("name") or "").startswith("kube-api-access-")]
    if mounts:
        out["volumeMounts"] = mounts
    else:
        out.pop("volumeMounts", None)
    out["restartPolicy"] = "Always"
    return out


def _user_lists(ctx: Context, proxy_name: str) -> tuple[list[dict], list[dict]]:
    """The pod template's other extra containers and extra init containers (kept by the fix): the
    template's containers but ``base`` and the proxy, its init containers but the chart's git-sync."""
    try:
        tpl = ctx.pod_template
    except DataUnavailable:
        tpl = None
    spec = as_dict(as_dict(tpl).get("spec"))
    extra = [c for c in as_list(spec.get("containers")) if isinstance(c, dict)
             and c.get("name") not in ("base", proxy_name)]
    inits = [c for c in as_list(spec.get("initContainers")) if isinstance(c, dict)
             and c.get("name") not in ("git-sync-init", proxy_name)]
    return extra, inits


def _set_json(key: str, value) -> str:
    return f"--set-json {q(key + '=' + json.dumps(value, separators=(',', ':')))}"


def _task_finding(ctx: Context, held: list[tuple[Pod, dict, datetime]]) -> Finding:
    held.sort(key=lambda t: t[2])
    proxy = held[0][1]
    pname = str(proxy.get("name"))
    image = str(proxy.get("image"))
    ages = (f"{human_age(ctx.age(held[-1][2]))}–{human_age(ctx.age(held[0][2]))}" if len(held) > 1
            else human_age(ctx.age(held[0][2])))
    try:
        parallelism = int(str(ctx.config("scheduler").get("core", "parallelism") or "32").strip())
    except (ValueError, DataUnavailable):   # airflow.cfg not read: Airflow's default
        parallelism = 32
    active = [p for p in ctx.task_pods if p.phase in ("Pending", "Running") and not p.metadata.get("deletionTimestamp")]
    ok, versions = _native_ok(ctx)
    evidence = [f"{len(held)} task pods Running with base terminated {ages} ago while container {pname} "
                f"(image {image}, a regular container in spec.containers, not a native sidecar) keeps running",
                f"{len(active)} of [core] parallelism {parallelism} executor slots held by running task pods"
                + (": no open slot" if len(active) >= parallelism else "")]
    for p, _c, end in held[:EXAMPLES]:
        evidence.append(f"Pod {p.name}: {_main_exit(p, proxy)} {human_age(ctx.age(end))} ago; {pname} running")
    tpl_has = any(PROXY_IMAGE.search(str(c.get("image") or "")) and c.get("name") == pname
                  for c in as_list(as_dict(as_dict(_template(ctx)).get("spec")).get("containers")) if isinstance(c, dict))
    if tpl_has:
        evidence.append(f"the pod template (pod_template_file.yaml in {release(ctx)}-config) lists {pname} under "
                        "containers: the chart's workers.extraContainers")
    evidence.append(f"native sidecars: {versions}" + ("" if ok is None else
                                                       (" (1.29+: supported)" if ok else " (older than 1.29: not supported)")))
    extra, inits = _user_lists(ctx, pname)
    spec = next((c for c in as_list(as_dict(as_dict(_template(ctx)).get("spec")).get("containers"))
                 if isinstance(c, dict) and c.get("name") == pname), proxy)   # as written, not as the API filled it in
    commands = []
    if ok is False:
        summary = (f"The nodes run Kubernetes older than 1.29, which has no native sidecars: upgrade the node pools, "
                   f"or run the Cloud SQL Auth Proxy as its own Deployment and Service (or connect by private IP) and "
                   f"remove {pname} from workers.extraContainers; then delete the stuck pods to free their slots.")
    else:
        summary = (f"Run {pname} as a native sidecar: move it from workers.extraContainers to workers.extraInitContainers "
                   "with restartPolicy: Always, so it starts before base (no connection refused on 127.0.0.1) and the "
                   "kubelet stops it when base ends. Then delete the stuck task pods (their tasks already ended) to "
                   "free their slots. New task pods use the new template; running tasks are not touched.")
        commands.append(helm_upgrade(ctx, _set_json("workers.extraContainers", extra),
                                     _set_json("workers.extraInitContainers", [*inits, _native(spec)])))
    n = q(ctx.target.namespace)
    running = {p.name for p in active if p.phase == "Running"}
    if running == {p.name for p, _c, _e in held}:
        commands += ["# deletes every Running task pod: each is one whose base has ended (its task is over; nothing restarts it)",
                     f"kubectl delete pods --namespace {n} -l kubernetes_executor=True "
                     "--field-selector=status.phase=Running"]
    else:
        commands += ["# deletes only the task pods whose base has ended (their tasks are over; nothing restarts them):",
                     "kubectl delete pod " + " ".join(q(p.name) for p, _c, _e in held[:20]) + f" --namespace {n}"
                     + (f"  # and {len(held) - 20} more: see the JSON resources" if len(held) > 20 else "")]
    full = len(active) >= parallelism
    return Finding(
        title=(f"The Cloud SQL Auth Proxy sidecar {pname} never exits: {len(held)} task pods stay Running after their "
               f"task ended" + (f" and hold all {parallelism} executor slots" if full else "")),
        message=(f"{pname} ({image}) runs as a regular container in the KubernetesExecutor pod template. When the task's "
                 f"base container ends the proxy keeps running, so the pod stays Running (NotReady) and the executor "
                 f"keeps counting the task in [core] parallelism: {len(held)} task pods are held"
                 + (", every slot is taken and no new task starts." if full else ".")),
        resource=k8s_resource(ctx, "ConfigMap", f"{release(ctx)}-config"),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        subjects=[k8s_resource(ctx, "Pod", p.name).ref for p, _c, _e in held],
    )


def _template(ctx: Context) -> dict | None:
    try:
        return ctx.pod_template
    except DataUnavailable:
        return None


def _job_finding(ctx: Context, job: str, held: list[tuple[Pod, dict, datetime]]) -> Finding:
    p, proxy, end = held[0]
    pname = str(proxy.get("name"))
    comp = p.labels.get("component") or ""
    key = JOB_KEYS.get(comp)
    ok, versions = _native_ok(ctx)
    evidence = [f"Pod {p.name} of Job {job}: {_main_exit(p, proxy)} {human_age(ctx.age(end))} ago; {pname} "
                f"({proxy.get('image')}, a regular container) still running, so the Job stays active",
                f"native sidecars: {versions}" + ("" if ok is None else (" (1.29+: supported)" if ok else " (older than 1.29: not supported)"))]
    try:
        j = ctx.jobs.get(job)
    except DataUnavailable:
        j = None
    if j is not None:
        st = as_dict(j.raw.get("status"))
        evidence.insert(1, f"Job {job}: active {st.get('active', 0)}, succeeded {st.get('succeeded', 0)}, started "
                           f"{human_age(ctx.age(parse_time(st.get('startTime'))))} ago")
    commands = []
    where = f"{key}.extraInitContainers" if key else "the Job's init containers"
    summary = (f"Run {pname} as a native sidecar of the Job ({where} with restartPolicy: Always, Kubernetes 1.29+) "
               f"instead of {key + '.extraContainers' if key else 'a regular container'}, so the Job completes when its "
               "container ends; then delete the stuck Job (the next upgrade re-creates it).")
    if key and ok is not False:
        commands.append(helm_upgrade(ctx, _set_json(f"{key}.extraContainers", []),
                                     _set_json(f"{key}.extraInitContainers", [_native(proxy)])))
    commands.insert(0, kubectl(ctx, "delete", "job", q(job)))
    return Finding(
        title=f"The Cloud SQL Auth Proxy sidecar {pname} keeps Job {job} running after its container ended",
        message=(f"Job {job}'s container finished, but {pname} runs as a regular container and never exits, so the "
                 "pod stays Running and the Job never completes: helm upgrade waits for it and times out, and the "
                 "next run of the Job is blocked."),
        resource=k8s_resource(ctx, "Job", job),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        subjects=[k8s_resource(ctx, "Pod", x.name).ref for x, _c, _e in held],
    )
