"""The ``airflow-gke`` command line.

Exit codes (doctor): 0 no finding at or above --fail-on; 1 findings at or above it; 2 usage or
input error; 3 the run was incomplete (a selected check ended ``error``) and nothing reached the
threshold; 4 internal error.
"""
from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from . import __version__
from .errors import UserError
from .report.formats import FORMATS, NAMES as FORMAT_NAMES, files_help as formats_help

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERNAL = 0, 1, 2, 3, 4
_ALIASES = {"include": "only", "exclude": "skip"}


def _err(msg: str) -> None:
    click.echo(msg, err=True)


class _UserErrorShown(click.ClickException):
    """A UserError on its way out: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"airflow-gke: error: {self.format_message()}", err=True)


class _Command(click.Command):
    """Maps the one user-error type (doctor/errors.py) to exit 2: a usage error shows the usage
    line (as click does for a bad flag), any other one line on stderr."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            if e.usage:
                raise click.UsageError(str(e), ctx=ctx) from None
            raise _UserErrorShown(str(e)) from None


class _Group(click.Group):
    command_class = _Command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
        click.option("--context", "kube_context", multiple=True, metavar="NAME",
                     help="Kubernetes context (default: the current one); doctor: repeatable, one target each."),
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


def _progress(verbose: bool, quiet: bool = False, output: str = "table"):
    """A progress display on stderr while a run reads and diagnoses, else None: only when stderr is
    a terminal, and not with --verbose (which prints every call), --quiet, or a machine-readable
    report going to a pipe or file (``doctor -o json | jq``: a pipeline, not a person, reads it)."""
    if not sys.stderr.isatty() or verbose or quiet:
        return None
    if output not in ("table", "markdown") and not sys.stdout.isatty():
        return None
    from .live.progress import RichProgress

    return RichProgress()


