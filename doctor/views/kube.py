"""Kubernetes objects with safe accessors, and the views over the lists read: pods with their
indexes (by name, component, claim, owner, node), events, PVCs, StorageClasses, ConfigMaps,
ServiceAccounts, workloads, nodes, PersistentVolumes, Services, EndpointSlices, NetworkPolicies,
Ingresses (and the Airflow UI backends of GKE Ingresses), GKE BackendConfigs, Gateway API HTTPRoutes, RBAC objects. Also what is read off one object: the owner of a pod, container health, env and
images of a container, label selectors, taints and tolerations."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timezone

from dataclasses import dataclass, field

from ..data import key as data_key
from ..snapshot import parse_time
from .base import BaseContext, as_dict, as_list, as_str, dig, event_time, str_map, view


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


def owner_of(pod: Obj) -> tuple[str, str] | None:
    """(kind, name) of the workload that controls the pod: a ReplicaSet's Deployment (by the
    ``pod-template-hash`` the Deployment gave it, else by name), a StatefulSet, a Job, a DaemonSet,
    or any other controller; None when it has none (task pods, bare pods)."""
    for o in as_list(pod.metadata.get("ownerReferences")):
        if not isinstance(o, dict) or not o.get("controller", True):
            continue
        kind, name = str(o.get("kind") or ""), str(o.get("name") or "")
        if kind == "ReplicaSet":
            h = pod.labels.get("pod-template-hash")
            if h and name.endswith("-" + h):
                return "Deployment", name[: -len(h) - 1]
            return "Deployment", name.rsplit("-", 1)[0]
        if kind:
            return kind, name
    return None


# --- containers: health, env, images -----------------------------------------------------------

def all_statuses(pod: Pod) -> list[ContainerStatus]:
    return pod.init_statuses + pod.container_statuses


def status_of(pod: Pod, name: str) -> ContainerStatus | None:
    for cs in all_statuses(pod):
        if cs.name == name:
            return cs
    return None


def spec_of(pod: Pod, name: str) -> dict | None:
    """The spec of a container or init container by name."""
    for c in pod.init_containers + pod.containers:
        if c.get("name") == name:
            return c
    return None


def container_spec(pod: Pod, name: str, init: bool = False) -> dict:
    """The spec of an app container (or, with ``init``, an init container) by name; {} when absent."""
    for c in (pod.init_containers if init else pod.containers):
        if c.get("name") == name:
            return c
    return {}


def unhealthy(cs: ContainerStatus) -> bool:
    """Waiting, not ready (running app containers), terminated non-zero, or crash-looping."""
    state, f = cs.state
    if state == "waiting":
        return True
    if state == "terminated":
        return f.get("exitCode") not in (0, None)
    if state == "running":
        return not cs.ready if not cs.init else True
    return False


def _any_unhealthy(statuses: object, init: bool) -> bool:
    """``unhealthy`` of any status in a raw status list, read from the dicts directly (the same
    rules as ``ContainerStatus.state`` + ``unhealthy``, without building a view per container)."""
    if not isinstance(statuses, list):
        return False
    for raw in statuses:
        if not isinstance(raw, dict):
            continue
        st = raw.get("state")
        if not isinstance(st, dict):
            continue   # state "unknown": healthy
        if isinstance(st.get("waiting"), dict):
            return True
        if isinstance(st.get("running"), dict):
            if init or not raw.get("ready"):
                return True
            continue
        t = st.get("terminated")
        if isinstance(t, dict) and t.get("exitCode") not in (0, None):
            return True
    return False


def describe_state(cs: ContainerStatus) -> str:
    state, f = cs.state
    bits = [state]
    if f.get("reason"):
        bits.append(str(f["reason"]))
    if state == "terminated" and f.get("exitCode") is not None:
        bits.append(f"exit code {f['exitCode']}")
    if cs.restarts:
        bits.append(f"{cs.restarts} restarts")
    last = cs.last_terminated
    if last and last.get("exitCode") is not None and state != "terminated":
        bits.append(f"last exit code {last.get('exitCode')}")
    return ", ".join(bits)


def env_of(c: dict) -> dict[str, dict]:
    """``name -> env entry`` of a container spec (the last entry wins, as in the kubelet)."""
    env = c.get("env")
    if not isinstance(env, list):
        return {}
    return {str(e.get("name")): e for e in env if isinstance(e, dict) and e.get("name")}


def _env_entry(c: dict, name: str) -> dict:
    """The last entry of the container's env named ``name`` (as the kubelet reads it), else {}."""
    env = c.get("env")
    if isinstance(env, list):
        for e in reversed(env):
            if isinstance(e, dict):
                n = e.get("name")
                if n and (n == name if n.__class__ is str else str(n) == name):
                    return e
    return {}


