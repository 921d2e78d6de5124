"""The live reader: discover the target, read phase 1 (static keys) and phase 2 (per-item keys
named by phase 1's data) concurrently, and hand back a MemorySource holding exactly what a
snapshot of the same reads would hold.

Each snapshot path is read at most once per run. Failures become entries (status + the API's
error body; ``status=None`` and ``{"message": ...}`` when no answer came), so one 403 or one
timeout only affects the checks that need that path.
"""
from __future__ import annotations

import concurrent.futures as cf
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..views import Context
from ..data import GUARD_KEYS, KEYS, Target
from ..source import MemorySource, Withheld
from . import kube as kubemod
from .calls import Answer, Breaker, Budget, Recorder, failure, with_retries
from ..errors import UserError
from .options import LiveOptions
from .plan import derived_reads, static_reads

GKE_CONTEXT = re.compile(r"^gke_(?P<project>[^_]+)_(?P<location>[^_]+)_(?P<cluster>.+)$")
DEFAULT_NAMESPACE = "airflow"


@dataclass
class LiveResult:
    source: MemorySource
    target: Target
    now: datetime
    calls: Recorder
    duration_s: float
    kube_source: str | None            # what Kubernetes configuration was used (None: no cluster)
    notes: list[str] = field(default_factory=list)
    preflight: bool = False            # no Kubernetes cluster: project checks only
    kube_tried: str = ""               # why there is no cluster, in a preflight
    namespace_from: str = "--namespace"  # where the namespace came from (flag, context, discovery ...)
    warnings: list[str] = field(default_factory=list)   # for stderr, always (multi-line texts)

    @property
    def requests(self) -> int:
        return len(self.calls)


class Progress:
    """Progress hooks (no-op); the CLI passes a rich-backed one on a TTY (doctor/live/progress.py)."""

    def add(self, n: int, phase: str) -> None: ...      # n more reads planned, in this phase

    def start(self, label: str) -> None: ...            # a read is in flight

    def done(self, label: str) -> None: ...             # a read ended

    def targets(self, n: int) -> None: ...              # a fleet: n targets in all

    def target_done(self, label: str) -> None: ...      # a fleet: one target's report is built


