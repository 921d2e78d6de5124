"""The Kubernetes side of a live run: configuration (kubeconfig or in-cluster) and raw GETs.

Requests go through the official client's ``ApiClient`` (its kubeconfig loading, TLS, exec
credential plugins, token refresh), asking for JSON and keeping the bytes: no model
deserialization, so checks see exactly what the API server sent, as in snapshot mode.
"""
from __future__ import annotations

import logging
import os
import re
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
    auth_problem: str | None = None    # the credential plugin failed: its message and installHint, lines


def kubeconfig_files(flag: str | None, env: dict) -> tuple[list[str], str]:
    """Candidate kubeconfig files and how they were chosen (for messages)."""
    if flag:
        return [os.path.expanduser(flag)], f"--kubeconfig {flag}"
    raw = env.get("KUBECONFIG")
    if raw:
        return [os.path.expanduser(p) for p in raw.split(os.pathsep) if p], f"KUBECONFIG={raw}"
    home = os.path.expanduser("~/.kube/config")
    return [home], home


@dataclass
class Kubeconfig:
    """Kubeconfig files merged by kubectl's rules (``KUBECONFIG=a:b``): the first file that sets
    ``current-context`` wins; the first definition of a context, cluster or user wins; empty files
    are ignored. (The Python client takes the *last* file's current-context: the context is
    therefore always chosen here and passed to it explicitly.)"""
    files: list[str]                       # the non-empty files, in order
    current: str | None
    contexts: dict[str, dict]
    users: dict[str, dict]


_LISTS = {"clusters": "cluster", "contexts": "context", "users": "user"}


def read_kubeconfigs(files: list[str]) -> Kubeconfig:
    """Parse and merge the files; UserError with file and line for anything kubectl would refuse."""
    import yaml

    from ..config import yaml_lines

    merged = Kubeconfig([], None, {}, {})
    for path in files:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"kubeconfig {path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise UserError(f"not valid YAML: {problem}", path=f"kubeconfig {path}",
                            line=mark.line + 1 if mark is not None else None) from None
        except ValueError as e:      # a timestamp-looking value that is no date, and the like
            raise UserError(f"kubeconfig {path}: not a valid kubeconfig: {e}") from None
        if doc is None or doc == {}:
            continue                 # kubectl ignores an empty file
        lines = yaml_lines(text)

        def bad(where: tuple, what: str):
            return UserError(what, path=f"kubeconfig {path}", line=lines.get(where))

        if not isinstance(doc, dict):
            raise bad((), f"the top level must be a mapping (apiVersion, clusters, contexts, users), "
                          f"not a {type(doc).__name__}")
        cur = doc.get("current-context")
        if cur is not None and not isinstance(cur, str):
            raise bad(("current-context",), "current-context must be a string")
        for key, inner in _LISTS.items():
            items = doc.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                raise bad((key,), f"{key} must be a list, not a {type(items).__name__}")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                    raise bad((key, i), f"{key}[{i + 1}] must be a mapping with a name")
                body = item.get(inner)
                if body is not None and not isinstance(body, dict):
                    raise bad((key, i, inner), f"{key}[{i + 1}] ({item['name']}): {inner} must be a mapping")
                if key == "contexts" and body is not None and not isinstance(body.get("namespace", ""), str):
                    raise bad((key, i, inner, "namespace"), f"context {item['name']}: namespace must be a string")
                if key == "contexts":
                    merged.contexts.setdefault(item["name"], body or {})
                elif key == "users":
                    merged.users.setdefault(item["name"], body or {})
        if merged.current is None and cur:
            merged.current = cur
        merged.files.append(path)
    return merged


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
        kt, tried, user = _load(kubeconfig, context, env)
    finally:
        root.removeHandler(cap)
    msgs = [m for m in cap.messages if m]
    if kt is not None and msgs:
        kt.auth_problem = auth_problem(msgs, user)
    return kt, tried


