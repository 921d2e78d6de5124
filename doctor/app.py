"""The application core: what a run of the doctor does, apart from any command line.

``diagnose(RunRequest(...))`` reads the target (a snapshot, or the live cluster and project), builds
the context, runs the selected checks, optionally saves what was read and runs the write probe,
applies the checks' post-run steps, suppressions and the severity floor, and returns the
``RunReport``. ``collect(CollectRequest(...))`` reads live and writes a snapshot. The command line
(doctor/cli.py), the tests and the in-cluster Job (deploy/, which runs the command line) all go
through here; the CLI only turns flags into a request and renders the report.

Bad input raises ``errors.UserError`` (exit 2). Progress and diagnostics go to ``echo`` (stderr in
the CLI), never to stdout.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Callable, Iterable

from . import __version__
from .errors import UserError

Echo = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


@dataclass
class LiveTarget:
    """Where and how to read live (ignored with a snapshot, where giving any of these is an error)."""
    project: str | None = None
    location: str | None = None
    cluster: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    timeout: float = 60.0
    request_timeout: float = 20.0
    max_logs: int = 50
    page_size: int = 500
    now: str | None = None                   # RFC 3339: judge ages as of this time (replays, tests)
    require_cluster: bool = False            # several contexts: a cluster that never answers is unreachable
    gke: object = None                       # --fleet-project: the live.gke.GkeCluster reached without a kubeconfig
    bearer: object = None                    # ... with this live.gke.BearerToken (Application Default Credentials)
    shared: object = None                    # a fleet run: live.reader.SharedReads (Google answers asked once)


@dataclass
class RunRequest:
    """What the user asked of ``doctor``."""
    snapshot: str | None = None              # offline on this snapshot; None: live
    namespace: str | None = None
    release: str | None = None
    namespaces: tuple[str, ...] = ()         # --all-namespaces with --namespace: search only these
    include: tuple[str, ...] = ()            # --check/--include patterns
    exclude: tuple[str, ...] = ()            # --skip/--exclude patterns
    extended: bool = False
    min_severity: str | None = None
    runbook_base: str | None = None
    annotation_ignores: bool = True
    suppressions: tuple = ()                 # config.Suppression
    probe: bool = False
    probe_folder: str | None = None
    save_snapshot: str | None = None
    manifests: str | None = None             # planned mode: judge these rendered manifests (- for stdin)
    live: LiveTarget = field(default_factory=LiveTarget)
    verbose: bool = False
    env: dict | None = None                  # the environment (default: os.environ)
    today: date | None = None                # for suppression expiry (default: today, UTC)


@dataclass
class CollectRequest:
    """What the user asked of ``collect``."""
    dest: str | None = None                  # None: ./airflow-gke-<project>-<cluster>-<time>.tar.gz
    namespace: str | None = None
    release: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    live: LiveTarget = field(default_factory=LiveTarget)
    verbose: bool = False
    env: dict | None = None


def select_checks(registry: dict, only: Iterable[str], skip: Iterable[str], extended: bool,
                  min_severity: str | None = None) -> list:
    """Checks selected by include patterns (``--check``/``--include``), exclude patterns
    (``--skip``/``--exclude``) and ``--min-severity``; see doctor/selection.py for the syntax.
    Raises ``UserError(usage=True)`` for a pattern that cannot be right."""
    from .selection import select

    return select(registry, tuple(only), tuple(skip), extended, min_severity)


def _validate(req: RunRequest, checks: list) -> None:
    if (req.probe or req.probe_folder) and not any(c.id == "gcs-log-write-denied" for c in checks):
        raise UserError("--probe proves gcs-log-write-denied, which this run does not select", usage=True)
    if req.manifests is not None and (req.probe or req.probe_folder):
        raise UserError("--probe writes with a running pod's identity; it does not apply to --manifests", usage=True)


def _validate_snapshot(req: RunRequest) -> None:
    if req.snapshot is not None:
        lt = req.live
        given = [flag for flag, v in (
            ("--project", lt.project), ("--location", lt.location), ("--cluster", lt.cluster),
            ("--context", lt.context), ("--kubeconfig", lt.kubeconfig), ("--save-snapshot", req.save_snapshot),
            ("--probe", req.probe or None), ("--probe-folder", req.probe_folder)) if v is not None]
        if given:
            raise UserError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to live mode only, "
                            "not with --snapshot", usage=True)


def live_options(lt: LiveTarget, namespace: str | None, release: str | None, verbose: bool, env: dict):
    from .live import LiveOptions
    from .snapshot import parse_time

    pinned = None
    if lt.now is not None:
        pinned = parse_time(lt.now)
        if pinned is None:
            raise UserError(f"--now {lt.now!r} is not an RFC 3339 timestamp", usage=True)
    return LiveOptions(project=lt.project, location=lt.location, cluster=lt.cluster, namespace=namespace,
                       release=release, context=lt.context, kubeconfig=lt.kubeconfig, timeout=lt.timeout,
                       request_timeout=lt.request_timeout, max_logs=lt.max_logs, page_size=lt.page_size,
                       now=pinned, verbose=verbose, env=dict(env), require_cluster=lt.require_cluster,
                       gke=lt.gke, bearer=lt.bearer, shared=lt.shared)


def read_live(opts, keys, *, verbose: bool = False, echo: Echo = _quiet, progress=None, overlay=None):
    """Run the live reader; ``progress`` gets the reader's progress hooks (and ``stop()`` at the end),
    ``verbose`` echoes every API call and the read's totals. ``overlay(source, target)`` (planned
    mode) makes the per-item reads cover the bucket and Google service accounts the plan names."""
    from .live.reader import LiveReader

    try:
        reader = LiveReader(opts, progress=progress)
        reader.overlay = overlay
        if verbose:
            reader.recorder.echo = lambda c: echo(
                f"  {c.service:<20} {c.method:4} {c.path}  "
                f"{c.status if c.status is not None else (c.note or 'no answer')}  {c.duration * 1000:8.1f} ms"
                + (f"  (attempt {c.attempt})" if c.attempt > 1 else ""))
        result = reader.read(keys)
    finally:
        stop = getattr(progress, "stop", None)
        if stop is not None:
            stop()
    for w in result.warnings:
        echo(f"airflow-gke: warning: {w}")
    if verbose:
        for n in result.notes:
            echo(f"  note: {n}")
        from .collect import count_text

        echo(f"live read: {result.requests} requests, {count_text(result.source)} in {result.duration_s:.2f} s")
    return result


def diagnose(req: RunRequest, *, echo: Echo = _quiet, progress=None, hold: list | None = None):
    """Read (and overlay a plan) -> context -> run the checks -> (save) -> probe -> post-run steps ->
    suppress: the report. ``hold``: what was read and the context over it are appended to it, for a
    caller that ends the process right after the report and need not free them object by object
    (10,000 pods: 0.15 s)."""
    from .data import Target
    from .registry import load_checks

    env = dict(os.environ) if req.env is None else req.env
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    registry = load_checks()
    checks = select_checks(registry, req.include, req.exclude, req.extended, req.min_severity)
    _validate(req, checks)
    namespace, release = req.namespace, req.release
    plan = None
    if req.manifests is not None:     # planned mode: the plan says its namespace and release
        from . import planned

        plan = planned.load(req.manifests, namespace, release)
        namespace, release = plan.namespace, plan.release
    _validate_snapshot(req)
    live = None
    if req.snapshot is not None:
        from .snapshot import open_snapshot

        source = open_snapshot(req.snapshot)
        mode = "snapshot"
        m = source.meta
        target = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                        release=m.release, context=m.context).with_overrides(namespace=namespace, release=release)
        ctx_now = m.captured_at
        if req.verbose:
            echo(f"snapshot {req.snapshot}: captured {m.captured_at.isoformat()}, {len(list(source.paths()))} files")
    else:
        from .live.plan import keys_for

        opts = live_options(req.live, namespace, release, req.verbose, env)
        overlay = None
        if plan is not None:
            def overlay(src, tgt):
                return planned.overlay(plan, src, tgt)
        live = read_live(opts, keys_for(checks), verbose=req.verbose, echo=echo, progress=progress, overlay=overlay)
        source, target, ctx_now, mode = live.source, live.target, live.now, "live"
    base_source = source
    if hold is not None:
        hold.append(base_source)
    cluster_from = None
    if plan is not None:   # planned mode: the plan over the cluster's source (doctor/planned.py)
        source, cluster_from, mode = planned.overlay(plan, base_source, target), mode, "planned"
    try:
        return _judge(req, registry, checks, source, target, ctx_now, mode, live, env, started, t0,
                      plan=plan, base_source=base_source, cluster_from=cluster_from, echo=echo, hold=hold)
    finally:
        if hasattr(base_source, "close"):
            base_source.close()


def _judge(req: RunRequest, registry: dict, checks: list, source, target, ctx_now, mode: str, live, env: dict,
           started: datetime, t0: float, *, plan=None, base_source=None, cluster_from=None, echo: Echo = _quiet,
           guard_from: tuple[str, str | None] | None = None, release: bool = False, hold: list | None = None):
    """One target on a source that holds its data: context -> guard -> checks -> (save, probe) ->
    post-run steps -> suppressions: its report. ``guard_from`` (namespace_from, release_from)
    overrides where the guard says the target came from (a fleet's discovery). ``release``: the
    context lets go of its derived values once the report is built (a fleet's next target must not
    find this one's views still held). ``hold``: the context is appended to it (see ``diagnose``)."""
    from .views import Context

    ctx = Context(source, target, now=ctx_now)
    if hold is not None:
        hold.append(ctx)
    try:
        return _judge_context(ctx, req, registry, checks, source, target, ctx_now, mode, live, env, started, t0,
                              plan=plan, base_source=base_source, cluster_from=cluster_from, echo=echo,
                              guard_from=guard_from)
    finally:
        if release:
            ctx.forget_derived()


def _judge_context(ctx, req: RunRequest, registry: dict, checks: list, source, target, ctx_now, mode: str, live,
                   env: dict, started: datetime, t0: float, *, plan=None, base_source=None, cluster_from=None,
                   echo: Echo = _quiet, guard_from: tuple[str, str | None] | None = None):
    from .registry import load_errors
    from .report import RunInfo, RunReport
    from .runner import after_run, run_checks

    if plan is not None:
        guard = None
    elif guard_from is not None:
        from .target_guard import establish

        guard = establish(ctx, *guard_from)
        if guard.blocks:
            raise UserError(guard.message)
    else:
        guard = _establish_target(ctx, req, live)
    runs = run_checks(ctx, checks, req.runbook_base)
    plan_info = None
    if plan is not None:   # planned mode only: a snapshot or live run does not import the plan's reader
        from . import planned

        plan_info = planned.compare(plan, base_source, target, ctx_now, checks, runs, cluster_from,
                                    req.runbook_base)
    info = RunInfo(mode=mode, context=target.context, project=target.project, location=target.location,
                   cluster=target.cluster, namespace=target.namespace, release=_safe(lambda: ctx.release),
                   airflow_version=_safe(lambda: ctx.airflow_version),
                   chart_version=_safe(lambda: ctx.chart_version),
                   started_at=started.isoformat().replace("+00:00", "Z"),
                   target=guard.to_dict() if guard is not None else None)
    if live is not None and req.save_snapshot:
        echo(f"saved snapshot: {save_snapshot(live, ctx, req.save_snapshot)}")
    if req.probe or req.probe_folder:
        ctx.probe = _probe(ctx, req.probe_folder, env, timeout=req.live.request_timeout, echo=echo)
    after_run(ctx, checks, runs, req.runbook_base)
    suppressed, notices = _suppress(runs, ctx, req, registry)
    if guard is not None and guard.verdict == "undetermined":
        notices = [{"level": "warning", "message": guard.message}, *notices]
    info.duration_s = time.perf_counter() - t0
    report = RunReport(__version__, info, runs, [{"check": None, "message": e} for e in load_errors],
                       suppressed=suppressed, notices=notices,
                       probe=ctx.probe.to_dict() if ctx.probe is not None else None, plan=plan_info)
    if req.verbose:
        for name, secs in ctx.read_times.items():
            echo(f"  read  {name:40} {secs * 1000:8.2f} ms")
        for r in runs:
            echo(f"  {r.status:5} {r.id:40} {r.duration_s * 1000:8.2f} ms")
    return report


def diagnose_fleet(req: RunRequest, *, echo: Echo = _quiet, progress=None):
    """``--all-namespaces``: discover every release of the official chart (doctor/fleet.py), read
    what they all need into one source (cluster-scoped and Google paths once), and diagnose each
    release with its own target: a ``FleetReport`` of single-target reports. ``progress`` gets the
    reads, then the targets diagnosed (and ``stop()`` at the end)."""
    try:
        return _diagnose_fleet(req, echo=echo, progress=progress)
    finally:
        stop = getattr(progress, "stop", None)
        if stop is not None:
            stop()


def _diagnose_fleet(req: RunRequest, *, echo: Echo = _quiet, progress=None):
    from .data import Target
    from .fleet import FleetReport, Unreached, releases
    from .registry import load_checks

    for flag, v in (("--release", req.release), ("--manifests", req.manifests),
                    ("--save-snapshot", req.save_snapshot), ("--probe", req.probe or None),
                    ("--probe-folder", req.probe_folder)):
        if v is not None:
            raise UserError(f"{flag} does not apply with --all-namespaces (every release is diagnosed)", usage=True)
    wanted = tuple(dict.fromkeys(req.namespaces + ((req.namespace,) if req.namespace else ())))
    env = dict(os.environ) if req.env is None else req.env
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    registry = load_checks()
    checks = select_checks(registry, req.include, req.exclude, req.extended, req.min_severity)
    _validate(req, checks)
    _validate_snapshot(req)
    notices: list[dict] = []
    if req.snapshot is not None:
        from .snapshot import open_snapshot

        source = open_snapshot(req.snapshot)
        mode, m = "snapshot", source.meta
        base = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                      context=m.context)
        ctx_now, live = m.captured_at, None
        found = [(ns, rel) for ns, rel in releases(source, base) if not wanted or ns in wanted]
        if not found:
            raise UserError(f"snapshot {req.snapshot} holds no release of the official chart (no Deployment or "
                            "<release>-config ConfigMap labelled tier=airflow in "
                            + (f"namespace {', '.join(wanted)}" if wanted else "any namespace it holds") + ")")
    else:
        from .live.plan import keys_for
        from .live.reader import LiveReader

        opts = live_options(req.live, None, None, req.verbose, env)
        opts.namespaces = wanted
        reader = LiveReader(opts, progress=progress)
        live, targets = reader.read_all(keys_for(checks))
        for w in live.warnings:
            echo(f"airflow-gke: warning: {w}")
        notices += [{"level": "warning", "message": n} for n in reader.fleet_notes]
        if req.verbose:
            echo(f"live read (--all-namespaces): {live.requests} requests in {live.duration_s:.2f} s")
        source, base, ctx_now, mode = live.source, live.target, live.now, "live"
        found = [(t.namespace, t.release) for t in targets]
        where = {"context": base.context, "project": base.project, "location": base.location,
                 "cluster": base.cluster}
        unchecked = [Unreached({**where, "namespace": ns}, why) for ns, why in reader.unchecked]
        if not found and not unchecked:
            raise UserError("no release of the official chart found (no Deployment labelled tier=airflow"
                            + (f" in namespace {', '.join(wanted)}" if wanted else "")
                            + ("" if not notices else f"; {notices[0]['message']}") + ")")
    fleet = FleetReport(__version__, mode, started.isoformat().replace("+00:00", "Z"), notices=notices)
    if req.snapshot is None:
        fleet.unchecked = unchecked
    last = {ns: i for i, (ns, _rel) in enumerate(found)}   # the last target of each namespace
    if progress is not None:
        progress.targets(len(found))
    try:
        for i, (ns, rel) in enumerate(found):
            target = base.with_overrides(namespace=ns, release=rel)
            try:
                fleet.reports.append(_judge(req, registry, checks, source, target, ctx_now, mode, live, env,
                                            datetime.now(timezone.utc), time.perf_counter(), echo=echo,
                                            guard_from=("discovered (--all-namespaces)",
                                                        "discovered (--all-namespaces)"), release=True))
            except UserError as e:
                fleet.unreached.append(Unreached({"context": target.context, "project": target.project,
                                                  "location": target.location, "cluster": target.cluster,
                                                  "namespace": ns, "release": rel}, str(e)))
            if last[ns] == i:
                release_target(source, ns)
            if progress is not None:
                progress.target_done(f"{ns}/{rel}")
    finally:
        if hasattr(source, "close"):
            source.close()
    fleet.duration_s = time.perf_counter() - t0
    return fleet


def release_target(source, namespace: str) -> None:
    """A fleet run, once the last report of ``namespace`` is built (its context already let go of
    its views: ``_judge(release=True)``, ``Context.forget_derived``): the source lets go of what it read there, so memory stays
    flat across targets. What is still held in reference cycles (exceptions and the frames they
    passed through) is collected too, the cyclic GC being off during a run; objects that survived
    an earlier collection are not scanned again."""
    import gc

    source.forget(namespace)
    gc.collect(1)


def diagnose_contexts(req: RunRequest, contexts: list[str], *, parallel: int = 4, all_namespaces: bool = False,
                      echo: Echo = _quiet, projects: list[str] = (), progress=None):
    """Several Kubernetes contexts (``--context`` repeated, ``--all-contexts``) and/or the GKE
    clusters of projects (``--fleet-project``, doctor/live/gke.py: reached with their endpoint, CA
    and Application Default Credentials, no kubeconfig): each is a run of its own (its own reads and
    --timeout budget), at most ``parallel`` at a time; a target that cannot be reached or holds no
    Airflow is one ``unreachable`` line, not the end of the run. With ``all_namespaces`` each
    cluster contributes every release it holds."""
    import concurrent.futures as cf
    from dataclasses import replace

    from .fleet import FleetReport, Unreached
    from .registry import load_checks

    if req.snapshot is not None:
        raise UserError(f"{'--fleet-project' if projects else 'several contexts'} appl"
                        f"{'ies' if projects else 'y'} to live mode only, not with --snapshot", usage=True)
    if projects:
        for flag, v in (("--project", req.live.project), ("--location", req.live.location),
                        ("--cluster", req.live.cluster)):
            if v is not None:
                raise UserError(f"{flag} names one cluster; --fleet-project diagnoses every cluster of the project",
                                usage=True)
    for flag, v in (("--manifests", req.manifests), ("--save-snapshot", req.save_snapshot),
                    ("--probe", req.probe or None), ("--probe-folder", req.probe_folder)):
        if v is not None:
            raise UserError(f"{flag} applies to one context, not with several", usage=True)
    if all_namespaces and req.release:
        raise UserError("--release does not apply with --all-namespaces (every release is diagnosed)", usage=True)
    checks = select_checks(load_checks(), req.include, req.exclude, req.extended, req.min_severity)
    _validate(req, checks)      # bad input ends the run before any context is read
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    env = dict(os.environ) if req.env is None else req.env
    targets: list = list(contexts)
    notes: list[str] = []
    bearer = None
    if projects:
        from .live import gke
        from .live.gcloud import CredentialsProblem, adc

        try:
            creds, _p = adc(env)     # every cluster is reached with these: none, nothing to reach
        except CredentialsProblem as e:
            raise UserError(f"--fleet-project: {e}") from None
        bearer = gke.BearerToken(creds)
        try:
            bearer.token()
        except Exception as e:  # noqa: BLE001 - google-auth's RefreshError, TransportError ...
            raise UserError(f"--fleet-project: the Application Default Credentials give no access token "
                            f"({type(e).__name__}: {e}); run: gcloud auth application-default login") from None
        clusters, notes = gke.list_clusters(list(projects), env, req.live.timeout, req.live.request_timeout)
        echo(f"--fleet-project: {len(clusters)} cluster(s): {', '.join(c.label for c in clusters)}")
        targets += clusters

    from .live.reader import SharedProgress, SharedReads

    shared = SharedReads()     # one project's IAM policy, API states, buckets ... asked once for all targets
    shown = SharedProgress(progress) if progress is not None else None   # reads of every target, one display

    def one(t):
        import gc

        base = {"namespace": req.namespace, "release": req.release}
        if isinstance(t, str):
            r = replace(req, live=replace(req.live, context=t, require_cluster=True, shared=shared))
            where = {"context": t}
        else:
            where = t.target()
            if t.problem:
                if progress is not None:
                    progress.target_done(t.label)
                return Unreached({**where, **base}, f"not reached: {t.problem}")
            r = replace(req, live=replace(req.live, context=None, kubeconfig=None, require_cluster=True,
                                          gke=t, bearer=bearer, shared=shared))
        try:
            if all_namespaces:
                return diagnose_fleet(r, echo=echo, progress=shown)
            return diagnose(r, echo=echo, progress=shown)
        except UserError as e:
            return Unreached({**where, **base}, str(e))
        finally:
            gc.collect(1)   # this target's data, held in reference cycles: gone (see release_target)
            if progress is not None:
                progress.target_done(t if isinstance(t, str) else t.label)

    if progress is not None:
        progress.targets(len(targets))
    try:
        with cf.ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="airflow-gke-target") as pool:
            results = list(pool.map(one, targets))
    finally:
        stop = getattr(progress, "stop", None)
        if stop is not None:
            stop()
    fleet = FleetReport(__version__, "live", started.isoformat().replace("+00:00", "Z"),
                        notices=[{"level": "warning", "message": n} for n in notes])
    for res in results:
        if isinstance(res, Unreached):
            fleet.unreached.append(res)
        elif hasattr(res, "reports"):
            fleet.reports += res.reports
            fleet.unreached += res.unreached
            fleet.unchecked += res.unchecked
            fleet.notices += res.notices
        else:
            fleet.reports.append(res)
    fleet.duration_s = time.perf_counter() - t0
    return fleet


