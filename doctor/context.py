"""The context: what was read, parsed once, with typed and indexed views for the checks.

Checks receive a ``Context`` and never call an API. Every view is built on first use and cached,
so a check pays only for what it touches and no two checks parse the same list twice. A view
over data that was not collected, or whose read failed, raises ``DataUnavailable``; the runner
turns that into ``skip`` or ``error`` with the reason, so no check passes on missing data.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any, Iterable, Iterator

from .airflow_config import AirflowConfig, env_of_container
from .data import KEYS, Target, key as data_key
from .snapshot import parse_time
from .source import Entry, Source


def unreadable(e: Entry) -> bool:
    """A read that failed for lack of permission or of an answer (401/403, 429, 5xx, timeout,
    invalid body), as opposed to an answer about the object (404 not found, 400 not started)."""
    return not e.ok and (e.status is None or e.status in (401, 403, 407, 408, 429) or e.status >= 500)


class DataUnavailable(Exception):
    """A view needed data that is absent (``status='skip'``) or unreadable (``status='error'``)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def dig(obj: Any, *path: str, default: Any = None) -> Any:
    """``obj[a][b]...`` tolerant of missing keys and wrong types (API objects can be partial)."""
    for p in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(p)
        if obj is None:
            return default
    return obj


def as_list(v: Any) -> list:
    return v if isinstance(v, list) else []


def as_dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def as_str(v: Any) -> str | None:
    """A string field, or None when it is absent or not a string (malformed objects)."""
    return v if isinstance(v, str) else None


def str_map(v: Any) -> dict[str, str]:
    """Labels and annotations: string to string, whatever a malformed object holds."""
    if not isinstance(v, dict):
        return {}
    for x in v.values():
        if not isinstance(x, str):
            return {k: x for k, x in v.items() if isinstance(x, str)}
    return v


WRITE_SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
)
AIRFLOW_COMPONENTS = ("scheduler", "api-server", "webserver", "triggerer", "dag-processor", "worker",
                      "execution-api-server")


class Obj:
    """A Kubernetes object with safe accessors."""

    # metadata/spec/status are looked up once (checks read them ~40 times per pod and run);
    # labels/annotations are checked on first use, then cached.
    __slots__ = ("raw", "metadata", "spec", "status", "_labels", "_annotations")

    def __init__(self, raw: dict) -> None:
        self.raw = raw
        self.metadata: dict = as_dict(raw.get("metadata"))
        self.spec: dict = as_dict(raw.get("spec"))
        self.status: dict = as_dict(raw.get("status"))
        self._labels: dict[str, str] | None = None
        self._annotations: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str | None:
        return as_str(self.metadata.get("namespace"))

    @property
    def uid(self) -> str | None:
        return as_str(self.metadata.get("uid"))

    @property
    def labels(self) -> dict[str, str]:
        if self._labels is None:   # checks ask a pod's labels ~25 times per run: walk them once
            self._labels = str_map(self.metadata.get("labels"))
        return self._labels

    @property
    def annotations(self) -> dict[str, str]:
        if self._annotations is None:
            self._annotations = str_map(self.metadata.get("annotations"))
        return self._annotations

    @property
    def created(self) -> datetime | None:
        return parse_time(self.metadata.get("creationTimestamp"))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class ContainerStatus:
    __slots__ = ("raw", "init", "_state")

    def __init__(self, raw: dict, init: bool) -> None:
        self.raw = raw
        self.init = init
        self._state: tuple[str, dict] | None = None

    name = property(lambda self: str(self.raw.get("name") or ""))
    image = property(lambda self: str(self.raw.get("image") or ""))
    ready = property(lambda self: bool(self.raw.get("ready")))

    @property
    def restarts(self) -> int:
        r = self.raw.get("restartCount")
        return r if isinstance(r, int) else 0

    @property
    def state(self) -> tuple[str, dict]:
        """("waiting" | "running" | "terminated" | "unknown", the state's fields)."""
        if self._state is None:
            st = as_dict(self.raw.get("state"))
            self._state = ("unknown", {})
            for k in ("waiting", "running", "terminated"):
                if isinstance(st.get(k), dict):
                    self._state = (k, st[k])
                    break
        return self._state

    @property
    def last_terminated(self) -> dict:
        return as_dict(dig(self.raw, "lastState", "terminated"))


