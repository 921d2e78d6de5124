"""The report formats: ONE table (name -> renderer, file extensions).

The ``--output`` choices, ``--output-file [FORMAT:]PATH`` parsing and the configuration schema's
``output`` enum all derive from ``FORMATS`` (tests/test_reports.py checks that they agree). Adding a
format is one entry here plus its renderer module (see CONTRIBUTING.md). ``fleet`` names the
renderer of a report over several targets (``doctor -A``, several contexts, ``airflow-gke
report``); a format without one is refused there.
"""
from __future__ import annotations

import importlib
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError


@dataclass(frozen=True)
class ReportFormat:
    name: str
    extensions: tuple[str, ...]          # a --output-file PATH with one of these gets this format
    renderer: str                        # "module:function" under airflow_gke.report, imported when used
    takes_fail_on: bool = True           # the renderer's second argument is --fail-on
    options: tuple[str, ...] = ()        # keyword options the renderer takes (others are not passed)
    fleet: str | None = None             # "module:function" rendering a fleet (FleetReport, fail_on, **options)

    def _func(self, spec: str | None = None) -> Callable:
        mod, _, fn = (spec or self.renderer).partition(":")
        return getattr(importlib.import_module(f"airflow_gke.report.{mod}"), fn)

    def _opts(self, opts: dict) -> dict:
        return {k: v for k, v in opts.items() if k in self.options}

    def render(self, report, fail_on: str, **opts) -> str:
        """The report as text, as written to a file (no colour)."""
        args = (report, fail_on) if self.takes_fail_on else (report,)
        return self._func()(*args, **self._opts(opts))

    def print(self, report, fail_on: str, **opts) -> None:
        """The report on stdout (the terminal report with colour when stdout is a TTY)."""
        sys.stdout.write(self.render(report, fail_on, **opts))

    def render_fleet(self, fleet, fail_on: str, **opts) -> str:
        """A fleet report (several targets) as text, as written to a file."""
        if not self.fleet:
            raise ValueError(f"no fleet renderer for {self.name}")
        return self._func(self.fleet)(fleet, fail_on, **self._opts(opts))

    def print_fleet(self, fleet, fail_on: str, **opts) -> None:
        sys.stdout.write(self.render_fleet(fleet, fail_on, **opts))


@dataclass(frozen=True)
class _Terminal(ReportFormat):
    def render(self, report, fail_on: str, **opts) -> str:
        buf = io.StringIO()          # not a TTY: no colour, COLUMNS or 120 columns
        self._func()(report, file=buf, **self._opts(opts))
        return buf.getvalue()

    def print(self, report, fail_on: str, **opts) -> None:
        self._func()(report, **self._opts(opts))

    def print_fleet(self, fleet, fail_on: str, **opts) -> None:
        """The summary table, then each target's terminal report (colour on a TTY)."""
        self._func("fleet:render_table")(fleet, fail_on, **self._opts(opts))


FORMATS: dict[str, ReportFormat] = {f.name: f for f in (
    _Terminal("table", (), "terminal:render", options=("compact",), fleet="fleet:render_table_text"),
    ReportFormat("json", (".json",), "json_report:render", takes_fail_on=False, fleet="fleet:render_json"),
    ReportFormat("junit", (".xml",), "junit:render", fleet="fleet:render_junit"),
    ReportFormat("markdown", (".md", ".markdown"), "markdown:render", options=("json_path", "html_path"),
                 fleet="fleet:render_markdown"),
    ReportFormat("html", (".html", ".htm"), "html:render", fleet="html:render_fleet"),
)}
NAMES: tuple[str, ...] = tuple(FORMATS)
DEFAULT = "table"


def by_extension(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return next((f.name for f in FORMATS.values() if suffix in f.extensions), None)


_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]+$")   # FORMAT in FORMAT:PATH (not a drive letter, not a path)


def output_targets(output: str, files: tuple[str, ...], output_given: bool = False) -> list[tuple[str, Path]]:
    """``--output-file`` values as (format, path): ``FORMAT:PATH`` (FORMAT in any case), else the
    extension (.json .xml .md .markdown .html .htm), else ``--output``'s format (table by default). A prefix
    that looks like a format but is none (``yaml:x.yaml``) is a UserError naming the valid ones.
    ``gs://BUCKET/PREFIX/`` (or ``json:gs://...``) is ("json", a doctor.gcs.GcsPrefix): the JSON
    report as objects in Cloud Storage (doctor/gcs.py); any other format there is a UserError."""
    out = []
    for spec in files:
        gs = _gcs_target(spec)
        if gs is not None:
            out.append(gs)
            continue
        fmt, sep, rest = spec.partition(":")
        if sep and _PREFIX.match(fmt):
            if fmt.lower() not in FORMATS:
                raise UserError(f"--output-file {spec}: unknown report format {fmt!r}; valid: "
                                f"{', '.join(NAMES)} (FORMAT:PATH), or a PATH ending in "
                                f"{' '.join(e for f in FORMATS.values() for e in f.extensions)}", usage=True)
            if not rest:
                raise UserError(f"--output-file {spec}: no path after {fmt}:", usage=True)
            out.append((fmt.lower(), Path(rest)))
            continue
        p = Path(spec)
        out.append((by_extension(p) or output, p))
    return out


def _gcs_target(spec: str):
    fmt, sep, rest = spec.partition(":")
    if sep and rest[:5].lower() == "gs://" and _PREFIX.match(fmt) and fmt.lower() != "gs":
        if fmt.lower() != "json":
            raise UserError(f"--output-file {spec}: a gs:// location takes the JSON report only (json:gs://... "
                            "or gs://...)", usage=True)
        spec = rest
    if spec[:5].lower() != "gs://":
        return None
    from ..gcs import parse

    return ("json", parse(spec))


def local_files(targets: list) -> list[tuple[str, Path]]:
    """The targets that are files (not gs:// locations)."""
    return [(f, p) for f, p in targets if isinstance(p, Path)]


def gcs_locations(targets: list) -> list:
    """The gs:// locations of ``--output-file`` (doctor.gcs.GcsPrefix)."""
    return [p for _f, p in targets if not isinstance(p, Path)]


def write(report, fmt: str, path: Path, fail_on: str, **opts) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FORMATS[fmt].render(report, fail_on, **opts), encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the {fmt} report to {path}: {e.strerror or e}") from None


def files_help() -> str:
    names = sorted(NAMES)
    exts = " ".join(e for f in FORMATS.values() for e in f.extensions)
    return (f"Also write the report to PATH (repeatable) while the terminal report prints: FORMAT is "
            f"{', '.join(names[:-1])} or {names[-1]} (any case); without it the extension ({exts}) decides, "
            "else --output's format. gs://BUCKET/PREFIX/: the JSON report as one object per target, "
            "PREFIX/PROJECT/CLUSTER/NAMESPACE/TIMESTAMP.json (needs storage.objects.create on the bucket).")