def env_value(c: dict, *names: str) -> str | None:
    """The literal value of the first of ``names`` the container sets as a value."""
    for n in names:
        v = _env_entry(c, n).get("value")
        if isinstance(v, str):
            return v
    return None


def secret_ref(c: dict, name: str) -> tuple[str, str] | None:
    """(Secret, key) an env var of the container is taken from."""
    ref = dig(_env_entry(c, name), "valueFrom", "secretKeyRef")
    if isinstance(ref, dict) and ref.get("name"):
        return str(ref["name"]), str(ref.get("key") or "")
    return None


def env_source(c: dict, name: str) -> tuple[str, str | None, str | None] | None:
    """How a container sets env var ``name``: ("secret", secret, key), ("configmap", cm, key),
    ("value", None, None), or None when it does not set it (envFrom Secrets: ("envFrom", secret, None))."""
    found = [e for e in as_list(c.get("env")) if isinstance(e, dict) and e.get("name") == name]
    if found:   # a name listed twice: the kubelet uses the last entry
        vf = as_dict(found[-1].get("valueFrom"))
        if "secretKeyRef" in vf:
            ref = as_dict(vf["secretKeyRef"])
            return "secret", str(ref.get("name") or "?"), str(ref.get("key") or "?")
        if "configMapKeyRef" in vf:
            ref = as_dict(vf["configMapKeyRef"])
            return "configmap", str(ref.get("name") or "?"), str(ref.get("key") or "?")
        return "value", None, None
    for ef in as_list(c.get("envFrom")):
        if isinstance(ef, dict) and isinstance(ef.get("secretRef"), dict):
            return "envFrom", str(ef["secretRef"].get("name") or "?"), None
    return None


def image_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    last = last.split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else "latest"


def image_repo(image: str) -> str:
    img = image.split("@", 1)[0]
    head, _, last = img.rpartition("/")
    repo = (head + "/" if head else "") + last.split(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
    return repo


def pod_images(p: Pod) -> list[str]:
    return [str(c.get("image")) for c in p.init_containers + p.containers if c.get("image")]


_QTY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
QUANTITY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
                  "Ti": 2**40, "m": 10**-3}


def quantity(v) -> float | None:
    """A Kubernetes quantity (``512Mi``, ``2Gi``, ``500m``, ``1``) as a number of base units."""
    if v is None:
        return None
    m = _QTY.match(str(v).strip())
    if not m or m.group(2) not in QUANTITY_UNITS:
        return None
    return float(m.group(1)) * QUANTITY_UNITS[m.group(2)]


# --- selectors, taints, nodes --------------------------------------------------------------------

