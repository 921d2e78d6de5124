"""Google Cloud views: the cluster, its node pools (service account, scopes, Workload Identity
mode), the project number, the state of services."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .base import BaseContext, DataUnavailable, as_dict, as_list, as_str, dig, view
from .kube import KubeViews, Pod

WRITE_SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
)

_AR_HOST = re.compile(r"^(?P<loc>[a-z0-9-]+)-docker\.pkg\.dev$")
_GCR_LOCATIONS = {"gcr.io": "us", "us.gcr.io": "us", "eu.gcr.io": "europe", "asia.gcr.io": "asia"}


@dataclass(frozen=True)
class Repo:
    """An Artifact Registry repository an image comes from (``gcr.io`` hosts are repositories
    named after the host since Container Registry moved to Artifact Registry)."""

    host: str
    project: str
    location: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.host}/{self.project}" + ("" if self.name == self.host else f"/{self.name}")

    @property
    def uri(self) -> str:
        return f"//artifactregistry.googleapis.com/projects/{self.project}/locations/{self.location}/repositories/{self.name}"


_ZONE = re.compile(r"^([a-z]+-[a-z]+\d+)-[a-z]$")


def region_of(location: str) -> str:
    """The region of a GKE location (``europe-west1-b`` -> ``europe-west1``; a region is itself)."""
    m = _ZONE.match(location)
    return m.group(1) if m else location


def private_node_regions(ctx, opts=None) -> list[str]:
    """Items of ``routers``: the region of the cluster's subnetwork when a node pool has private
    nodes (their internet egress is a Cloud NAT there), else none."""
    try:
        return [ctx.cluster_network[2]] if ctx.private_pools() else []
    except DataUnavailable:   # no cluster body: nothing to name (the checks say why)
        return []


# Compute Engine quota failures as GKE reports them in events: the PD CSI driver / in-tree
# provisioner (``googleapi: Error 403: Quota 'SSD_TOTAL_GB' exceeded.  Limit: 500.0 in region
# europe-west1., quotaExceeded``), the cluster autoscaler (``Node scale up in zones europe-west1-c
# associated with this pod failed: GCE quota exceeded. Pod is at risk of not being scheduled.``),
# GKE's own ``Insufficient regional quota to satisfy request: resource "CPUS"``, and the autoscaler's
# back-off after a failed scale-up (``pod didn't trigger scale-up (it wouldn't fit if a new node is
# added): 1 in backoff after failed scale-up``), which names no cause: only the quotas can tell.
# Kubernetes ResourceQuota (``exceeded quota: compute-resources``) is not a Compute Engine quota.
QUOTA_NAMED = re.compile(r"Quota '([A-Z0-9_]+)' exceeded\.?\s+Limit: ([\d.]+) in region ([a-z]+-[a-z]+\d+)")
QUOTA_RESOURCE = re.compile(r'Insufficient regional quota to satisfy request: resource "([A-Z0-9_]+)"')
QUOTA_GENERIC = re.compile(r"GCE quota exceeded|GCE_QUOTA_EXCEEDED|QUOTA_EXCEEDED|quotaExceeded|"
                           r"scale\.up\.error\.quota\.exceeded")
SCALE_UP_BACKOFF = re.compile(r"in backoff after failed scale-up")
QUOTA_EVENT_REASONS = ("ProvisioningFailed", "FailedScaleUp", "NotTriggerScaleUp")


def quota_signal(message: str) -> tuple[str, str | None, str | None] | None:
    """(kind, metric, region) of an event message that implicates a Compute Engine quota: kind
    ``named`` (the message names the metric), ``generic`` (a quota, unnamed) or ``backoff`` (the
    autoscaler backs off after a failed scale-up, cause unnamed); None otherwise."""
    m = QUOTA_NAMED.search(message)
    if m:
        return "named", m.group(1), m.group(3)
    m = QUOTA_RESOURCE.search(message)
    if m:
        return "named", m.group(1), None
    if QUOTA_GENERIC.search(message):
        return "generic", None, None
    if SCALE_UP_BACKOFF.search(message):
        return "backoff", None, None
    return None


def quota_regions(ctx, opts=None) -> list[str]:
    """Items of ``compute_region``: when an event of the namespace implicates a Compute Engine
    quota, the cluster's region and every region a quota message names; else none."""
    try:
        events = ctx.items("events")
    except DataUnavailable:   # no events: nothing implicates a quota (the checks say why)
        return []
    named: list[str] = []
    hit = False
    for e in events:
        if e.get("reason") not in QUOTA_EVENT_REASONS:
            continue
        sig = quota_signal(str(e.get("message") or ""))
        if sig is not None:
            hit = True
            if sig[2]:
                named.append(sig[2])
    if not hit:
        return []
    own = [region_of(ctx.target.location)] if ctx.target.location else []
    return list(dict.fromkeys(own + named))


