"""The ``airflow-gke`` command line.

Exit codes (doctor): 0 no finding at or above --fail-on; 1 findings at or above it; 2 usage or
input error; 3 the run was incomplete (a selected check ended ``error``) and nothing reached the
threshold; 4 internal error.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

import click
from click.core import ParameterSource

from . import __version__, gate

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERNAL = 0, 1, 2, 3, 4


class InputError(click.ClickException):
    """Bad input (unreadable snapshot, nothing reachable): one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"airflow-gke: error: {self.format_message()}", err=True)


def _err(msg: str) -> None:
    click.echo(msg, err=True)


def select_checks(registry: dict, only: tuple[str, ...], skip: tuple[str, ...], extended: bool,
                  min_severity: str | None = None) -> list:
    """Checks selected by include patterns (``--check``/``--include``), exclude patterns
    (``--skip``/``--exclude``) and ``--min-severity``; see doctor/selection.py for the syntax."""
    from .selection import SelectionError, select

    try:
        return select(registry, only, skip, extended, min_severity)
    except SelectionError as e:
        raise click.UsageError(str(e)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="airflow-gke", message="%(prog)s %(version)s")
def cli() -> None:
    """Diagnose Apache Airflow on Google Kubernetes Engine (official Helm chart)."""


def live_options(func):
    """Options of a live read (doctor without --snapshot, collect)."""
    opts = [
        click.option("--project", metavar="P", help="Google Cloud project (default: from a gke_<project>_<location>_<cluster> "
                                                    "context, else the Application Default Credentials' project)."),
        click.option("--location", metavar="L", help="GKE cluster location, region or zone (default: from the context name)."),
        click.option("--cluster", metavar="C", help="GKE cluster name (default: from the context name)."),
        click.option("--context", "kube_context", metavar="NAME", help="Kubernetes context (default: the current one)."),
        click.option("--kubeconfig", metavar="FILE", help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config; in a pod: "
                                                         "the in-cluster configuration)."),
        click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True, metavar="SECONDS",
                     help="Time budget for all the reads of the run."),
        click.option("--request-timeout", type=click.FloatRange(min=0.1), default=20.0, show_default=True,
                     metavar="SECONDS", help="Time budget for one HTTP request."),
        click.option("--max-logs", type=click.IntRange(min=0), default=50, show_default=True, metavar="N",
                     help="Read the logs of at most N unhealthy containers."),
        click.option("--page-size", type=click.IntRange(min=1), default=500, hidden=True,
                     help="Kubernetes list page size (limit)."),
        click.option("--now", "now", metavar="RFC3339", hidden=True,
                     help="Judge ages as of this time instead of the clock (replays and tests)."),
    ]
    for o in reversed(opts):
        func = o(func)
    return func


LIVE_ONLY = ("project", "location", "cluster", "kube_context", "kubeconfig", "save_snapshot")


def _live_opts(namespace, release, project, location, cluster, kube_context, kubeconfig, timeout,
               request_timeout, max_logs, page_size, now, verbose):
    import os

    from .live import LiveOptions
    from .snapshot import parse_time

    pinned = None
    if now is not None:
        pinned = parse_time(now)
        if pinned is None:
            raise click.UsageError(f"--now {now!r} is not an RFC 3339 timestamp")
    return LiveOptions(project=project, location=location, cluster=cluster, namespace=namespace, release=release,
                       context=kube_context, kubeconfig=kubeconfig, timeout=timeout, request_timeout=request_timeout,
                       max_logs=max_logs, page_size=page_size, now=pinned, verbose=verbose, env=dict(os.environ))