def _contexts(value) -> tuple[str, ...]:
    """--context as given (repeatable), or the configuration file's one name."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(dict.fromkeys(value))


def _live_target(project, location, cluster, kube_context, kubeconfig, timeout, request_timeout, max_logs,
                 page_size, now):
    from .app import LiveTarget

    contexts = _contexts(kube_context)
    if len(contexts) > 1:
        raise UserError("give one --context here (doctor diagnoses several)", usage=True)
    kube_context = contexts[0] if contexts else None
    return LiveTarget(project=project, location=location, cluster=cluster, context=kube_context,
                      kubeconfig=kubeconfig, timeout=timeout, request_timeout=request_timeout, max_logs=max_logs,
                      page_size=page_size, now=now)


def with_config(func):
    """Fill the parameters of ``doctor`` that were not given on the command line from the
    configuration file (doctor/config.py); pass the loaded ``Config`` as ``config``."""
    import functools

    @functools.wraps(func)
    def wrapper(**kw):
        from . import config as cfgmod

        ctx = click.get_current_context()
        explicit = kw.pop("config_path", None)
        found = cfgmod.find(explicit)
        cfg = cfgmod.load(found) if found is not None else cfgmod.Config()
        snapshot_mode = kw.get("snapshot") is not None
        names = {v: k for k, v in cfgmod.DOCTOR_KEYS.items()}
        for name, value in cfg.params().items():
            if snapshot_mode and names[name] in cfgmod.LIVE_KEYS:
                continue
            if name not in kw:
                continue
            alias = _ALIASES.get(name)      # --check is an --include, --skip an --exclude
            given = [n for n in (name, alias) if n and ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, None)]
            if not given:
                kw[name] = value
        kw["config"] = cfg
        return func(**kw)

    return wrapper


@cli.command()
@click.option("--snapshot", "snapshot", type=click.Path(), metavar="PATH",
              help="Run offline on a snapshot directory or .tar.gz instead of the live cluster.")
@click.option("--manifests", "manifests", metavar="FILE",
              help="Planned mode: judge the rendered chart (`helm template ...` output; - for stdin) against the "
                   "cluster and project (live, or --snapshot) before deploying.")
@click.option("--namespace", "-n", multiple=True, metavar="NS",
              help="Airflow namespace (default: the snapshot's / the context's); with -A, repeatable: search only "
                   "these namespaces.")
@click.option("--release", metavar="R", help="Helm release (default: detected from the chart's labels).")
@click.option("--all-namespaces", "-A", "all_namespaces", is_flag=True,
              help="Diagnose every release of the official chart in every namespace (live: the cluster-wide "
                   "tier=airflow look-up; snapshot: the namespaces it holds); one fleet report in any format.")
@click.option("--all-contexts", "all_contexts", is_flag=True,
              help="Diagnose every context of the kubeconfig (live), each a target of its own.")
@click.option("--fleet-project", "fleet_projects", multiple=True, metavar="P",
              help="Diagnose every GKE cluster of project P (all locations; repeatable), each reached with its "
                   "endpoint, CA and Application Default Credentials, without a kubeconfig.")
@click.option("--parallel", "parallel", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              metavar="N", help="With several contexts or clusters: how many are diagnosed at a time.")
@click.option("--check", "only", multiple=True, metavar="SLUG", help="Run only this check (repeatable; globs allowed).")
@click.option("--skip", "skip", multiple=True, metavar="SLUG", help="Do not run this check (repeatable; globs allowed).")
@click.option("--include", "include", multiple=True, metavar="PATTERN",
              help="Run only the checks matching: a slug glob ('gcs-*'), category:NAME or severity:LEVEL (repeatable).")
@click.option("--exclude", "exclude", multiple=True, metavar="PATTERN",
              help="Leave out the checks matching: slug glob, category:NAME or severity:LEVEL (repeatable).")
@click.option("--min-severity", type=click.Choice(["error", "warning", "info"]), default=None,
              help="Report only findings of at least this severity (each finding's own; every selected check runs).")
@click.option("--extended", is_flag=True, help="Also run heuristic checks (off by default).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "never"]), default="error", show_default=True,
              help="Lowest finding severity that makes the exit code 1.")
@click.option("--output", "-o", "output", type=click.Choice(FORMAT_NAMES), default="table",
              show_default=True, help="Report format on stdout.")
@click.option("--compact", is_flag=True,
              help="Terminal report: one line per finding (severity, check, title, resource).")
@click.option("--output-file", "output_file", multiple=True, metavar="[FORMAT:]PATH", help=formats_help())
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
@click.option("--quiet", "-q", is_flag=True,
              help="No progress display on stderr (there is none when stderr is not a terminal).")
@with_config
def doctor(snapshot, namespace, release, only, skip, extended, fail_on, output, runbook_base, save_snapshot,
           project, location, cluster, kube_context, kubeconfig, timeout, request_timeout, max_logs, page_size,
           now, verbose, include=(), exclude=(), min_severity=None, output_file=(), annotation_ignores=True,
           probe=False, probe_folder=None, config=None, manifests=None, compact=False,
           all_namespaces=False, all_contexts=False, parallel=4, fleet_projects=(), quiet=False) -> None:
    """Find what stops Airflow on GKE, with evidence and the commands that fix it.

    Without --snapshot it reads the live cluster (kubeconfig or in-cluster) and project
    (Application Default Credentials); see `airflow-gke permissions` for the access it needs."""
    from .app import RunRequest, diagnose
    from .report.formats import output_targets

    targets = output_targets(output, tuple(output_file))     # bad FORMAT: prefixes end the run before it reads
    contexts = _contexts(kube_context)
    if all_contexts:
        if contexts:
            raise UserError("--all-contexts and --context: give one of them", usage=True)
        contexts = _all_contexts(kubeconfig)
    namespaces = _contexts(namespace)          # repeatable, or the configuration file's one name
    if len(namespaces) > 1 and not all_namespaces:
        raise UserError("give one --namespace (several only with --all-namespaces: the namespaces to search)",
                        usage=True)
    namespace = namespaces[0] if namespaces and not all_namespaces else None
    fleet_projects = tuple(dict.fromkeys(p.strip() for p in fleet_projects or ()))
    if any(not p for p in fleet_projects):
        raise UserError("--fleet-project needs a project ID", usage=True)
    kube_context = contexts[0] if len(contexts) == 1 and not fleet_projects else None

    req = RunRequest(
        snapshot=snapshot, namespace=namespace, release=release, include=tuple(only) + tuple(include),
        namespaces=namespaces if all_namespaces else (),
        exclude=tuple(skip) + tuple(exclude), extended=extended, min_severity=min_severity,
        runbook_base=runbook_base, annotation_ignores=annotation_ignores, suppressions=tuple(config.suppressions),
        probe=probe, probe_folder=probe_folder, save_snapshot=save_snapshot, manifests=manifests, verbose=verbose,
        live=_live_target(project, location, cluster, kube_context, kubeconfig, timeout, request_timeout, max_logs,
                          page_size, now))
    if len(contexts) > 1 or all_contexts or fleet_projects:
        _fleet(req, output, targets, fail_on, compact, snapshot, contexts=contexts, parallel=parallel,
               all_namespaces=all_namespaces, projects=fleet_projects, quiet=quiet)
    if all_namespaces:
        _fleet(req, output, targets, fail_on, compact, snapshot, quiet=quiet)
    # what was read stays held here until the process ends (main() ends it without freeing the
    # run's objects one by one; a caller that passes argv frees it when this frame goes)
    held: list = []
    report = diagnose(req, echo=_err, progress=None if snapshot is not None else _progress(verbose, quiet, output),
                      hold=held)
    _emit(report, output, targets, fail_on, compact=compact)
    sys.exit(report.exit_code(fail_on))


def _all_contexts(kubeconfig) -> tuple[str, ...]:
    """Every context of the kubeconfig (files merged by kubectl's rules), in file order."""
    import os

    from .live.kube import kubeconfig_files, read_kubeconfigs

    files, how = kubeconfig_files(kubeconfig, dict(os.environ))
    names = tuple(read_kubeconfigs([f for f in files if os.path.exists(f)]).contexts)
    if not names:
        raise UserError(f"--all-contexts: no context in the kubeconfig ({how})")
    return names


def _fleet(req, output: str, targets, fail_on: str, compact: bool, snapshot, contexts=(), parallel: int = 4,
           all_namespaces: bool = True, projects=(), quiet: bool = False) -> None:
    """Several targets: every release found (--all-namespaces, doctor/fleet.py) and/or several
    contexts (--context repeated, --all-contexts); one fleet report; exits."""
    from .app import diagnose_contexts, diagnose_fleet
    from .report import fleet as fleetfmt
    from .report.formats import gcs_locations, local_files

    uploads, targets = gcs_locations(targets), local_files(targets)

    for fmt in [output] + [f for f, _p in targets]:
        if fmt not in fleetfmt.FLEET_FORMATS:
            raise UserError(f"--all-namespaces and several contexts report as "
                            f"{' or '.join(fleetfmt.FLEET_FORMATS)}, not {fmt}", usage=True)
    progress = _progress(req.verbose, quiet, output)    # targets diagnosed (and reads, live), offline too
    if contexts or projects:
        fleet = diagnose_contexts(req, list(contexts), parallel=parallel, all_namespaces=all_namespaces, echo=_err,
                                  projects=list(projects), progress=progress)
    else:
        fleet = diagnose_fleet(req, echo=_err, progress=progress)
    _print_fleet(fleet, output, targets, fail_on, compact)
    _upload([rep.to_dict() for rep in fleet.reports], fleet.started_at, uploads)
    sys.exit(fleet.exit_code(fail_on))


def _print_fleet(fleet, output: str, targets, fail_on: str, compact: bool) -> None:
    """The fleet report's files, then stdout (the summary table and each target's report when a
    file took the chosen format), each format through its fleet renderer (report/formats.py)."""
    from .report import fleet as fleetfmt

    # the full report a Markdown comment names: the JSON and HTML files the same run writes
    json_path = next((str(p) for f, p in targets if f == "json"), None)
    html_path = next((str(p) for f, p in targets if f == "html"), None)
    for fmt, path in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(fleetfmt.render(fleet, fmt, fail_on, compact=compact, json_path=json_path,
                                            html_path=html_path), encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write the {fmt} report to {path}: {e.strerror or e}") from None
        _err(f"wrote {fmt} report: {path}")
    FORMATS["table" if targets else output].print_fleet(fleet, fail_on, compact=compact, json_path=json_path,
                                                        html_path=html_path)


def _emit(report, output: str, targets, fail_on: str, compact: bool = False) -> None:
    """Write the report files, then the report on stdout: the chosen format, or the terminal report
    when a file took the chosen format. A Markdown report cut to fit one comment names the JSON
    report the same run writes."""
    from .report import formats

    uploads, targets = formats.gcs_locations(targets), formats.local_files(targets)
    json_path = next((str(p) for f, p in targets if f == "json"), None)
    html_path = next((str(p) for f, p in targets if f == "html"), None)
    for fmt, path in targets:
        formats.write(report, fmt, path, fail_on, json_path=json_path, html_path=html_path)
        _err(f"wrote {fmt} report: {path}")
    FORMATS["table" if targets else output].print(report, fail_on, compact=compact, json_path=json_path,
                                                  html_path=html_path)
    _upload([report.to_dict()], report.run.started_at, uploads)


def _upload(docs: list[dict], started_at: str, locations) -> None:
    """``--output-file gs://...``: each target's JSON report as one object under each location
    (doctor/gcs.py), after the report is printed; a failure is one line and exit 2."""
    if not locations or not docs:
        return
    import orjson

    from . import gcs

    sys.stdout.flush()
    for loc in locations:
        names = gcs.object_names(loc, [d["run"] for d in docs], started_at)
        data = [orjson.dumps(d, option=orjson.OPT_INDENT_2) + b"\n" for d in docs]
        for url in gcs.upload(loc, list(zip(names, data))):
            _err(f"wrote json report: {url}")


@cli.command("report")
@click.argument("source", metavar="SOURCE")
@click.option("--output", "-o", "output", type=click.Choice(FORMAT_NAMES), default="table", show_default=True,
              help="Format on stdout.")
@click.option("--output-file", "output_file", multiple=True, metavar="[FORMAT:]PATH",
              help="Also write the fleet view to PATH (repeatable): FORMAT: or the extension decides.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "never"]), default="error", show_default=True,
              help="Lowest finding severity (in the latest report of any target) that makes the exit code 1.")
@click.option("--full", is_flag=True,
              help="Terminal: each target's whole report under the grid (default: its findings, one line each).")
@click.option("--compact", is_flag=True, help="With --full: each target's report one line per finding.")
@click.option("--now", "now", metavar="RFC3339", hidden=True, help="Compute ages as of this time (tests).")
def report(source, output, output_file, fail_on, full, compact, now) -> None:
    """Print the fleet view of stored JSON reports: SOURCE is a folder (or one file) or a
    gs://BUCKET/PREFIX/ of reports written by `doctor --output json` / `--output-file gs://...`
    (single-target reports and fleet documents). The latest report of each target (project,
    cluster, namespace, release) is shown, with its age; exit code: the worst of them."""
    from .report import fleet as fleetfmt
    from .report.formats import gcs_locations, output_targets
    from .report.stored import load

    targets = output_targets(output, tuple(output_file))
    if gcs_locations(targets):
        raise UserError("report --output-file: a file here (gs:// is for doctor's reports)", usage=True)
    for fmt in [output] + [f for f, _p in targets]:
        if fmt not in fleetfmt.FLEET_FORMATS:
            raise UserError(f"report prints as {', '.join(fleetfmt.FLEET_FORMATS)}, not {fmt}", usage=True)
    when = None
    if now:
        from datetime import datetime, timezone

        try:
            when = datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--now {now}: not an RFC 3339 time", usage=True) from None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    fleet = load(source, warn=lambda m: _err(f"airflow-gke: warning: {m}"), now=when)
    fleet.full = full
    _print_fleet(fleet, output, targets, fail_on, compact)
    sys.exit(fleet.exit_code(fail_on))


@cli.command()
@click.option("--dest", "out_path", metavar="DIR|FILE.tar.gz",
              help="Where to write the snapshot (default: ./airflow-gke-<project>-<cluster>-<time>.tar.gz).")
@click.option("--output", "-o", "old_out_path", metavar="DIR|FILE.tar.gz", hidden=True,
              help="Deprecated spelling of --dest (elsewhere -o names a report format).")
@click.option("--namespace", "-n", metavar="NS", help="Airflow namespace (default: the context's, else discovered).")
@click.option("--release", metavar="R", help="Helm release (default: detected from the chart's labels).")
@click.option("--check", "only", multiple=True, metavar="SLUG",
              help="Read only what these checks need (default: everything snapshot v1 holds).")
@click.option("--skip", "skip", multiple=True, metavar="SLUG", hidden=True)
@live_options
@click.option("--verbose", "-v", is_flag=True, help="Timings per API call on stderr.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress display on stderr (there is none when stderr is not a terminal).")
def collect(out_path, old_out_path, namespace, release, only, skip, project, location, cluster, kube_context, kubeconfig,
            timeout, request_timeout, max_logs, page_size, now, verbose, quiet=False) -> None:
    """Read the live cluster and project into a redacted snapshot (for support tickets, CI replays).

    Secrets are never read; sensitive values are masked before anything is written, and
    meta.json lists the masked keys (never their values). Run `airflow-gke doctor --snapshot`
    on the result to see the same findings offline."""
    from .app import CollectRequest, collect as collect_snapshot

    if old_out_path is not None:
        if out_path is not None:
            raise UserError("give the path once: --dest (-o/--output is its deprecated spelling)", usage=True)
        _err("airflow-gke: note: `collect -o/--output PATH` is deprecated (in the other commands -o names a "
             "report format); use `collect --dest PATH`")
        out_path = old_out_path
    req = CollectRequest(dest=out_path, namespace=namespace, release=release, only=tuple(only), skip=tuple(skip),
                         verbose=verbose, live=_live_target(project, location, cluster, kube_context, kubeconfig,
                                                            timeout, request_timeout, max_logs, page_size, now))
    click.echo(collect_snapshot(req, echo=_err, progress=_progress(verbose, quiet)))


@cli.command()
@click.option("--check", "only", multiple=True, metavar="SLUG", help="Only for these checks (repeatable; globs allowed).")
@click.option("--skip", "skip", multiple=True, metavar="SLUG", help="Leave these checks out.")
@click.option("--extended", is_flag=True, help="Include the heuristic checks.")
@click.option("--namespace", "-n", metavar="NS", default="airflow", show_default=True, help="Namespace of the Role.")
@click.option("--project", metavar="P", help="Project to fill in the gcloud commands.")
@click.option("--all-namespaces", "-A", "all_namespaces", is_flag=True,
              help="For `doctor --all-namespaces`: every rule cluster-wide (one ClusterRole, no Role).")
@click.option("--output", "-o", "output", type=click.Choice(["text", "yaml"]), default="text", show_default=True,
              help="yaml: Role + ClusterRole for `kubectl apply -f -` (Google permissions as comments).")
def permissions(only, skip, extended, namespace, project, output, all_namespaces=False) -> None:
    """Print the least privilege the selected checks need: Kubernetes RBAC and Google IAM."""
    from .app import select_checks
    from .permissions import keys_of, render_text, render_yaml
    from .registry import load_checks

    checks = select_checks(load_checks(), only, skip, extended)
    keys = keys_of(checks)
    ids = [c.id for c in checks]
    render = render_yaml if output == "yaml" else render_text
    sys.stdout.write(render(keys, namespace, project, ids, all_namespaces=all_namespaces))


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
                "extended": c.extended, "evidence": c.evidence, "needs": list(c.needs), "uses": list(c.uses)}
               for c in rows]
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
        raise UserError(f"unknown check {slug!r}; see `airflow-gke checks`", usage=True)
    text = runbook_text(slug)
    if text is None:
        raise UserError(f"no runbook shipped for {slug}")
    if sys.stdout.isatty():
        from rich.console import Console

        from .runbooks import print_runbook

        print_runbook(text, Console())
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