def selector_matches(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector against labels (an empty selector matches everything)."""
    selector = as_dict(selector)
    for k, v in as_dict(selector.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for e in as_list(selector.get("matchExpressions")):
        e = as_dict(e)
        key, op, vals = e.get("key"), e.get("operator"), as_list(e.get("values"))
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def tolerates(t: dict, taint: dict) -> bool:
    """A toleration tolerates a taint."""
    if t.get("effect") and t.get("effect") != taint.get("effect"):
        return False
    if t.get("operator") == "Exists":
        return not t.get("key") or t.get("key") == taint.get("key")
    return t.get("key") == taint.get("key") and t.get("value") == taint.get("value")


def node_matches(pod: Pod, node: Obj) -> bool:
    """The pod's nodeSelector (and NoSchedule taints it does not tolerate) allow this node."""
    for k, v in as_dict(pod.spec.get("nodeSelector")).items():
        if node.labels.get(k) != v:
            return False
    tolerations = [as_dict(t) for t in as_list(pod.spec.get("tolerations"))]
    for taint in as_list(node.spec.get("taints")):
        taint = as_dict(taint)
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return False
    return True


def node_schedulable(node: Obj) -> bool:
    """The node takes new pods: not cordoned, and Ready."""
    if node.spec.get("unschedulable"):
        return False
    for c in as_list(node.status.get("conditions")):
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


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


class KubeViews(BaseContext):
    """Views over the namespace's and the cluster's Kubernetes lists."""

    @view
    def pods(self) -> list[Pod]:
        return [Pod(p) for p in self.items("pods")]

    @view
    def pods_by_name(self) -> dict[str, Pod]:
        return {p.name: p for p in self.pods}

    @view
    def pods_by_component(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = defaultdict(list)
        pods = self.pods
        rel = self.release if pods else None   # asked once (as the first pod asked it), not twice per pod
        for p in pods:
            if rel is None or p.labels.get("release") in (None, rel) or p.is_task_pod:
                if p.is_task_pod:
                    out["task"].append(p)
                elif p.component:
                    out[p.component].append(p)
        return dict(out)

    @view
    def task_pods(self) -> list[Pod]:
        """KubernetesExecutor task pods (label ``kubernetes_executor=True``; under
        KubernetesExecutor also ``component=worker`` pods)."""
        out = [p for p in self.pods if p.is_task_pod]
        if "KubernetesExecutor" in (self.executor or "") and "CeleryExecutor" not in (self.executor or ""):
            seen = {id(p) for p in out}
            out += [p for p in self.pods if p.component == "worker" and id(p) not in seen
                    and (self.release is None or p.labels.get("release") == self.release)]
        return out

    @view
    def pods_by_claim(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = defaultdict(list)
        claim_of: dict[int, str | None] = {}   # p.claim_names, each volume looked at once (doctor/compact.py
        for p in self.pods:                    # shares the volumes of task pods; all are held while here)
            vols = p.spec.get("volumes")
            if not isinstance(vols, list):
                continue
            for v in vols:
                k = id(v)
                if k in claim_of:
                    c = claim_of[k]
                else:
                    c = claim_of[k] = dig(v, "persistentVolumeClaim", "claimName")
                if isinstance(c, str):
                    out[c].append(p)
        return dict(out)

    @view
    def pods_by_owner(self) -> dict[str, list[Pod]]:
        """Pods by owner (``Kind/name`` of their controller)."""
        out: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            for o in as_list(p.metadata.get("ownerReferences")):
                if isinstance(o, dict):
                    out[f"{o.get('kind')}/{o.get('name')}"].append(p)
        return dict(out)

    @view
    def pods_by_node(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            if p.node:
                out[p.node].append(p)
        return dict(out)

    @view
    def _events_index(self) -> dict[tuple[str, str], list[dict]]:
        out: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for e in self.items("events"):
            io = e.get("involvedObject") or e.get("regarding")
            if isinstance(io, dict):
                kind, name = io.get("kind"), io.get("name")
                out[(kind if kind.__class__ is str else str(kind), name if name.__class__ is str else str(name))
                    ].append(e)
            else:
                out[("None", "None")].append(e)
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

    @view
    def pvcs(self) -> dict[str, PVC]:
        return {p.name: p for p in (PVC(i) for i in self.items("pvcs"))}

    @view
    def storage_classes(self) -> dict[str, StorageClass]:
        return {s.name: s for s in (StorageClass(i) for i in self.items("storageclasses"))}

    @view
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

    @view
    def configmaps(self) -> dict[str, Obj]:
        return {c.name: c for c in (Obj(i) for i in self.items("configmaps"))}

    @view
    def service_accounts(self) -> dict[str, Obj]:
        return {s.name: s for s in (Obj(i) for i in self.items("serviceaccounts"))}

    def gsa_of(self, ksa: str) -> str | None:
        """The Google service account a Kubernetes service account is annotated with."""
        sa = self.service_accounts.get(ksa)
        if sa is None:
            return None
        v = sa.annotations.get("iam.gke.io/gcp-service-account")
        return v.strip() if isinstance(v, str) and v.strip() else None

    @view
    def deployments(self) -> dict[str, Obj]:
        return {d.name: d for d in (Obj(i) for i in self.items("deployments"))}

    @view
    def statefulsets(self) -> dict[str, Obj]:
        return {d.name: d for d in (Obj(i) for i in self.items("statefulsets"))}

    @view
    def jobs(self) -> dict[str, Obj]:
        return {d.name: d for d in (Obj(i) for i in self.items("jobs"))}

    @view
    def nodes(self) -> dict[str, Obj]:
        return {n.name: n for n in (Obj(i) for i in self.items("nodes"))}

    @view
    def persistent_volumes(self) -> dict[str, Obj]:
        return {o.name: o for o in (Obj(i) for i in self.items("persistentvolumes"))}

    @view
    def unhealthy_pods(self) -> list[Pod]:
        """The pods (in ``pods`` order) with at least one unhealthy container status: checks that
        look only at unhealthy containers need not walk every healthy task pod."""
        return [p for p in self.pods if _any_unhealthy(p.status.get("initContainerStatuses"), True)
                or _any_unhealthy(p.status.get("containerStatuses"), False)]

    @view
    def services(self) -> dict[str, Obj]:
        return {o.name: o for o in (Obj(i) for i in self.items("k8s_services"))}

    @view
    def endpoint_slices(self) -> list[Obj]:
        return [Obj(i) for i in self.items("endpointslices")]

    def pods_selected_by(self, selector: dict) -> list[Pod]:
        """The pods a Service's ``spec.selector`` (key=value map) selects; none for an empty selector."""
        if not selector:
            return []
        return [p for p in self.pods if all(p.labels.get(k) == v for k, v in selector.items())]

    def endpoint_slices_of(self, service: str) -> list[Obj]:
        """The EndpointSlices of a Service (label ``kubernetes.io/service-name``)."""
        return [s for s in self.endpoint_slices if s.labels.get("kubernetes.io/service-name") == service]

    @view
    def network_policies(self) -> list[Obj]:
        return [Obj(i) for i in self.items("networkpolicies")]

    @view
    def ingresses(self) -> list[Obj]:
        return [Obj(i) for i in self.items("ingresses")]

    @view
    def backend_configs(self) -> dict[str, Obj] | None:
        """GKE BackendConfigs by name; None when the CRD is not installed (its list answered 404)."""
        if self.body("backendconfigs") is None:
            return None
        return {o.name: o for o in (Obj(i) for i in self.items("backendconfigs"))}

    @view
    def gce_ui_backends(self) -> list["GceBackend"]:
        """Every backend of a GKE Ingress (class ``gce``/``gce-internal``, or no class and GKE's
        backends annotation) that is a port of an Airflow UI Service (selector ``component``
        ``webserver``/``api-server``, any release), one per Ingress and Service port, with the load
        balancer's verdict from ``ingress.kubernetes.io/backends``: what gce-ingress-unhealthy-backend
        judges and what names the health checks a live run reads (``health_check``)."""
        ui = {name: str(as_dict(svc.spec.get("selector")).get("component")) for name, svc in self.services.items()
              if as_dict(svc.spec.get("selector")).get("component") in UI_COMPONENTS}
        out: list[GceBackend] = []
        for ing in sorted(self.ingresses, key=lambda o: o.name):
            if not is_gce_ingress(ing):
                continue
            states = ingress_backend_states(ing)
            refs: list[tuple[dict, str]] = []
            default = as_dict(dig(ing.raw, "spec", "defaultBackend", "service"))
            if default:
                refs.append((default, "default backend"))
            for rule in as_list(ing.spec.get("rules")):
                rule = as_dict(rule)
                for p in as_list(dig(rule, "http", "paths")):
                    p = as_dict(p)
                    ref = as_dict(dig(p, "backend", "service"))
                    if ref:
                        refs.append((ref, f"{rule.get('host') or '*'}{p.get('path') or '/'}"))
            seen: dict[tuple[str, int], GceBackend] = {}
            for ref, where in refs:
                name = str(ref.get("name"))
                if name not in ui:
                    continue
                svc = self.services[name]
                port = service_port(svc, as_dict(ref.get("port")))
                if port is None:
                    continue
                key = (svc.name, int(port.get("port") or 0))
                if key in seen:
                    seen[key].paths.append(where)
                    continue
                backend = lb_backend_name(self.target.namespace, svc, port, states)
                seen[key] = GceBackend(ing, svc, ui[name], port, backend, states.get(backend) if backend else None,
                                       [where])
            out += seen.values()
        return out

    @view
    def http_routes(self) -> list[Obj] | None:
        """Gateway API HTTPRoutes; None when the Gateway API is not installed (the list answered 404)."""
        if self.body("httproutes") is None:
            return None
        return [Obj(i) for i in self.items("httproutes")]

    @view
    def roles(self) -> dict[str, Obj]:
        return {o.name: o for o in (Obj(i) for i in self.items("roles"))}

    @view
    def role_bindings(self) -> list[Obj]:
        return [Obj(i) for i in self.items("rolebindings")]

    @view
    def cluster_roles(self) -> dict[str, Obj]:
        return {o.name: o for o in (Obj(i) for i in self.items("clusterroles"))}

    @view
    def cluster_role_bindings(self) -> list[Obj]:
        return [Obj(i) for i in self.items("clusterrolebindings")]

    def log(self, pod: str, container: str, previous: bool = False) -> str | None:
        """The stored tail of a container's log, or None when it was not collected."""
        e = self.entry("logs", pod=pod, container=container + (".previous" if previous else ""))
        return e.data if e is not None and e.ok and isinstance(e.data, str) else None

    def log_lacks(self, pod: str, container: str, needle: str, previous: bool = False) -> bool:
        """True when the stored log of a container surely does not hold ``needle`` (an ASCII literal
        a check's pattern needs, never a secret), so ``log`` would find no line with it: a snapshot
        answers without parsing or redacting the log (``Source.lacks``); False: read it."""
        k = data_key("logs")
        if any(getattr(self.target, f) is None for f in k.requires):
            return False
        lacks = getattr(self.source, "lacks", None)
        return lacks is not None and lacks(k.path(self.target, pod=pod, container=container
                                                  + (".previous" if previous else "")), needle)

    def log_lines(self, pod: str, container: str, previous: bool = False) -> list[str]:
        text = self.log(pod, container, previous)
        return text.splitlines() if text else []


    def recent_logs(self, pod: Pod, container: str) -> list[tuple[str, str]]:
        """(which, line) of a container's stored current log, then its previous one; blank lines dropped."""
        out = []
        for prev in (False, True):
            tag = "previous log" if prev else "log"
            out += [(tag, ln) for ln in self.log_lines(pod.name, container, previous=prev) if ln.strip()]
        return out

    def log_history(self, pod: Pod, container: str) -> list[tuple[str, str]]:
        """(which, line) of a container's previous log, then its current one (oldest first), as stored."""
        out = [("previous log", ln) for ln in self.log_lines(pod.name, container, previous=True)]
        out += [("log", ln) for ln in self.log_lines(pod.name, container)]
        return out


# --- GKE Ingress load balancer backends -------------------------------------------------------
BACKENDS_ANNOTATION = "ingress.kubernetes.io/backends"
NEG_STATUS_ANNOTATION = "cloud.google.com/neg-status"
GCE_INGRESS_CLASSES = ("gce", "gce-internal")
UI_COMPONENTS = ("webserver", "api-server")
# GKE names a backend service (and the health check it makes for it) k8s1-<uid8>-<ns>-<svc>-<port>-<hash8>
# for a container-native (NEG) backend, k8s-be-<nodePort>--<uid> for an instance-group backend.
_NEG_NAME = re.compile(r"^k8s1-[0-9a-f]{8}-(?P<rest>.+)-(?P<port>\d+)-[0-9a-f]{8}$")
_IG_NAME = re.compile(r"^k8s-be-(?P<nodeport>\d+)--[0-9a-f]+$")


@dataclass
class GceBackend:
    """One GKE Ingress backend that is an Airflow UI Service port, with the load balancer's verdict."""
    ingress: Obj
    service: Obj
    component: str
    port: dict                       # the Service port
    backend_name: str | None         # the load balancer's backend service (and its health check's name)
    state: str | None                # HEALTHY / UNHEALTHY / Unknown / None (not in the annotation)
    paths: list[str] = field(default_factory=list)

    @property
    def port_number(self) -> int:
        return int(self.port.get("port") or 0)

    @property
    def ingress_class(self) -> str | None:
        return self.ingress.spec.get("ingressClassName") or self.ingress.annotations.get("kubernetes.io/ingress.class")

    @property
    def internal(self) -> bool:
        """An internal Application Load Balancer (class gce-internal): its backend service and
        health check are regional, not global."""
        return self.ingress_class == "gce-internal"


def is_gce_ingress(ing: Obj) -> bool:
    cls = ing.spec.get("ingressClassName") or ing.annotations.get("kubernetes.io/ingress.class")
    if cls:
        return cls in GCE_INGRESS_CLASSES
    return BACKENDS_ANNOTATION in ing.annotations   # no class: GKE's controller took it if it wrote its annotation


def ingress_backend_states(ing: Obj) -> dict[str, str]:
    """Backend name -> the load balancer's verdict, from GKE's ``ingress.kubernetes.io/backends``."""
    try:
        v = json.loads(ing.annotations.get(BACKENDS_ANNOTATION) or "{}")
    except ValueError:
        return {}
    return {str(k): str(s) for k, s in v.items()} if isinstance(v, dict) else {}


def service_port(svc: Obj, ref: dict) -> dict | None:
    """The Service port an Ingress backend's ``port`` (number or name) names."""
    ports = [as_dict(p) for p in as_list(svc.spec.get("ports"))]
    if "number" in ref:
        return next((p for p in ports if p.get("port") == ref.get("number")), None)
    if "name" in ref:
        return next((p for p in ports if p.get("name") == ref.get("name")), None)
    return ports[0] if len(ports) == 1 else None


def lb_backend_name(namespace: str, svc: Obj, port: dict, states: dict[str, str]) -> str | None:
    """The load balancer backend of a Service port: the NEG the Service's neg-status names for it
    (container-native load balancing), else a ``k8s1-<uid>-<ns>-<svc>-<port>-<hash>`` name of that
    Service and port, else the instance-group backend of its nodePort (``k8s-be-<nodePort>--<uid>``)."""
    try:
        status = json.loads(svc.annotations.get(NEG_STATUS_ANNOTATION) or "{}")
    except ValueError:
        status = {}
    negs = as_dict(as_dict(status).get("network_endpoint_groups"))
    neg = negs.get(str(port.get("port")))
    if neg:
        return str(neg)
    want = f"{namespace}-{svc.name}"
    for name in states:
        m = _NEG_NAME.match(name)
        if m and m.group("port") == str(port.get("port")) and (m.group("rest") == want or want.startswith(m.group("rest"))):
            return name
        m = _IG_NAME.match(name)
        if m and port.get("nodePort") and m.group("nodeport") == str(port.get("nodePort")):
            return name
    return None