def auth_problem(messages: list[str], user: dict | None) -> str:
    """What the credential plugin said, then the kubeconfig's installHint, each on its own lines."""
    exe = (user or {}).get("exec") if isinstance((user or {}).get("exec"), dict) else None
    out = []
    if exe is not None:
        out.append(f"the kubeconfig's credential plugin {exe.get('command') or '(no command)'} failed:")
    else:
        out.append("loading the kubeconfig's credentials failed:")
    for m in messages:
        m = re.sub(r"^exec: process returned (\d+)\. ", r"exit status \1:\n", m)
        out += [f"  {line}" for line in m.strip().splitlines() if line.strip()]
    hint = exe.get("installHint") if exe is not None else None
    if isinstance(hint, str) and hint.strip():
        out.append("installHint (from the kubeconfig):")
        out += [f"  {line}" for line in hint.strip().splitlines() if line.strip()]
    return "\n".join(out)


def _load(kubeconfig: str | None, context: str | None, env: dict) -> tuple[KubeTarget | None, str, dict | None]:
    """Load the Kubernetes configuration; (None, what was tried, None) when there is none."""
    from kubernetes import client, config

    files, how = kubeconfig_files(kubeconfig, env)
    existing = [f for f in files if os.path.isfile(f)]
    if kubeconfig and not existing:
        raise UserError(f"kubeconfig {kubeconfig} not found")
    cfg = client.Configuration()
    user = None
    if existing:
        kc = read_kubeconfigs(existing)       # malformed: exit 2 with file and line, flag or not
        explicit = bool(kubeconfig or context)   # asked for by flag: failing to load it is an error
        if context is not None and context not in kc.contexts:
            raise UserError(f"context {context!r} is not in the kubeconfig ({how}); it has: "
                            f"{', '.join(kc.contexts) or 'none'}")
        chosen = context or kc.current
        if not chosen:
            return None, f"kubeconfig ({how}) has no current context (pass --context)", None
        if chosen not in kc.contexts:
            return None, (f"kubeconfig ({how}): the current context {chosen} is not defined "
                          f"(it has: {', '.join(kc.contexts) or 'none'}; pass --context)"), None
        ctx = kc.contexts[chosen]
        ns = ctx.get("namespace") or None
        user = kc.users.get(ctx.get("user")) if isinstance(ctx.get("user"), str) else None
        joined = os.pathsep.join(kc.files)
        try:
            config.load_kube_config(config_file=joined, context=chosen, client_configuration=cfg,
                                    persist_config=False)
        except Exception as e:  # noqa: BLE001 - whatever the client trips on in a user's file is input, not a bug
            from kubernetes.config.config_exception import ConfigException

            why = str(e) if isinstance(e, ConfigException) else f"{type(e).__name__}: {e}"
            if explicit:
                raise UserError(f"cannot load context {chosen} from the kubeconfig ({how}): {why}") from None
            return None, f"context {chosen} of kubeconfig {how} could not be loaded ({why})", None
        source = f"kubeconfig {joined} (context {chosen})"
        target_ctx = chosen
        pod_ns = None
    elif env.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(IN_CLUSTER_TOKEN):
        from kubernetes.config.config_exception import ConfigException

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
        return None, f"no kubeconfig ({how} does not exist) and not running in a pod", None
    cfg.retries = False              # this tool retries by itself, with a deadline
    workers = 8
    if cfg.connection_pool_maxsize is None or cfg.connection_pool_maxsize < workers:
        cfg.connection_pool_maxsize = workers
    api = client.ApiClient(cfg)
    return KubeTarget(api, cfg.host, target_ctx, ns, source, pod_ns), source, user


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


def list_all(path: str, page_size: int, get_page, on_page=None) -> Answer:
    """Read a list in pages (``limit`` + ``continue``) and merge them into one list body with
    ``metadata.continue`` (and ``remainingItemCount``) removed, as snapshot-v1 stores it.

    ``get_page(query) -> Answer`` performs one (retried) request. ``on_page(body) -> body``, when
    given, processes each page's body as soon as it is parsed, before the next page is asked
    for (the live reader compacts and redacts it there: doctor/source.py ``MemorySource.prepare``),
    so a large list is never held whole and unshared; whatever it raises ends the read."""
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
            if on_page is not None:
                ans.data = on_page(body)
            return ans              # one page: stored exactly as the API server sent it
        if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
            return failure("invalid", f"the Kubernetes API server answered a page of {path} with a malformed list")
        if on_page is not None:
            body = on_page(body)
        items.extend(body.get("items") or [])
        if head is None:
            head = {k: v for k, v in body.items() if k != "items"}
        ans = body = None           # the page's own objects are now in ``items`` only
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
