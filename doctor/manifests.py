"""Planned mode: the rendered chart (``helm template``, Argo CD or Flux output) as a source.

``airflow-gke doctor --manifests FILE`` judges what a deploy *would* create against the real
cluster and project. :func:`read_plan` parses the multi-document YAML (``---`` separated documents
and ``kind: List`` wrappers; comments and ``# Source:`` lines are YAML comments; Helm test hooks
and Secrets are left out, so no Secret value is ever kept) into a :class:`Plan`: the namespaced
objects the release would hold, one *planned pod* per workload (its pod template, owned as the
controller would own it, not yet on a node) plus a planned KubernetesExecutor task pod from
``pod_template_file.yaml``, and a PVC per StatefulSet volumeClaimTemplate and replica.

:class:`PlannedSource` overlays the plan on another source (live reads or a ``--snapshot``): the
namespaced lists the plan holds answer from the plan, what only exists at runtime (events,
EndpointSlices, container logs) answers as nothing-yet, and everything cluster-scoped or on the
Google side (StorageClasses, nodes, node pools, Workload Identity, IAM, buckets, APIs) answers
from the underlying source. The views and checks read it like any other source; checks that need
runtime evidence are skipped by the runner in planned mode (``evidence="runtime"``).
"""
from __future__ import annotations

import copy
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from .data import KEYS, Target
from .errors import UserError
from .source import Entry, MemorySource, Source

try:   # the C loader when PyYAML was built with libyaml (the same results, faster)
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

# Data keys the plan answers: kind -> data key (ExternalSecrets and SecretStores by API version).
KIND_KEYS = {
    "ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts", "Deployment": "deployments",
    "StatefulSet": "statefulsets", "Job": "jobs", "PersistentVolumeClaim": "pvcs", "Service": "k8s_services",
    "NetworkPolicy": "networkpolicies", "Role": "roles", "RoleBinding": "rolebindings", "Pod": "pods",
    "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
}
ESO_KINDS = {"ExternalSecret": "externalsecrets", "SecretStore": "secretstores"}
LIST_KINDS = {
    "configmaps": ("ConfigMapList", "v1"), "serviceaccounts": ("ServiceAccountList", "v1"),
    "deployments": ("DeploymentList", "apps/v1"), "statefulsets": ("StatefulSetList", "apps/v1"),
    "jobs": ("JobList", "batch/v1"), "pvcs": ("PersistentVolumeClaimList", "v1"),
    "k8s_services": ("ServiceList", "v1"), "networkpolicies": ("NetworkPolicyList", "networking.k8s.io/v1"),
    "roles": ("RoleList", "rbac.authorization.k8s.io/v1"),
    "rolebindings": ("RoleBindingList", "rbac.authorization.k8s.io/v1"), "pods": ("PodList", "v1"),
    "externalsecrets": ("ExternalSecretList", "external-secrets.io/v1"),
    "secretstores": ("SecretStoreList", "external-secrets.io/v1"),
    "externalsecrets_v1beta1": ("ExternalSecretList", "external-secrets.io/v1beta1"),
    "secretstores_v1beta1": ("SecretStoreList", "external-secrets.io/v1beta1"),
    "events": ("EventList", "v1"), "endpointslices": ("EndpointSliceList", "discovery.k8s.io/v1"),
}
# Namespaced lists the plan replaces entirely (what the namespace would hold after the deploy).
PLANNED_KEYS = ("configmaps", "serviceaccounts", "deployments", "statefulsets", "jobs", "pvcs", "k8s_services",
                "networkpolicies", "roles", "rolebindings", "pods", "externalsecrets", "secretstores",
                "externalsecrets_v1beta1", "secretstores_v1beta1")
# Cluster-scoped lists the plan adds to (a planned object replaces the one of the same name).
MERGED_KEYS = ("clusterroles", "clusterrolebindings")
# What exists only once pods run: nothing yet.
RUNTIME_EMPTY = ("events", "endpointslices")
PLANNED_POD_SUFFIX = "planned"


@dataclass
class Plan:
    """The objects a rendered release would create, by data key, and what was read from them."""

    where: str
    objects: dict[str, list[dict]] = field(default_factory=dict)
    namespace: str | None = None
    release: str | None = None
    chart_version: str | None = None
    airflow_version: str | None = None
    skipped: Counter = field(default_factory=Counter)   # why -> count (test hooks, Secrets, other kinds)

    def items(self, key: str) -> list[dict]:
        return self.objects.get(key, [])

    def target(self, base: Target) -> Target:
        return Target(namespace=self.namespace or base.namespace, project=base.project, location=base.location,
                      cluster=base.cluster, release=self.release or base.release, context=base.context)


