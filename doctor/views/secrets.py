"""Airflow's own Google Secret Manager secrets backend: which components resolve connections,
variables and config through ``CloudSecretManagerBackend``, with which ``[secrets] backend_kwargs``
(as each component resolves them: airflow.cfg, then its env), from which project, and which secrets
(names only, from ``secrets.list``) sit under its prefixes: the items of the ``sm_secret_iam`` read."""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field

import re
from typing import Any

from .base import DataUnavailable, as_dict, as_list
from .identity import component_exists, label

Context = Any   # the views' Context (doctor/views/__init__.py)

BACKEND = "airflow.providers.google.cloud.secrets.secret_manager.CloudSecretManagerBackend"
# Every component that resolves connections, variables or config through the secrets backend.
SECRET_USERS = ("scheduler", "task", "worker", "api-server", "webserver", "dag-processor", "triggerer")
# The backend's defaults (apache-airflow-providers-google, CloudSecretManagerBackend.__init__).
DEFAULTS = {"connections_prefix": "airflow-connections", "variables_prefix": "airflow-variables",
            "config_prefix": "airflow-config", "sep": "-"}
MASK = "<redacted>"   # what the snapshot's redaction leaves in place of a secret value


@dataclass
class BackendUse:
    """One component that uses the Google Secret Manager backend, and its ``backend_kwargs``."""

    component: str
    backend_source: str
    kwargs_text: str | None            # None: not set (the backend's defaults) or opaque
    kwargs_source: str | None
    kwargs_opaque: bool = False        # from a Secret or a _cmd: present, not read
    kwargs: dict | None = None         # parsed; None when invalid or opaque
    json_error: str | None = None
    repaired: dict | None = None       # a Python-literal dict that is not JSON (single quotes, True)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return label(self.component)

    def option(self, name: str) -> str | None:
        v = (self.kwargs or {}).get(name)
        if v is None:
            v = DEFAULTS.get(name)
        return v if isinstance(v, str) else None


def backend_uses(ctx: Context) -> list[BackendUse]:
    """The components that run and resolve secrets through CloudSecretManagerBackend (shared: do
    not modify). Needs the chart's config map (airflow.cfg)."""
    return ctx.derive("secret_manager_backend_uses", _backend_uses, ctx)


def _backend_uses(ctx: Context) -> list[BackendUse]:
    if ctx.airflow_cfg is None:
        raise DataUnavailable("skip", "the chart's <release>-config ConfigMap (airflow.cfg) was not found")
    out = []
    for comp in SECRET_USERS:
        try:
            if not component_exists(ctx, comp):
                continue
        except DataUnavailable:
            continue
        cfg = ctx.config(comp)
        backend = (cfg.get("secrets", "backend") or "").strip().strip("'\"")
        if backend != BACKEND:
            continue
        v = cfg.lookup("secrets", "backend_kwargs")
        use = BackendUse(comp, cfg.source("secrets", "backend") or "?",
                         v.value if v is not None else None, v.source if v is not None else None,
                         kwargs_opaque=bool(v is not None and v.opaque))
        _parse(use)
        out.append(use)
    return out


def _parse(use: BackendUse) -> None:
    text = (use.kwargs_text or "").strip()
    if use.kwargs_opaque:
        return
    if not text:
        use.kwargs = {}
        return
    # The snapshot masks secret values in place (``"private_key": <redacted>``): read it as a string.
    probe = text.replace(MASK, json.dumps(MASK))
    try:
        val = json.loads(probe)
    except ValueError as e:
        use.json_error = str(e)
        try:
            lit = ast.literal_eval(probe)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            lit = None
        if isinstance(lit, dict) and all(isinstance(k, str) for k in lit):
            use.repaired = lit
        return
    if not isinstance(val, dict):
        use.json_error = f"a JSON {type(val).__name__}, not an object"
        return
    use.kwargs = val


