"""The health floor's reading of a pod: is it ready, and if not why, in Kubernetes' own terms
(the waiting reason of the first unhealthy container, init containers first; scheduling, volume,
readiness and termination troubles), since when, and the evidence that says so (the event, the
last log lines). Shared by ``component-not-ready`` and ``executor-slots-blocked``; no verdict here."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from airflow_gke.remediation import ns, q, quote_event
from airflow_gke.views import Context, ContainerStatus, Pod, as_dict, as_list, human_age, parse_time

# A pod may take this long after it started to become ready before the floor calls it down
# (image pulls, init containers, slow first readiness probes).
GRACE = timedelta(minutes=5)
# While its controller rolls out a new version a pod may take as long as a Deployment's default
# progressDeadlineSeconds (600 s) before the rollout itself counts as failed.
ROLLOUT_GRACE = timedelta(minutes=10)

PULL = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable")
CONFIG = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
CREATING = ("ContainerCreating", "PodInitializing")
VOLUME_EVENTS = ("FailedMount", "FailedAttachVolume", "FailedCreatePodSandBox", "FailedMapVolume")
TELLING = re.compile(
    r"(?i)(traceback|error|exception|fatal|critical|forbidden|denied|refused|killed|"
    r"invalid|cannot|could not|unable to|not found|timed? ?out|too many failures|aborting|must be set)")


@dataclass
class Why:
    """Why one pod is not ready."""
    pod: Pod
    kind: str                  # crashloop | failed | pull | config | waiting | mount | unschedulable |
                               # init-running | readiness | terminated | terminating | not-ready
    reason: str                # "init container git-sync-init CrashLoopBackOff"
    since: datetime | None     # when it stopped being (or never became) ready
    container: str | None = None
    init: bool = False
    evidence: list[str] = field(default_factory=list)
    last_log: str | None = None    # the telling log line, for the title
    event: str | None = None       # the telling event message, for the title

    def duration(self, ctx: Context) -> str:
        return human_age(ctx.age(self.since))


def _t(v) -> datetime | None:
    return parse_time(v) if isinstance(v, str) else None


def is_ready(pod: Pod) -> bool:
    return str(pod.condition("Ready").get("status")) == "True"


def not_ready_since(pod: Pod) -> datetime | None:
    """When the pod last became not ready (the Ready condition's transition), else when it started."""
    c = pod.condition("Ready")
    if c and str(c.get("status")) != "True":
        t = _t(c.get("lastTransitionTime"))
        if t is not None:
            return max(t, pod.started) if pod.started else t
    return pod.started


def clip(text: str, n: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def clip_middle(text: str, n: int = 160) -> str:
    """``text`` shortened in the middle: an error's head says what failed, its tail why."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    if len(text) <= n:
        return text
    head = n // 2
    return text[:head].rstrip() + " … " + text[-(n - head - 3):].lstrip()


def log_tail(ctx: Context, pod: Pod, container: str, n: int = 4) -> tuple[list[tuple[str, str]], bool]:
    """The telling lines at the end of a container's stored log (the crashed instance's first),
    else its last lines: ([(which, line)], whether they are telling)."""
    lines: list[tuple[str, str]] = []
    for prev, tag in ((True, "previous log"), (False, "log")):
        lines += [(tag, ln) for ln in ctx.log_lines(pod.name, container, previous=prev) if ln.strip()]
    if not lines:
        return [], False
    telling = [x for x in lines[-200:] if TELLING.search(x[1])]
    return (telling or lines)[-n:], bool(telling)


def readable(line: str) -> str:
    """A JSON log record (git-sync v4, structured Airflow logs) as ``msg: error``; other lines as they are."""
    s = line.strip()
    if s.startswith("{"):
        import json

        try:
            rec = json.loads(s)
        except ValueError:
            return clip(s, 240)
        if isinstance(rec, dict):
            msg = str(rec.get("msg") or rec.get("event") or rec.get("message") or "")
            err = str(rec.get("error") or "")
            m = re.search(r'stderr: "(.*)" \}', err, re.S)   # git-sync: the git command's own words
            if m:   # its first lines say why ("ssh: connect to host ... Connection timed out", "fatal: ...")
                parts = re.split(r"(?:\\[rn]|[\r\n])+", m.group(1).replace('\\"', '"'))
                err = " / ".join([x.strip() for x in parts if x.strip()][:2])
            return clip(f"{msg}: {err}" if msg and err else msg or err or s, 240)
    return clip(s, 240)


def _pod_events(ctx: Context, pod: Pod, container: str | None = None) -> list[dict]:
    """The pod's Warning events, those about ``container`` first; oldest first within each."""
    evs = [e for e in ctx.events_for("Pod", pod.name) if e.get("type") == "Warning"]
    if container:
        mine = [e for e in evs if f"{{{container}}}" in str(as_dict(e.get("involvedObject")).get("fieldPath") or "")]
        rest = [e for e in evs if e not in mine]
        return rest + mine   # the container's own come last: "the last event" is the telling one
    return evs


def _first_unhealthy(statuses: list[ContainerStatus], init: bool) -> ContainerStatus | None:
    if init:
        for cs in statuses:   # init containers run in order: the first that did not finish blocks the pod
            state, f = cs.state
            if not (state == "terminated" and f.get("exitCode") == 0):
                return cs
        return None
    waiting = [cs for cs in statuses if cs.state[0] == "waiting"]
    if waiting:
        return waiting[0]
    for cs in statuses:
        state, f = cs.state
        if state == "terminated" or (state == "running" and not cs.ready) or state == "unknown":
            return cs
    return None


def why(ctx: Context, pod: Pod) -> Why | None:
    """Why a pod is not ready, or None when it is ready or finished (Succeeded)."""
    if pod.phase == "Succeeded":
        return None
    deleting = _t(pod.metadata.get("deletionTimestamp"))
    if deleting is not None:
        grace = pod.spec.get("terminationGracePeriodSeconds")
        ends = deleting  # deletionTimestamp already is "now + grace period" when deletion was asked
        evidence = [f"Pod {pod.name}: metadata.deletionTimestamp {pod.metadata.get('deletionTimestamp')} "
                    f"(terminationGracePeriodSeconds {grace if isinstance(grace, int) else 30}), "
                    f"finalizers {as_list(pod.metadata.get('finalizers')) or 'none'}, node {pod.node or 'none'}"]
        running = [cs.name for cs in pod.container_statuses if cs.state[0] == "running"]
        if running:
            evidence.append(f"containers still running: {', '.join(running)}")
        return Why(pod, "terminating", "Terminating (deletion not finished)", ends, evidence=evidence)
    if is_ready(pod):
        return None
    since = not_ready_since(pod)
    sched = pod.condition("PodScheduled")
    if pod.phase == "Pending" and not pod.node:
        evs = [e for e in ctx.events_for("Pod", pod.name) if e.get("reason") in ("FailedScheduling", "NotTriggerScaleUp")]
        msg = clip(evs[-1].get("message") if evs else sched.get("message") or "not scheduled", 400)
        evidence = [f"Pod {pod.name}: Pending, PodScheduled False ({sched.get('reason') or 'no reason'})"
                    + (f": {clip(sched.get('message'), 300)}" if sched.get("message") else "")]
        evidence += [quote_event(e) for e in evs[-2:]]
        return Why(pod, "unschedulable", "Pending: FailedScheduling", _t(sched.get("lastTransitionTime")) or pod.created,
                   evidence=evidence, event=msg)
    cs = _first_unhealthy(pod.init_statuses, True) if pod.init_statuses else None
    init = cs is not None
    if cs is None:
        cs = _first_unhealthy(pod.container_statuses, False)
    if cs is None:
        c = pod.condition("Ready")
        return Why(pod, "not-ready", f"Ready {c.get('status', 'Unknown')} ({c.get('reason') or 'no reason'})", since,
                   evidence=[f"Pod {pod.name}: phase {pod.phase}, condition Ready {c.get('status')}"
                             + (f": {c.get('message')}" if c.get("message") else "")])
    what = f"{'init container' if init else 'container'} {cs.name}"
    state, f = cs.state
    reason = str(f.get("reason") or "")
    status_line = (f"Pod {pod.name} ({pod.component or 'pod'}): phase {pod.phase}, {what} {state}"
                   + (f" ({reason})" if reason else "") + f", restartCount {cs.restarts}, ready "
                   f"{str(cs.ready).lower()}; not ready for {human_age(ctx.age(since))}, pod age "
                   f"{human_age(ctx.age(pod.created))}")
    evidence = [status_line]
    events = _pod_events(ctx, pod, cs.name)
    w = Why(pod, "waiting", f"{what} {reason or state}", since, cs.name, init, evidence)
    if state == "waiting" and reason in PULL:
        w.kind = "pull"
        failed = [e for e in events if e.get("reason") == "Failed" and "failed to pull" in str(e.get("message", "")).lower()]
        msg = str(f.get("message") or "")
        if msg:
            evidence.append(f"{cs.name} state.waiting.message: {clip(msg, 400)}")
        if failed:
            w.event = clip(failed[-1].get("message"), 400)
        elif msg and not msg.lower().startswith("back-off"):
            w.event = clip(msg, 400)
        evidence += [quote_event(e) for e in (failed or events)[-2:]]
        return w
    if state == "waiting" and reason in CONFIG:
        w.kind = "config"
        if f.get("message"):
            evidence.append(f"{cs.name} state.waiting.message: {clip(f['message'])}")
            w.event = clip(f["message"])
        evidence += [quote_event(e) for e in events[-2:]]
        return w
    if state == "waiting" and reason in CREATING:
        vol = [e for e in ctx.events_for("Pod", pod.name) if e.get("reason") in VOLUME_EVENTS]
        if vol:
            w.kind = "mount"
            w.reason = f"{reason}: {vol[-1].get('reason')}"
            w.event = clip(vol[-1].get("message"), 400)
            evidence += [quote_event(e) for e in vol[-3:]]
        else:
            evidence += [quote_event(e) for e in events[-2:]]
        return w
    logs, telling = log_tail(ctx, pod, cs.name)
    if logs and telling:
        w.last_log = readable(logs[-1][1])
    if state == "waiting" and reason == "CrashLoopBackOff":
        w.kind = "crashloop"
        last = cs.last_terminated
        if last and not w.last_log:
            w.event = f"last exit code {last.get('exitCode')}, {last.get('reason') or 'no reason'}"
        if last:
            evidence.append(f"{cs.name} lastState.terminated: exitCode {last.get('exitCode')}, reason "
                            f"{last.get('reason')}, finished {human_age(ctx.age(_t(last.get('finishedAt'))))} ago"
                            + (f", message: {clip(last.get('message'))}" if last.get("message") else ""))
    elif state == "terminated":
        w.kind = "failed" if init or f.get("exitCode") not in (0, None) else "terminated"
        w.reason = f"{what} terminated (exit code {f.get('exitCode')}, {f.get('reason') or 'no reason'})"
    elif state == "running" and init:
        w.kind = "init-running"
        started = _t(f.get("startedAt"))
        w.reason = f"{what} still running (started {human_age(ctx.age(started))} ago, never finished)"
    elif state == "running":
        w.kind = "readiness"
        w.reason = f"{what} Running but not Ready"
        probe = [e for e in events if e.get("reason") == "Unhealthy"]
        if probe:
            w.event = clip(probe[-1].get("message"), 300)
            events = probe
    evidence += [quote_event(e) for e in events[-2:]]
    evidence += list(dict.fromkeys(f"{which} {cs.name}: {readable(ln)}" for which, ln in logs))
    return w


def next_steps(ctx: Context, w: Why) -> list[str]:
    """The generic next steps for one not-ready pod, with its real names: what shows the cause."""
    n = q(ns(ctx))
    p = q(w.pod.name)
    describe = f"kubectl describe pod {p} --namespace {n}"
    events = (f"kubectl get events --namespace {n} --field-selector involvedObject.name={w.pod.name} "
              "--sort-by=.lastTimestamp")
    c = q(w.container) if w.container else None
    if w.kind in ("crashloop", "failed", "terminated"):
        return [f"kubectl logs {p} --namespace {n} --container {c} --previous", describe]
    if w.kind in ("init-running", "readiness", "waiting") and c:
        return [f"kubectl logs {p} --namespace {n} --container {c}", describe, events]
    if w.kind == "terminating":
        return [f"kubectl get pod {p} --namespace {n} -o jsonpath='{{.metadata.finalizers}}'", describe]
    return [describe, events]