# --- parsing -------------------------------------------------------------------------------------

def load_documents(text: str, where: str) -> list[tuple[int, Any]]:
    """(first line, parsed document) of every YAML document; UserError with file and line
    for malformed YAML."""
    loader = _Loader(text)
    out: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            line = node.start_mark.line + 1
            out.append((line, loader.construct_document(node)))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None else where
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        ctx = getattr(e, "context", None)
        raise UserError(f"{at}: malformed YAML: {problem}" + (f" ({ctx})" if ctx else "")) from None
    finally:
        loader.dispose()
    return out


def _is_test_hook(obj: dict) -> bool:
    ann = obj.get("metadata", {}).get("annotations") if isinstance(obj.get("metadata"), dict) else None
    hooks = str((ann or {}).get("helm.sh/hook", "")) if isinstance(ann, dict) else ""
    return any(h.strip().startswith("test") for h in hooks.split(","))


def _flatten(docs: Iterable[tuple[int, Any]], where: str) -> list[tuple[int, dict]]:
    out: list[tuple[int, dict]] = []
    for line, doc in docs:
        if doc is None:
            continue   # an empty document (a template that rendered nothing)
        if not isinstance(doc, dict):
            raise UserError(f"{where}:{line}: a document is a {type(doc).__name__}, not a Kubernetes object")
        if doc.get("kind") == "List" or (isinstance(doc.get("kind"), str) and doc["kind"].endswith("List")
                                          and isinstance(doc.get("items"), list)):
            for item in doc.get("items") or []:
                if isinstance(item, dict):
                    out.append((line, item))
            continue
        if not isinstance(doc.get("kind"), str) or not isinstance(doc.get("apiVersion"), str):
            raise UserError(f"{where}:{line}: a document without kind and apiVersion is not a Kubernetes object")
        out.append((line, doc))
    return out


def read_plan(text: str, where: str, namespace: str | None = None, release: str | None = None) -> Plan:
    """The plan of rendered manifests. ``namespace``/``release`` (the command line) win over what
    the manifests say. UserError when the text is not YAML or holds no Airflow chart object."""
    plan = Plan(where)
    objs = _flatten(load_documents(text, where), where)
    chart_objs = []
    for _line, o in objs:
        kind = o["kind"]
        meta = o.get("metadata") if isinstance(o.get("metadata"), dict) else {}
        if _is_test_hook(o):
            plan.skipped["Helm test hooks"] += 1
            continue
        if kind == "Secret":
            plan.skipped["Secrets (never read)"] += 1
            continue
        labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
        if labels.get("tier") == "airflow" and str(labels.get("chart", "")).startswith("airflow"):
            chart_objs.append(o)
        key = KIND_KEYS.get(kind)
        if key is None and kind in ESO_KINDS and str(o.get("apiVersion", "")).startswith("external-secrets.io/"):
            key = ESO_KINDS[kind] + ("_v1beta1" if o["apiVersion"].endswith("/v1beta1") else "")
        if key is None:
            plan.skipped[f"{kind} (not judged)"] += 1
            continue
        plan.objects.setdefault(key, []).append(copy.deepcopy(o))
    if not chart_objs:
        raise UserError(f"{where}: no object of the Airflow chart (labels tier=airflow, chart=airflow-<version>): "
                            "give the output of `helm template RELEASE apache-airflow/airflow --namespace NS -f values.yaml`")
    rels = Counter(str(o["metadata"]["labels"].get("release")) for o in chart_objs
                   if o["metadata"]["labels"].get("release"))
    plan.release = release or (rels.most_common(1)[0][0] if rels else None)
    charts = Counter(str(o["metadata"]["labels"]["chart"]) for o in chart_objs
                     if o["metadata"]["labels"].get("release") in (None, plan.release))
    chart = charts.most_common(1)[0][0] if charts else ""
    plan.chart_version = chart[len("airflow-"):] if chart.startswith("airflow-") else None
    plan.namespace = namespace or _namespace(plan)
    if not plan.namespace:
        raise UserError(f"{where}: the manifests do not say their namespace (no metadata.namespace, no "
                            "[kubernetes_executor] namespace); pass --namespace")
    for key in list(plan.objects):
        for o in plan.objects[key]:
            if key not in MERGED_KEYS:
                o.setdefault("metadata", {})["namespace"] = plan.namespace
    _plan_claims(plan)
    _plan_pods(plan)
    plan.airflow_version = _airflow_version(plan)
    return plan