def project_of(ctx: Context, use: BackendUse) -> str | None:
    """The project the backend reads secrets from: ``project_id``, else the credentials' (the
    diagnosed project for Workload Identity and node service accounts)."""
    pid = (use.kwargs or {}).get("project_id")
    if isinstance(pid, str) and pid.strip():
        return pid.strip()
    return ctx.target.project


def backend_projects(ctx: Context) -> list[str]:
    """The projects the backend reads secrets from (first-use order)."""
    out: list[str] = []
    for u in backend_uses(ctx):
        if u.kwargs is None:
            continue
        p = project_of(ctx, u)
        if p and p not in out:
            out.append(p)
    return out


# A project id (6-30 lower-case letters, digits, hyphens; a domain-scoped ``example.com:id`` of old
# projects) or a project number: anything else names no project, and would not make a read path.
_PROJECT = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[0-9]{1,20}$")


def valid_project(p: str) -> bool:
    return bool(_PROJECT.match(p))


def backend_project_items(ctx: Context, opts: object = None) -> list[str]:
    """Items of ``sm_secrets``: each project the backend reads secrets from that can be a project,
    and the diagnosed project too when a ``project_id`` points elsewhere (whether the secrets are
    there instead: what a fix for a wrong ``project_id`` rests on)."""
    try:
        out = [p for p in backend_projects(ctx) if valid_project(p)]
    except DataUnavailable:   # no config: nothing to name
        return []
    own = ctx.target.project
    if own and out and own not in out:
        out.append(own)
    return out


def other_backend_projects(ctx: Context, opts: object = None) -> list[str]:
    """Items of ``sm_project_iam``: the backend's projects other than the diagnosed one."""
    try:
        return [p for p in backend_projects(ctx) if valid_project(p) and p != ctx.target.project]
    except DataUnavailable:   # no config: nothing to name
        return []


def prefixes(uses: list[BackendUse]) -> list[str]:
    """Secret-name prefixes the backend looks up (``<prefix><sep>``), for every use (None disables one)."""
    out: list[str] = []
    for u in uses:
        kw = u.kwargs or {}
        sep = kw.get("sep", DEFAULTS["sep"])
        sep = sep if isinstance(sep, str) else DEFAULTS["sep"]
        for name in ("connections_prefix", "variables_prefix", "config_prefix"):
            v = kw.get(name, DEFAULTS[name])
            if isinstance(v, str) and v and f"{v}{sep}" not in out:
                out.append(f"{v}{sep}")
    return out


_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MAX_SECRET_POLICIES = 100   # secret IAM policies read per run (the rest: "not read", never granted)


def secret_ids(ctx: Context, project: str | None = None) -> list[str]:
    """Secret ids of a project (the diagnosed one by default) listed by ``sm_secrets`` (names only;
    raises when the list is unreadable or not collected)."""
    body = ctx.body("sm_secrets", project=project or ctx.target.project or "")
    out = []
    for s in as_list(as_dict(body).get("secrets")):
        name = str(as_dict(s).get("name") or "")
        sid = name.rsplit("/", 1)[-1]
        if name and _SECRET_ID.match(sid):
            out.append(sid)
    return out


def backend_secrets(ctx: Context, opts: object = None) -> list[dict]:
    """The items of ``sm_secret_iam``: the secrets under the prefixes of the backend, in each project
    it reads from, at most MAX_SECRET_POLICIES in all."""
    out: list[dict] = []
    try:
        uses = [u for u in backend_uses(ctx) if u.kwargs is not None]
    except DataUnavailable:   # no config: nothing to name
        return []
    for p in backend_project_items(ctx):
        mine = [u for u in uses if project_of(ctx, u) == p]
        pre = tuple(prefixes(mine))
        try:
            ids = secret_ids(ctx, p)
        except DataUnavailable:   # no secret list for this project: nothing to name there
            continue
        out += [{"project": p, "secret": s} for s in ids if s.startswith(pre)]
    return out[:MAX_SECRET_POLICIES]