class Pod(Obj):
    __slots__ = ("_containers", "_init_containers", "_init_statuses", "_container_statuses", "_task")

    def __init__(self, raw: dict) -> None:
        super().__init__(raw)
        self._containers = self._init_containers = self._init_statuses = self._container_statuses = None
        self._task: bool | None = None

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "Unknown")

    @property
    def component(self) -> str | None:
        return self.labels.get("component")

    @property
    def is_task_pod(self) -> bool:
        if self._task is None:
            self._task = str(self.labels.get("kubernetes_executor", "")).lower() == "true"
        return self._task

    @property
    def node(self) -> str | None:
        return as_str(self.spec.get("nodeName")) or None

    @property
    def service_account(self) -> str:
        return as_str(self.spec.get("serviceAccountName")) or as_str(self.spec.get("serviceAccount")) or "default"

    @property
    def started(self) -> datetime | None:
        return parse_time(self.status.get("startTime")) or self.created

    # The four lists below are built on first use and shared: callers must not modify them.
    @property
    def containers(self) -> list[dict]:
        if self._containers is None:
            self._containers = [c for c in as_list(self.spec.get("containers")) if isinstance(c, dict)]
        return self._containers

    @property
    def init_containers(self) -> list[dict]:
        if self._init_containers is None:
            self._init_containers = [c for c in as_list(self.spec.get("initContainers")) if isinstance(c, dict)]
        return self._init_containers

    @property
    def init_statuses(self) -> list[ContainerStatus]:
        if self._init_statuses is None:
            self._init_statuses = [ContainerStatus(c, True) for c in as_list(self.status.get("initContainerStatuses"))
                                   if isinstance(c, dict)]
        return self._init_statuses

    @property
    def container_statuses(self) -> list[ContainerStatus]:
        if self._container_statuses is None:
            self._container_statuses = [ContainerStatus(c, False) for c in as_list(self.status.get("containerStatuses"))
                                        if isinstance(c, dict)]
        return self._container_statuses

    @property
    def claim_names(self) -> list[str]:
        out = []
        for v in as_list(self.spec.get("volumes")):
            claim = dig(v, "persistentVolumeClaim", "claimName")
            if isinstance(claim, str):
                out.append(claim)
        return out

    def condition(self, type_: str) -> dict:
        for c in as_list(self.status.get("conditions")):
            if isinstance(c, dict) and c.get("type") == type_:
                return c
        return {}

    @property
    def main_container(self) -> dict:
        """The Airflow container: named after the component, ``base`` in task pods, else the first."""
        wanted = {self.component or "", "base", "worker", "airflow"}
        cs = self.containers
        for c in cs:
            if c.get("name") in wanted:
                return c
        return cs[0] if cs else {}


class PVC(Obj):
    __slots__ = ()

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "Unknown")

    @property
    def access_modes(self) -> list[str]:
        return [m for m in as_list(self.spec.get("accessModes")) if isinstance(m, str)]

    @property
    def storage_class_name(self) -> str | None:
        """The class the claim names; None when it names none (the default applies), "" for no class."""
        v = self.spec.get("storageClassName")
        if v is None:
            v = self.annotations.get("volume.beta.kubernetes.io/storage-class")
        return as_str(v)


class StorageClass(Obj):
    __slots__ = ()

    @property
    def provisioner(self) -> str:
        return str(self.raw.get("provisioner") or "")

    @property
    def is_default(self) -> bool:
        a = self.annotations
        return any(str(a.get(k, "")).lower() == "true" for k in (
            "storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"))

    @property
    def binding_mode(self) -> str:
        return str(self.raw.get("volumeBindingMode") or "Immediate")


