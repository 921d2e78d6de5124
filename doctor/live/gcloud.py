"""The Google Cloud side of a live run: the official clients (REST transport) and their answers
converted to the REST API's camelCase JSON, the same bodies a snapshot stores.

- Kubernetes Engine (``container_v1``), Service Usage (``service_usage_v1``), Resource Manager
  (``resourcemanager_v3``): proto-plus / protobuf messages -> ``json_format.MessageToDict`` (JSON
  names, enum names, default values omitted as the REST API omits them).
- Cloud Storage (``google.cloud.storage``): the bucket's ``_properties`` and the raw IAM resource.
- Cloud Identity (the optional group membership): Google publishes no client library with a REST
  transport for it, so an ``AuthorizedSession`` makes its two calls (``groups:lookup``, then
  ``memberships:checkTransitiveMembership``); one lookup per group however many members are asked.
- Every other read (``live="rest"`` in doctor/data.py, e.g. IAM service accounts:
  ``google-cloud-iam`` has no REST transport): an ``AuthorizedSession`` (google-auth) calls the
  REST API at the key's own path (GET; POST with ``requestedPolicyVersion: 3`` for
  ``:getIamPolicy``), so a new Google data key needs no code here.

Which call reads a data key is declared by the key (``DataKey.live``, ``DataKey.service``); the
client calls are the ``READERS`` below.

Credentials: Application Default Credentials, except for an endpoint overridden with a plain
``http://`` loopback URL (``AIRFLOW_GKE_ENDPOINT_<SERVICE>``), which gets anonymous credentials.
Every call passes ``retry=None`` (this tool retries by itself, with a deadline) and a timeout.
"""
from __future__ import annotations

import threading
import urllib.parse
from typing import Any, Callable

from ..data import KEYS, Target
from .calls import Answer, failure, parse_retry_after
from .options import Endpoint, endpoint

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

# Services read through an authorized session only (their READERS get it as the client).
REST_ONLY = ("compute", "secretmanager")


def services() -> tuple[str, ...]:
    """The Google services of the declared data keys (first label of the API host)."""
    return tuple(dict.fromkeys(k.service for k in KEYS.values() if k.scope == "gcp"))


class CredentialsProblem(Exception):
    pass