def _read_live(opts, keys, verbose: bool):
    """Run the live reader with progress (TTY) or per-call timings (--verbose) on stderr."""
    from .live import NothingReachable, read_live
    from .live.options import UsageProblem

    progress = None
    bar = None
    if sys.stderr.isatty() and not verbose:
        from .live.progress import RichProgress

        bar = progress = RichProgress()
    try:
        if verbose:
            from .live.reader import LiveReader

            reader = LiveReader(opts, progress=progress)
            reader.recorder.echo = lambda c: _err(
                f"  {c.service:<20} {c.method:4} {c.path}  "
                f"{c.status if c.status is not None else (c.note or 'no answer')}  {c.duration * 1000:8.1f} ms"
                + (f"  (attempt {c.attempt})" if c.attempt > 1 else ""))
            result = reader.read(keys)
        else:
            result = read_live(opts, keys, progress=progress)
    except (NothingReachable, UsageProblem) as e:
        raise InputError(str(e)) from None
    finally:
        if bar is not None:
            bar.stop()
    if verbose:
        for n in result.notes:
            _err(f"  note: {n}")
        from .collect import count_text

        _err(f"live read: {result.requests} requests, {count_text(result.source)} in {result.duration_s:.2f} s")
    return result


@cli.command()
@click.option("--snapshot", "snapshot", type=click.Path(), metavar="PATH",
              help="Run offline on a snapshot directory or .tar.gz instead of the live cluster.")
@click.option("--manifests", "manifests", metavar="FILE",
              help="Planned mode: judge the rendered chart (`helm template ...` output; - for stdin) against the "
                   "cluster and project (live, or --snapshot) before deploying.")
@click.option("--namespace", "-n", metavar="NS", help="Airflow namespace (default: the snapshot's / the context's).")
@click.option("--release", metavar="R", help="Helm release (default: detected from the chart's labels).")
@click.option("--check", "only", multiple=True, metavar="SLUG", help="Run only this check (repeatable; globs allowed).")
@click.option("--skip", "skip", multiple=True, metavar="SLUG", help="Do not run this check (repeatable; globs allowed).")
@click.option("--include", "include", multiple=True, metavar="PATTERN",
              help="Run only the checks matching: a slug glob ('gcs-*'), category:NAME or severity:LEVEL (repeatable).")
@click.option("--exclude", "exclude", multiple=True, metavar="PATTERN",
              help="Leave out the checks matching: slug glob, category:NAME or severity:LEVEL (repeatable).")
@click.option("--min-severity", type=click.Choice(["error", "warning", "info"]), default=None,
              help="Run only checks of at least this severity and report only findings of at least it.")
@click.option("--extended", is_flag=True, help="Also run heuristic checks (off by default).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "never"]), default="error", show_default=True,
              help="Lowest finding severity that makes the exit code 1.")
@click.option("--output", "-o", "output", type=click.Choice(["table", "json", "junit", "markdown"]), default="table",
              show_default=True, help="Report format on stdout.")
@click.option("--output-file", "output_file", multiple=True, metavar="[FORMAT:]PATH",
              help="Also write the report to PATH (repeatable) while the terminal report prints: FORMAT is json, "
                   "junit, markdown or table; default --output's format, else from the extension (.json .xml .md).")
@click.option("--config", "config_path", metavar="FILE",
              help="Configuration file (default: .airflow-gke.yaml in the working directory, if present).")
@click.option("--annotation-ignores/--no-annotation-ignores", "annotation_ignores", default=True, show_default=True,
              help="Honour the airflow-gke.io/ignore annotation on Kubernetes objects (suppresses those findings).")
@click.option("--probe", is_flag=True,
              help="Live mode: prove gcs-log-write-denied by writing, reading back and deleting one object under "
                   "<remote_base_log_folder>/.airflow-gke-probe/ (the only write the tool makes).")
@click.option("--probe-folder", metavar="gs://BUCKET/PATH",
              help="Folder to probe (default: the log writers' remote_base_log_folder).")
@click.option("--runbook-base", metavar="URL", help="Link findings to <URL>/<slug> (a team wiki) instead of the project's runbooks.")
@click.option("--save-snapshot", "save_snapshot", metavar="PATH",
              help="Live mode: also save what was read as a snapshot (directory or .tar.gz).")
