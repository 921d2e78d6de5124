"""The Kubernetes side of a live run: configuration (kubeconfig or in-cluster) and raw GETs.

Requests go through the official client's ``ApiClient`` (its kubeconfig loading, TLS, exec
credential plugins, token refresh), asking for JSON and keeping the bytes: no model
deserialization, so checks see exactly what the API server sent, as in snapshot mode.
"""
from __future__ import annotations

import logging
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

import orjson

from .calls import Answer, failure, parse_retry_after
from ..errors import UserError

IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@dataclass
class KubeTarget:
    api: Any                  # kubernetes.client.ApiClient
    server: str               # the API server URL
    context: str | None       # kube context name (None in-cluster)
    namespace: str | None     # the context's namespace
    source: str               # "kubeconfig <files>" or "in-cluster config"
    pod_namespace: str | None = None   # in a pod: its own namespace (a fallback, after discovery)


def kubeconfig_files(flag: str | None, env: dict) -> tuple[list[str], str]:
    """Candidate kubeconfig files and how they were chosen (for messages)."""
    if flag:
        return [os.path.expanduser(flag)], f"--kubeconfig {flag}"
    raw = env.get("KUBECONFIG")
    if raw:
        return [os.path.expanduser(p) for p in raw.split(os.pathsep) if p], f"KUBECONFIG={raw}"
    home = os.path.expanduser("~/.kube/config")
    return [home], home


class _Captured(logging.Handler):
    """Collects what the kubernetes client logs on the root logger while loading a kubeconfig
    (an exec credential plugin that fails is only logged there), instead of letting
    ``logging.error`` configure the root logger and print to stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record) -> None:
        self.messages.append(record.getMessage())


def load(kubeconfig: str | None, context: str | None, env: dict) -> tuple[KubeTarget | None, str]:
    root = logging.getLogger()
    cap = _Captured()
    root.addHandler(cap)
    try:
        kt, tried = _load(kubeconfig, context, env)
    finally:
        root.removeHandler(cap)
    if kt is not None and cap.messages:
        kt.source += f"; while loading it: {'; '.join(m for m in cap.messages if m)[:300]}"
    return kt, tried


def _load(kubeconfig: str | None, context: str | None, env: dict) -> tuple[KubeTarget | None, str]:
    """Load the Kubernetes configuration; (None, what was tried) when there is none."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    files, how = kubeconfig_files(kubeconfig, env)
    existing = [f for f in files if os.path.isfile(f)]
    if kubeconfig and not existing:
        raise UserError(f"kubeconfig {kubeconfig} not found")
    cfg = client.Configuration()
    if existing:
        joined = os.pathsep.join(existing)
        explicit = bool(kubeconfig or context)   # asked for by flag: failing to load it is an error
        try:
            contexts, current = config.list_kube_config_contexts(config_file=joined)
        except ConfigException as e:
            if explicit:
                raise UserError(f"cannot read kubeconfig ({how}): {e}") from None
            return None, f"kubeconfig {how} is unusable ({e})"
        names = [c.get("name") for c in contexts or []]
        if context is not None and context not in names:
            raise UserError(f"context {context!r} is not in the kubeconfig ({how}); it has: "
                               f"{', '.join(n for n in names if n) or 'none'}")
        chosen = context or (current or {}).get("name")
        if not chosen:
            return None, f"kubeconfig ({how}) has no current context (pass --context)"
        ctx = next((c for c in contexts if c.get("name") == chosen), {}) or {}
        ns = (ctx.get("context") or {}).get("namespace")
        try:
            config.load_kube_config(config_file=joined, context=chosen, client_configuration=cfg,
                                    persist_config=False)
        except (ConfigException, OSError, ValueError) as e:
            if explicit:
                raise UserError(f"cannot load context {chosen} from the kubeconfig ({how}): {e}") from None
            return None, f"context {chosen} of kubeconfig {how} could not be loaded ({e})"
        source = f"kubeconfig {joined} (context {chosen})"
        target_ctx = chosen
        pod_ns = None
    elif env.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(IN_CLUSTER_TOKEN):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as e:
            raise UserError(f"cannot use the in-cluster configuration: {e}") from None
        ns = None     # a pod has no context namespace: the Airflow namespace is discovered
        try:
            with open(IN_CLUSTER_NAMESPACE) as fh:
                pod_ns = fh.read().strip() or None
        except OSError:
            pod_ns = None
        source, target_ctx = "in-cluster configuration", None
    else:
        return None, f"no kubeconfig ({how} does not exist) and not running in a pod"
    cfg.retries = False              # this tool retries by itself, with a deadline
    workers = 8
    if cfg.connection_pool_maxsize is None or cfg.connection_pool_maxsize < workers:
        cfg.connection_pool_maxsize = workers
    api = client.ApiClient(cfg)
    return KubeTarget(api, cfg.host, target_ctx, ns, source, pod_ns), source