def adc(env: dict) -> tuple[Any, str | None]:
    """Application Default Credentials and their project (may raise CredentialsProblem)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as e:
        raise CredentialsProblem(adc_missing(e, env)) from None


ADC_LOGIN = "gcloud auth application-default login"


def adc_missing(e: Exception, env: dict) -> str:
    """Why there are no Application Default Credentials, and the exact command that sets them up."""
    gac = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if gac:
        return (f"no Google credentials: GOOGLE_APPLICATION_CREDENTIALS={gac} is not usable ({e}); point it at a "
                f"service account key or credentials file, or unset it and run: {ADC_LOGIN}")
    return ("no Google credentials (Application Default Credentials are not set up); on a workstation run: "
            f"{ADC_LOGIN} (in a pod: Workload Identity or the node's service account)")


def _to_dict(msg: Any) -> dict:
    from google.protobuf import json_format

    pb = type(msg).pb(msg) if hasattr(type(msg), "pb") else msg   # proto-plus wraps a protobuf message
    return json_format.MessageToDict(pb)


class Google:
    def __init__(self, project: str | None, env: dict, location: str | None = None,
                 cluster: str | None = None) -> None:
        self.project = project
        self.location = location
        self.cluster = cluster
        self.env = env
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._adc: tuple[Any, str | None] | None = None
        self._adc_error: str | None = None
        self.endpoints: dict[str, Endpoint] = {s: endpoint(s, env) for s in services()}
        self.groups: dict[str, Answer] = {}   # Cloud Identity groups:lookup answers by group email

    # --- wiring -----------------------------------------------------------------------------
    def credentials(self, service: str):
        ep = self.endpoints[service]
        if ep.anonymous:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        with self._lock:
            if self._adc is None and self._adc_error is None:
                try:
                    self._adc = adc(self.env)
                except CredentialsProblem as e:
                    self._adc_error = str(e)
            if self._adc_error:
                raise CredentialsProblem(self._adc_error)
            return self._adc[0]

    def _options(self, service: str):
        ep = self.endpoints[service]
        return {"api_endpoint": ep.url} if ep.url else None

    def client(self, service: str, rest: bool = False):
        """The service's client library client, or (``rest``) an authorized session for its REST API."""
        with self._lock:
            c = self._clients.get((service, rest))
        if c is not None:
            return c
        creds = self.credentials(service)
        opts = self._options(service)
        if rest or service == "cloudidentity":   # no client library: its REST API through google-auth
            from google.auth.transport.requests import AuthorizedSession

            c = AuthorizedSession(creds)
        elif service == "container":
            from google.cloud import container_v1

            c = container_v1.ClusterManagerClient(credentials=creds, transport="rest", client_options=opts)
        elif service == "serviceusage":
            from google.cloud import service_usage_v1

            c = service_usage_v1.ServiceUsageClient(credentials=creds, transport="rest", client_options=opts)
        elif service == "cloudresourcemanager":
            from google.cloud import resourcemanager_v3

            c = resourcemanager_v3.ProjectsClient(credentials=creds, transport="rest", client_options=opts)
        elif service == "storage":
            from google.cloud import storage

            c = storage.Client(project=self.project, credentials=creds, client_options=opts)
        else:  # pragma: no cover - a client call named for a service without a client
            raise KeyError(service)
        with self._lock:
            return self._clients.setdefault((service, rest), c)

    # --- reads ------------------------------------------------------------------------------
    def read(self, key_name: str, params: dict, timeout: float) -> Answer:
        """One read of a data key (no retries here), the way its declaration says."""
        k = KEYS[key_name]
        try:
            return self._guard(lambda: self._read(k, params, timeout), k.service, timeout)
        except CredentialsProblem as e:
            return failure("credentials", str(e))

    def _read(self, k, params: dict, timeout: float) -> Answer:
        if k.live == "rest":
            return self._rest(k, params, timeout)
        # Compute Engine has no client library here: its reader gets the authorized session
        return READERS[k.live](self, self.client(k.service, rest=k.service in REST_ONLY), params, timeout)

    def _rest(self, k, params: dict, timeout: float) -> Answer:
        """GET the key's path on its service (POST for ``:getIamPolicy``), through an authorized session."""
        target = Target(project=self.project, location=self.location, cluster=self.cluster)
        rel = k.path(target, **params).split("/", 2)[2]            # gcp/<service>/<rel>
        base = self.endpoints[k.service].url or f"https://{k.service}.googleapis.com"
        url = f"{base.rstrip('/')}/{urllib.parse.quote(rel, safe='/@:')}"
        c = self.client(k.service, rest=True)
        if rel.endswith(":getIamPolicy"):
            resp = c.post(url, json={"options": {"requestedPolicyVersion": 3}}, timeout=timeout)
        else:
            resp = c.get(url, timeout=timeout)
        return _from_response(resp)

    def _guard(self, fn: Callable[[], Answer], service: str, timeout: float) -> Answer:
        """Turn the clients' exceptions into answers."""
        import requests
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        host = self.endpoints[service].shown
        try:
            return fn()
        except gexc.GoogleAPICallError as e:
            resp = getattr(e, "response", None)
            status = int(e.code) if isinstance(e.code, int) else getattr(resp, "status_code", None)
            body = _json_of(resp) if resp is not None else None
            if not isinstance(body, dict):
                body = {"error": {"code": status, "message": e.message or str(e)}}
            ra = parse_retry_after(resp.headers.get("Retry-After")) if resp is not None and hasattr(resp, "headers") else None
            return Answer(status, error=body, retry_after=ra)
        except requests.exceptions.Timeout:
            return failure("timeout", f"no answer from {host} within {timeout:.3g} s")
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as e:
            return failure("connect", f"cannot reach {host}: {_why(e)}")
        except aexc.RefreshError as e:
            return failure("credentials", f"Google credentials could not be refreshed: {e}")
        except aexc.TransportError as e:
            return failure("connect", f"cannot reach {host} (credentials transport): {e}")
        except CredentialsProblem:
            raise
        except Exception as e:  # noqa: BLE001 - an unparsable answer must not stop the run
            return failure("invalid", f"unexpected answer from {host}: {type(e).__name__}: {e}")


