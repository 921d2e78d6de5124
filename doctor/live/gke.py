"""``doctor --fleet-project P``: the GKE clusters of a project, each reached WITHOUT a kubeconfig.

The Container API's ``clusters.list`` of every location (``projects/P/locations/-/clusters``, the
data key ``project_clusters``, permission ``container.clusters.list``) names the clusters; each
cluster becomes a target ``P/<location>/<cluster>`` whose Kubernetes API is reached the way
``gcloud container clusters get-credentials`` would point kubectl at it, but in memory:

- the endpoint (:func:`endpoint`): the IP endpoint (``endpoint``) when it is public, verified with
  the cluster's own CA (``masterAuth.clusterCaCertificate``); when the public IP endpoint is off
  (``privateClusterConfig.enablePrivateEndpoint``, or
  ``controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint: false``) the DNS-based
  endpoint (``controlPlaneEndpointsConfig.dnsEndpointConfig.endpoint``) when it allows external
  traffic (Google's front end serves it with a publicly trusted certificate: the system roots
  verify it, and IAM asks ``container.clusters.connect``), else the private IP endpoint (reachable
  from inside the VPC only: an in-cluster CronJob, a bastion);
- the caller: a bearer token of the Application Default Credentials (google-auth), refreshed when
  it expires, as ``gke-gcloud-auth-plugin`` would hand it to kubectl.

Nothing is written: the CA stays in memory (``ca_cert_data`` of the Kubernetes client), no
kubeconfig entry is created.
"""
from __future__ import annotations

import base64
import binascii
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import UserError


@dataclass(frozen=True)
class GkeCluster:
    project: str
    location: str
    name: str
    url: str | None          # https://<host>; None: no endpoint this run can use (``problem`` says why)
    ca_pem: str | None       # the cluster CA (PEM) for an IP endpoint; None: the system roots (DNS endpoint)
    via: str                 # "public IP endpoint", "DNS endpoint", "private IP endpoint"
    status: str = ""         # RUNNING, PROVISIONING, ERROR ... as the API says
    problem: str = ""        # why the cluster cannot be diagnosed (no endpoint, not RUNNING, bad CA)

    @property
    def label(self) -> str:
        return f"{self.project}/{self.location}/{self.name}"

    def target(self) -> dict:
        return {"project": self.project, "location": self.location, "cluster": self.name}


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _host(raw: str) -> str:
    """``https://`` + the endpoint as the API gives it (an IP or a DNS name; a port if one is
    given, which the API never does but a loopback replay has to)."""
    raw = raw.strip()
    if ":" in raw and raw.count(":") > 1 and not raw.startswith("["):   # a bare IPv6 address
        raw = f"[{raw}]"
    return f"https://{raw}"


def _ca(cluster: dict) -> tuple[str | None, str]:
    """(PEM, '') of ``masterAuth.clusterCaCertificate`` (base64 of a PEM), or (None, why)."""
    raw = _dict(cluster.get("masterAuth")).get("clusterCaCertificate")
    if not isinstance(raw, str) or not raw.strip():
        return None, "the cluster has no masterAuth.clusterCaCertificate"
    try:
        pem = base64.b64decode(raw, validate=True).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None, "masterAuth.clusterCaCertificate is not base64 of a PEM certificate"
    if "-----BEGIN CERTIFICATE-----" not in pem:
        return None, "masterAuth.clusterCaCertificate is not base64 of a PEM certificate"
    return pem, ""


def endpoint(cluster: dict) -> tuple[str | None, str | None, str, str]:
    """(url, CA PEM or None, which endpoint, problem) for one cluster of ``clusters.list``."""
    cpe = _dict(cluster.get("controlPlaneEndpointsConfig"))
    ipc = _dict(cpe.get("ipEndpointsConfig"))
    dns = _dict(cpe.get("dnsEndpointConfig"))
    pcc = _dict(cluster.get("privateClusterConfig"))
    ip_on = ipc.get("enabled") is not False
    public_on = ip_on and ipc.get("enablePublicEndpoint") is not False and pcc.get("enablePrivateEndpoint") is not True
    public = cluster.get("endpoint") or ipc.get("publicEndpoint") or pcc.get("publicEndpoint")
    if public_on and isinstance(public, str) and public:
        pem, why = _ca(cluster)
        return (_host(public), pem, "public IP endpoint", why) if pem else (None, None, "public IP endpoint", why)
    dns_host = dns.get("endpoint")
    if isinstance(dns_host, str) and dns_host and dns.get("allowExternalTraffic") is True:
        return _host(dns_host), None, "DNS endpoint", ""
    private = ipc.get("privateEndpoint") or pcc.get("privateEndpoint") or (cluster.get("endpoint") if ip_on else None)
    if ip_on and isinstance(private, str) and private:
        pem, why = _ca(cluster)
        return (_host(private), pem, "private IP endpoint", why) if pem else (None, None, "private IP endpoint", why)
    return None, None, "", ("no endpoint to reach: the IP endpoints are off and the DNS endpoint does not allow "
                            "external traffic")