@live_options
@click.option("--verbose", "-v", is_flag=True, help="Timings per check (and per API call in live mode) on stderr.")
@gate.with_config
def doctor(snapshot, namespace, release, only, skip, extended, fail_on, output, runbook_base, save_snapshot,
           project, location, cluster, kube_context, kubeconfig, timeout, request_timeout, max_logs, page_size,
           now, verbose, include=(), exclude=(), min_severity=None, output_file=(), annotation_ignores=True,
           probe=False, probe_folder=None, config=None, manifests=None) -> None:
    """Find what stops Airflow on GKE, with evidence and the commands that fix it.

    Without --snapshot it reads the live cluster (kubeconfig or in-cluster) and project
    (Application Default Credentials); see `airflow-gke permissions` for the access it needs."""
    from .views import Context
    from .data import Target
    from .registry import load_checks, load_errors
    from .report import RunInfo, RunReport
    from .runner import run_checks

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    registry = load_checks()
    checks = select_checks(registry, tuple(only) + tuple(include), tuple(skip) + tuple(exclude), extended,
                           min_severity)
    if (probe or probe_folder) and not any(c.id == "gcs-log-write-denied" for c in checks):
        raise click.UsageError("--probe proves gcs-log-write-denied, which this run does not select")
    plan = _load_plan(manifests, namespace, release, probe or probe_folder) if manifests is not None else None
    if plan is not None:
        namespace, release = plan.namespace, plan.release
    if snapshot is not None:
        given = [f"--{n.replace('kube_context', 'context').replace('_', '-')}" for n, v in (
            ("project", project), ("location", location), ("cluster", cluster), ("kube_context", kube_context),
            ("kubeconfig", kubeconfig), ("save_snapshot", save_snapshot),
            ("probe", probe or None), ("probe_folder", probe_folder)) if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to live mode only, "
                                   "not with --snapshot")
        from .snapshot import SnapshotError, open_snapshot

        try:
            source = open_snapshot(snapshot)
        except SnapshotError as e:
            raise InputError(str(e)) from None
        mode = "snapshot"
        m = source.meta
        target = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                        release=m.release, context=m.context).with_overrides(namespace=namespace, release=release)
        ctx_now = m.captured_at
        if verbose:
            _err(f"snapshot {snapshot}: captured {m.captured_at.isoformat()}, {len(list(source.paths()))} files")
        live = None
    else:
        from .live.plan import keys_for

        opts = _live_opts(namespace, release, project, location, cluster, kube_context, kubeconfig, timeout,
                          request_timeout, max_logs, page_size, now, verbose)
        live = _read_live(opts, keys_for(checks), verbose)
        source, target, ctx_now, mode = live.source, live.target, live.now, "live"
    base_source = source
    if plan is not None:   # planned mode: the plan over the cluster's source (doctor/planned.py)
        from . import planned

        source, cluster_from, mode = planned.overlay(plan, base_source, target), mode, "planned"
    try:
        ctx = Context(source, target, now=ctx_now)
        runs = run_checks(ctx, checks, runbook_base)
        plan_info = planned.compare(plan, base_source, target, ctx_now, checks, runs, cluster_from,
                                    runbook_base) if plan is not None else None
        if live is not None and live.preflight:
            for r in runs:
                if r.status == "skip" and r.reason and "k8s/" in r.reason:
                    r.reason = f"project preflight, no Kubernetes cluster was read ({live.kube_tried}): {r.reason}"
        info = RunInfo(mode=mode, context=target.context, project=target.project, location=target.location,
                       cluster=target.cluster, namespace=target.namespace, release=_safe(lambda: ctx.release),
                       airflow_version=_safe(lambda: ctx.airflow_version),
                       chart_version=_safe(lambda: ctx.chart_version),
                       started_at=started.isoformat().replace("+00:00", "Z"))
        if live is not None and save_snapshot:
            written = _save(live, ctx, save_snapshot)
            _err(f"saved snapshot: {written}")
        probed = _probe(ctx, live, probe_folder, timeout=request_timeout) if (probe or probe_folder) else None
        suppressed, notices = gate.settle(runs, ctx, config, registry, annotation_ignores=annotation_ignores,
                                          min_severity=min_severity, probe_result=probed, runbook_base=runbook_base)
    finally:
        if hasattr(source, "close"):
            source.close()
    info.duration_s = time.perf_counter() - t0
    report = RunReport(__version__, info, runs, [{"check": None, "message": e} for e in load_errors],
                       suppressed=suppressed, notices=notices, probe=probed.to_dict() if probed else None,
                       plan=plan_info)
    if verbose:
        for name, secs in ctx.read_times.items():
            _err(f"  read  {name:40} {secs * 1000:8.2f} ms")
        for r in runs:
            _err(f"  {r.status:5} {r.id:40} {r.duration_s * 1000:8.2f} ms")
    output_given = click.get_current_context().get_parameter_source("output") is not ParameterSource.DEFAULT
    gate.emit(report, output, tuple(output_file), fail_on, output_given)
    sys.exit(report.exit_code(fail_on))