def _why(e: BaseException) -> str:
    inner = e.args[0] if e.args else e
    reason = getattr(inner, "reason", None)
    return str(reason or inner)


def _json_of(resp: Any) -> Any:
    try:
        return resp.json()
    except Exception:  # noqa: BLE001 - not JSON
        text = getattr(resp, "text", "") or ""
        return {"message": text.strip()} if text.strip() else None


def _from_response(resp: Any) -> Answer:
    status = resp.status_code
    ra = parse_retry_after(resp.headers.get("Retry-After"))
    if 200 <= status < 300:
        try:
            return Answer(status, data=resp.json())
        except ValueError as e:
            return failure("invalid", f"invalid JSON from {resp.url}: {e}")
    body = _json_of(resp)
    if not isinstance(body, dict):
        body = {"message": f"HTTP {status}"}
    return Answer(status, error=body, retry_after=ra)


# --- client calls: the ``live`` names of doctor/data.py that are not "rest" ----------------------
def _get_service(g: Google, c, params: dict, timeout: float) -> Answer:
    msg = c.get_service(request={"name": f"projects/{g.project}/services/{params['service']}"},
                        retry=None, timeout=timeout)
    return Answer(200, data=_to_dict(msg))


def _get_project(g: Google, c, params: dict, timeout: float) -> Answer:
    return Answer(200, data=_to_dict(c.get_project(name=f"projects/{g.project}", retry=None, timeout=timeout)))


def _get_project_iam(g: Google, c, params: dict, timeout: float) -> Answer:
    pol = c.get_iam_policy(request={"resource": f"projects/{g.project}", "options": {"requested_policy_version": 3}},
                           retry=None, timeout=timeout)
    return Answer(200, data=_to_dict(pol))


def _get_cluster(g: Google, c, params: dict, timeout: float) -> Answer:
    t = f"projects/{g.project}/locations/{g.location}/clusters/{g.cluster}"
    return Answer(200, data=_to_dict(c.get_cluster(name=t, retry=None, timeout=timeout)))


def _list_clusters(g: Google, c, params: dict, timeout: float) -> Answer:
    """clusters.list of every location (``locations/-``): one answer, ``clusters`` and
    ``missingZones`` as the REST API returns them (the API does not page this list)."""
    msg = c.list_clusters(parent=f"projects/{g.project}/locations/-", retry=None, timeout=timeout)
    return Answer(200, data=_to_dict(msg))


def _get_bucket(g: Google, c, params: dict, timeout: float) -> Answer:
    b = c.get_bucket(params["bucket"], timeout=timeout, retry=None)
    return Answer(200, data=dict(b._properties))


def _get_bucket_iam(g: Google, c, params: dict, timeout: float) -> Answer:
    # The raw IAM resource (kind, resourceId, version, etag, bindings): Bucket.get_iam_policy
    # would reduce it to an api_core Policy and lose fields of the REST body.
    body = c._get_resource(f"/b/{params['bucket']}/iam", query_params={"optionsRequestedPolicyVersion": 3},
                           timeout=timeout, retry=None)
    return Answer(200, data=body)


PAGE = 500      # items asked per page of a Google REST list (Secret Manager caps it at 25000; any may answer fewer)
PAGES = 200     # at most this many pages (100,000 items at 500 a page): a loop guard


def _all_pages(session, url: str, size_param: str, field: str, timeout: float, what: str) -> Answer:
    """A Google REST list as one body: ``field`` of every page (followed by ``pageToken``/
    ``nextPageToken``), the first page's other fields kept, no ``nextPageToken``; the first failed
    page's answer as is."""
    body: dict | None = None
    token = None
    for _ in range(PAGES):
        query = {size_param: str(PAGE)} | ({"pageToken": token} if token else {})
        ans = _from_response(session.get(url, params=query, timeout=timeout))
        if not ans.ok:
            return ans
        page = ans.data if isinstance(ans.data, dict) else {}
        if body is None:
            body = {f: v for f, v in page.items() if f != "nextPageToken"}
            body[field] = list(page.get(field) or [])
        else:
            body[field] += list(page.get(field) or [])
        token = page.get("nextPageToken")
        if not token:
            if not body[field]:
                body.pop(field)   # the APIs leave out an empty list
            return Answer(200, data=body)
    return failure("invalid", f"{what} did not end after {PAGES} pages")


