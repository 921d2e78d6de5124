"""What the doctor reads: the target it diagnoses and the catalogue of data keys.

A *data key* names one kind of API read (``pods``, ``cluster``, ``bucket`` ...) and knows its
snapshot-v1 path, what it needs of the target, the permission that allows it, how a live run reads
it and, for a per-item key, which function names its items from which other reads. Checks declare
the keys they need; the snapshot reader, the live reader and planner, the ``permissions``
command, the runner's "could not read" messages and the read tables of docs/security.md and
docs/snapshot-format.md (``python -m airflow_gke.gendocs``) all derive from this one table, so
they cannot drift apart. Adding a data source is one entry here (CONTRIBUTING.md).
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
class Items:
    """How a per-item key's items are named by other reads (phase 2 of a live run).

    ``fn`` (``"module:function"``) takes the context of phase 1's reads (and the live options)
    and returns the items: values of the key's ``per`` placeholder, or dicts of placeholders. It
    may read only the keys listed in ``reads``: a live run reads those first, ``airflow-gke
    permissions`` grants them, and tests/test_data_keys.py checks the list against what ``fn``
    reads on every scenario. Keys sharing one ``Items`` are planned from one call, item by item."""

    what: str                        # what the items are, for --verbose ("log bucket(s)")
    fn: str                          # "module:function"
    reads: tuple[str, ...]           # the data keys fn reads

    def function(self):
        import importlib

        module, _, attr = self.fn.partition(":")
        return getattr(importlib.import_module(module), attr)


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
    items: Items | None = None        # how a live run names the items of a per-item key (None: fixed list)
    live: str = ""                    # how a live run reads it: Kubernetes "list" (paged) or "log" (a
    #                                   container's log text); Google "rest" (GET, POST for :getIamPolicy,
    #                                   through an authorized session) or a client call of live/gcloud.py
    doc: str = ""                     # what the docs tables add about this read
    optional: str = ""                # an optional read: what its answer makes decisive (`permissions` lists
    #                                   it apart; without it the doctor runs and says what stays open)

    def __post_init__(self) -> None:
        if not self.live:
            object.__setattr__(self, "live", "list" if self.scope == "k8s" else "rest")

    @property
    def service(self) -> str:
        """Who answers: ``k8s``, or the Google service (first label of ``<service>.googleapis.com``)."""
        return "k8s" if self.scope == "k8s" else self.template.split("/")[1]

    def path(self, target: Target, **params: str) -> str:
        values = {"namespace": target.namespace, "project": target.project, "location": target.location,
                  "cluster": target.cluster}
        if params:
            values.update(params)
        return self.template.format_map(values)

    def resource_text(self, target: Target, **params: str) -> str:
        values = {f: getattr(target, f) for f in ("namespace", "project", "location", "cluster")}
        values.update(params)
        return self.describe.format(**values)


def _k8s(name, template, resource, group="", namespaced=True, verb="list", per=None, not_found_is_data=False,
         items=None, live="list", doc="", selector=None, describe=None):
    where = " in namespace {namespace}" if namespaced else " (cluster-wide)"
    return DataKey(
        name=name,
        template=template,
        scope="k8s",
        requires=("namespace",) if namespaced else (),
        describe=describe or f"{verb} {resource}{where}" + (f" (apiGroup {group})" if not_found_is_data else ""),
        rbac=(group, resource, verb),
        per=per,
        not_found_is_data=not_found_is_data,
        items=items,
        live=live,
        doc=doc,
        selector=selector,
    )


def _gcp(name, template, requires, iam, describe, not_found_is_data=False, per=None, items=None, live="rest",
         doc="", optional=""):
    return DataKey(name, template, "gcp", requires, describe, iam=iam,
                   not_found_is_data=not_found_is_data, per=per, items=items, live=live, doc=doc, optional=optional)


NS = "k8s/api/v1/namespaces/{namespace}"
APPS = "k8s/apis/apps/v1/namespaces/{namespace}"
RBAC = "k8s/apis/rbac.authorization.k8s.io/v1"
ESO = "k8s/apis/external-secrets.io"
WORKLOADS = ("configmaps", "pods", "deployments", "statefulsets")

# Per-item keys name their items from other data (the log bucket from the Airflow configuration,
# Google service accounts from the KSAs Airflow runs as, logs from container states).
LOG_BUCKETS = Items("log bucket(s)", "airflow_gke.views.identity:log_buckets", WORKLOADS)
GSAS = Items("Google service account(s) named by Airflow KSAs", "airflow_gke.views.identity:gsa_emails",
             ("serviceaccounts",) + WORKLOADS)
# Airflow's Secret Manager backend: the project(s) it reads secrets from (backend_kwargs project_id,
# else the diagnosed project), their secret names, and the secrets under its prefixes.
SM_PROJECTS = Items("project(s) the Secret Manager backend reads secrets from",
                    "airflow_gke.views.secrets:backend_project_items", WORKLOADS)
SM_OTHER_PROJECTS = Items("Secret Manager backend project(s) other than the diagnosed one",
                          "airflow_gke.views.secrets:other_backend_projects", WORKLOADS)
SM_SECRETS = Items("secret(s) under the Secret Manager backend's prefixes", "airflow_gke.views.secrets:backend_secrets",
                   ("sm_secrets",) + WORKLOADS)
LOGS = Items("container log(s)", "airflow_gke.live.plan:container_logs", ("pods",))
PRIVATE_REGIONS = Items("region of private nodes", "airflow_gke.views.google:private_node_regions", ("cluster",))
# The cluster's region (and any region a quota message names) when an event of the namespace says a
# scale-up or a disk failed on a quota, or the autoscaler backs off after a failed scale-up.
QUOTA_REGIONS = Items("region whose Compute Engine quotas an event implicates", "airflow_gke.views.google:quota_regions",
                      ("events",))
# The health check GKE made for each UNHEALTHY Airflow UI backend of a GKE Ingress (named after the
# backend service in the Ingress's ingress.kubernetes.io/backends annotation).
HEALTH_CHECKS = Items("health check(s) of UNHEALTHY Airflow UI backends of GKE Ingresses",
                      "airflow_gke.views.google:ingress_health_checks", ("ingresses", "k8s_services"))
# The same for an internal Application Load Balancer (class gce-internal): regional health checks.
REGIONAL_HEALTH_CHECKS = Items("regional health check(s) of UNHEALTHY Airflow UI backends of internal GKE Ingresses",
                               "airflow_gke.views.google:ingress_regional_health_checks",
                               ("ingresses", "k8s_services"))
# Group memberships: the groups from the IAM policies of the project and the log bucket (itself a
# per-item read, so these are read after it), the members from the identities the log checks resolve.
MEMBERSHIPS = Items("group membership(s) (optional, Cloud Identity)", "airflow_gke.views.identity:group_memberships",
                    ("project_iam", "bucket_iam", "serviceaccounts", "cluster", "nodes") + WORKLOADS)

# The APIs whose state snapshot v1 records.
SERVICES = (
    "container.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
)


def api_services(ctx=None, opts=None) -> tuple[str, ...]:
    """The items of ``services``: a fixed list (its ``Items`` reads nothing, so phase 1 reads it)."""
    return SERVICES


API_SERVICES = Items("API state(s)", "airflow_gke.data:api_services", ())
ESO_DOC = ("External Secrets Operator objects (a custom resource), not the secrets they sync; a 404 is an answer: "
           "the operator, or this API version, is not installed")
ESO_BETA = "the same under v1beta1 (External Secrets Operator before 0.17 served only that version)"
KEDA_DOC = ("KEDA ScaledObjects (a custom resource: the chart's worker and triggerer autoscalers), their triggers and "
            "status conditions; a 404 is an answer: KEDA is not installed")

KEYS: dict[str, DataKey] = {k.name: k for k in [
    _k8s("pods", f"{NS}/pods", "pods"),
    _k8s("events", f"{NS}/events", "events", doc="core/v1 Events"),
    _k8s("pvcs", f"{NS}/persistentvolumeclaims", "persistentvolumeclaims"),
    _k8s("configmaps", f"{NS}/configmaps", "configmaps", doc="the chart's `airflow.cfg` lives here"),
    _k8s("serviceaccounts", f"{NS}/serviceaccounts", "serviceaccounts"),
    _k8s("deployments", f"{APPS}/deployments", "deployments", group="apps"),
    _k8s("statefulsets", f"{APPS}/statefulsets", "statefulsets", group="apps"),
    _k8s("jobs", "k8s/apis/batch/v1/namespaces/{namespace}/jobs", "jobs", group="batch"),
    _k8s("storageclasses", "k8s/apis/storage.k8s.io/v1/storageclasses", "storageclasses",
         group="storage.k8s.io", namespaced=False),
    _k8s("nodes", "k8s/api/v1/nodes", "nodes", namespaced=False),
    _k8s("persistentvolumes", "k8s/api/v1/persistentvolumes", "persistentvolumes", namespaced=False,
         doc="the zone a Bound claim's disk is pinned to (`spec.nodeAffinity`), and its CSI driver"),
    # Runtime, Airflow 3 and secrets checks: the api-server's Service and its EndpointSlices
    # (core/v1 Endpoints is deprecated since Kubernetes 1.33), NetworkPolicies, the RBAC that lets
    # the scheduler launch task pods, and External Secrets Operator objects. The ESO CRDs answer
    # 404 when the operator (or that API version: ESO >= 0.17 serves only v1) is not installed,
    # which is an answer ("not installed"), not a failed read.
    _k8s("k8s_services", f"{NS}/services", "services"),
    _k8s("endpointslices", "k8s/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", "endpointslices",
         group="discovery.k8s.io", doc="rather than the core/v1 Endpoints that Kubernetes deprecated in 1.33"),
    _k8s("networkpolicies", "k8s/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
         "networkpolicies", group="networking.k8s.io"),
    # GKE Ingress in front of the webserver/api-server: the Ingresses (the GKE ingress controller
    # writes the load balancer's backend health into the `ingress.kubernetes.io/backends`
    # annotation) and the BackendConfigs (cloud.google.com/v1, a CRD GKE installs with its HTTP load
    # balancing add-on) that set the load balancer's health check. A 404 on BackendConfigs is an
    # answer: the CRD is not installed.
    _k8s("ingresses", "k8s/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses", "ingresses",
         group="networking.k8s.io",
         doc="the backend health GKE's ingress controller writes into `ingress.kubernetes.io/backends`"),
    _k8s("backendconfigs", "k8s/apis/cloud.google.com/v1/namespaces/{namespace}/backendconfigs", "backendconfigs",
         group="cloud.google.com", not_found_is_data=True,
         doc="GKE BackendConfigs (a custom resource): the load balancer health check of a Service; a 404 is an "
             "answer: the CRD (GKE's HTTP load balancing add-on) is not installed"),
    # Gateway API HTTPRoutes (gateway.networking.k8s.io/v1; GKE's Gateway controller): the host names,
    # path matches and URLRewrite filters that send to the webserver/api-server. A 404 is an answer:
    # the Gateway API CRDs are not installed.
    _k8s("httproutes", "k8s/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes", "httproutes",
         group="gateway.networking.k8s.io", not_found_is_data=True,
         doc="Gateway API HTTPRoutes (a custom resource): host names, path matches and URL rewrites in front of "
             "the UI; a 404 is an answer: the Gateway API is not installed"),
    _k8s("roles", f"{RBAC}/namespaces/{{namespace}}/roles", "roles", group="rbac.authorization.k8s.io"),
    _k8s("rolebindings", f"{RBAC}/namespaces/{{namespace}}/rolebindings", "rolebindings",
         group="rbac.authorization.k8s.io"),
    _k8s("clusterroles", f"{RBAC}/clusterroles", "clusterroles", group="rbac.authorization.k8s.io",
         namespaced=False),
    _k8s("clusterrolebindings", f"{RBAC}/clusterrolebindings", "clusterrolebindings",
         group="rbac.authorization.k8s.io", namespaced=False),
    _k8s("externalsecrets", f"{ESO}/v1/namespaces/{{namespace}}/externalsecrets", "externalsecrets",
         group="external-secrets.io", not_found_is_data=True, doc=ESO_DOC),
    _k8s("secretstores", f"{ESO}/v1/namespaces/{{namespace}}/secretstores", "secretstores",
         group="external-secrets.io", not_found_is_data=True, doc=ESO_DOC),
    _k8s("externalsecrets_v1beta1", f"{ESO}/v1beta1/namespaces/{{namespace}}/externalsecrets", "externalsecrets",
         group="external-secrets.io", not_found_is_data=True, doc=ESO_BETA),
    _k8s("secretstores_v1beta1", f"{ESO}/v1beta1/namespaces/{{namespace}}/secretstores", "secretstores",
         group="external-secrets.io", not_found_is_data=True, doc=ESO_BETA),
    # KEDA: the chart renders a ScaledObject <release>-worker (workers.keda.enabled) that queries the
    # metadata database; the CRD answers 404 when KEDA is not installed, which is an answer.
    _k8s("scaledobjects", "k8s/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects", "scaledobjects",
         group="keda.sh", not_found_is_data=True, doc=KEDA_DOC),
    _k8s("logs", f"{NS}/pods/{{pod}}/log/{{container}}", "pods/log", verb="get", per="container", items=LOGS,
         live="log", doc="the last 500 lines of containers that are waiting, not ready, failed or restarted, at "
                         "most `--max-logs` (50) containers"),
    # The target guard (doctor/target_guard.py) and namespace discovery: where the official chart's
    # Deployments are, in every namespace (labelSelector tier=airflow: the path holds only those).
    # Optional: without the right, discovery falls back and the guard names only what it read.
    _k8s("chart_deployments", "k8s/apis/apps/v1/deployments", "deployments", group="apps", namespaced=False,
         describe="list deployments labelled tier=airflow (all namespaces)", selector="tier=airflow",
         doc="cluster-wide, asked with the label selector `tier=airflow` (the chart's Deployments only): finds "
             "the namespace when none is given, and names where Airflow is when the target holds none. Optional: "
             "without it the doctor still runs; absent in snapshots written before it was added (not collected)"),
    # -A when the cluster-wide look-up above is refused: which namespaces exist, to search each one
    # (doctor/fleet.py). Only read by such a run (FLEET_KEYS); optional like the look-up.
    _k8s("namespaces", "k8s/api/v1/namespaces", "namespaces", namespaced=False,
         describe="list namespaces (cluster-wide)",
         doc="only by `-A` when the cluster-wide `tier=airflow` look-up is refused (never in a snapshot): the "
             "namespaces to search one by one (without it: the context's namespace and `--namespace` values). "
             "Optional"),
    _gcp("services", "gcp/serviceusage/v1/projects/{project}/services/{service}", ("project",),
         "serviceusage.services.get", "get the state of {service} in project {project}", per="service",
         items=API_SERVICES, live="serviceusage.get_service",
         doc="for " + ", ".join(f"`{s}`" for s in SERVICES) + " (`artifactregistry.googleapis.com` was added "
             "later: older snapshots lack it, i.e. it was not collected)"),
    _gcp("project", "gcp/cloudresourcemanager/v3/projects/{project}", ("project",),
         "resourcemanager.projects.get", "get project {project}", live="resourcemanager.get_project",
         doc="the project; `name` is `projects/<number>`"),
    _gcp("project_iam", "gcp/cloudresourcemanager/v3/projects/{project}:getIamPolicy", ("project",),
         "resourcemanager.projects.getIamPolicy", "read the IAM policy of project {project}",
         live="resourcemanager.get_iam_policy"),
    _gcp("cluster", "gcp/container/v1/projects/{project}/locations/{location}/clusters/{cluster}",
         ("project", "location", "cluster"), "container.clusters.get",
         "get cluster projects/{project}/locations/{location}/clusters/{cluster}", live="container.get_cluster",
         doc="node pools included"),
    # doctor --fleet-project P: the project's GKE clusters in every location (doctor/live/gke.py),
    # each then reached with its endpoint, CA and Application Default Credentials. Only read by
    # such a run (FLEET_KEYS), before any target; never stored in a target's snapshot.
    _gcp("project_clusters", "gcp/container/v1/projects/{project}/locations/-/clusters", ("project",),
         "container.clusters.list", "list the GKE clusters of project {project} (all locations)",
         live="container.list_clusters",
         doc="only by `doctor --fleet-project`, before any target (never in a snapshot): each cluster's name, "
             "location, status, endpoints and CA certificate (`masterAuth.clusterCaCertificate`), and `missingZones` "
             "(locations that did not answer)"),
    _gcp("bucket", "gcp/storage/storage/v1/b/{bucket}", (), "storage.buckets.get",
         "get bucket gs://{bucket}", not_found_is_data=True, per="bucket", items=LOG_BUCKETS,
         live="storage.get_bucket", doc="the bucket of `[logging] remote_base_log_folder` when it is a `gs://` URL: "
                                        "its metadata, not its objects"),
    _gcp("bucket_iam", "gcp/storage/storage/v1/b/{bucket}/iam", (), "storage.buckets.getIamPolicy",
         "read the IAM policy of bucket gs://{bucket}", per="bucket", items=LOG_BUCKETS,
         live="storage.get_bucket_iam"),
    _gcp("gsa", "gcp/iam/v1/projects/{project}/serviceAccounts/{email}", ("project",),
         "iam.serviceAccounts.get", "get service account {email}", not_found_is_data=True, per="email",
         items=GSAS, doc="each Google service account that a Kubernetes service account Airflow runs as names in "
                         "`iam.gke.io/gcp-service-account` (Workload Identity)"),
    _gcp("gsa_iam", "gcp/iam/v1/projects/{project}/serviceAccounts/{email}:getIamPolicy", ("project",),
         "iam.serviceAccounts.getIamPolicy", "read the IAM policy of service account {email}", per="email",
         items=GSAS),
    # Compute Engine: the Cloud Routers (with their Cloud NAT configurations) of the region of a
    # cluster whose nodes have no external IP, read only for such a cluster: its internet egress
    # goes through a NAT or nowhere.
    _gcp("routers", "gcp/compute/compute/v1/projects/{project}/regions/{region}/routers", ("project",),
         "compute.routers.list", "list Cloud Routers and their NATs in region {region} of project {project}",
         per="region", items=PRIVATE_REGIONS, live="compute.list",
         doc="only for a cluster with private nodes, in the region of its subnetwork (whether a Cloud NAT gives "
             "them internet egress); every page merged into `items`, no `nextPageToken`; no `items` when the "
             "region has no router"),
    # Compute Engine: the region's quotas (metric, limit, usage), read only when an event says a
    # scale-up or a disk provisioning failed on a quota (or the autoscaler backs off after a failed
    # scale-up): what settles which regional quota is exhausted.
    _gcp("compute_region", "gcp/compute/compute/v1/projects/{project}/regions/{region}", ("project",),
         "compute.regions.get", "get region {region} of project {project} (its Compute Engine quotas)",
         per="region", items=QUOTA_REGIONS,
         doc="only when an event of the namespace names a quota failure (`FailedScaleUp` `GCE quota exceeded`, "
             "`ProvisioningFailed` `Quota '...' exceeded`) or the autoscaler's back-off after a failed scale-up: the "
             "region's `quotas[]` (metric, limit, usage), nothing else of the project"),
    # Compute Engine: the health check of a GKE Ingress backend of the Airflow UI that the load
    # balancer marks UNHEALTHY, read only then: which path and port the load balancer asks, what
    # settles whether the health check or something else (pods, health-check ranges) is the cause.
    _gcp("health_check", "gcp/compute/compute/v1/projects/{project}/global/healthChecks/{health_check}", ("project",),
         "compute.healthChecks.get", "get health check {health_check} of project {project}",
         not_found_is_data=True, per="health_check", items=HEALTH_CHECKS,
         doc="only for a backend of the webserver/api-server that an external GKE Ingress's "
             "`ingress.kubernetes.io/backends` marks `UNHEALTHY`, named like the backend (`k8s1-...`, `k8s-be-...`): "
             "`type`, `httpHealthCheck.requestPath`, `port`/`portSpecification`; a 404 is an answer (no health "
             "check of that name)"),
    _gcp("health_check_regional",
         "gcp/compute/compute/v1/projects/{project}/regions/{region}/healthChecks/{health_check}", ("project",),
         "compute.regionHealthChecks.get", "get health check {health_check} in region {region} of project {project}",
         not_found_is_data=True, per="health_check", items=REGIONAL_HEALTH_CHECKS,
         doc="the same for an internal GKE Ingress (class `gce-internal`), whose load balancer's health checks are "
             "regional: in the cluster's region"),
    # Optional: whether a service account is in a Google group that an IAM policy grants a storage
    # role to. Cloud Identity Groups API, read-only: groups.lookup (the group's resource name from its
    # email), then groups.memberships.checkTransitiveMembership (nested groups included); the snapshot
    # stores the second answer ({"hasMembership": bool}) under the group's email. A 403 (no Groups
    # Reader) leaves the group caveat in place.
    _gcp("group_membership", "gcp/cloudidentity/v1/groups/{group}/memberships:checkTransitiveMembership/{member}",
         (), "cloudidentity.groups.memberships.checkTransitiveMembership",
         "check whether {member} is in Google group {group} (Cloud Identity)", per="member", items=MEMBERSHIPS,
         live="cloudidentity.check_transitive_membership",
         doc="optional: for each Google group the project or log bucket policy grants a storage role to, and each "
             "service account the log writers and readers act as; `GET groups:lookup` then `GET "
             "groups/<id>/memberships:checkTransitiveMembership` (the snapshot keys the group by email); "
             "`{\"hasMembership\": true|false}`. Granted by Cloud Identity's Groups Reader admin role, not a project "
             "role; without it the group caveat stays",
         optional="whether a service account is in a Google group that holds a storage role: gcs-log-write-denied "
                  "and remote-log-read-denied then decide instead of saying 'unless ... is in group ...'"),
    # Airflow's own Secret Manager secrets backend ([secrets] backend = CloudSecretManagerBackend):
    # the secrets' NAMES in the diagnosed project (never versions or payloads), and the IAM policy of
    # each secret under the backend's prefixes.
    _gcp("sm_secrets", "gcp/secretmanager/v1/projects/{project}/secrets", ("project",),
         "secretmanager.secrets.list", "list the secrets (names only) of project {project}", per="project",
         items=SM_PROJECTS, live="secretmanager.list_secrets",
         doc="for each project the backend reads from (`backend_kwargs` `project_id`, else the diagnosed project): "
             "names and metadata only, never versions or payloads; every page (`pageToken`) merged into `secrets`, "
             "no `nextPageToken`. Which secrets sit under the backend's prefixes; a 403 `SERVICE_DISABLED` says the "
             "API is off, `CONSUMER_INVALID` that the project does not exist"),
    _gcp("sm_secret_iam", "gcp/secretmanager/v1/projects/{project}/secrets/{secret}:getIamPolicy", ("project",),
         "secretmanager.secrets.getIamPolicy", "read the IAM policy of secret {secret} in project {project}",
         per="secret", items=SM_SECRETS, live="secretmanager.get_iam_policy",
         doc="each secret under the prefixes of Airflow's Secret Manager backend (at most 100), in the backend's "
             "project: who may access its versions"),
    _gcp("sm_project_iam", "gcp/cloudresourcemanager/v3/projects/{project}:getIamPolicy", ("project",),
         "resourcemanager.projects.getIamPolicy",
         "read the IAM policy of project {project} (the Secret Manager backend's project_id)", per="project",
         items=SM_OTHER_PROJECTS,
         doc="only for a Secret Manager backend `project_id` other than the diagnosed project: whether Airflow's "
             "identities hold `secretmanager.versions.access` there (the diagnosed project's policy is "
             "`project_iam`)"),
]}


def reads_for(keys) -> set[str]:
    """The keys, plus every key their items are named from (what a live run reads, and what
    ``airflow-gke permissions`` grants, for checks that declare ``keys``)."""
    out = set(keys)
    for k in list(out):
        items = KEYS[k].items
        if items is not None:
            out.update(items.reads)
    return out


# What the target guard reads in every run that reads the cluster, whatever the checks selected:
# the namespace's chart workloads and config (small lists), and the cluster-wide look-up.
GUARD_KEYS = ("deployments", "statefulsets", "configmaps", "chart_deployments")

# Reads of fleet runs only, never of a check nor of a single-target run (nor of `collect`):
# `--fleet-project` lists a project's clusters; `-A` lists namespaces when the look-up is refused.
FLEET_KEYS = ("project_clusters", "namespaces")


def key(name: str) -> DataKey:
    try:
        return KEYS[name]
    except KeyError:
        raise KeyError(f"unknown data key {name!r}; known: {', '.join(sorted(KEYS))}") from None