def _load_plan(manifests: str, namespace, release, probing):
    """The plan of --manifests (exit 2 with file and line for bad input)."""
    from .manifests import ManifestError
    from .planned import load

    if probing:
        raise click.UsageError("--probe writes with a running pod's identity; it does not apply to --manifests")
    try:
        return load(manifests, namespace, release)
    except ManifestError as e:
        raise InputError(str(e)) from None


def _probe(ctx, live, folder, timeout: float):
    """The --probe write cycle, judged against who writes Airflow's logs (doctor/probe.py)."""
    import os

    from . import probe

    env = dict(os.environ)
    chosen, writers, why = probe.prepare(ctx, folder, env)
    if not chosen:
        res = probe.ProbeResult(folder=None, pod=probe.pod_identity(env))
        res.note = ("probe not run: no log writer ships logs to a gs:// remote_base_log_folder"
                    + (f" ({why})" if why else "") + "; pass --probe-folder gs://BUCKET/PATH")
        return res
    _err(f"probe: writing one object under {chosen}/{probe.PROBE_DIR}/ (it is deleted again)")
    res = probe.run(chosen, env, ctx.target.project, timeout=timeout)
    probe.judge(res, writers, why, ctx)
    return res


def _save(live, ctx, dest) -> str:
    from .collect import CollectError, make_meta, write_snapshot

    t = live.target
    meta = make_meta(captured_at=live.now, namespace=t.namespace, context=t.context, project=t.project,
                     location=t.location, cluster=t.cluster, release=_safe(lambda: ctx.release),
                     redacted=sorted(live.source.redactor.masked))
    try:
        return str(write_snapshot(live.source, meta, dest))
    except CollectError as e:
        raise InputError(str(e)) from None


@cli.command()
@click.option("--output", "-o", "out_path", metavar="DIR|FILE.tar.gz",
              help="Where to write the snapshot (default: ./airflow-gke-<project>-<cluster>-<time>.tar.gz).")
@click.option("--namespace", "-n", metavar="NS", help="Airflow namespace (default: the context's, else discovered).")
@click.option("--release", metavar="R", help="Helm release (default: detected from the chart's labels).")
@click.option("--check", "only", multiple=True, metavar="SLUG",
              help="Read only what these checks need (default: everything snapshot v1 holds).")
@click.option("--skip", "skip", multiple=True, metavar="SLUG", hidden=True)
@live_options
@click.option("--verbose", "-v", is_flag=True, help="Timings per API call on stderr.")
def collect(out_path, namespace, release, only, skip, project, location, cluster, kube_context, kubeconfig, timeout,
            request_timeout, max_logs, page_size, now, verbose) -> None:
    """Read the live cluster and project into a redacted snapshot (for support tickets, CI replays).

    Secrets are never read; sensitive values are masked before anything is written, and
    meta.json lists the masked keys (never their values). Run `airflow-gke doctor --snapshot`
    on the result to see the same findings offline."""
    from .collect import count_text, default_name
    from .views import Context
    from .data import KEYS
    from .live.plan import keys_for
    from .registry import load_checks

    if only or skip:
        keys = keys_for(select_checks(load_checks(), only, skip, True))
    else:
        keys = set(KEYS)
    opts = _live_opts(namespace, release, project, location, cluster, kube_context, kubeconfig, timeout,
                      request_timeout, max_logs, page_size, now, verbose)
    live = _read_live(opts, keys, verbose)
    ctx = Context(live.source, live.target, now=live.now)
    dest = out_path or default_name(live.target.project, live.target.cluster, live.now)
    written = _save(live, ctx, dest)
    _err(f"wrote {written}: {count_text(live.source)}, "
         f"{len(live.source.redactor.masked)} value(s) masked, {live.requests} requests in {live.duration_s:.1f} s")
    click.echo(written)