class SharedProgress(Progress):
    """One display shared by several runs (a fleet of contexts): they report their reads to it,
    the fleet its targets; no run stops it."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner

    def add(self, n: int, phase: str) -> None:
        self.inner.add(n, phase)

    def start(self, label: str) -> None:
        self.inner.start(label)

    def done(self, label: str) -> None:
        self.inner.done(label)


class SharedReads:
    """Google answers shared by the targets of one fleet run (several contexts, the clusters of
    ``--fleet-project``): a path (the project, its IAM policy, API states, a bucket ...) is asked
    once whichever target needs it first; the others wait for that answer. Kubernetes reads are
    never shared (each target's cluster answers its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, list] = {}    # path -> [Event set when answered, Answer]

    def read(self, spath: str, read) -> Answer:
        with self._lock:
            slot = self._slots.get(spath)
            owner = slot is None
            if owner:
                slot = self._slots[spath] = [threading.Event(), None]
        if owner:
            try:
                slot[1] = read()
            finally:
                slot[0].set()
        else:
            slot[0].wait()
        ans = slot[1]
        return ans if ans is not None else read()     # the first reader failed in a bug: read again


class LiveReader:
    def __init__(self, opts: LiveOptions, progress: Progress | None = None) -> None:
        self.opts = opts
        self.progress = progress or Progress()
        self.recorder = Recorder()
        self.breaker = Breaker()
        self.notes: list[str] = []
        self.adc_problem: str | None = None
        self.warnings: list[str] = []   # shown on stderr whatever --verbose says (a failed credential plugin)
        self._lock = threading.Lock()
        self._closed = False
        self._done: set[str] = set()
        self.answered = Counter()      # scope -> reads that got an HTTP answer
        self.failed: dict[str, list[str]] = {"k8s": [], "gcp": []}   # scope -> transport failures

    # --- discovery --------------------------------------------------------------------------
    overlay = None   # planned mode: (source, target) -> the plan over it (doctor/planned.py)

    def discover(self) -> tuple[Target, Any]:
        o = self.opts
        if o.gke is not None:      # --fleet-project: the cluster's endpoint, CA and ADC token (live/gke.py)
            from . import gke

            kt = gke.kube_target(o.gke, o.bearer, max(1, o.workers))
            tried = kt.source
        else:
            kt, tried = kubemod.load(o.kubeconfig, o.context, o.env)
        self.kube_tried = tried
        self.notes.append(f"Kubernetes: {kt.source} -> {kt.server}" if kt else f"Kubernetes: none ({tried})")
        if kt is not None and kt.auth_problem:
            self.warnings.append(kt.auth_problem)
        project, location, cluster = o.project, o.location, o.cluster
        if o.gke is not None:
            project, location, cluster = o.gke.project, o.gke.location, o.gke.name
        ctx_name = kt.context if kt else None
        m = GKE_CONTEXT.match(ctx_name or "")
        if m and (project is None or project == m["project"]):
            project = project or m["project"]
            location = location or m["location"]
            cluster = cluster or m["cluster"]
            self.notes.append(f"context {ctx_name}: project {m['project']}, location {m['location']}, "
                              f"cluster {m['cluster']}")
        elif m and not (o.context or o.kubeconfig):
            # --project names another project than the current context's cluster: reading that
            # cluster would mix two deployments' data. Diagnose the project alone.
            self.kube_tried = (f"the current context {ctx_name} is a cluster of project {m['project']}, not "
                               f"{project} (pass --context to read a cluster)")
            self.notes.append(f"Kubernetes: not read: {self.kube_tried}")
            kt, ctx_name = None, None
        elif m:
            self.notes.append(f"context {ctx_name} is a cluster of project {m['project']}, read as asked with "
                              f"--project {project}; pass --location/--cluster for its GKE data")
        elif kt is not None and (location is None or cluster is None):
            self.notes.append(f"context {ctx_name or '(in-cluster)'} is not a GKE context name "
                              "(gke_<project>_<location>_<cluster>); pass --project/--location/--cluster "
                              "for the Google Cloud checks")
        if project is None and kt is None:
            from .gcloud import CredentialsProblem, adc

            try:
                _creds, project = adc(o.env)
                if project:
                    self.notes.append(f"project {project} from Application Default Credentials")
            except CredentialsProblem as e:
                self.notes.append(str(e))
                self.adc_problem = str(e)
        self.kube = kt
        namespace = o.namespace
        self.namespace_from = "default"
        if namespace:
            self.namespace_from = "--namespace"
            self.notes.append(f"namespace {namespace} (--namespace)")
        elif kt is not None and kt.namespace:
            namespace = kt.namespace
            self.namespace_from = f"the namespace of kube context {ctx_name}"
            self.notes.append(f"namespace {namespace} (from the kube context)")
        target = Target(namespace=namespace or DEFAULT_NAMESPACE, project=project, location=location,
                        cluster=cluster, release=o.release, context=ctx_name)
        return target, kt

    def _discover_namespace(self, budget: Budget) -> str | None:
        """The namespace holding the chart's ``tier=airflow`` Deployments: the cluster-wide
        look-up ``chart_deployments`` (read once, stored like every read: the target guard names
        the other namespaces and releases it found)."""
        self.progress.add(1, "finding Airflow")
        self._read("chart_deployments", {}, budget)
        k = KEYS["chart_deployments"]
        entry = self.source.get(k.path(self.target))
        if entry is None or not entry.ok:
            why = f"HTTP {entry.status}" if entry is not None and entry.status else "no answer"
            self.notes.append(f"namespace discovery ({k.describe}) failed: {why}")
            return None
        items = entry.data.get("items") if isinstance(entry.data, dict) else None
        counts = Counter((i.get("metadata") or {}).get("namespace") for i in items or []
                         if isinstance(i, dict) and isinstance(i.get("metadata"), dict))
        counts.pop(None, None)
        if not counts:
            return None
        ns = counts.most_common(1)[0][0]
        self.namespace_from = "discovered: it holds the chart's tier=airflow Deployments"
        self.notes.append(f"namespace {ns} (holds the chart's tier=airflow Deployments)")
        return ns

    # --- one read ---------------------------------------------------------------------------
    def _k8s_get(self, path: str, query: list, budget: Budget, text: bool = False) -> Answer:
        api = self.kube.api
        shown = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        return with_retries(lambda t: kubemod.get(api, path, query, t, text=text), service="k8s", method="GET",
                            path=shown, budget=budget, recorder=self.recorder, breaker=self.breaker,
                            retries=self.opts.retries)

    def _read(self, key_name: str, params: dict, budget: Budget, target: Target | None = None) -> None:
        k = KEYS[key_name]
        spath = k.path(target or self.target, **params)
        with self._lock:
            if spath in self._done:
                return
            self._done.add(spath)
        self.progress.start(spath)
        if k.scope == "k8s":
            rel = "/" + spath[len("k8s/"):]
            if k.live == "log":
                container = params["container"]
                previous = container.endswith(".previous")
                name = container[: -len(".previous")] if previous else container
                req = rel.rsplit("/", 1)[0]          # .../pods/<pod>/log
                query = [("container", name), ("tailLines", str(self.opts.log_lines))]
                if previous:
                    query.append(("previous", "true"))
                ans = self._k8s_get(kubemod.quote_path(req), query, budget, text=True)
            else:
                p = kubemod.quote_path(rel)
                sel = [("labelSelector", k.selector)] if k.selector else []
                # each page compacted and redacted as it arrives: a list is never held whole and unshared
                try:
                    ans = kubemod.list_all(p, self.opts.page_size,
                                           lambda q, p=p: self._k8s_get(p, sel + q, budget),
                                           on_page=lambda body: self.source.prepare(spath, body))
                except Withheld as e:
                    self._store(k.scope, spath, Answer(200), withheld=str(e))
                    self.progress.done(spath)
                    return
                self._store(k.scope, spath, ans, prepared=True)
                self.progress.done(spath)
                return
        else:
            g = self.google
            service = k.service
            def read() -> Answer:
                return with_retries(lambda t: g.read(key_name, params, t), service=service,
                                    method="POST" if spath.endswith(":getIamPolicy") else "GET",
                                    path="/" + spath.split("/", 2)[2], budget=budget, recorder=self.recorder,
                                    breaker=self.breaker, retries=self.opts.retries)

            shared = self.opts.shared
            ans = shared.read(spath, read) if shared is not None else read()
        self._store(k.scope, spath, ans)
        self.progress.done(spath)

    def _store(self, scope: str, spath: str, ans: Answer, prepared: bool = False, withheld: str | None = None) -> None:
        """Keep one read's answer (``prepared``: its body was compacted and redacted page by page;
        ``withheld``: the redactor could not walk it, why)."""
        with self._lock:
            if self._closed:
                return
            if ans.status is not None:
                self.answered[scope] += 1
            elif ans.transport in ("connect", "timeout", "credentials"):
                msg = ans.error.get("message") if isinstance(ans.error, dict) else str(ans.error)
                self.failed[scope].append(msg)
            if withheld is not None:
                self.source.withhold(spath, withheld)
            elif ans.ok:
                self.source.put(spath, data=ans.data, prepared=prepared)
            else:
                self.source.put(spath, status=ans.status, error=ans.error if ans.error is not None else {})

    # --- phases -----------------------------------------------------------------------------
    def _run_phase(self, reads: list[tuple], budget: Budget, pools: dict[str, cf.ThreadPoolExecutor],
                   phase: str, target: Target | None = None) -> None:
        """Read ``reads`` concurrently: (key, params) for ``target`` (default: the run's), or
        (key, params, target) for reads of several targets (namespaces) in one phase."""
        target = target or self.target
        reads = [(r[0], r[1], r[2] if len(r) > 2 else target) for r in reads]
        reads = [(k, p, t) for k, p, t in reads if KEYS[k].path(t, **p) not in self._done]
        if not reads:
            return
        self.progress.add(len(reads), phase)
        futs = {pools[KEYS[k].scope].submit(self._read, k, p, budget, t): (k, p, t) for k, p, t in reads}
        done, pending = cf.wait(futs, timeout=max(0.0, budget.remaining()) + 1.0)
        for f in done:
            exc = f.exception()
            if exc is not None:   # a bug in the reader must not lose the path silently
                k, p, t = futs[f]
                self._store(KEYS[k].scope, KEYS[k].path(t, **p),
                            failure("invalid", f"internal error while reading: {type(exc).__name__}: {exc}"))
        for f in pending:
            f.cancel()
            k, p, t = futs[f]
            spath = KEYS[k].path(t, **p)
            with self._lock:
                if spath in self.source.entries:
                    continue
            self._store(KEYS[k].scope, spath,
                        failure("timeout", f"not read: the run's --timeout of {budget.total:g} s ran out"))

    def read(self, keys: set[str]) -> LiveResult:
        t0 = time.perf_counter()
        o = self.opts
        now = o.now or datetime.now(timezone.utc)
        self.target, kt = self.discover()
        budget = Budget(o.timeout, o.request_timeout)
        self.source = MemorySource()
        from .gcloud import Google

        self.google = Google(self.target.project, o.env, self.target.location, self.target.cluster)
        if kt is not None and not o.namespace and not kt.namespace:
            ns = self._discover_namespace(budget)
            if ns:
                self.target = self.target.with_overrides(namespace=ns)
            elif kt.pod_namespace:
                self.target = self.target.with_overrides(namespace=kt.pod_namespace)
                self.namespace_from = "this pod's own (no tier=airflow Deployments found)"
                self.notes.append(f"namespace {kt.pod_namespace} (this pod's: no tier=airflow Deployments found)")
            else:
                self.namespace_from = "default (no tier=airflow Deployments found)"
                self.notes.append(f"namespace {DEFAULT_NAMESPACE} (default: no tier=airflow Deployments found)")

        def usable(name: str) -> bool:
            k = KEYS[name]
            if k.scope == "k8s":
                return kt is not None
            return all(getattr(self.target, f) is not None for f in k.requires)   # the bucket needs no project

        if kt is None and not self.target.project:
            raise UserError(f"nothing to diagnose: {self.kube_tried}, and no Google Cloud project "
                            "(pass --project, or --kubeconfig/--context for a cluster)"
                            + (f"\n{self.adc_problem}" if self.adc_problem else ""))
        # The target guard's reads (doctor/target_guard.py) go with every run that reads the cluster.
        usable_keys = {k for k in set(keys) | set(GUARD_KEYS) if usable(k)}
        workers = max(1, o.workers)
        # One pool per side: a Kubernetes API server that hangs holds only the Kubernetes workers,
        # so the Google reads still run (and the other way round) within the run's --timeout.
        pools = {"k8s": cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="airflow-gke-k8s"),
                 "gcp": cf.ThreadPoolExecutor(max_workers=max(1, workers // 2), thread_name_prefix="airflow-gke-gcp")}
        try:
            self._run_phase(static_reads(usable_keys), budget, pools, "reading cluster and project")
            ctx = Context(self.source, self.target, now)
            reads, notes = derived_reads(ctx, usable_keys, o.max_logs)
            self.notes += notes
            if self.overlay is not None:   # planned mode: the bucket and GSAs the plan names, too
                planned = Context(self.overlay(self.source, self.target), self.target, now)
                more, notes = derived_reads(planned, usable_keys - {"logs"}, 0)
                reads += [r for r in more if r not in reads]
                self.notes += [f"plan: {n}" for n in notes]
            self._run_phase(reads, budget, pools, "reading logs, bucket, service accounts")
            # phase 3: reads named by phase 2's (the optional group memberships, from the bucket policy)
            more, notes = derived_reads(Context(self.source, self.target, now), usable_keys, 0, phase=3)
            self.notes += notes
            self._run_phase(more, budget, pools, "checking group membership")
        finally:
            with self._lock:
                self._closed = True
            for pool in pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
        self._check_reachable(kt)
        if kt is None:
            self.source.unread["k8s"] = f"project preflight, no Kubernetes cluster was read ({self.kube_tried})"
        return LiveResult(self.source, self.target, now, self.recorder, time.perf_counter() - t0,
                          kt.source if kt else None, self.notes, preflight=kt is None,
                          kube_tried=self.kube_tried if kt is None else "", namespace_from=self.namespace_from,
                          warnings=self.warnings)

    def read_all(self, keys: set[str]) -> tuple[LiveResult, list[Target]]:
        """``--all-namespaces``: every release of the official chart in the namespaces the cluster-wide
        look-up names (doctor/fleet.py), each read for its own target into ONE source, so cluster-scoped
        and Google paths are read once for all of them. Without the look-up (not permitted, no
        answer) the namespace ``--namespace``/the context names is searched alone, and a note says so."""
        from .. import fleet

        t0 = time.perf_counter()
        o = self.opts
        now = o.now or datetime.now(timezone.utc)
        self.target, kt = self.discover()
        if kt is None:
            raise UserError(f"--all-namespaces needs a Kubernetes cluster: {self.kube_tried}"
                            + (f"\n{self.adc_problem}" if self.adc_problem else ""))
        budget = Budget(o.timeout, o.request_timeout)
        self.source = MemorySource()
        from .gcloud import Google

        self.google = Google(self.target.project, o.env, self.target.location, self.target.cluster)
        self.fleet_notes: list[str] = []

        def usable(name: str) -> bool:
            k = KEYS[name]
            if k.scope == "k8s":
                return True
            return all(getattr(self.target, f) is not None for f in k.requires)   # the bucket needs no project

        usable_keys = {k for k in set(keys) | set(GUARD_KEYS) if usable(k)}
        if o.namespaces:       # the namespaces are named: no cluster-wide look-up
            usable_keys.discard("chart_deployments")
        workers = max(1, o.workers)
        pools = {"k8s": cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="airflow-gke-k8s"),
                 "gcp": cf.ThreadPoolExecutor(max_workers=max(1, workers // 2), thread_name_prefix="airflow-gke-gcp")}
        targets: list[Target] = []
        self.unchecked: list[tuple[str, str]] = []     # (namespace, why it could not be searched)
        try:
            if o.namespaces:      # -A --namespace ...: every release of these namespaces, no look-up
                namespaces = self._search(list(dict.fromkeys(o.namespaces)), usable_keys, budget, pools)
            else:
                self._run_phase([("chart_deployments", {})], budget, pools, "finding Airflow")
                namespaces, note = fleet.chart_namespaces(self.source, self.target)
                if note:
                    namespaces = self._search(self._fallback_namespaces(note, kt, budget, pools), usable_keys,
                                              budget, pools)
            for ns in namespaces:
                self._run_phase(static_reads(usable_keys), budget, pools, f"reading namespace {ns}",
                                target=self.target.with_overrides(namespace=ns))
            found = [(ns, rel) for ns, rel in fleet.releases(self.source, self.target) if ns in namespaces]
            for ns, rel in found:
                t = self.target.with_overrides(namespace=ns, release=rel)
                ctx = Context(self.source, t, now)
                reads, notes = derived_reads(ctx, usable_keys, o.max_logs)
                self.notes += [f"{ns}/{rel}: {n}" for n in notes]
                self._run_phase(reads, budget, pools, f"reading {ns}/{rel}: logs, bucket, service accounts",
                                target=t)
                targets.append(t)
        finally:
            with self._lock:
                self._closed = True
            for pool in pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
        self._check_reachable(kt)
        self.namespace_from = "discovered (--all-namespaces)"
        result = LiveResult(self.source, self.target, now, self.recorder, time.perf_counter() - t0,
                            kt.source, self.notes, namespace_from=self.namespace_from, warnings=self.warnings)
        return result, targets

    def _fallback_namespaces(self, note: str, kt, budget: Budget, pools) -> list[str]:
        """-A without the cluster-wide look-up: the namespaces to search one by one. Like k9s and
        Lens, the namespace list when the caller may list namespaces (on GKE, roles/container.
        clusterViewer alone grants it), else the namespaces the caller names: the kube context's
        (or this pod's), else ``airflow``. (SelfSubjectRulesReview cannot name namespaces, and
        under GKE's IAM webhook authorizer it answers incomplete rules: reading each namespace is
        the test that tells.) GKE's own system namespaces are not searched."""
        from .. import fleet

        self._run_phase([("namespaces", {})], budget, pools, "listing namespaces")
        names, why = fleet.namespace_names(self.source, self.target)
        if names is not None:
            system = [n for n in names if fleet.is_system_namespace(n)]
            names = [n for n in names if not fleet.is_system_namespace(n)]
            self.fleet_notes.append(
                f"{note}: each of the {len(names)} namespace(s) of the namespace list was searched instead"
                + (f" (not the {len(system)} system namespace(s): {', '.join(system)})" if system else ""))
            return names
        own = kt.namespace or kt.pod_namespace or DEFAULT_NAMESPACE
        whose = ("the kube context's" if kt.namespace else "this pod's" if kt.pod_namespace else "the default")
        self.fleet_notes.append(f"{note}, and {why}: only namespace {own} ({whose}) was searched; other namespaces "
                                "were not (name them with --namespace, repeatable with -A)")
        return [own]

    def _search(self, candidates: list[str], usable_keys: set[str], budget: Budget, pools) -> list[str]:
        """Read the guard's lists (Deployments, StatefulSets, ConfigMaps) of each candidate namespace
        in one phase; a namespace none of whose Deployments and ConfigMaps can be read is
        ``unchecked`` (named in the report); those that hold a release are returned."""
        from .. import fleet

        probe = [k for k in ("deployments", "statefulsets", "configmaps") if k in usable_keys]
        self._run_phase([(k, {}, self.target.with_overrides(namespace=ns)) for ns in candidates for k in probe],
                        budget, pools, f"searching {len(candidates)} namespace(s)")
        readable = []
        for ns in candidates:
            why = fleet.unreadable(self.source, self.target.with_overrides(namespace=ns))
            if why:
                self.unchecked.append((ns, why))
            else:
                readable.append(ns)
        holding = {ns for ns, _rel in fleet.releases(self.source, self.target)}
        return [ns for ns in readable if ns in holding]

    def _check_reachable(self, kt) -> None:
        tried = []
        k8s_down = kt is not None and self.answered["k8s"] == 0 and self.failed["k8s"]
        gcp_tried = bool(self.failed["gcp"]) or self.answered["gcp"] > 0
        gcp_down = gcp_tried and self.answered["gcp"] == 0
        if kt is not None:
            tried.append(f"Kubernetes API {kt.server} ({kt.source}): "
                         + (self.failed["k8s"][0] if k8s_down else "answered"))
        else:
            tried.append(self.kube_tried)
        if gcp_tried:
            tried.append(f"Google Cloud APIs for project {self.target.project}: "
                         + (self.failed["gcp"][0] if gcp_down else "answered"))
        if self.opts.require_cluster and (kt is None or k8s_down):
            raise UserError("unreachable: " + tried[0])
        if (kt is None or k8s_down) and (not gcp_tried or gcp_down):
            extra = "".join(f"\n{w}" for w in self.warnings)
            raise UserError("nothing reachable: " + "; ".join(tried) + extra)


__all__ = ["LiveReader", "LiveResult", "Progress", "SharedProgress"]
