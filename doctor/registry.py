"""The registry of checks: a decorator for built-in modules, entry points for third parties.

A check is a function from the context to a ``Result``, declared with::

    @check(id="pvc-access-mode-unsupported", title="Logs PVC can be provisioned",
           severity="error", category="storage", needs=("pvcs", "storageclasses", "events", "pods"))
    def run(ctx): ...

``id`` is a slug that never changes once released; ``title`` states the good state; ``needs`` names
data keys (doctor/data.py) the check cannot do without: when one is missing the runner skips
the check (or ends it ``error`` when the read failed) without calling it.

``evidence`` says what a check judges: ``"config"`` (specs, configuration, the cluster and the
project: it runs on a plan, ``doctor --manifests``) or ``"runtime"`` (status, events, logs: in
planned mode it is skipped, "runtime only: run after deploy", so a plan never passes it). A check
that does not say is ``runtime``: it can never pass a plan by omission.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Callable

from .data import KEYS
from .model import Result

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
BUILTIN = "airflow_gke.checks."


class Category(StrEnum):
    """What part of the deployment a check is about (``--include category:NAME``)."""

    DAGS = "dags"
    DATABASE = "database"
    EXECUTOR = "executor"
    IDENTITY = "identity"
    LOGGING = "logging"
    NETWORKING = "networking"
    PROJECT = "project"
    RESOURCES = "resources"
    RUNTIME = "runtime"
    SECRETS = "secrets"
    SECURITY = "security"
    STORAGE = "storage"

SEVERITIES = ("error", "warning", "info")
EVIDENCE = ("config", "runtime")
ENTRY_POINT_GROUP = "airflow_gke.checks"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    category: Category
    func: Callable = field(repr=False, compare=False)
    needs: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()       # data read when present (optional)
    extended: bool = False           # heuristic: only with --extended
    module: str = ""
    evidence: str = "runtime"        # "config": runs on a plan (--manifests); "runtime": needs a deploy
    after_run: Callable | None = field(default=None, repr=False, compare=False)   # see after_run()
    # A floor check judges health generically (is each component running?) whatever the cause:
    # its findings are folded under a specific finding that explains the same pods (doctor/fold.py).
    floor: bool = False
    severity_note: str = ""          # when findings take another severity (the runbook header says so)

    @property
    def on_plan(self) -> bool:
        return self.evidence == "config"

    @property
    def data_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.needs + self.uses))

    @property
    def summary(self) -> str:
        doc = (self.func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.title


REGISTRY: dict[str, Check] = {}


class RegistryError(Exception):
    pass


def check(*, id: str, title: str, severity: str, category: Category | str, needs: tuple[str, ...] = (),
          uses: tuple[str, ...] = (), extended: bool = False, evidence: str = "runtime",
          floor: bool = False, severity_note: str = "") -> Callable:
    """Register a check function under ``id``: the one declaration of a check. ``title`` states the
    good state; the function's docstring says in one line what goes wrong (``Check.summary``); the
    runbook's header (docs/runbooks/<id>.md) is generated from these (``python -m airflow_gke.gendocs``).
    A built-in check lives in ``checks/<id with - as _>.py``."""
    if not SLUG.match(id):
        raise RegistryError(f"check id {id!r} is not a slug (lowercase words joined by '-')")
    try:
        category = Category(category)
    except ValueError:
        raise RegistryError(f"check {id}: category must be one of {', '.join(c.value for c in Category)}, "
                            f"not {category!r}") from None
    if severity not in SEVERITIES:
        raise RegistryError(f"check {id}: severity must be one of {SEVERITIES}")
    if evidence not in EVIDENCE:
        raise RegistryError(f"check {id}: evidence must be one of {EVIDENCE}")
    for k in tuple(needs) + tuple(uses):
        if k not in KEYS:
            raise RegistryError(f"check {id}: unknown data key {k!r}")

    def deco(func: Callable[..., Result]) -> Callable[..., Result]:
        mod = func.__module__
        if mod.startswith(BUILTIN) and mod != BUILTIN + id.replace("-", "_"):
            raise RegistryError(f"check {id} is declared in {mod}: a built-in check lives in the module named "
                                f"after its id ({BUILTIN}{id.replace('-', '_')})")
        if not (func.__doc__ or "").strip():
            raise RegistryError(f"check {id}: the function needs a docstring (one line: what goes wrong)")
        existing = REGISTRY.get(id)
        if existing is not None and existing.module != func.__module__:
            raise RegistryError(f"check id {id!r} registered twice ({existing.module} and {func.__module__})")
        REGISTRY[id] = Check(id, title, severity, category, func, tuple(needs), tuple(uses), extended,
                             func.__module__, evidence, floor=floor, severity_note=severity_note)
        return func

    return deco


def after_run(id: str) -> Callable:
    """Declare the post-run step of check ``id`` (registered just above, in the same module).

    The engine calls ``fn(ctx, run, runs)`` once every selected check has run, before suppressions:
    ``run`` is this check's ``CheckRun``, ``runs`` all of them (read-only). It may amend only ``run``,
    from run-level data the application put in the context after the checks ran (today: the write
    probe's result, ``ctx.probe``). The engine does not know what it does; findings it adds get the
    same defaults (check, severity, runbook) as the check's own."""

    def deco(fn: Callable) -> Callable:
        chk = REGISTRY.get(id)
        if chk is None or chk.module != fn.__module__:
            raise RegistryError(f"after_run({id!r}) in {fn.__module__}: register the check in that module first")
        REGISTRY[id] = replace(chk, after_run=fn)
        return fn

    return deco


_loaded = False
load_errors: list[str] = []


def load_checks() -> dict[str, Check]:
    """Import the built-in check modules and third-party entry points, once."""
    global _loaded
    if _loaded:
        return REGISTRY
    import airflow_gke.checks as builtin

    for mod in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"airflow_gke.checks.{mod.name}")
    try:
        from importlib.metadata import entry_points

        eps = entry_points(group=ENTRY_POINT_GROUP) if sys.version_info >= (3, 10) else []
    except Exception:  # pragma: no cover - broken metadata
        eps = []
    for ep in eps:
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not stop the doctor
            load_errors.append(f"plugin {ep.name} ({ep.value}) failed to load: {type(e).__name__}: {e}")
    _loaded = True
    return REGISTRY