class NodePool:
    """A GKE node pool (from the cluster's ``nodePools``)."""

    __slots__ = ("raw", "cluster")

    def __init__(self, raw: dict, cluster: dict) -> None:
        self.raw = raw
        self.cluster = cluster

    name = property(lambda self: str(self.raw.get("name") or ""))

    @property
    def config(self) -> dict:
        return as_dict(self.raw.get("config"))

    @property
    def scopes(self) -> list[str]:
        return [s for s in as_list(self.config.get("oauthScopes")) if isinstance(s, str)]

    @property
    def service_account(self) -> str:
        return str(self.config.get("serviceAccount") or "default")

    @property
    def workload_metadata_mode(self) -> str | None:
        wmc = self.config.get("workloadMetadataConfig")
        if not isinstance(wmc, dict):
            return None
        return as_str(wmc.get("mode")) or as_str(wmc.get("nodeMetadata")) or "MODE_UNSPECIFIED"

    @property
    def gke_metadata(self) -> bool:
        return self.workload_metadata_mode in ("GKE_METADATA", "GKE_METADATA_SERVER")

    @property
    def can_write_storage(self) -> bool:
        return any(s in WRITE_SCOPES for s in self.scopes)


class Context:
    def __init__(self, source: Source, target: Target, now: datetime | None = None) -> None:
        self.source = source
        self.target = target
        self.now = now or datetime.now(timezone.utc)
        self._release_override = target.release
        self._static_paths: dict[str, str | None] = {}   # data key -> path (None: the target lacks a field)
        self._events_sorted: set[tuple[str, str]] = set()   # objects whose events list is sorted
        self.read_times: dict[str, float] = {}   # data key -> seconds its first read took (runner.preload)
        # Reads that failed (no permission, no answer) that the running check asked for; the runner
        # sets a list before each check, so a check that looked at data it could not get cannot pass.
        self.failed_reads: list[tuple[str, dict, Entry]] | None = None

    # --- raw access -------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return getattr(self.source, "mode", "snapshot")

    def path(self, key_name: str, **params: str) -> str:
        return data_key(key_name).path(self.target, **params)

    def entry(self, key_name: str, **params: str) -> Entry | None:
        """The raw entry of a data key, or None when it was not collected (or cannot be, for lack
        of a target field such as the cluster)."""
        if not params:   # asked per pod by some checks: compute the path once
            if key_name not in self._static_paths:
                k = data_key(key_name)
                self._static_paths[key_name] = None if any(getattr(self.target, f) is None for f in k.requires) \
                    else k.path(self.target)
            path = self._static_paths[key_name]
            e = None if path is None else self.source.get(path)
        else:
            k = data_key(key_name)
            if any(getattr(self.target, f) is None for f in k.requires):
                return None
            e = self.source.get(k.path(self.target, **params))
        if self.failed_reads is not None and e is not None and unreadable(e):
            self.failed_reads.append((key_name, params, e))
        return e

    def unavailable(self, key_name: str, entry: Entry | None, **params: str) -> DataUnavailable:
        k = data_key(key_name)
        missing = [f for f in k.requires if getattr(self.target, f) is None]
        if missing:
            return DataUnavailable("skip", f"needs the GKE {', '.join(missing)} (none given), so {k.name} was not read")
        path = k.path(self.target, **params)
        if entry is None:
            return DataUnavailable("skip", f"not collected: {path}")
        what = k.resource_text(self.target, **params)
        if entry.status in (401, 403):
            perm = (f"RBAC {k.rbac[2]} on {k.rbac[1]}" + (f" (apiGroup {k.rbac[0]})" if k.rbac[0] else "")
                    if k.rbac else f"IAM permission {k.iam}")
            return DataUnavailable("error", f"permission denied to {what} (HTTP {entry.status}: "
                                            f"{entry.message}); grant {perm} (see `airflow-gke permissions`)")
        if entry.status:
            return DataUnavailable("error", f"could not {what}: HTTP {entry.status}: {entry.message}")
        return DataUnavailable("error", f"could not {what}: {entry.message}")

    def body(self, key_name: str, **params: str) -> Any:
        """The body of a successful read, else DataUnavailable (404 passes through as None when
        the key treats not-found as data)."""
        e = self.entry(key_name, **params)
        if e is not None and e.ok:
            return e.data
        if e is not None and e.not_found and data_key(key_name).not_found_is_data:
            return None
        raise self.unavailable(key_name, e, **params)

    def shared(self, key: Any, compute: Any) -> Any:
        """``compute()`` once per run, for helpers several checks call (its value must not be
        modified). The reads that failed while computing it are reported again to each later check
        that asks, as if it had made them itself, so caching never lets a check pass on them."""
        cache = self.__dict__.setdefault("_shared", {})
        hit = cache.get(key)
        if hit is not None:
            value, failed = hit
            if self.failed_reads is not None:
                self.failed_reads.extend(failed)
            return value
        outer, self.failed_reads = self.failed_reads, []
        try:
            value = compute()
        finally:
            mine, self.failed_reads = self.failed_reads, outer
            if outer is not None:
                outer.extend(mine)
        cache[key] = (value, mine)   # not reached when compute() raised: the next caller retries
        return value

    def has(self, key_name: str, **params: str) -> bool:
        e = self.entry(key_name, **params)
        return e is not None and e.ok

    def items(self, key_name: str) -> list[dict]:
        body = self.body(key_name)
        if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
            raise DataUnavailable("error", f"malformed list body in {self.path(key_name)}")
        return [i for i in (body.get("items") or []) if isinstance(i, dict)]

    # --- Kubernetes views -------------------------------------------------------------------
    @cached_property
    def pods(self) -> list[Pod]:
        return [Pod(p) for p in self.items("pods")]

    @cached_property
    def pods_by_name(self) -> dict[str, Pod]:
        return {p.name: p for p in self.pods}

    @cached_property
    def pods_by_component(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            if self.release is None or p.labels.get("release") in (None, self.release) or p.is_task_pod:
                if p.is_task_pod:
                    out["task"].append(p)
                elif p.component:
                    out[p.component].append(p)
        return dict(out)

    @cached_property
    def task_pods(self) -> list[Pod]:
        """KubernetesExecutor task pods (label ``kubernetes_executor=True``; under
        KubernetesExecutor also ``component=worker`` pods)."""
        out = [p for p in self.pods if p.is_task_pod]
        if "KubernetesExecutor" in (self.executor or "") and "CeleryExecutor" not in (self.executor or ""):
            seen = {id(p) for p in out}
            out += [p for p in self.pods if p.component == "worker" and id(p) not in seen
                    and (self.release is None or p.labels.get("release") == self.release)]
        return out

    @cached_property
    def pods_by_claim(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            for c in p.claim_names:
                out[c].append(p)
        return dict(out)

    @cached_property
    def pods_by_owner(self) -> dict[str, list[Pod]]:
        """Pods by owner (``Kind/name`` of their controller)."""
        out: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            for o in as_list(p.metadata.get("ownerReferences")):
                if isinstance(o, dict):
                    out[f"{o.get('kind')}/{o.get('name')}"].append(p)
        return dict(out)

    @cached_property
    def pods_by_node(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            if p.node:
                out[p.node].append(p)
        return dict(out)

    @cached_property
    def _events_index(self) -> dict[tuple[str, str], list[dict]]:
        out: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for e in self.items("events"):
            io = as_dict(e.get("involvedObject") or e.get("regarding"))
            out[(str(io.get("kind")), str(io.get("name")))].append(e)
        return dict(out)   # each object's list is sorted when first asked for: most never are

    def events_for(self, kind: str, name: str, reason: str | None = None) -> list[dict]:
        """Events about one object, oldest first (optionally of one reason)."""
        key = (kind, name)
        evs = self._events_index.get(key, [])
        if evs and key not in self._events_sorted:
            evs.sort(key=lambda e: event_time(e) or datetime.min.replace(tzinfo=timezone.utc))
            self._events_sorted.add(key)
        if reason is not None:
            evs = [e for e in evs if e.get("reason") == reason]
        return evs

    @cached_property
    def pvcs(self) -> dict[str, PVC]:
        return {p.name: p for p in (PVC(i) for i in self.items("pvcs"))}

    @cached_property
    def storage_classes(self) -> dict[str, StorageClass]:
        return {s.name: s for s in (StorageClass(i) for i in self.items("storageclasses"))}

    @cached_property
    def default_storage_class(self) -> StorageClass | None:
        defaults = [s for s in self.storage_classes.values() if s.is_default]
        if not defaults:
            return None
        return sorted(defaults, key=lambda s: s.created or datetime.min.replace(tzinfo=timezone.utc))[-1]

    def storage_class_of(self, pvc: PVC) -> StorageClass | None:
        name = pvc.storage_class_name
        if name is None:
            return self.default_storage_class
        return self.storage_classes.get(name) if name else None

    @cached_property
    def configmaps(self) -> dict[str, Obj]:
        return {c.name: c for c in (Obj(i) for i in self.items("configmaps"))}

    @cached_property
    def service_accounts(self) -> dict[str, Obj]:
        return {s.name: s for s in (Obj(i) for i in self.items("serviceaccounts"))}

    def gsa_of(self, ksa: str) -> str | None:
        """The Google service account a Kubernetes service account is annotated with."""
        sa = self.service_accounts.get(ksa)
        if sa is None:
            return None
        v = sa.annotations.get("iam.gke.io/gcp-service-account")
        return v.strip() if isinstance(v, str) and v.strip() else None

    @cached_property
    def deployments(self) -> dict[str, Obj]:
        return {d.name: d for d in (Obj(i) for i in self.items("deployments"))}

    @cached_property
    def statefulsets(self) -> dict[str, Obj]:
        return {d.name: d for d in (Obj(i) for i in self.items("statefulsets"))}

    @cached_property
    def jobs(self) -> dict[str, Obj]:
        return {d.name: d for d in (Obj(i) for i in self.items("jobs"))}

    @cached_property
    def nodes(self) -> dict[str, Obj]:
        return {n.name: n for n in (Obj(i) for i in self.items("nodes"))}

    def log(self, pod: str, container: str, previous: bool = False) -> str | None:
        """The stored tail of a container's log, or None when it was not collected."""
        e = self.entry("logs", pod=pod, container=container + (".previous" if previous else ""))
        return e.data if e is not None and e.ok and isinstance(e.data, str) else None

    def log_lines(self, pod: str, container: str, previous: bool = False) -> list[str]:
        text = self.log(pod, container, previous)
        return text.splitlines() if text else []

    # --- Airflow release, versions, configuration ---------------------------------------------
    @cached_property
    def release(self) -> str | None:
        """The Helm release: ``--release``, the snapshot's, else the most common ``release`` label
        on the chart's (``tier=airflow``) pods and workloads."""
        if self._release_override:
            return self._release_override
        counts: Counter = Counter()
        for key_name in ("pods", "deployments", "statefulsets", "configmaps"):
            try:
                objs = self.items(key_name)
            except DataUnavailable:
                continue
            for o in objs:
                labels = as_dict(dig(o, "metadata", "labels"))
                if labels.get("tier") == "airflow" and labels.get("release"):
                    counts[labels["release"]] += 1
        return counts.most_common(1)[0][0] if counts else None

    @cached_property
    def chart_version(self) -> str | None:
        for key_name in ("deployments", "statefulsets", "configmaps", "serviceaccounts"):
            try:
                objs = self.items(key_name)
            except DataUnavailable:
                continue
            for o in objs:
                labels = as_dict(dig(o, "metadata", "labels"))
                chart = labels.get("chart")
                if labels.get("tier") == "airflow" and isinstance(chart, str) and chart.startswith("airflow-"):
                    if self.release is None or labels.get("release") == self.release:
                        return chart[len("airflow-"):]
        return None

    @cached_property
    def airflow_version(self) -> str | None:
        """From the ``airflow_version`` label of task pods, else the image tag of the scheduler."""
        try:
            pods = self.pods
        except DataUnavailable:
            return None
        for p in pods:
            v = p.labels.get("airflow_version")
            if p.is_task_pod and isinstance(v, str) and v:
                return v.replace("_", "+") if re.match(r"^\d", v) else v
        for comp in ("scheduler", "api-server", "webserver", "triggerer", "dag-processor", "worker"):
            for p in self.pods_by_component.get(comp, []):
                m = re.search(r"(?:^|[:\-])(\d+\.\d+\.\d+)", str(p.main_container.get("image", "")).rsplit(":", 1)[-1])
                if m:
                    return m.group(1)
        return None

    @property
    def airflow_major(self) -> int | None:
        v = self.airflow_version
        if v and v[0].isdigit():
            return int(v.split(".")[0])
        if self.pods_by_component_safe("api-server"):
            return 3
        if self.pods_by_component_safe("webserver"):
            return 2
        return None

    def pods_by_component_safe(self, comp: str) -> list[Pod]:
        try:
            return self.pods_by_component.get(comp, [])
        except DataUnavailable:
            return []

    @cached_property
    def config_map(self) -> Obj | None:
        """The chart's ``<release>-config`` ConfigMap."""
        cms = self.configmaps
        if self.release and f"{self.release}-config" in cms:
            return cms[f"{self.release}-config"]
        for cm in cms.values():
            if cm.labels.get("component") == "config" and "airflow.cfg" in as_dict(cm.raw.get("data")):
                if self.release is None or cm.labels.get("release") == self.release:
                    return cm
        return None

    @cached_property
    def airflow_cfg(self) -> str | None:
        cm = self.config_map
        if cm is None:
            return None
        v = as_dict(cm.raw.get("data")).get("airflow.cfg")
        return v if isinstance(v, str) else None

    @cached_property
    def pod_template(self) -> dict | None:
        """The KubernetesExecutor pod template (``pod_template_file.yaml`` of the config map)."""
        cm = self.config_map
        text = as_dict(cm.raw.get("data")).get("pod_template_file.yaml") if cm else None
        if not isinstance(text, str):
            return None
        import yaml  # only loaded when a check needs the template

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
        return doc if isinstance(doc, dict) else None

    def component_container(self, component: str) -> dict | None:
        """The Airflow container spec of a component: from a live pod, else its workload's
        template, else (task pods) the pod template file."""
        if component == "task":
            for p in self.task_pods:
                return p.main_container
            tpl = self.pod_template
            if tpl:
                return Pod(tpl).main_container
            return None
        for p in self.pods_by_component.get(component, []):
            return p.main_container
        for coll in (self.deployments, self.statefulsets):
            for w in coll.values():
                if w.labels.get("component") == component and (
                        self.release is None or w.labels.get("release") == self.release):
                    spec = as_dict(dig(w.raw, "spec", "template"))
                    return Pod(spec).main_container
        return None

    def config(self, component: str = "scheduler") -> AirflowConfig:
        """Airflow configuration as ``component`` resolves it (airflow.cfg + that container's env)."""
        cache = self.__dict__.setdefault("_config_cache", {})
        if component not in cache:
            container = None
            try:
                container = self.component_container(component)
            except DataUnavailable:
                container = None
            env = env_of_container(container) if container else {}
            cache[component] = AirflowConfig(self.airflow_cfg, env)
        return cache[component]

    @cached_property
    def executor(self) -> str | None:
        cfg = self.config("scheduler")
        v = cfg.get("core", "executor")
        if v:
            return v
        for d in list(self.deployments.values()) + list(self.statefulsets.values()):
            if d.labels.get("component") == "scheduler" and d.labels.get("executor"):
                return d.labels["executor"]
        return None

    @property
    def kubernetes_executor(self) -> bool:
        return "KubernetesExecutor" in (self.executor or "")

    @property
    def celery_executor(self) -> bool:
        return "Celery" in (self.executor or "")

    # --- Google Cloud views -------------------------------------------------------------------
    @cached_property
    def cluster(self) -> dict:
        body = self.body("cluster")
        if not isinstance(body, dict):
            raise DataUnavailable("error", f"malformed cluster body in {self.path('cluster')}")
        return body

    @cached_property
    def node_pools(self) -> dict[str, NodePool]:
        return {p.name: p for p in (NodePool(np, self.cluster) for np in as_list(self.cluster.get("nodePools"))
                                    if isinstance(np, dict))}

    @property
    def workload_pool(self) -> str | None:
        return dig(self.cluster, "workloadIdentityConfig", "workloadPool") or None

    def pool_of_node(self, node: str) -> str | None:
        cache = self.__dict__.setdefault("_pool_of_node", {})   # asked per pod: 200 nodes, 50,000 pods
        if node not in cache:
            n = self.nodes.get(node) if self.has("nodes") else None
            cache[node] = n.labels.get("cloud.google.com/gke-nodepool") if n is not None else None
        return cache[node]

    def pools_of(self, pods: Iterable[Pod], fallback_spec: dict | None = None) -> list[NodePool]:
        """Node pools the pods run on; for pods not on a node yet, the pool their nodeSelector
        names; else every pool of the cluster (where they could land)."""
        names: set[str] = set()
        unplaced = False
        for p in pods:
            if p.node:
                pool = self.pool_of_node(p.node)
                if pool:
                    names.add(pool)
                    continue
            sel = as_dict(p.spec.get("nodeSelector")).get("cloud.google.com/gke-nodepool")
            if sel:
                names.add(sel)
            else:
                unplaced = True
        if not names and fallback_spec is not None:
            sel = as_dict(fallback_spec.get("nodeSelector")).get("cloud.google.com/gke-nodepool")
            if sel:
                names.add(sel)
            else:
                unplaced = True
        pools = self.node_pools
        if unplaced and not names:
            return list(pools.values())
        return [pools[n] for n in sorted(names) if n in pools]

    @cached_property
    def project_number(self) -> str | None:
        e = self.entry("project")
        if e is not None and e.ok and isinstance(e.data, dict):
            name = e.data.get("name")
            if isinstance(name, str) and name.startswith("projects/"):
                return name.split("/", 1)[1]
        return None

    def node_service_account(self, pool: NodePool) -> str:
        """The email of the pool's service account (``default`` resolved when the project number is known)."""
        sa = pool.service_account
        if sa == "default":
            num = self.project_number
            return f"{num}-compute@developer.gserviceaccount.com" if num else "the Compute Engine default service account"
        return sa

    def service_state(self, service: str) -> str | None:
        body = self.body("services", service=service)
        return body.get("state") if isinstance(body, dict) else None

    # --- age ----------------------------------------------------------------------------------
    def age(self, since: datetime | None) -> timedelta | None:
        if since is None:
            return None
        return self.now - since


def event_time(e: dict) -> datetime | None:
    return (parse_time(e.get("lastTimestamp")) or parse_time(e.get("eventTime"))
            or parse_time(e.get("firstTimestamp")) or parse_time(dig(e, "metadata", "creationTimestamp")))


def human_age(td: timedelta | None) -> str:
    if td is None:
        return "unknown time"
    s = int(td.total_seconds())
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"