def _namespace(plan: Plan) -> str | None:
    seen = Counter(o["metadata"]["namespace"] for key in PLANNED_KEYS for o in plan.items(key)
                   if isinstance(o.get("metadata"), dict) and isinstance(o["metadata"].get("namespace"), str))
    if seen:
        return seen.most_common(1)[0][0]
    for cm in plan.items("configmaps"):
        cfg = (cm.get("data") or {}).get("airflow.cfg") if isinstance(cm.get("data"), dict) else None
        if isinstance(cfg, str):
            m = re.search(r"(?ms)^\[kubernetes(?:_executor)?\]\s*$.*?^namespace\s*=\s*(\S+)\s*$", cfg)
            if m:
                return m.group(1)
    for rb in plan.items("rolebindings"):
        for s in rb.get("subjects") or []:
            if isinstance(s, dict) and s.get("kind") == "ServiceAccount" and isinstance(s.get("namespace"), str):
                return s["namespace"]
    return None


def _airflow_version(plan: Plan) -> str | None:
    """The Airflow version the release would run: the tag of the scheduler's image (which the
    chart takes from ``airflowVersion``/``defaultAirflowTag`` unless ``images.airflow.tag`` is set)."""
    for comp in ("scheduler", "api-server", "webserver", "triggerer", "dag-processor", "worker"):
        for p in plan.items("pods"):
            labels = p["metadata"].get("labels") or {}
            if labels.get("component") != comp:
                continue
            for c in (p.get("spec") or {}).get("containers") or []:
                if isinstance(c, dict) and c.get("name") == comp:
                    m = re.search(r"(?:^|[:\-])(\d+\.\d+\.\d+)", str(c.get("image", "")).rsplit(":", 1)[-1])
                    if m:
                        return m.group(1)
    return None


def _plan_claims(plan: Plan) -> None:
    """A PVC for each StatefulSet volumeClaimTemplate and replica, as the controller creates them."""
    for sts in plan.items("statefulsets"):
        spec = sts.get("spec") or {}
        n = spec.get("replicas", 1)
        n = n if isinstance(n, int) else 1
        for ct in spec.get("volumeClaimTemplates") or []:
            if not isinstance(ct, dict):
                continue
            tname = (ct.get("metadata") or {}).get("name")
            for i in range(n):
                name = f"{tname}-{sts['metadata']['name']}-{i}"
                meta = {"name": name, "namespace": plan.namespace,
                        "labels": dict(((spec.get("selector") or {}).get("matchLabels")) or {})}
                plan.objects.setdefault("pvcs", []).append(
                    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                     "spec": copy.deepcopy(ct.get("spec") or {})})
    for pvc in plan.items("pvcs"):
        pvc["status"] = {"phase": "Pending"}   # every claim starts Pending; none is bound yet


def _pod(plan: Plan, name: str, template: dict, owner: tuple[str, str, str] | None,
         extra_labels: dict | None = None) -> dict:
    tmeta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    meta: dict = {"name": name, "namespace": plan.namespace,
                  "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})}}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if owner:
        meta["ownerReferences"] = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2], "controller": True}]
    spec = copy.deepcopy(template.get("spec") or {})
    spec.setdefault("serviceAccountName", "default")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": "Pending"}}


def _plan_pods(plan: Plan) -> None:
    """One planned pod per workload (from its pod template) and a planned task pod."""
    pods = plan.objects.setdefault("pods", [])
    for key, kind, api in (("deployments", "Deployment", "apps/v1"), ("statefulsets", "StatefulSet", "apps/v1"),
                           ("jobs", "Job", "batch/v1")):
        for w in plan.items(key):
            spec = w.get("spec") or {}
            if spec.get("replicas") == 0:
                continue
            wname = w["metadata"]["name"]
            tpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
            if kind == "Deployment":
                p = _pod(plan, f"{wname}-{PLANNED_POD_SUFFIX}-0", tpl, ("apps/v1", "ReplicaSet", f"{wname}-{PLANNED_POD_SUFFIX}"))
            elif kind == "StatefulSet":
                p = _pod(plan, f"{wname}-0", tpl, (api, kind, wname))
                for ct in spec.get("volumeClaimTemplates") or []:
                    vname = (ct.get("metadata") or {}).get("name") if isinstance(ct, dict) else None
                    if vname:
                        p["spec"]["volumes"] = [*(p["spec"].get("volumes") or []),
                                                {"name": vname, "persistentVolumeClaim": {"claimName": f"{vname}-{wname}-0"}}]
            else:
                p = _pod(plan, f"{wname}-{PLANNED_POD_SUFFIX}", tpl, (api, kind, wname))
            pods.append(p)
    tpl = _pod_template(plan)
    if tpl is not None:
        pods.append(_pod(plan, f"{plan.release or 'airflow'}-task-{PLANNED_POD_SUFFIX}", tpl, None,
                         {"kubernetes_executor": "True"}))