def _establish_target(ctx, req: RunRequest, live):
    """The target guard (doctor/target_guard.py): a namespace or release that holds no Airflow of
    the official chart is a ``UserError`` naming where Airflow was found; else the evidence."""
    from .target_guard import establish

    if req.snapshot is not None:
        ns_from = "--namespace" if req.namespace else "the snapshot's meta.json"
        rel_from = "--release" if req.release else ("the snapshot's meta.json" if ctx.target.release else None)
    else:
        ns_from = live.namespace_from
        rel_from = "--release" if req.release else None
    guard = establish(ctx, ns_from, rel_from)
    if guard.blocks:
        raise UserError(guard.message)
    return guard


def _suppress(runs: list, ctx, req: RunRequest, registry: dict):
    """Suppressions and annotations, then the ``--min-severity`` floor: (suppressed, notices)."""
    from . import suppress

    today = req.today or datetime.now(timezone.utc).date()
    suppressed, notices = suppress.apply(runs, req.suppressions, registry, today, ctx,
                                         annotations=req.annotation_ignores)
    suppress.apply_min_severity(runs, req.min_severity)
    if req.min_severity:
        from .model import SEVERITY_RANK

        floor = SEVERITY_RANK[req.min_severity]
        suppressed = [x for x in suppressed if SEVERITY_RANK.get(x.finding.severity or "info", 0) >= floor]
    return suppressed, notices


