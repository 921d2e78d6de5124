"""``doctor --probe``: prove ``gcs-log-write-denied`` by doing it — the one write the tool makes.

With the credentials the process has (in a pod: its Kubernetes service account, through Workload
Identity or the node's service account), write a small object under
``<remote_base_log_folder>/.airflow-gke-probe/``, read it back and delete it, with the official
``google-cloud-storage`` client, and keep the exact answer of each step: a 403 and the permission
it names, a 404 bucket, a token the metadata server would not give.

The probe only speaks for Airflow when it runs as the identity that writes Airflow's logs: in a pod
whose Kubernetes service account is one of the log writers' (deploy/ runs it as the workers'),
on a node pool they use when that identity is the node's. Then its result overrides the IAM
inference of ``gcs-log-write-denied`` (which reads policies and can be wrong: IAM Conditions,
deny policies, organisation grants, policies it could not read), and the report says so. Run
anywhere else, the result is reported and the inference stands.

This module does the I/O and decides whether the probe speaks for the log writers
(``representative``); the application core (doctor/app.py) puts the result in the context
(``ctx.probe``), and the check's own post-run step (``@after_run`` in
checks/gcs_log_write_denied.py) turns it into the check's verdict: the engine never edits a check's
result itself.

The pod's identity comes from the downward API (``AIRFLOW_GKE_POD_NAMESPACE``,
``AIRFLOW_GKE_POD_SERVICE_ACCOUNT``, ``AIRFLOW_GKE_NODE_NAME``; deploy/ sets them), else from the
mounted service account token.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .apierror import api_message

PROBE_DIR = ".airflow-gke-probe"
CHECK = "gcs-log-write-denied"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
ENV_NS, ENV_SA, ENV_NODE = "AIRFLOW_GKE_POD_NAMESPACE", "AIRFLOW_GKE_POD_SERVICE_ACCOUNT", "AIRFLOW_GKE_NODE_NAME"

_PERM = re.compile(r"(?:does not have|Permission ')\s*'?(storage\.[A-Za-z]+\.[A-Za-z]+)")


@dataclass
class Step:
    step: str               # token | write | read | delete
    ok: bool
    status: int | None
    detail: str

    def to_dict(self) -> dict:
        return {"step": self.step, "ok": self.ok, "status": self.status, "detail": self.detail}


@dataclass
class PodIdentity:
    namespace: str | None = None
    service_account: str | None = None
    node: str | None = None

    @property
    def ksa(self) -> str | None:
        return f"{self.namespace}/{self.service_account}" if self.namespace and self.service_account else None


@dataclass
class ProbeResult:
    folder: str | None
    object: str | None = None
    identity: str = "unknown"
    pod: PodIdentity = field(default_factory=PodIdentity)
    steps: list[Step] = field(default_factory=list)
    verdict: str = "not-run"      # allowed | denied | partial | bucket-missing | no-token | failed | not-run
    missing_permission: str | None = None
    scope_problem: bool = False
    representative: bool = False
    overrides: bool = False
    note: str = ""

    @property
    def bucket(self) -> str | None:
        return self.folder[len("gs://"):].split("/", 1)[0] if self.folder else None

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def who(self) -> str:
        ksa = f"KSA {self.pod.ksa}" if self.pod.ksa else None
        if ksa and self.identity not in ("unknown", ""):
            return f"{ksa} ({self.identity})"
        return ksa or self.identity

    def outcome(self) -> str:
        """One line: what the probe did and got."""
        if self.verdict == "allowed":
            return f"created, read back and deleted {self.object}"
        st = self.failed_step
        if st is None:
            return self.note or self.verdict
        code = f"HTTP {st.status}: " if st.status else ""
        return f"{st.step} {'of ' + self.object if st.step != 'token' and self.object else ''} failed: {code}{st.detail}".replace("  ", " ")

    def to_dict(self) -> dict:
        return {"folder": self.folder, "object": self.object, "identity": self.who(),
                "service_account": self.pod.ksa, "verdict": self.verdict,
                "missing_permission": self.missing_permission, "steps": [s.to_dict() for s in self.steps],
                "representative": self.representative, "overrides": self.overrides, "note": self.note}


def pod_identity(env: dict) -> PodIdentity:
    """Who this process runs as in Kubernetes (downward API env, else the mounted token)."""
    ns, sa, node = env.get(ENV_NS) or None, env.get(ENV_SA) or None, env.get(ENV_NODE) or None
    if ns and sa:
        return PodIdentity(ns, sa, node)
    try:
        token = (SA_DIR / "token").read_text().strip()
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        sub = str(claims.get("sub", ""))
        if sub.startswith("system:serviceaccount:"):
            _, _, t_ns, t_sa = sub.split(":", 3)
            return PodIdentity(ns or t_ns, sa or t_sa, node)
    except (OSError, IndexError, ValueError):
        pass
    return PodIdentity(ns, sa, node)


def object_name(folder: str, now: datetime | None = None) -> tuple[str, str]:
    """(bucket, object name) of a fresh probe object under the folder."""
    rest = folder[len("gs://"):]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    name = "/".join(x for x in (prefix, PROBE_DIR, f"{stamp}-{secrets.token_hex(4)}.txt") if x)
    return bucket, name


def run(folder: str, env: dict, project: str | None, timeout: float = 20.0) -> ProbeResult:
    """Write, read back and delete one object under ``folder`` (a ``gs://`` URL)."""
    res = ProbeResult(folder=folder, pod=pod_identity(env))
    bucket_name, name = object_name(folder)
    res.object = f"gs://{bucket_name}/{name}"
    payload = (f"airflow-gke write probe {datetime.now(timezone.utc).isoformat()} "
               f"({res.pod.ksa or 'not in a pod'}); safe to delete\n").encode()
    try:
        creds, ident = _credentials(env, res)
    except _NoToken as e:
        res.steps.append(Step("token", False, None, str(e)))
        res.verdict = "no-token"
        return res
    res.identity = ident
    from google.cloud import storage

    from .options import endpoint

    ep = endpoint("storage", env)
    client = storage.Client(project=project or "-", credentials=creds,
                            client_options={"api_endpoint": ep.url} if ep.url else None)
    blob = client.bucket(bucket_name).blob(name)
    if not _step(res, "write", lambda: blob.upload_from_string(payload, content_type="text/plain",
                                                               if_generation_match=0, timeout=timeout,
                                                               retry=None), f"created {res.object}"):
        return res
    got: list[bytes] = []
    read_ok = _step(res, "read", lambda: got.append(blob.download_as_bytes(timeout=timeout, retry=None)),
                    "read it back")
    if read_ok and got and got[0] != payload:
        res.steps[-1] = Step("read", False, None, f"read back {len(got[0])} bytes that differ from the "
                                                  f"{len(payload)} written")
        read_ok = False
    del_ok = _step(res, "delete", lambda: blob.delete(timeout=timeout, retry=None), "deleted it")
    if read_ok and del_ok:
        res.verdict = "allowed"
    elif res.verdict == "not-run":
        res.verdict = "partial"
    return res


class _NoToken(Exception):
    pass


def _credentials(env: dict, res: ProbeResult):
    """Credentials for Cloud Storage and a name for who they are; raises _NoToken with the exact error."""
    from .options import endpoint

    ep = endpoint("storage", env)
    if ep.anonymous:
        from google.auth.credentials import AnonymousCredentials

        res.steps.append(Step("token", True, None, f"anonymous credentials for the loopback endpoint {ep.url}"))
        return AnonymousCredentials(), "anonymous (loopback endpoint)"
    import google.auth
    from google.auth import exceptions as aexc
    from google.auth.transport.requests import Request

    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
    except aexc.DefaultCredentialsError as e:
        raise _NoToken(f"no Application Default Credentials: {e}") from None
    try:
        creds.refresh(Request())
    except aexc.RefreshError as e:
        raise _NoToken(f"the metadata server / token endpoint refused a token: {e}") from None
    except aexc.TransportError as e:
        raise _NoToken(f"cannot reach the metadata server / token endpoint: {e}") from None
    email = getattr(creds, "service_account_email", None)
    ident = email if email and email != "default" else "user credentials (Application Default Credentials)"
    res.steps.append(Step("token", True, None, f"access token for {ident}"))
    return creds, ident


def _step(res: ProbeResult, name: str, fn, ok_text: str) -> bool:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    try:
        fn()
    except gexc.GoogleAPICallError as e:
        status = e.code if isinstance(e.code, int) else None
        msg = api_message(e)
        res.steps.append(Step(name, False, status, msg))
        m = _PERM.search(msg)
        if status == 403:
            res.missing_permission = res.missing_permission or (m.group(1) if m else None)
            if "scope" in msg.lower():
                res.scope_problem = True
            if name == "write":
                res.verdict = "denied"
        elif status == 404 and name == "write":
            res.verdict = "bucket-missing"
        elif name == "write":
            res.verdict = "failed"
        return False
    except (aexc.RefreshError, aexc.TransportError) as e:
        res.steps.append(Step(name, False, None, f"no token: {e}"))
        if name == "write":
            res.verdict = "no-token"
        return False
    except Exception as e:  # noqa: BLE001 - connection errors, timeouts: the exact error is the result
        res.steps.append(Step(name, False, None, f"{type(e).__name__}: {e}"))
        if name == "write":
            res.verdict = "failed"
        return False
    res.steps.append(Step(name, True, None, ok_text))
    return True


# --- the probe's verdict against the IAM inference ----------------------------------------------------------

def writers(ctx) -> list:
    """[(Identity, folder)] of the log-writing components that ship logs to ``gs://``."""
    from ..views.identity import LOG_WRITERS, remote_log_folder, resolve

    out = []
    for comp in LOG_WRITERS:
        folder, _where = remote_log_folder(ctx, comp)
        if folder:
            out += [(ident, folder) for ident in resolve(ctx, comp)]
    return out


def prepare(ctx, explicit_folder: str | None, env: dict) -> tuple[str | None, list | None, str | None]:
    """(folder to probe, the log writers or None when unknown, why they are unknown)."""
    pod = pod_identity(env)
    try:
        ws = writers(ctx)
        why = None
    except Exception as e:  # noqa: BLE001 - DataUnavailable, or data too broken to resolve: say so
        ws, why = None, getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
    if explicit_folder:
        return explicit_folder, ws, why
    if not ws:
        return None, ws, why
    mine = [f for i, f in ws if pod.service_account and i.ksa == pod.service_account]
    return (mine or [f for _i, f in ws])[0], ws, why


def judge(res: ProbeResult, ws: list | None, why: str | None, ctx) -> None:
    """Decide whether the probe speaks for Airflow's log writers; fills ``representative`` and ``note``."""
    pod = res.pod
    if pod.ksa is None:
        res.representative = False
        res.note = (f"the probe ran outside a pod, as {res.identity}: it shows what that identity may do, not what "
                    "Airflow's log writers may do, so the IAM inference stands (run it in the cluster as the "
                    "workers' service account: deploy/)")
        return
    if ws is None:
        res.representative = True
        res.note = (f"which service accounts write Airflow's logs could not be resolved ({why}); the probe is taken "
                    f"as theirs because it runs as KSA {pod.ksa}, as deploy/ sets it up")
        return
    ns = ctx.target.namespace
    match = [i for i, _f in ws if pod.namespace == ns and i.ksa == pod.service_account]
    if not match:
        known = sorted({f"{ns}/{i.ksa}" for i, _f in ws})
        res.representative = False
        res.note = (f"the probe ran as KSA {pod.ksa}, but Airflow's logs are written by {', '.join(known) or 'nobody'}: "
                    "the IAM inference stands")
        return
    pools = {p.name for i in match if i.kind == "node" for p in i.pools}
    if pools and pod.node:
        try:
            pool = ctx.pool_of_node(pod.node)
        except Exception:  # noqa: BLE001 - nodes not readable
            pool = None
        if pool and pool not in pools:
            res.representative = False
            res.note = (f"the probe ran on node pool {pool}, but the log writers use the node credentials of "
                        f"{', '.join(sorted(pools))}: the IAM inference stands")
            return
    comps = sorted({i.label for i in match})
    res.representative = True
    res.note = f"the probe ran as KSA {pod.ksa}, the service account of {', '.join(comps)}"