@cli.command()
@click.option("--check", "only", multiple=True, metavar="SLUG", help="Only for these checks (repeatable; globs allowed).")
@click.option("--skip", "skip", multiple=True, metavar="SLUG", help="Leave these checks out.")
@click.option("--extended", is_flag=True, help="Include the heuristic checks.")
@click.option("--namespace", "-n", metavar="NS", default="airflow", show_default=True, help="Namespace of the Role.")
@click.option("--project", metavar="P", help="Project to fill in the gcloud commands.")
@click.option("--output", "-o", "output", type=click.Choice(["text", "yaml"]), default="text", show_default=True,
              help="yaml: Role + ClusterRole for `kubectl apply -f -` (Google permissions as comments).")
def permissions(only, skip, extended, namespace, project, output) -> None:
    """Print the least privilege the selected checks need: Kubernetes RBAC and Google IAM."""
    from .permissions import keys_of, render_text, render_yaml
    from .registry import load_checks

    checks = select_checks(load_checks(), only, skip, extended)
    keys = keys_of(checks)
    ids = [c.id for c in checks]
    render = render_yaml if output == "yaml" else render_text
    sys.stdout.write(render(keys, namespace, project, ids))


def _safe(fn):
    from .views import DataUnavailable

    try:
        return fn()
    except DataUnavailable:
        return None


@cli.command("checks")
@click.option("--output", "-o", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_checks(output) -> None:
    """List the registered checks."""
    from .registry import load_checks

    registry = load_checks()
    rows = sorted(registry.values(), key=lambda c: (c.category, c.id))
    if output == "json":
        import orjson

        doc = [{"id": c.id, "title": c.title, "severity": c.severity, "category": c.category,
                "extended": c.extended, "needs": list(c.needs), "uses": list(c.uses)} for c in rows]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    width = max((len(c.id) for c in rows), default=10)
    for c in rows:
        tier = " (extended)" if c.extended else ""
        click.echo(f"{c.id:<{width}}  {c.severity:<7}  {c.category:<10}  {c.title}{tier}")


@cli.command()
@click.argument("slug")
def explain(slug) -> None:
    """Print the runbook of a check."""
    from .registry import load_checks
    from .runbooks import runbook_text

    registry = load_checks()
    if slug not in registry:
        raise click.UsageError(f"unknown check {slug!r}; see `airflow-gke checks`")
    text = runbook_text(slug)
    if text is None:
        raise InputError(f"no runbook shipped for {slug}")
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        sys.stdout.write(text)


def main(argv: list[str] | None = None) -> None:
    # A run parses millions of small JSON objects that hold no reference cycles; with the cyclic
    # GC on, each parse of a large list triggers collections that re-scan everything parsed so far
    # (about 3x the parse time on a 10,000-pod namespace). A run is short: the GC stays off until it ends.
    import gc

    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        cli.main(args=argv, prog_name="airflow-gke", standalone_mode=True)
    except SystemExit as e:
        if argv is None:
            _exit_now(e.code)
        raise
    except KeyboardInterrupt:
        _err("airflow-gke: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - the contract is exit 4 and no traceback
        import os

        if os.environ.get("AIRFLOW_GKE_DEBUG"):
            raise
        _err(f"airflow-gke: internal error: {type(e).__name__}: {e} "
             "(set AIRFLOW_GKE_DEBUG=1 for a traceback, and please report it)")
        sys.exit(EXIT_INTERNAL)
    finally:
        # Re-enabling it makes the next allocation scan every object of the run (1.5 s on 50,000
        # pods); when main() owns the process (the console script: no argv) the process ends here.
        if gc_was_on and argv is not None:
            gc.enable()


def _exit_now(code) -> None:
    """End the process without freeing the run's objects one by one (a second for 50,000 pods):
    only when main() owns the process; output is flushed, temporary folders are already gone."""
    import os

    if code is None:
        code = 0
    elif not isinstance(code, int):
        _err(str(code))
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