def _probe(ctx, folder: str | None, env: dict, timeout: float, echo: Echo):
    """The --probe write cycle (doctor/live/probe.py), judged against who writes Airflow's logs."""
    from .live import probe

    chosen, writers, why = probe.prepare(ctx, folder, env)
    if not chosen:
        res = probe.ProbeResult(folder=None, pod=probe.pod_identity(env))
        res.note = ("probe not run: no log writer ships logs to a gs:// remote_base_log_folder"
                    + (f" ({why})" if why else "") + "; pass --probe-folder gs://BUCKET/PATH")
        return res
    echo(f"probe: writing one object under {chosen}/{probe.PROBE_DIR}/ (it is deleted again)")
    res = probe.run(chosen, env, ctx.target.project, timeout=timeout)
    probe.judge(res, writers, why, ctx)
    return res


def save_snapshot(live, ctx, dest) -> str:
    """Write what a live run read as a snapshot; returns the path written."""
    from .collect import make_meta, write_snapshot

    t = live.target
    meta = make_meta(captured_at=live.now, namespace=t.namespace, context=t.context, project=t.project,
                     location=t.location, cluster=t.cluster, release=_safe(lambda: ctx.release),
                     redacted=sorted(live.source.redactor.masked))
    return str(write_snapshot(live.source, meta, dest))


