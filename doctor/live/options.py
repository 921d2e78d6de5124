"""What a live run is asked to do (no heavy imports here)."""
from __future__ import annotations

import ipaddress
import os
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import UserError

# A Google API's endpoint can be overridden with AIRFLOW_GKE_ENDPOINT_<SERVICE> (the services come
# from the declared data keys when a run starts).
ENDPOINT_ENV = "AIRFLOW_GKE_ENDPOINT_"


@dataclass
class LiveOptions:
    project: str | None = None
    location: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    release: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    timeout: float = 60.0              # whole run, seconds
    request_timeout: float = 20.0      # one HTTP request, seconds
    retries: int = 3                   # attempts after the first for 429/5xx/connection errors
    workers: int = 8
    max_logs: int = 50
    log_lines: int = 500
    page_size: int = 500
    now: datetime | None = None        # judge ages at this time (replays); default: the clock
    verbose: bool = False
    env: dict = field(default_factory=lambda: dict(os.environ))
    require_cluster: bool = False      # a fleet of contexts: a Kubernetes API that never answers is unreachable
    namespaces: tuple = ()             # -A --namespace ...: search only these namespaces
    shared: object = None              # a fleet run: reader.SharedReads, Google answers shared by its targets
    gke: object = None                 # --fleet-project: the live.gke.GkeCluster to reach (no kubeconfig)
    bearer: object = None              # ... and the live.gke.BearerToken of the Application Default Credentials


@dataclass(frozen=True)
class Endpoint:
    service: str
    url: str | None            # None: the library's default (https://<service>.googleapis.com)
    anonymous: bool = False    # plain http:// on loopback: no credentials are sent

    @property
    def shown(self) -> str:
        return self.url or f"https://{self.service}.googleapis.com"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint(service: str, env: dict) -> Endpoint:
    """The endpoint of a Google API: ``AIRFLOW_GKE_ENDPOINT_<SERVICE>`` or the default."""
    raw = (env.get(ENDPOINT_ENV + service.upper()) or "").strip()
    if not raw:
        return Endpoint(service, None)
    u = urllib.parse.urlsplit(raw)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UserError(f"{ENDPOINT_ENV}{service.upper()}={raw!r} is not an http(s):// base URL")
    if u.scheme == "http" and not _is_loopback(u.hostname):
        raise UserError(f"{ENDPOINT_ENV}{service.upper()}={raw!r}: plain http:// is only accepted on a "
                           "loopback address (credentials would travel in clear); use https://")
    return Endpoint(service, raw.rstrip("/"), anonymous=u.scheme == "http")