def ingress_health_checks(ctx, opts=None) -> list[str]:
    """Items of ``health_check``: the name of each UNHEALTHY Airflow UI backend of a GKE Ingress
    with an external load balancer (GKE names the health check it makes for a backend after the
    backend service); none when every backend is HEALTHY or not yet probed. Internal load
    balancers (class gce-internal) keep regional health checks: ``health_check_regional``."""
    try:
        backends = ctx.gce_ui_backends
    except DataUnavailable:   # no Ingresses or Services: nothing to explain (the check says why)
        return []
    return list(dict.fromkeys(b.backend_name for b in backends
                              if b.state == "UNHEALTHY" and b.backend_name and not b.internal))


def ingress_regional_health_checks(ctx, opts=None) -> list[dict]:
    """Items of ``health_check_regional``: the same for internal load balancers (class
    gce-internal), whose health checks live in the cluster's region."""
    if not ctx.target.location:
        return []
    try:
        backends = ctx.gce_ui_backends
    except DataUnavailable:
        return []
    names = dict.fromkeys(b.backend_name for b in backends if b.state == "UNHEALTHY" and b.backend_name and b.internal)
    return [{"region": region_of(ctx.target.location), "health_check": n} for n in names]


def image_host(image: str) -> str | None:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else None


def google_repo(image: str) -> Repo | None:
    """The Artifact Registry repository of an image on ``*-docker.pkg.dev`` or ``*gcr.io``, else None."""
    host = image_host(image)
    if not host:
        return None
    parts = image.split("@", 1)[0].split("/")
    m = _AR_HOST.match(host)
    if m and len(parts) >= 4:
        return Repo(host, parts[1], m.group("loc"), parts[2])
    if host in _GCR_LOCATIONS and len(parts) >= 3:
        return Repo(host, parts[1], _GCR_LOCATIONS[host], host)
    return None


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


class GoogleViews(KubeViews):
    """Views over what was read from Google Cloud for the target's project and cluster."""

    @view
    def cluster(self) -> dict:
        body = self.body("cluster")
        if not isinstance(body, dict):
            raise DataUnavailable("error", f"malformed cluster body in {self.path('cluster')}")
        return body

    @view
    def node_pools(self) -> dict[str, NodePool]:
        return {p.name: p for p in (NodePool(np, self.cluster) for np in as_list(self.cluster.get("nodePools"))
                                    if isinstance(np, dict))}

    @property
    def workload_pool(self) -> str | None:
        return dig(self.cluster, "workloadIdentityConfig", "workloadPool") or None

    def pool_of_node(self, node: str) -> str | None:
        return self.derive(("pool_of_node", node), self._pool_of_node, node)   # asked per pod

    def _pool_of_node(self, node: str) -> str | None:
        n = self.nodes.get(node) if self.has("nodes") else None
        return n.labels.get("cloud.google.com/gke-nodepool") if n is not None else None

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

    @view
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

    # --- networking: private nodes and their egress (Cloud NAT) ----------------------------
    @property
    def cluster_network(self) -> tuple[str, str, str]:
        """(network, subnetwork, region) of the cluster: short names, from ``networkConfig``
        (full resource paths) or the top-level ``network``/``subnetwork`` and the location."""
        c = self.cluster
        net = str(dig(c, "networkConfig", "network") or c.get("network") or "default")
        sub = str(dig(c, "networkConfig", "subnetwork") or c.get("subnetwork") or net)
        m = re.search(r"/regions/([a-z0-9-]+)/", sub)
        region = m.group(1) if m else region_of(str(c.get("location") or self.target.location or ""))
        return net.rsplit("/", 1)[-1], sub.rsplit("/", 1)[-1], region

    def private_pools(self) -> list[NodePool]:
        """Node pools whose nodes have no external IP (the pool's ``networkConfig.enablePrivateNodes``,
        else the cluster's ``privateClusterConfig.enablePrivateNodes``)."""
        cluster_private = bool(dig(self.cluster, "privateClusterConfig", "enablePrivateNodes")
                               or dig(self.cluster, "networkConfig", "defaultEnablePrivateNodes"))
        out = []
        for p in self.node_pools.values():
            flag = dig(p.raw, "networkConfig", "enablePrivateNodes")
            if (flag if isinstance(flag, bool) else cluster_private):
                out.append(p)
        return out

    def service_state(self, service: str) -> str | None:
        body = self.body("services", service=service)
        return body.get("state") if isinstance(body, dict) else None