def collect(req: CollectRequest, *, echo: Echo = _quiet, progress=None) -> str:
    """Read live what the selected checks need (default: everything snapshot v1 holds) and write a
    snapshot; returns the path written."""
    from .collect import count_text, default_name
    from .data import KEYS
    from .live.plan import keys_for
    from .registry import load_checks
    from .views import Context

    env = dict(os.environ) if req.env is None else req.env
    if req.only or req.skip:
        keys = keys_for(select_checks(load_checks(), req.only, req.skip, True))
    else:
        from .data import FLEET_KEYS

        keys = set(KEYS) - set(FLEET_KEYS)     # what one target's snapshot holds
    opts = live_options(req.live, req.namespace, req.release, req.verbose, env)
    live = read_live(opts, keys, verbose=req.verbose, echo=echo, progress=progress)
    ctx = Context(live.source, live.target, now=live.now)
    dest = req.dest or default_name(live.target.project, live.target.cluster, live.now)
    written = save_snapshot(live, ctx, dest)
    echo(f"wrote {written}: {count_text(live.source)}, "
         f"{len(live.source.redactor.masked)} value(s) masked, {live.requests} requests in {live.duration_s:.1f} s")
    return written


def _safe(fn):
    from .views import DataUnavailable

    try:
        return fn()
    except DataUnavailable:
        return None
