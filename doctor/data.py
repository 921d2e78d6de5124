"""What the doctor reads: the target it diagnoses and the catalogue of data keys.

A *data key* names one kind of API read (``pods``, ``cluster``, ``bucket`` ...) and knows its
snapshot-v1 path, what it needs of the target, and the permission that allows it. Checks declare
the keys they need; the snapshot reader, the live reader, the ``permissions`` command and the
runner's "could not read" messages all derive from this one table, so they cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Target:
    """What is being diagnosed. Any field may be unknown (None) except the namespace."""

    namespace: str = "airflow"
    project: str | None = None
    location: str | None = None
    cluster: str | None = None
    release: str | None = None
    context: str | None = None

    def with_overrides(self, **kw) -> "Target":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


@dataclass(frozen=True)
class DataKey:
    name: str
    template: str                     # snapshot path without extension, {placeholders}
    scope: str                        # "k8s" or "gcp"
    requires: tuple[str, ...]         # Target fields the path needs
    describe: str                     # what the read is, for messages ("list pods in namespace {namespace}")
    rbac: tuple[str, str, str] | None = None   # (apiGroup, resource, verb) for Kubernetes reads
    iam: str | None = None            # Google IAM permission for Google reads
    not_found_is_data: bool = False   # a 404 is an answer (the bucket does not exist), not a failure
    per: str | None = None            # extra placeholder filled per item ("bucket", "email", "service", ...)
    selector: str | None = None       # Kubernetes labelSelector of the list (the path stores only what matched)

    def path(self, target: Target, **params: str) -> str:
        values = {f: getattr(target, f) for f in ("namespace", "project", "location", "cluster")}
        values.update(params)
        return self.template.format(**values)

    def resource_text(self, target: Target, **params: str) -> str:
        values = {f: getattr(target, f) for f in ("namespace", "project", "location", "cluster")}
        values.update(params)
        return self.describe.format(**values)


def _k8s(name, template, resource, group="", namespaced=True, verb="list", per=None, not_found_is_data=False):
    where = " in namespace {namespace}" if namespaced else " (cluster-wide)"
    return DataKey(
        name=name,
        template=template,
        scope="k8s",
        requires=("namespace",) if namespaced else (),
        describe=f"{verb} {resource}{where}" + (f" (apiGroup {group})" if not_found_is_data else ""),
        rbac=(group, resource, verb),
        per=per,
        not_found_is_data=not_found_is_data,
    )


def _gcp(name, template, requires, iam, describe, not_found_is_data=False, per=None):
    return DataKey(name, template, "gcp", requires, describe, iam=iam,
                   not_found_is_data=not_found_is_data, per=per)


NS = "k8s/api/v1/namespaces/{namespace}"
APPS = "k8s/apis/apps/v1/namespaces/{namespace}"
RBAC = "k8s/apis/rbac.authorization.k8s.io/v1"
ESO = "k8s/apis/external-secrets.io"

KEYS: dict[str, DataKey] = {k.name: k for k in [
    _k8s("pods", f"{NS}/pods", "pods"),
    _k8s("events", f"{NS}/events", "events"),
    _k8s("pvcs", f"{NS}/persistentvolumeclaims", "persistentvolumeclaims"),
    _k8s("configmaps", f"{NS}/configmaps", "configmaps"),
    _k8s("serviceaccounts", f"{NS}/serviceaccounts", "serviceaccounts"),
    _k8s("deployments", f"{APPS}/deployments", "deployments", group="apps"),
    _k8s("statefulsets", f"{APPS}/statefulsets", "statefulsets", group="apps"),
    _k8s("jobs", "k8s/apis/batch/v1/namespaces/{namespace}/jobs", "jobs", group="batch"),
    _k8s("storageclasses", "k8s/apis/storage.k8s.io/v1/storageclasses", "storageclasses",
         group="storage.k8s.io", namespaced=False),
    _k8s("nodes", "k8s/api/v1/nodes", "nodes", namespaced=False),
    _k8s("persistentvolumes", "k8s/api/v1/persistentvolumes", "persistentvolumes", namespaced=False),
    # Runtime, Airflow 3 and secrets checks: the api-server's Service and its EndpointSlices
    # (core/v1 Endpoints is deprecated since Kubernetes 1.33), NetworkPolicies, the RBAC that lets
    # the scheduler launch task pods, and External Secrets Operator objects. The ESO CRDs answer
    # 404 when the operator (or that API version: ESO >= 0.17 serves only v1) is not installed,
    # which is an answer ("not installed"), not a failed read.
    _k8s("k8s_services", f"{NS}/services", "services"),
    _k8s("endpointslices", "k8s/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", "endpointslices",
         group="discovery.k8s.io"),
    _k8s("networkpolicies", "k8s/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
         "networkpolicies", group="networking.k8s.io"),
    _k8s("roles", f"{RBAC}/namespaces/{{namespace}}/roles", "roles", group="rbac.authorization.k8s.io"),
    _k8s("rolebindings", f"{RBAC}/namespaces/{{namespace}}/rolebindings", "rolebindings",
         group="rbac.authorization.k8s.io"),
    _k8s("clusterroles", f"{RBAC}/clusterroles", "clusterroles", group="rbac.authorization.k8s.io",
         namespaced=False),
    _k8s("clusterrolebindings", f"{RBAC}/clusterrolebindings", "clusterrolebindings",
         group="rbac.authorization.k8s.io", namespaced=False),
    _k8s("externalsecrets", f"{ESO}/v1/namespaces/{{namespace}}/externalsecrets", "externalsecrets",
         group="external-secrets.io", not_found_is_data=True),
    _k8s("secretstores", f"{ESO}/v1/namespaces/{{namespace}}/secretstores", "secretstores",
         group="external-secrets.io", not_found_is_data=True),
    _k8s("externalsecrets_v1beta1", f"{ESO}/v1beta1/namespaces/{{namespace}}/externalsecrets", "externalsecrets",
         group="external-secrets.io", not_found_is_data=True),
    _k8s("secretstores_v1beta1", f"{ESO}/v1beta1/namespaces/{{namespace}}/secretstores", "secretstores",
         group="external-secrets.io", not_found_is_data=True),
    _k8s("logs", f"{NS}/pods/{{pod}}/log/{{container}}", "pods/log", verb="get", per="container"),
    # The target guard (doctor/target_guard.py) and namespace discovery: where the official chart's
    # Deployments are, in every namespace (labelSelector tier=airflow: the path holds only those).
    # Optional: without the right, discovery falls back and the guard names only what it read.
    DataKey(name="chart_deployments", template="k8s/apis/apps/v1/deployments", scope="k8s", requires=(),
            describe="list deployments labelled tier=airflow (all namespaces)", rbac=("apps", "deployments", "list"),
            selector="tier=airflow"),
    _gcp("services", "gcp/serviceusage/v1/projects/{project}/services/{service}", ("project",),
         "serviceusage.services.get", "get the state of {service} in project {project}", per="service"),
    _gcp("project", "gcp/cloudresourcemanager/v3/projects/{project}", ("project",),
         "resourcemanager.projects.get", "get project {project}"),
    _gcp("project_iam", "gcp/cloudresourcemanager/v3/projects/{project}:getIamPolicy", ("project",),
         "resourcemanager.projects.getIamPolicy", "read the IAM policy of project {project}"),
    _gcp("cluster", "gcp/container/v1/projects/{project}/locations/{location}/clusters/{cluster}",
         ("project", "location", "cluster"), "container.clusters.get",
         "get cluster projects/{project}/locations/{location}/clusters/{cluster}"),
    _gcp("bucket", "gcp/storage/storage/v1/b/{bucket}", (), "storage.buckets.get",
         "get bucket gs://{bucket}", not_found_is_data=True, per="bucket"),
    _gcp("bucket_iam", "gcp/storage/storage/v1/b/{bucket}/iam", (), "storage.buckets.getIamPolicy",
         "read the IAM policy of bucket gs://{bucket}", per="bucket"),
    _gcp("gsa", "gcp/iam/v1/projects/{project}/serviceAccounts/{email}", ("project",),
         "iam.serviceAccounts.get", "get service account {email}", not_found_is_data=True, per="email"),
    _gcp("gsa_iam", "gcp/iam/v1/projects/{project}/serviceAccounts/{email}:getIamPolicy", ("project",),
         "iam.serviceAccounts.getIamPolicy", "read the IAM policy of service account {email}", per="email"),
]}

# The APIs whose state snapshot v1 records.
SERVICES = (
    "container.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
)

# Data keys read once per run with no per-item parameter, in the order a live run fetches them.
STATIC_KEYS = tuple(k for k in KEYS.values() if k.per is None)

# Per-item keys name their items from other data (the log bucket from the Airflow configuration,
# Google service accounts from KSA annotations, logs from container states): a live run reads
# these first, and `airflow-gke permissions` grants them too.
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "bucket": ("configmaps", "pods", "deployments", "statefulsets"),
    "bucket_iam": ("configmaps", "pods", "deployments", "statefulsets"),
    "gsa": ("serviceaccounts", "configmaps", "pods", "deployments", "statefulsets"),
    "gsa_iam": ("serviceaccounts", "configmaps", "pods", "deployments", "statefulsets"),
    "logs": ("pods",),
}


# What the target guard reads in every run that reads the cluster, whatever the checks selected:
# the namespace's chart workloads and config (small lists), and the cluster-wide look-up.
GUARD_KEYS = ("deployments", "statefulsets", "configmaps", "chart_deployments")


def key(name: str) -> DataKey:
    try:
        return KEYS[name]
    except KeyError:
        raise KeyError(f"unknown data key {name!r}; known: {', '.join(sorted(KEYS))}") from None
