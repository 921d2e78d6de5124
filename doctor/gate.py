"""What makes `airflow-gke doctor` usable as a CI gate, kept out of the command's body:

* ``with_config``: the configuration file's defaults for the flags not given (``doctor/config.py``);
* ``settle``: after the checks ran, the ``--probe`` verdict, suppressions and annotations, and the
  ``--min-severity`` floor, in that order;
* ``emit``: the report on stdout (``--output``) and in files (``--output-file [FORMAT:]PATH``), the
  terminal report still printing when a file takes the chosen format.
"""
from __future__ import annotations

import functools
import io
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import click

FILE_FORMATS = ("json", "junit", "markdown", "table")
_ALIASES = {"include": "only", "exclude": "skip"}
_BY_EXTENSION = {".json": "json", ".xml": "junit", ".md": "markdown", ".markdown": "markdown"}


def with_config(func):
    """Fill the parameters of ``doctor`` that were not given on the command line from the
    configuration file; pass the loaded ``Config`` as ``config``."""

    @functools.wraps(func)
    def wrapper(**kw):
        from click.core import ParameterSource

        from . import config as cfgmod
        from .cli import InputError

        ctx = click.get_current_context()
        explicit = kw.pop("config_path", None)
        try:
            found = cfgmod.find(explicit)
            cfg = cfgmod.load(found) if found is not None else cfgmod.Config()
        except cfgmod.ConfigError as e:
            raise InputError(f"config {e}") from None
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


def output_targets(output: str, files: tuple[str, ...], output_given: bool) -> list[tuple[str, Path]]:
    """``--output-file`` values as (format, path): ``FORMAT:PATH``, else ``--output`` when it names a
    file format, else the extension (.json .xml .md), else table (plain text)."""
    out = []
    for spec in files:
        fmt, sep, rest = spec.partition(":")
        if sep and fmt in FILE_FORMATS and rest:
            out.append((fmt, Path(rest)))
            continue
        p = Path(spec)
        if output != "table" or output_given:
            out.append((output, p))
        else:
            out.append((_BY_EXTENSION.get(p.suffix.lower(), "table"), p))
    return out


def render(report, fmt: str, fail_on: str) -> str:
    if fmt == "json":
        from .report.json_report import render as r

        return r(report)
    if fmt == "junit":
        from .report.junit import render as r

        return r(report, fail_on)
    if fmt == "markdown":
        from .report.markdown import render as r

        return r(report, fail_on)
    from .report.terminal import render as r

    buf = io.StringIO()          # not a TTY: no colour, 120 columns
    r(report, file=buf)
    return buf.getvalue()


def emit(report, output: str, files: tuple[str, ...], fail_on: str, output_given: bool) -> None:
    """Write the report files, then the report on stdout: the chosen format, or the terminal report
    when a file took the chosen format."""
    from .cli import InputError

    targets = output_targets(output, files, output_given)
    for fmt, path in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(report, fmt, fail_on), encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot write the {fmt} report to {path}: {e.strerror or e}") from None
        click.echo(f"wrote {fmt} report: {path}", err=True)
    stdout_fmt = "table" if targets else output
    if stdout_fmt == "table":
        from .report.terminal import render as render_table

        render_table(report)
    else:
        sys.stdout.write(render(report, stdout_fmt, fail_on))


def settle(runs: list, ctx, cfg, registry: dict, *, annotation_ignores: bool, min_severity: str | None,
           probe_result=None, runbook_base: str | None = None, today: date | None = None):
    """Apply the probe, suppressions/annotations and the severity floor to the check runs; returns
    (suppressed findings, notices)."""
    from . import suppress

    if probe_result is not None:
        from . import probe

        probe.apply(runs, probe_result, ctx, runbook_base)
    today = today or datetime.now(timezone.utc).date()
    suppressed, notices = suppress.apply(runs, cfg.suppressions, registry, today, ctx, annotations=annotation_ignores)
    suppress.apply_min_severity(runs, min_severity)
    if min_severity:
        from .model import SEVERITY_RANK

        floor = SEVERITY_RANK[min_severity]
        suppressed = [x for x in suppressed if SEVERITY_RANK.get(x.finding.severity or "info", 0) >= floor]
    return suppressed, notices
