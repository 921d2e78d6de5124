"""The scenario snapshots in fixtures/scenarios/ are well-formed, consistent and up to date.

* every Kubernetes list item validates (strict: no unknown fields) against the Kubernetes OpenAPI
  schemas shipped by ``kubernetes-validate``, for the Kubernetes minor the fixtures' GKE runs;
* ``meta.json`` follows ``airflow-gke/snapshot@1``; ``*.error.json`` files have ``status`` and ``body``;
* objects reference each other consistently (nodes, PVCs, ConfigMaps, KSAs, owners, events, pools);
* ``python fixtures/build.py --check`` finds the committed files identical to a fresh build.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from packaging.version import Version
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "fixtures" / "scenarios"
SCENARIO_DIRS = sorted(p for p in SCENARIOS.iterdir() if p.is_dir()) if SCENARIOS.is_dir() else []
IDS = [p.name for p in SCENARIO_DIRS]

# The fixtures model GKE 1.35 clusters; validate against that minor (or the newest schemas
# kubernetes-validate ships, if it is older).
K8S_VERSION = min(Version("1.35"), Version(kv_utils.latest_version()))
K8S_MINOR = f"{K8S_VERSION.major}.{K8S_VERSION.minor}"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
META_KEYS = {"format", "captured_at", "tool_version", "context", "project", "location", "cluster", "namespace",
             "release"}


# --- cached schema validators (kubernetes_validate.validate re-reads its schemas on every call) --

def _schema_dir() -> str:
    version = [v for v in kv_utils.all_versions() if Version(v) <= K8S_VERSION][-1]
    return f"kubernetes-json-schema/v{version}-local-strict"


@functools.lru_cache(maxsize=None)
def _definitions() -> Registry:
    defs = kv_utils.schema_contents(f"{_schema_dir()}/_definitions.json", K8S_MINOR)
    return Resource.from_contents(defs) @ Registry()


@functools.lru_cache(maxsize=None)
def validator(kind: str, api_version: str) -> jsonschema.Validator:
    """The validator ``kubernetes_validate.validate(obj, K8S_MINOR, strict=True)`` builds, built once."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv_utils.schema_contents(f"{_schema_dir()}/{kind.lower()}-{group}.json", K8S_MINOR)
    return jsonschema.Draft202012Validator(schema, registry=Resource.from_contents(schema) @ _definitions())


# Custom resources (External Secrets Operator, GKE's BackendConfig, KEDA, Gateway API): no bundled schema; their items
# carry apiVersion/kind, metadata must be a valid ObjectMeta and spec/status objects. HTTPRoute specs are held to the
# fields of the Gateway API v1 CRD's schema that the doctor reads (types and enums as the CRD declares them).
CUSTOM_GROUPS = ("external-secrets.io", "cloud.google.com", "keda.sh", "gateway.networking.k8s.io")
_STR = {"type": "string", "minLength": 1}
_FILTERS = {"type": "array", "maxItems": 16, "items": {
    "type": "object", "required": ["type"], "properties": {
        "type": {"enum": ["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect",
                          "URLRewrite", "ExtensionRef"]},
        "urlRewrite": {"type": "object", "additionalProperties": False, "properties": {
            "hostname": _STR,
            "path": {"type": "object", "required": ["type"], "additionalProperties": False, "properties": {
                "type": {"enum": ["ReplaceFullPath", "ReplacePrefixMatch"]},
                "replaceFullPath": {"type": "string"}, "replacePrefixMatch": {"type": "string"}}}}}}}}