def _compute_list(g: Google, session, params: dict, timeout: float, key: str = "routers") -> Answer:
    """A Compute Engine list (routers.list) as one body: ``items`` of every page, no
    ``nextPageToken``, like the Kubernetes lists a snapshot stores. Through an authorized session
    on the REST API (``google-cloud-compute`` would add a large dependency for one list call)."""
    k = KEYS[key]
    rel = k.path(Target(project=g.project, location=g.location, cluster=g.cluster), **params).split("/", 2)[2]
    base = g.endpoints["compute"].url or "https://compute.googleapis.com"
    url = f"{base.rstrip('/')}/{urllib.parse.quote(rel, safe='/@:')}"
    return _all_pages(session, url, "maxResults", "items", timeout, f"{key} list")


def _check_transitive_membership(g: Google, c, params: dict, timeout: float) -> Answer:
    """Cloud Identity: the group's resource name from its email (groups.lookup, once per group),
    then whether the member is in it, directly or through nested groups."""
    base = (g.endpoints["cloudidentity"].url or "https://cloudidentity.googleapis.com").rstrip("/")
    group, member = params["group"], params["member"]
    with g._lock:
        found = g.groups.get(group)
    if found is None:
        found = _from_response(c.get(f"{base}/v1/groups:lookup", params={"groupKey.id": group}, timeout=timeout))
        if found.ok or found.status in (403, 404):   # an answer: the other members of the group get it too
            with g._lock:
                found = g.groups.setdefault(group, found)
    if not found.ok:
        return found
    name = found.data.get("name") if isinstance(found.data, dict) else None
    if not isinstance(name, str) or not name.startswith("groups/"):
        return failure("invalid", f"groups:lookup of {group} answered no group name")
    resp = c.get(f"{base}/v1/{urllib.parse.quote(name, safe='/')}/memberships:checkTransitiveMembership",
                 params={"query": f"member_key_id == '{member}'"}, timeout=timeout)
    return _from_response(resp)


def _get_secret_iam(g: Google, c, params: dict, timeout: float) -> Answer:
    # Secret Manager's getIamPolicy is a GET (options.requestedPolicyVersion in the query), not the
    # POST of Resource Manager and IAM: the REST API through an authorized session. The secret is in
    # the backend's project (its project_id), which need not be the diagnosed one.
    base = g.endpoints["secretmanager"].url or "https://secretmanager.googleapis.com"
    project = params.get("project") or g.project
    url = (f"{base.rstrip('/')}/v1/projects/{urllib.parse.quote(str(project))}/secrets/"
           f"{urllib.parse.quote(params['secret'])}:getIamPolicy")
    return _from_response(c.get(url, params={"options.requestedPolicyVersion": 3}, timeout=timeout))




def _list_secrets(g: Google, c, params: dict, timeout: float) -> Answer:
    """Secret Manager secrets.list of a project as one body: ``secrets`` of every page (followed by
    ``pageToken``/``nextPageToken``), ``totalSize`` kept, no ``nextPageToken``; names and metadata
    only (the list never carries payloads)."""
    base = g.endpoints["secretmanager"].url or "https://secretmanager.googleapis.com"
    project = params.get("project") or g.project
    url = f"{base.rstrip('/')}/v1/projects/{urllib.parse.quote(str(project))}/secrets"
    return _all_pages(c, url, "pageSize", "secrets", timeout, f"secrets.list of project {project}")


READERS: dict[str, Callable[[Google, Any, dict, float], Answer]] = {
    "compute.list": _compute_list,
    "serviceusage.get_service": _get_service,
    "resourcemanager.get_project": _get_project,
    "resourcemanager.get_iam_policy": _get_project_iam,
    "container.get_cluster": _get_cluster,
    "container.list_clusters": _list_clusters,
    "storage.get_bucket": _get_bucket,
    "storage.get_bucket_iam": _get_bucket_iam,
    "cloudidentity.check_transitive_membership": _check_transitive_membership,
    "secretmanager.get_iam_policy": _get_secret_iam,
    "secretmanager.list_secrets": _list_secrets,
}
