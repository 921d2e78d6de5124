"""The configuration file: ``.airflow-gke.yaml`` in the working directory, or ``--config PATH``.

    version: 1
    doctor:                      # defaults for the flags of `airflow-gke doctor`
      fail-on: warning
      exclude: [category:database]
      runbook-base: https://wiki.example.com/airflow-gke
    suppressions:                # accepted findings: listed as suppressed, not counted
      - check: gcs-log-write-denied
        resource: Bucket/acme-legacy-logs
        reason: bucket retired with the Airflow 1 cluster, PLAT-1234
        expires: 2026-12-31

The file is validated by the JSON Schema ``doctor/schemas/config-v1.json``; an unknown key, a
wrong type or a missing ``reason`` is a usage error (exit 2) that names the file, the line and
the key. A flag given on the command line always wins over the file.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import UserError

DEFAULT_NAME = ".airflow-gke.yaml"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config-v1.json"

# config key under `doctor:` -> parameter name of the doctor command
DOCTOR_KEYS = {
    "fail-on": "fail_on",
    "output": "output",
    "output-file": "output_file",
    "include": "include",
    "exclude": "exclude",
    "min-severity": "min_severity",
    "extended": "extended",
    "namespace": "namespace",
    "release": "release",
    "runbook-base": "runbook_base",
    "annotation-ignores": "annotation_ignores",
    "probe": "probe",
    "probe-folder": "probe_folder",
    "project": "project",
    "location": "location",
    "cluster": "cluster",
    "context": "kube_context",
    "kubeconfig": "kubeconfig",
    "timeout": "timeout",
    "request-timeout": "request_timeout",
    "max-logs": "max_logs",
}
# keys that only mean something for a live run: ignored (not an error) with --snapshot
LIVE_KEYS = ("project", "location", "cluster", "context", "kubeconfig", "timeout", "request-timeout",
             "max-logs", "probe", "probe-folder")
LIST_PARAMS = ("include", "exclude", "output_file")


@dataclass(frozen=True)
class Suppression:
    check: str
    reason: str
    resource: str = "*"
    expires: date | None = None
    index: int = 0                 # position in the file (1-based), for messages
    source: str = DEFAULT_NAME

    @property
    def label(self) -> str:
        return f"suppression #{self.index} in {self.source} (check {self.check}, resource {self.resource})"

    def expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires

    def to_dict(self) -> dict:
        return {"source": "config", "file": self.source, "index": self.index, "check": self.check,
                "resource": self.resource, "reason": self.reason,
                "expires": self.expires.isoformat() if self.expires else None}


@dataclass
class Config:
    path: str | None = None
    doctor: dict[str, Any] = field(default_factory=dict)       # config key -> value
    suppressions: list[Suppression] = field(default_factory=list)

    def params(self) -> dict[str, Any]:
        """Doctor parameter name -> value, lists for the repeatable flags."""
        out = {}
        for k, v in self.doctor.items():
            name = DOCTOR_KEYS[k]
            if name in LIST_PARAMS and isinstance(v, str):
                v = [v]
            out[name] = tuple(v) if isinstance(v, list) else v
        return out


@lru_cache(maxsize=1)
def schema() -> dict:
    """The schema file, with the report formats' enum from their one table (doctor/report/formats.py;
    tests/test_app.py checks that the shipped file says the same)."""
    from .report.formats import NAMES

    s = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    s["properties"]["doctor"]["properties"]["output"]["enum"] = list(NAMES)
    return s


def _plain(v: Any) -> Any:
    """YAML dates become ISO strings, so the schema (JSON types) can judge them."""
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def find(explicit: str | None, cwd: str | os.PathLike | None = None) -> Path | None:
    """The file to use: ``--config`` (must exist), else ``.airflow-gke.yaml`` in ``cwd`` if present."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise UserError(f"config --config {explicit}: no such file")
        return p
    p = Path(cwd) / DEFAULT_NAME if cwd is not None else Path(DEFAULT_NAME)   # shown as typed: .airflow-gke.yaml
    return p if p.is_file() else None


def load(path: str | os.PathLike) -> Config:
    import yaml

    p = Path(path)
    shown = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"config {shown}: cannot read: {e}") from None
    try:
        doc = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"config {shown}: not valid YAML{where}: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UserError(f"config {shown}: the top level must be a mapping (doctor:, suppressions:), "
                          f"not a {type(doc).__name__}")
    doc = _plain(doc)
    errors = _validate(doc)
    if errors:
        lines = yaml_lines(text)
        msgs = [_message(e, lines) for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise UserError(f"config {shown}: " + "; ".join(msgs) + more)
    sups = []
    for i, s in enumerate(doc.get("suppressions") or [], start=1):
        exp = date.fromisoformat(s["expires"]) if s.get("expires") else None
        sups.append(Suppression(check=s["check"], reason=s["reason"].strip(), resource=s.get("resource", "*"),
                                expires=exp, index=i, source=shown))
    return Config(path=shown, doctor=dict(doc.get("doctor") or {}), suppressions=sups)


@lru_cache(maxsize=1)
def _loader():
    """PyYAML's safe loader without the implicit timestamp type: ``expires: 2026-31-12`` stays the
    string it is, so the schema names it (file, key, line) instead of the date constructor raising."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:timestamp"]
        for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return Loader


def _validate(doc: dict) -> list:
    import jsonschema

    s = schema()
    cls = jsonschema.validators.validator_for(s)
    v = cls(s, format_checker=cls.FORMAT_CHECKER)
    return sorted(v.iter_errors(doc), key=lambda e: [str(x) for x in e.absolute_path])


def _where(path) -> str:
    parts = []
    for x in path:
        parts.append(f"[{x + 1}]" if isinstance(x, int) else (("." if parts else "") + str(x)))
    return "".join(parts) or "(top level)"


def _message(err, lines: dict) -> str:
    path = list(err.absolute_path)
    where = _where(path)
    at = lines.get(tuple(path))
    loc = f" (line {at})" if at else ""
    if err.validator == "additionalProperties":
        known = sorted((err.schema.get("properties") or {}).keys())
        extra = [k for k in err.instance if k not in known]
        out = []
        for k in extra:
            hint = difflib.get_close_matches(k, known, n=1)
            kl = lines.get(tuple(path + [k]))
            out.append(f"unknown key {k!r}" + (f" in {where}" if path else "") + (f" (line {kl})" if kl else "")
                       + (f": did you mean {hint[0]!r}?" if hint else "")
                       + f" Known keys: {', '.join(known)}")
        return "; ".join(out)
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in (err.instance or {})]
        extra = " (say why the finding is accepted)" if "reason" in missing else ""
        return f"{where}{loc} is missing {', '.join(repr(m) for m in missing)}{extra}"
    if err.validator == "format" and err.validator_value == "date":
        return f"{where}{loc}: {err.instance!r} is not a date (YYYY-MM-DD)"
    if err.validator == "enum":
        return f"{where}{loc}: {err.instance!r} is not one of {', '.join(map(str, err.validator_value))}"
    if err.validator == "oneOf":
        return f"{where}{loc}: expected a string or a list of strings, got {json.dumps(err.instance)}"
    return f"{where}{loc}: {err.message}"


def yaml_lines(text: str) -> dict:
    """Path (tuple of keys and indexes) -> 1-based line of that node in the YAML text."""
    import yaml

    out: dict = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out

    def walk(node, path):
        out[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                out[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
                out[path + (key,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    if root is not None:
        walk(root, ())
    return out