def clusters_of(project: str, body: Any) -> tuple[list[GkeCluster], list[str]]:
    """The clusters of one ``clusters.list`` answer, and notes (locations that did not answer)."""
    out, notes = [], []
    body = _dict(body)
    for c in body.get("clusters") or []:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            continue
        loc = c.get("location") or c.get("zone") or "?"
        url, pem, via, problem = endpoint(c)
        status = str(c.get("status") or "")
        if not problem and status and status not in ("RUNNING", "RECONCILING", "DEGRADED"):
            problem = f"cluster status {status}"
        out.append(GkeCluster(project, str(loc), c["name"], url, pem, via, status, problem))
    missing = [z for z in body.get("missingZones") or [] if isinstance(z, str)]
    if missing:
        notes.append(f"project {project}: the Container API could not list clusters in {', '.join(missing)} "
                     "(missingZones): clusters there, if any, are not in this run")
    return sorted(out, key=lambda x: (x.location, x.name)), notes


def list_clusters(projects: list[str], env: dict, timeout: float, request_timeout: float) -> tuple[list[GkeCluster], list[str]]:
    """Every cluster of every project (``clusters.list``, ``locations/-``); bad input is a
    ``UserError`` (exit 2): a project that is not found or not readable, the Container API off,
    no cluster at all."""
    from ..data import KEYS
    from .calls import Breaker, Budget, Recorder, with_retries
    from .gcloud import Google

    found: list[GkeCluster] = []
    notes: list[str] = []
    empty: list[str] = []
    budget = Budget(timeout, request_timeout)
    k = KEYS["project_clusters"]
    for p in projects:
        g = Google(p, env)
        ans = with_retries(lambda t, g=g: g.read("project_clusters", {}, t), service="container", method="GET",
                           path=f"/v1/projects/{p}/locations/-/clusters", budget=budget, recorder=Recorder(),
                           breaker=Breaker(), retries=3)
        if not ans.ok:
            raise UserError(f"--fleet-project {p}: cannot {k.resource_text(_T(p))}: {_why(ans)}")
        clusters, more = clusters_of(p, ans.data)
        notes += more
        if not clusters:
            empty.append(p)
        found += clusters
    if empty and not found:
        raise UserError(f"--fleet-project {', '.join(empty)}: no GKE cluster in any location of "
                        f"project{'s' if len(empty) > 1 else ''} {', '.join(empty)} (clusters.list answered none)")
    notes += [f"project {p} has no GKE cluster (in any location)" for p in empty]
    return found, notes


def _T(project: str):
    from ..data import Target

    return Target(project=project)


def _why(ans) -> str:
    """The Container API's answer, said for a person: status, reason and the API's message."""
    body = ans.error if isinstance(ans.error, dict) else {}
    err = _dict(body.get("error"))
    msg = err.get("message") or body.get("message") or ""
    reasons = [d.get("reason") for d in err.get("details") or [] if isinstance(d, dict) and d.get("reason")]
    if ans.status is None:
        return msg or "no answer"
    if "SERVICE_DISABLED" in reasons:
        return (f"HTTP {ans.status}: the Kubernetes Engine API is disabled in the project, so it has no GKE "
                f"cluster to diagnose ({msg})")
    if ans.status == 404:
        return f"HTTP 404: no such project ({msg})" if msg else "HTTP 404: no such project"
    if ans.status == 403:
        return (f"HTTP 403: the project does not exist or the caller may not list its clusters (needs "
                f"container.clusters.list, e.g. roles/container.clusterViewer){': ' + msg if msg else ''}")
    return f"HTTP {ans.status}{': ' + msg if msg else ''}"


class BearerToken:
    """The Kubernetes client's ``refresh_api_key_hook``: puts a valid Application Default
    Credentials token in the ``Authorization: Bearer`` header, refreshing it (once, for every
    thread and cluster sharing the credentials) when it has expired."""

    def __init__(self, creds: Any) -> None:
        self.creds = creds
        self._lock = threading.Lock()

    def token(self) -> str:
        import google.auth.transport.requests

        with self._lock:
            if not self.creds.valid:
                self.creds.refresh(google.auth.transport.requests.Request())
            return self.creds.token

    def __call__(self, cfg: Any) -> None:
        try:
            cfg.api_key["authorization"] = f"Bearer {self.token()}"
        except Exception:  # noqa: BLE001 - the API server answers 401 with the old token: a read that failed
            pass


def kube_target(cluster: GkeCluster, bearer: BearerToken, workers: int = 8):
    """A KubeTarget for the cluster: its endpoint, its CA in memory, the ADC bearer token."""
    import tempfile

    from kubernetes import client

    from .kube import KubeTarget

    cfg = client.Configuration()
    cfg.host = cluster.url
    if cluster.ca_pem is not None:
        if hasattr(cfg, "ca_cert_data"):        # kubernetes >= 35: the CA stays in memory
            cfg.ca_cert_data = cluster.ca_pem
        else:                                   # older clients take a file, as their kubeconfig loader does
            fh = tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False)
            with fh:
                fh.write(cluster.ca_pem)
            cfg.ssl_ca_cert = fh.name
    cfg.verify_ssl = True
    # the key every client generation reads for its BearerToken setting, as its kubeconfig loader sets it
    cfg.api_key = {"authorization": f"Bearer {bearer.token()}"}
    cfg.refresh_api_key_hook = bearer
    cfg.retries = False
    cfg.connection_pool_maxsize = max(workers, cfg.connection_pool_maxsize or 0)
    api = client.ApiClient(cfg)
    source = f"GKE cluster {cluster.label} ({cluster.via}, Application Default Credentials)"
    return KubeTarget(api, cluster.url, None, None, source)