def _error_body(raw: bytes, status: int | None) -> Any:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        return body
    text = raw.decode("utf-8", errors="replace").strip() if raw else ""
    return {"message": text or f"HTTP {status}"}


def get(api: Any, path: str, query: list[tuple[str, str]] | None, timeout: float, text: bool = False) -> Answer:
    """One GET of ``path`` (with its leading slash) on the API server: the parsed JSON body (or the
    text, for logs) of a 2xx, else the status and the API's ``Status`` body."""
    import urllib3

    accept = "text/plain, */*" if text else "application/json"
    try:
        raw, status, headers = _request(api, path, query or [], accept, timeout)
    except urllib3.exceptions.NewConnectionError as e:   # refused, DNS (a ConnectTimeoutError subclass)
        return failure("connect", f"cannot reach the Kubernetes API server: {_why(e)}")
    except urllib3.exceptions.TimeoutError:
        return failure("timeout", f"no answer from the Kubernetes API server within {timeout:.3g} s")
    except (urllib3.exceptions.HTTPError, OSError) as e:  # reset, truncated body, TLS
        return failure("connect", f"cannot reach the Kubernetes API server: {_why(e)}")
    except _api_exception() as e:  # TLS failures and the like, wrapped by the client
        return failure("connect", f"cannot reach the Kubernetes API server: {getattr(e, 'reason', e)}")
    if 200 <= status < 300:
        if text:
            return Answer(status, data=raw.decode("utf-8", errors="replace"))
        try:
            return Answer(status, data=orjson.loads(raw))
        except orjson.JSONDecodeError as e:
            return failure("invalid", f"the Kubernetes API server answered {path} with invalid JSON ({e})")
    body = _error_body(raw, status)
    ra = parse_retry_after(headers.get("Retry-After") if headers else None)
    if ra is None and isinstance(body, dict):
        ra = parse_retry_after((body.get("details") or {}).get("retryAfterSeconds")
                               if isinstance(body.get("details"), dict) else None)
    return Answer(status, error=body, retry_after=ra)


def _api_exception():
    from kubernetes.client.exceptions import ApiException

    return ApiException


def _why(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    return str(reason or e) or type(e).__name__


def _request(api: Any, path: str, query: list[tuple[str, str]], accept: str, timeout: float):
    """(body bytes, status, headers) of one GET through the client, across client generations."""
    if hasattr(api, "param_serialize"):  # kubernetes >= 35 (openapi-generator client)
        method, url, headers, _body, _post = api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": accept}, auth_settings=["BearerToken"])
        resp = api.call_api(method, url, header_params=headers, _request_timeout=timeout)
        raw = resp.read()
        hdrs = resp.getheaders() if hasattr(resp, "getheaders") else resp.headers
        return raw or b"", resp.status, dict(hdrs or {})
    # kubernetes <= 34 (swagger-codegen client): call_api raises ApiException for non-2xx
    from kubernetes.client.exceptions import ApiException

    try:
        resp = api.call_api(path, "GET", query_params=query, header_params={"Accept": accept},
                            auth_settings=["BearerToken"], _preload_content=False,
                            _return_http_data_only=True, _request_timeout=timeout)
    except ApiException as e:
        if not e.status:
            raise
        body = e.body if isinstance(e.body, bytes) else (e.body or "").encode()
        return body, e.status, dict(e.headers or {})
    return resp.data or b"", resp.status, dict(resp.headers or {})


def list_all(path: str, page_size: int, get_page) -> Answer:
    """Read a list in pages (``limit`` + ``continue``) and merge them into one list body with
    ``metadata.continue`` (and ``remainingItemCount``) removed, as snapshot-v1 stores it.

    ``get_page(query) -> Answer`` performs one (retried) request."""
    items: list = []
    head: dict | None = None
    token: str | None = None
    restarted = False
    while True:
        query = [("limit", str(page_size))]
        if token:
            query.append(("continue", token))
        ans = get_page(query)
        if not ans.ok:
            if ans.status == 410 and token and not restarted:   # continue token expired: start over once
                restarted, token, items, head = True, None, [], None
                continue
            return ans
        body = ans.data
        md = body.get("metadata") if isinstance(body, dict) and isinstance(body.get("metadata"), dict) else {}
        next_token = md.get("continue") or None
        if head is None and not next_token:
            return ans              # one page: stored exactly as the API server sent it
        if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
            return failure("invalid", f"the Kubernetes API server answered a page of {path} with a malformed list")
        items.extend(body.get("items") or [])
        if head is None:
            head = {k: v for k, v in body.items() if k != "items"}
        token = next_token
        if not token:
            break
    out = dict(head or {})
    md = dict(out.get("metadata") or {})
    md.pop("continue", None)
    md.pop("remainingItemCount", None)
    out["metadata"] = md
    out["items"] = items
    return Answer(200, data=out)


def quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/:@")