def _pod_template(plan: Plan) -> dict | None:
    for cm in plan.items("configmaps"):
        data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
        text = data.get("pod_template_file.yaml")
        if isinstance(text, str) and (plan.release is None or cm["metadata"].get("name") == f"{plan.release}-config"
                                      or (cm["metadata"].get("labels") or {}).get("component") == "config"):
            try:
                doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
            except yaml.YAMLError:
                return None
            return doc if isinstance(doc, dict) else None
    return None


# --- the overlay source ----------------------------------------------------------------------------

class PlannedSource(Source):
    """The plan over another source: namespaced lists from the plan, runtime-only data empty,
    everything cluster-scoped and Google-side from ``base``."""

    mode = "planned"

    def __init__(self, plan: Plan, base: Source, target: Target) -> None:
        self.plan = plan
        self.base = base
        self.target = target
        self.redactor = getattr(base, "redactor", None)
        self._mem = MemorySource(mode="planned", **({"redactor": self.redactor} if self.redactor else {}))
        self._paths: dict[str, str] = {}
        for key in PLANNED_KEYS + RUNTIME_EMPTY:
            path = KEYS[key].path(target)
            self._paths[path] = key
        for key in MERGED_KEYS:
            self._paths[KEYS[key].path(target)] = key
        logs = KEYS["logs"]
        self._log_prefix = logs.template.split("{pod}")[0].format(namespace=target.namespace)
        self._ns_prefix = KEYS["pods"].path(target).rsplit("/", 1)[0] + "/"

    def _build(self, path: str, key: str) -> Entry:
        if key in MERGED_KEYS:
            planned = self.plan.items(key)
            names = {o.get("metadata", {}).get("name") for o in planned}
            base = self.base.get(path)
            if base is not None and not base.ok:
                return base   # the cluster's list could not be read: that read failed, as it would live
            items = [o for o in ((base.data or {}).get("items") or [] if base is not None else [])
                     if isinstance(o, dict) and o.get("metadata", {}).get("name") not in names]
            items += [_strip(o) for o in planned]
            kind, api = ("ClusterRoleList", "rbac.authorization.k8s.io/v1") if key == "clusterroles" else \
                ("ClusterRoleBindingList", "rbac.authorization.k8s.io/v1")
            return Entry(path, data={"kind": kind, "apiVersion": api, "metadata": {}, "items": items})
        kind, api = LIST_KINDS[key]
        if key.startswith(("externalsecrets", "secretstores")) and not self.plan.items(key):
            base = self.base.get(path)
            if base is not None and base.not_found:
                return base   # the operator's CRDs are not installed, and the plan adds none
        items = [_strip(o) for o in self.plan.items(key)] if key not in RUNTIME_EMPTY else []
        items.sort(key=lambda o: str(o.get("metadata", {}).get("name")))
        return self._mem.put(path, {"kind": kind, "apiVersion": api, "metadata": {}, "items": items})

    def get(self, path: str) -> Entry | None:
        key = self._paths.get(path)
        if key is not None:
            hit = self._mem.get(path)
            if hit is None:
                hit = self._build(path, key)
                self._mem.entries[path] = hit
            return hit
        if path.startswith(self._log_prefix):
            return None   # no container has run: no log to read
        if path.startswith(self._ns_prefix) or f"/namespaces/{self.target.namespace}/" in path:
            return None   # namespaced data the plan does not describe: nothing yet
        return self.base.get(path)

    def paths(self, prefix: str = "") -> Iterable[str]:
        own = [p for p in self._paths if p.startswith(prefix)]
        return own + [p for p in self.base.paths(prefix) if p not in self._paths]

    def close(self) -> None:
        if hasattr(self.base, "close"):
            self.base.close()


def _strip(o: dict) -> dict:
    """A planned object as a list item: the API server's lists carry no kind/apiVersion per item."""
    return {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}


def read_plan_file(path: str, stdin_text: str | None = None, namespace: str | None = None,
                   release: str | None = None) -> Plan:
    """Read FILE (``-``: stdin) into a plan; UserError for every input problem."""
    if path == "-":
        text, where = stdin_text if stdin_text is not None else "", "<stdin>"
    else:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as e:
            raise UserError(f"{path}: cannot read ({e.strerror})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
        where = path
    if not text.strip():
        raise UserError(f"{where}: empty: no manifests to judge")
    return read_plan(text, where, namespace=namespace, release=release)
