"""The ``airflow-gke`` command line.

Exit codes (doctor): 0 no finding at or above --fail-on; 1 findings at or above it; 2 usage or
input error; 3 the run was incomplete (a selected check ended ``error``) and nothing reached the
threshold; 4 internal error.
"""
from __future__ import annotations

import fnmatch
import sys
import time
from datetime import datetime, timezone

import click

from . import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERNAL = 0, 1, 2, 3, 4


class InputError(click.ClickException):
    """Bad input (unreadable snapshot, nothing reachable): one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"airflow-gke: error: {self.format_message()}", err=True)


def _err(msg: str) -> None:
    click.echo(msg, err=True)


def select_checks(registry: dict, only: tuple[str, ...], skip: tuple[str, ...], extended: bool) -> list:
    unknown = [s for s in only + skip if not any(fnmatch.fnmatchcase(c, s) for c in registry)]
    if unknown:
        raise click.UsageError(f"unknown check {', '.join(unknown)}; see `airflow-gke checks`")
    chosen = []
    for cid, chk in registry.items():
        if only:
            if not any(fnmatch.fnmatchcase(cid, s) for s in only):
                continue
        elif chk.extended and not extended:
            continue
        if any(fnmatch.fnmatchcase(cid, s) for s in skip):
            continue
        chosen.append(chk)
    return chosen


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="airflow-gke", message="%(prog)s %(version)s")
def cli() -> None:
    """Diagnose Apache Airflow on Google Kubernetes Engine (official Helm chart)."""


@cli.command()
@click.option("--snapshot", "snapshot", type=click.Path(), metavar="PATH",
              help="Run offline on a snapshot directory or .tar.gz instead of the live cluster.")
@click.option("--namespace", "-n", metavar="NS", help="Airflow namespace (default: the snapshot's / the context's).")
@click.option("--release", metavar="R", help="Helm release (default: detected from the chart's labels).")
@click.option("--check", "only", multiple=True, metavar="SLUG", help="Run only this check (repeatable; globs allowed).")
@click.option("--skip", "skip", multiple=True, metavar="SLUG", help="Do not run this check (repeatable; globs allowed).")
@click.option("--extended", is_flag=True, help="Also run heuristic checks (off by default).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "never"]), default="error", show_default=True,
              help="Lowest finding severity that makes the exit code 1.")
@click.option("--output", "-o", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--runbook-base", metavar="URL", help="Link findings to <URL>/<slug> (a team wiki) instead of the project's runbooks.")
@click.option("--verbose", "-v", is_flag=True, help="Timings per check (and per API call in live mode) on stderr.")
def doctor(snapshot, namespace, release, only, skip, extended, fail_on, output, runbook_base, verbose) -> None:
    """Find what stops Airflow on GKE, with evidence and the commands that fix it."""
    from .context import Context
    from .data import Target
    from .registry import load_checks, load_errors
    from .report import RunInfo, RunReport
    from .runner import run_checks
    from .snapshot import SnapshotError, open_snapshot

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    registry = load_checks()
    checks = select_checks(registry, only, skip, extended)
    if snapshot is None:
        raise InputError("live mode is not available in this build; pass --snapshot PATH")
    try:
        source = open_snapshot(snapshot)
    except SnapshotError as e:
        raise InputError(str(e)) from None
    try:
        m = source.meta
        target = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                        release=m.release, context=m.context).with_overrides(namespace=namespace, release=release)
        ctx = Context(source, target, now=m.captured_at)
        if verbose:
            _err(f"snapshot {snapshot}: captured {m.captured_at.isoformat()}, {len(list(source.paths()))} files")
        runs = run_checks(ctx, checks, runbook_base)
        info = RunInfo(mode="snapshot", context=target.context, project=target.project, location=target.location,
                       cluster=target.cluster, namespace=target.namespace, release=_safe(lambda: ctx.release),
                       airflow_version=_safe(lambda: ctx.airflow_version),
                       chart_version=_safe(lambda: ctx.chart_version),
                       started_at=started.isoformat().replace("+00:00", "Z"))
    finally:
        source.close()
    info.duration_s = time.perf_counter() - t0
    report = RunReport(__version__, info, runs, [{"check": None, "message": e} for e in load_errors])
    if verbose:
        for r in runs:
            _err(f"  {r.status:5} {r.id:40} {r.duration_s * 1000:8.2f} ms")
    if output == "json":
        from .report.json_report import render as render_json

        sys.stdout.write(render_json(report))
    else:
        from .report.terminal import render as render_table

        render_table(report)
    sys.exit(report.exit_code(fail_on))


def _safe(fn):
    from .context import DataUnavailable

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
    try:
        cli.main(args=argv, prog_name="airflow-gke", standalone_mode=True)
    except SystemExit:
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


if __name__ == "__main__":  # pragma: no cover
    main()