HTTPROUTE_SPEC = {"type": "object", "additionalProperties": False, "properties": {
    "parentRefs": {"type": "array", "maxItems": 32, "items": {
        "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
            "group": {"type": "string"}, "kind": _STR, "name": _STR, "namespace": _STR, "sectionName": _STR,
            "port": {"type": "integer"}}}},
    "hostnames": {"type": "array", "maxItems": 16, "items": {
        "type": "string", "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}},
    "rules": {"type": "array", "maxItems": 16, "items": {"type": "object", "additionalProperties": False, "properties": {
        "name": _STR,
        "matches": {"type": "array", "maxItems": 64, "items": {"type": "object", "properties": {
            "path": {"type": "object", "additionalProperties": False, "properties": {
                "type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                "value": {"type": "string", "pattern": "^/"}}}}}},
        "filters": _FILTERS,
        "backendRefs": {"type": "array", "maxItems": 16, "items": {
            "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                "group": {"type": "string"}, "kind": _STR, "name": _STR, "namespace": _STR,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535}, "weight": {"type": "integer"},
                "filters": _FILTERS}}}}}}}}


@functools.lru_cache(maxsize=None)
def custom_validator(kind: str, api_version: str) -> jsonschema.Validator:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"https://kubernetes.io/api/cr/{kind}",
              "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
              "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind},
                             "metadata": {"$ref": "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                             "spec": HTTPROUTE_SPEC if kind == "HTTPRoute" else {"type": "object"},
                             "status": {"type": "object"}}}
    return jsonschema.Draft202012Validator(schema, registry=Resource.from_contents(schema) @ _definitions())


def is_custom(api_version: str) -> bool:
    return api_version.split("/")[0] in CUSTOM_GROUPS


def load(path: Path):
    return json.loads(path.read_text())


def k8s_files(scenario: Path) -> list[Path]:
    root = scenario / "k8s"
    return sorted(p for p in root.rglob("*.json") if not p.name.endswith(".error.json")) if root.is_dir() else []


def as_object(body: dict, item: dict) -> dict:
    """A list item as a standalone object: the API server leaves ``kind``/``apiVersion`` out of items."""
    return {"apiVersion": body["apiVersion"], "kind": body["kind"][: -len("List")], **item}


def parse_time(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)


# --- tests --------------------------------------------------------------------------------------

def test_every_builder_scenario_is_committed():
    sys.path.insert(0, str(REPO))
    try:
        from fixtures.build import SCENARIOS as BUILT
    finally:
        sys.path.remove(str(REPO))
    assert SCENARIO_DIRS, "no scenarios in fixtures/scenarios"
    assert set(BUILT) <= set(IDS), f"not committed: {sorted(set(BUILT) - set(IDS))}"


def test_cached_validator_agrees_with_kubernetes_validate():
    body = load(next(p for p in k8s_files(SCENARIOS / "seed-incident") if p.name == "pods.json"))
    obj = as_object(body, body["items"][0])
    assert kubernetes_validate.validate(obj, K8S_MINOR, strict=True) == K8S_MINOR
    validator("Pod", "v1").validate(obj)
    bad = {**obj, "spec": {**obj["spec"], "nodeNmae": "typo"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_MINOR, strict=True)
    with pytest.raises(jsonschema.ValidationError):
        validator("Pod", "v1").validate(bad)


@pytest.mark.parametrize("scenario", SCENARIO_DIRS, ids=IDS)
def test_meta(scenario: Path):
    meta = load(scenario / "meta.json")
    assert set(meta) == META_KEYS, f"meta.json keys: {sorted(meta)}"
    assert meta["format"] == "airflow-gke/snapshot@1"
    assert RFC3339_UTC.match(meta["captured_at"]), meta["captured_at"]
    parse_time(meta["captured_at"])
    assert isinstance(meta["namespace"], str) and meta["namespace"]
    assert isinstance(meta["tool_version"], str) and meta["tool_version"]
    assert isinstance(meta["project"], str) and meta["project"]
    if meta["cluster"] is None:
        assert not (scenario / "k8s").exists(), "a snapshot without a cluster has no k8s/ files"
        assert meta["location"] is None
    assert (scenario / "SCENARIO.md").is_file()


@pytest.mark.parametrize("scenario", SCENARIO_DIRS, ids=IDS)
def test_kubernetes_items_validate(scenario: Path):
    errors = []
    for path in k8s_files(scenario):
        body = load(path)
        rel = path.relative_to(scenario)
        assert body["kind"].endswith("List") and body.get("apiVersion"), f"{rel}: not a list body"
        assert set(body) == {"kind", "apiVersion", "metadata", "items"}, f"{rel}: keys {sorted(body)}"
        assert body["metadata"].get("resourceVersion") and "continue" not in body["metadata"], rel
        names = [i["metadata"]["name"] for i in body["items"]]
        assert names == sorted(names), f"{rel}: the API server lists in name order"
        custom = is_custom(body["apiVersion"])
        kind = body["kind"][: -len("List")]
        check = custom_validator(kind, body["apiVersion"]) if custom else validator(kind, body["apiVersion"])
        for item in body["items"]:
            if custom:   # custom resource lists keep apiVersion/kind on their items
                assert item.get("apiVersion") == body["apiVersion"] and item.get("kind") == kind, rel
            else:
                assert "kind" not in item and "apiVersion" not in item, f"{rel}: list items carry no kind/apiVersion"
            for err in check.iter_errors(item if custom else as_object(body, item)):
                where = ".".join(str(p) for p in err.absolute_path)
                errors.append(f"{rel} {item['metadata']['name']}: {where}: {err.message}")
    assert not errors, "\n".join(errors[:30])


@pytest.mark.parametrize("scenario", SCENARIO_DIRS, ids=IDS)
def test_error_files(scenario: Path):
    for path in scenario.rglob("*.error.json"):
        body = load(path)
        assert set(body) == {"status", "body"}, path
        assert isinstance(body["status"], int) and 400 <= body["status"] <= 599, path
        assert isinstance(body["body"], (dict, str)), path
        stem = path.name[: -len(".error.json")]
        assert not (path.parent / f"{stem}.json").exists() and not (path.parent / f"{stem}.log").exists(), \
            f"{path}: both a result and an error"


def _items(scenario: Path, path: str) -> list[dict]:
    meta = load(scenario / "meta.json")
    f = scenario / "k8s" / (path.format(ns=meta["namespace"]) + ".json")
    return load(f)["items"] if f.exists() else []


@pytest.mark.parametrize("scenario", [s for s in SCENARIO_DIRS if (s / "k8s").is_dir()],
                         ids=[s.name for s in SCENARIO_DIRS if (s / "k8s").is_dir()])
def test_objects_reference_each_other(scenario: Path):
    meta = load(scenario / "meta.json")
    ns, now = meta["namespace"], parse_time(meta["captured_at"])
    pods = _items(scenario, "api/v1/namespaces/{ns}/pods")
    by_kind = {
        "Pod": pods,
        "PersistentVolumeClaim": _items(scenario, "api/v1/namespaces/{ns}/persistentvolumeclaims"),
        "ConfigMap": _items(scenario, "api/v1/namespaces/{ns}/configmaps"),
        "ServiceAccount": _items(scenario, "api/v1/namespaces/{ns}/serviceaccounts"),
        "Deployment": _items(scenario, "apis/apps/v1/namespaces/{ns}/deployments"),
        "StatefulSet": _items(scenario, "apis/apps/v1/namespaces/{ns}/statefulsets"),
        "Job": _items(scenario, "apis/batch/v1/namespaces/{ns}/jobs"),
        "StorageClass": _items(scenario, "apis/storage.k8s.io/v1/storageclasses"),
        "Node": _items(scenario, "api/v1/nodes"),
        "Service": _items(scenario, "api/v1/namespaces/{ns}/services"),
        "EndpointSlice": _items(scenario, "apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"),
        "NetworkPolicy": _items(scenario, "apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
        "Role": _items(scenario, "apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        "RoleBinding": _items(scenario, "apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
        "ClusterRole": _items(scenario, "apis/rbac.authorization.k8s.io/v1/clusterroles"),
        "ClusterRoleBinding": _items(scenario, "apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        "ExternalSecret": _items(scenario, "apis/external-secrets.io/v1/namespaces/{ns}/externalsecrets")
        + _items(scenario, "apis/external-secrets.io/v1beta1/namespaces/{ns}/externalsecrets"),
        "SecretStore": _items(scenario, "apis/external-secrets.io/v1/namespaces/{ns}/secretstores")
        + _items(scenario, "apis/external-secrets.io/v1beta1/namespaces/{ns}/secretstores"),
        "Ingress": _items(scenario, "apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
        "BackendConfig": _items(scenario, "apis/cloud.google.com/v1/namespaces/{ns}/backendconfigs"),
        "ScaledObject": _items(scenario, "apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects"),
        "HTTPRoute": _items(scenario, "apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"),
    }
    idx = {k: {o["metadata"]["name"]: o for o in v} for k, v in by_kind.items()}
    events = _items(scenario, "api/v1/namespaces/{ns}/events")
    problems: list[str] = []

    for kind, objs in [*by_kind.items(), ("Event", events)]:
        for o in objs:
            m = o["metadata"]
            if parse_time(m["creationTimestamp"]) > now:
                problems.append(f"{kind} {m['name']} created after captured_at")
            if kind not in ("StorageClass", "Node", "ClusterRole", "ClusterRoleBinding") and m.get("namespace") != ns:
                problems.append(f"{kind} {m['name']} in namespace {m.get('namespace')}")
    uids = [o["metadata"]["uid"] for objs in by_kind.values() for o in objs]
    assert len(uids) == len(set(uids)), "duplicate uids"

    # EndpointSlices belong to a Service and point at existing pods
    for sl in by_kind["EndpointSlice"]:
        svc = sl["metadata"]["labels"].get("kubernetes.io/service-name")
        if svc not in idx["Service"]:
            problems.append(f"EndpointSlice {sl['metadata']['name']}: unknown Service {svc}")
        for ep in sl.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            target = idx["Pod"].get(ref.get("name"))
            if ref.get("kind") == "Pod" and (target is None or target["metadata"]["uid"] != ref.get("uid")):
                problems.append(f"EndpointSlice {sl['metadata']['name']}: pod {ref.get('name')} missing or uid differs")
    # KEDA ScaledObjects scale an existing workload
    for so in by_kind["ScaledObject"]:
        ref = so["spec"]["scaleTargetRef"]
        if ref["name"] not in idx.get(ref.get("kind", "Deployment"), {}):
            problems.append(f"ScaledObject {so['metadata']['name']}: scaleTargetRef {ref} missing")
    # (Cluster)RoleBindings name existing roles; ExternalSecrets existing SecretStores
    for ing in by_kind["Ingress"]:   # an Ingress routes to Services of its namespace
        for rule in ing["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                if path["backend"]["service"]["name"] not in idx["Service"]:
                    problems.append(f"Ingress {ing['metadata']['name']}: backend Service not in the namespace")
    for hr in by_kind["HTTPRoute"]:   # an HTTPRoute's backendRefs (kind Service by default) name Services that exist
        for rule in hr["spec"].get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if ref.get("kind", "Service") == "Service" and ref["name"] not in idx["Service"]:
                    problems.append(f"HTTPRoute {hr['metadata']['name']}: backendRef Service {ref['name']} missing")
    for b in by_kind["RoleBinding"] + by_kind["ClusterRoleBinding"]:
        ref = b["roleRef"]
        if ref["name"] not in idx[ref["kind"]]:
            problems.append(f"{b['metadata']['name']}: roleRef {ref['kind']} {ref['name']} missing")
    for es in by_kind["ExternalSecret"]:
        ref = es["spec"].get("secretStoreRef") or {}
        if ref.get("kind", "SecretStore") == "SecretStore" and ref.get("name") not in idx["SecretStore"]:
            problems.append(f"ExternalSecret {es['metadata']['name']}: SecretStore {ref.get('name')} missing")

    for pvc in by_kind["PersistentVolumeClaim"]:
        sc = pvc["spec"].get("storageClassName")
        if pvc["status"]["phase"] == "Bound" and sc not in idx["StorageClass"]:
            problems.append(f"PVC {pvc['metadata']['name']} Bound on unknown class {sc}")

    for p in pods:
        name, spec = p["metadata"]["name"], p["spec"]
        if spec.get("nodeName") and spec["nodeName"] not in idx["Node"]:
            problems.append(f"pod {name} on unknown node {spec['nodeName']}")
        if not spec.get("nodeName") and p["status"]["phase"] != "Pending":
            problems.append(f"pod {name} {p['status']['phase']} without a node")
        if spec.get("serviceAccountName") not in idx["ServiceAccount"]:
            problems.append(f"pod {name}: unknown service account {spec.get('serviceAccountName')}")
        for v in spec.get("volumes") or []:
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in idx["PersistentVolumeClaim"]:
                problems.append(f"pod {name}: unknown PVC {v['persistentVolumeClaim']['claimName']}")
            if "configMap" in v and v["configMap"]["name"] not in idx["ConfigMap"]:
                problems.append(f"pod {name}: unknown ConfigMap {v['configMap']['name']}")
            for src in (v.get("projected") or {}).get("sources", []):
                if "configMap" in src and src["configMap"]["name"] not in idx["ConfigMap"]:
                    problems.append(f"pod {name}: unknown ConfigMap {src['configMap']['name']}")
        for ref in p["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "ReplicaSet":
                deploy, _, rs_hash = ref["name"].rpartition("-")
                if deploy not in idx["Deployment"] or p["metadata"]["labels"].get("pod-template-hash") != rs_hash:
                    problems.append(f"pod {name}: owner ReplicaSet {ref['name']} matches no Deployment")
            elif ref["kind"] in ("StatefulSet", "Job"):
                owner = idx[ref["kind"]].get(ref["name"])
                if owner is None or owner["metadata"]["uid"] != ref["uid"]:
                    problems.append(f"pod {name}: owner {ref['kind']} {ref['name']} missing or uid differs")
            else:
                problems.append(f"pod {name}: unexpected owner kind {ref['kind']}")

    # KubernetesExecutor task pods come from the pod template in <release>-config
    release = meta.get("release")
    cm = idx["ConfigMap"].get(f"{release}-config") if release else None
    template = yaml.safe_load(cm["data"]["pod_template_file.yaml"]) if cm and "pod_template_file.yaml" in cm["data"] else None
    for p in pods:
        if p["metadata"]["labels"].get("kubernetes_executor") != "True":
            continue
        assert template is not None, "task pods without a pod template"
        t = template["spec"]
        name = p["metadata"]["name"]
        if p["spec"]["serviceAccountName"] != t["serviceAccountName"]:
            problems.append(f"task pod {name}: serviceAccountName differs from the pod template")
        if [c["name"] for c in p["spec"]["containers"]] != [c["name"] for c in t["containers"]]:
            problems.append(f"task pod {name}: containers differ from the pod template")
        if [c["name"] for c in p["spec"].get("initContainers") or []] != [c["name"] for c in t.get("initContainers") or []]:
            problems.append(f"task pod {name}: init containers differ from the pod template")

    for e in events:
        io = e["involvedObject"]
        target = idx.get(io["kind"], {}).get(io["name"])
        # Events outlive their object (kube-apiserver --event-ttl, 1h by default): a deleted Pod (an
        # earlier task try the executor deleted) may still have events, never a pod with another uid.
        gone = target is None and io["kind"] == "Pod" and parse_time(e.get("lastTimestamp") or e.get("eventTime")
                                                                     or meta["captured_at"]) > now - timedelta(hours=1)
        if not gone and (target is None or target["metadata"]["uid"] != io["uid"]):
            problems.append(f"event {e['metadata']['name']}: {io['kind']} {io['name']} missing or uid differs")
        if io.get("fieldPath"):
            m = re.fullmatch(r"spec\.(initContainers|containers)\{(.+)\}", io["fieldPath"])
            if not m or target is None or m.group(2) not in [c["name"] for c in target["spec"].get(m.group(1)) or []]:
                problems.append(f"event {e['metadata']['name']}: bad fieldPath {io['fieldPath']}")
        stamp = e.get("lastTimestamp") or e.get("eventTime")
        if not stamp or parse_time(stamp) > now:
            problems.append(f"event {e['metadata']['name']}: no time or after captured_at")

    # Logs belong to existing containers
    logs = scenario / "k8s" / "api" / "v1" / "namespaces" / ns / "pods"
    for f in sorted(logs.rglob("*")) if logs.is_dir() else []:
        if f.is_file():
            pod_name, container = f.parent.parent.name, f.name.split(".")[0]
            p = idx["Pod"].get(pod_name)
            names = [c["name"] for c in (p["spec"].get("initContainers") or []) + p["spec"]["containers"]] if p else []
            if container not in names:
                problems.append(f"log {f.relative_to(scenario)} for an unknown pod/container")

    # Nodes belong to the cluster's node pools and locations
    cluster_file = scenario / "gcp" / "container" / "v1" / "projects" / meta["project"] / "locations" / \
        meta["location"] / "clusters" / f"{meta['cluster']}.json"
    if cluster_file.exists():
        cluster = load(cluster_file)
        pools = {np["name"]: np for np in cluster.get("nodePools", [])}
        for n in by_kind["Node"]:
            labels = n["metadata"]["labels"]
            if labels.get("cloud.google.com/gke-nodepool") not in pools:
                problems.append(f"node {n['metadata']['name']}: pool not in the cluster")
            if labels.get("topology.kubernetes.io/zone") not in cluster["locations"]:
                problems.append(f"node {n['metadata']['name']}: zone not in the cluster's locations")
            wi = pools.get(labels.get("cloud.google.com/gke-nodepool"), {}).get("config", {}).get(
                "workloadMetadataConfig", {}).get("mode") == "GKE_METADATA"
            if wi != (labels.get("iam.gke.io/gke-metadata-server-enabled") == "true"):
                problems.append(f"node {n['metadata']['name']}: metadata-server label disagrees with its pool")

    # Every GSA named by a KSA annotation was collected (a failed read, e.g. 404, is stored as .error.json)
    for sa in by_kind["ServiceAccount"]:
        gsa = (sa["metadata"].get("annotations") or {}).get("iam.gke.io/gcp-service-account")
        sa_dir = scenario / "gcp" / "iam" / "v1" / "projects" / meta["project"] / "serviceAccounts"
        if gsa and not any((sa_dir / f"{gsa}{ext}").exists() for ext in (".json", ".error.json")):
            problems.append(f"KSA {sa['metadata']['name']}: GSA {gsa} not collected")

    assert not problems, "\n".join(problems)


def test_committed_fixtures_match_the_builder():
    res = subprocess.run([sys.executable, str(REPO / "fixtures" / "build.py"), "--check"], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
