"""External Secrets Operator objects in the Airflow namespace that are not Ready: a SecretStore for
Google Secret Manager that cannot authenticate (Workload Identity ``idbindtoken`` 404 from a wrong
``clusterLocation``/``clusterName``, a Google service account the operator may not impersonate),
and ExternalSecrets that cannot sync (``PermissionDenied`` on ``secretmanager.versions.access``, a
secret that does not exist), with the Airflow pods that wait ``CreateContainerConfigError`` for
the Secret the ExternalSecret should create. Not installed (the CRDs answer 404): not applicable."""
from __future__ import annotations

import json
import re

from airflow_gke.views import Context, DataUnavailable, Obj, Pod, as_dict, as_list, dig
from airflow_gke.model import Finding, Remediation, Resource, Result, finding_id, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, k8s_resource, ns, project, q, quote_event

from ._runtime import CANNOT_START

_IDBIND = re.compile(r"(?i)(idbindtoken|identitybindingtoken)")
_404 = re.compile(r"(?i)(status:? ?404|\b404\b|not ?found)")
_DENIED = re.compile(r"(?i)(PermissionDenied|permission 'secretmanager\.[\w.]+' denied|\b403\b)")
_GET_TOKEN = re.compile(r"(?i)iam\.serviceAccounts\.getAccessToken|unable to generate access token")
_API_OFF = re.compile(r"(?i)(SERVICE_DISABLED|secret manager api has not been used|it is disabled)")
_SECRET_RES = re.compile(r"projects/([\w.-]+)/secrets/([\w.-]+)(?:/versions/([\w.-]+))?")
_STORE_NOT_READY = re.compile(r"(?i)SecretStore \S+ is not ready")


@check(id="external-secret-not-synced", title="External Secrets that Airflow needs are synced",
       severity="error", category=Category.SECRETS,
       needs=("externalsecrets", "secretstores", "externalsecrets_v1beta1", "secretstores_v1beta1"),
       uses=("pods", "events", "serviceaccounts", "cluster"))
def run(ctx: Context) -> Result:
    """ExternalSecret/SecretStore not Ready (Secret Manager permission, Workload Identity idbindtoken, cluster location)."""
    ess, stores, version = _objects(ctx)
    if ess is None and stores is None:
        return skipped("External Secrets Operator is not installed (its CRDs answer 404): not applicable")
    stores = stores or {}
    findings: list[Finding] = []
    bad_stores: dict[str, Finding] = {}
    for name, st in sorted(stores.items()):
        cond = _ready(st)
        if cond is not None and cond.get("status") == "False":
            f = _store_finding(ctx, st, cond, version)
            bad_stores[name] = f
            findings.append(f)
    for es in sorted(ess or [], key=lambda o: o.name):
        cond = _ready(es)
        if cond is None or cond.get("status") != "False":
            continue
        findings.append(_es_finding(ctx, es, cond, stores, bad_stores, version))
    return from_findings(findings)


def _objects(ctx: Context) -> tuple[list[Obj] | None, dict[str, Obj] | None, str]:
    for es_key, st_key, version in (("externalsecrets", "secretstores", "v1"),
                                    ("externalsecrets_v1beta1", "secretstores_v1beta1", "v1beta1")):
        es_body, st_body = ctx.body(es_key), ctx.body(st_key)
        if es_body is None and st_body is None:
            continue
        ess = [Obj(i) for i in ctx.items(es_key)] if es_body is not None else []
        stores = {o.name: o for o in (Obj(i) for i in ctx.items(st_key))} if st_body is not None else {}
        return ess, stores, version
    return None, None, "v1"


def _ready(o: Obj) -> dict | None:
    for c in as_list(o.status.get("conditions")):
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c
    return None


def _events(ctx: Context, kind: str, name: str) -> list[dict]:
    if not ctx.has("events"):
        return []
    return [e for e in ctx.events_for(kind, name) if e.get("type") == "Warning"]


def _gcpsm(store: Obj | None) -> dict:
    return as_dict(dig(store.raw, "spec", "provider", "gcpsm")) if store is not None else {}


def _gsa(ctx: Context, store: Obj | None) -> tuple[str | None, str | None]:
    """(KSA the store authenticates as, its Google service account) when the store names one."""
    wi = as_dict(dig(_gcpsm(store), "auth", "workloadIdentity"))
    ksa = as_dict(wi.get("serviceAccountRef")).get("name")
    if not ksa:
        return None, None
    try:
        return ksa, ctx.gsa_of(ksa) if ctx.has("serviceaccounts") else None
    except DataUnavailable:
        return ksa, None


def _diagnose(text: str) -> str:
    if _API_OFF.search(text):
        return "api"
    if _IDBIND.search(text) and _404.search(text):
        return "wi-404"
    if _GET_TOKEN.search(text):
        return "wi-binding"
    if _DENIED.search(text):
        return "denied"
    if _SECRET_RES.search(text) and _404.search(text):
        return "missing"
    if _STORE_NOT_READY.search(text):
        return "store"
    return "other"


def _location_checks(ctx: Context, store: Obj) -> list[str]:
    wi = as_dict(dig(_gcpsm(store), "auth", "workloadIdentity"))
    out = []
    t = ctx.target
    for field, actual in (("clusterLocation", t.location), ("clusterName", t.cluster), ("clusterProjectID", t.project)):
        v = wi.get(field)
        if v and actual and v != actual:
            out.append(f"SecretStore {store.name} spec.provider.gcpsm.auth.workloadIdentity.{field} is {v!r} but this "
                       f"cluster's is {actual!r}")
    return out


def _store_finding(ctx: Context, st: Obj, cond: dict, version: str) -> Finding:
    msg = str(cond.get("message") or "")
    evs = _events(ctx, "SecretStore", st.name)
    blob = msg + "\n" + "\n".join(str(e.get("message", "")) for e in evs)
    kind = _diagnose(blob)
    gcp = _gcpsm(st)
    evidence = [f"SecretStore {st.name} ({version}): condition Ready=False, reason {cond.get('reason')}: {clip(msg)}"]
    if gcp:
        wi = as_dict(dig(gcp, "auth", "workloadIdentity"))
        evidence.append(f"provider gcpsm: projectID {gcp.get('projectID')}"
                        + (f", workloadIdentity {json.dumps(wi, sort_keys=True)}" if wi else
                           ", no auth block (the operator's own Kubernetes service account is used)"))
    mism = _location_checks(ctx, st)
    evidence += mism
    for e in evs[-2:]:
        evidence.append(quote_event(e))
    summary, cmds = _fix(ctx, kind, st, None, blob, mism)
    return Finding(
        title=f"SecretStore {st.name} is not ready: {_KIND_TEXT.get(kind, 'the provider rejects it')}",
        message=(f"SecretStore {st.name} cannot authenticate to Google Secret Manager"
                 f" ({_KIND_TEXT.get(kind, 'see the condition below')}), so no ExternalSecret that uses it can sync, and "
                 "the Kubernetes Secrets Airflow reads are never created or updated."),
        resource=k8s_resource(ctx, "SecretStore", st.name),
        evidence=evidence,
        remediation=Remediation(summary, cmds),
    )


_KIND_TEXT = {
    "api": "the Secret Manager API is disabled in the project",
    "wi-404": "the Workload Identity token exchange answers 404 (clusterLocation, clusterName or clusterProjectID do "
              "not name this cluster, or the cluster has no Workload Identity)",
    "wi-binding": "the Google service account cannot be impersonated (no roles/iam.workloadIdentityUser for the "
                  "Kubernetes service account)",
    "denied": "its identity lacks secretmanager.versions.access on the secret",
    "missing": "the secret or version does not exist in Secret Manager",
    "store": "its SecretStore is not ready",
    "other": "the provider returns an error",
}


def _target(es: Obj) -> str:
    return str(dig(es.raw, "spec", "target", "name") or es.name)


def _blocked(ctx: Context, secret: str) -> list[tuple[Pod, str]]:
    if not ctx.has("pods"):
        return []
    out = []
    for p in ctx.pods:
        for cs in p.init_statuses + p.container_statuses:
            state, fields = cs.state
            msg = str(fields.get("message") or "")
            if state == "waiting" and fields.get("reason") in CANNOT_START and \
                    (f'secret "{secret}"' in msg or f"/{secret}" in msg):
                out.append((p, f"{cs.name} waiting {fields.get('reason')}: {clip(msg, 200)}"))
                break
    return out


def _es_finding(ctx: Context, es: Obj, cond: dict, stores: dict[str, Obj], bad_stores: dict[str, Finding],
                version: str) -> Finding:
    msg = str(cond.get("message") or "")
    evs = _events(ctx, "ExternalSecret", es.name)
    blob = msg + "\n" + "\n".join(str(e.get("message", "")) for e in evs)
    ref = as_dict(dig(es.raw, "spec", "secretStoreRef"))
    store_name, store_kind = str(ref.get("name") or ""), str(ref.get("kind") or "SecretStore")
    store = stores.get(store_name) if store_kind == "SecretStore" else None
    kind = _diagnose(blob)
    if kind in ("other", "store") and store_name in bad_stores:
        kind = "store"
    target = _target(es)
    keys = [str(as_dict(d.get("remoteRef")).get("key")) for d in as_list(dig(es.raw, "spec", "data")) if isinstance(d, dict)]
    evidence = [f"ExternalSecret {es.name} ({version}): condition Ready=False, reason {cond.get('reason')}: {clip(msg)}",
                f"spec.secretStoreRef {store_kind}/{store_name}; target Secret {target}; remote keys "
                f"{', '.join(keys) or '(dataFrom)'}; refreshInterval {dig(es.raw, 'spec', 'refreshInterval') or '1h'}"]
    if es.status.get("refreshTime"):
        evidence.append(f"status.refreshTime {es.status.get('refreshTime')} (last successful sync)")
    for e in evs[-2:]:
        evidence.append(quote_event(e))
    blocked = _blocked(ctx, target)
    for p, why in blocked[:6]:
        evidence.append(f"Pod {p.name} ({p.component or 'pod'}) waits for Secret {target}: {why}")
    if kind == "denied" and not _gsa(ctx, store)[1]:
        eso, roles = _eso_identity(ctx)
        if eso and "roles/secretmanager.viewer" in roles and "roles/secretmanager.secretAccessor" not in roles:
            evidence.append(f"project IAM: {eso}, the External Secrets identity, holds roles/secretmanager.viewer, not "
                            "roles/secretmanager.secretAccessor: viewer reads secrets' metadata, not their values "
                            "(secretmanager.versions.access)")
    caused_by = []
    if store_name in bad_stores:
        caused_by.append(finding_id("external-secret-not-synced", k8s_resource(ctx, "SecretStore", store_name)))
    summary, cmds = _fix(ctx, kind, store, es, blob, [])
    who = ", ".join(sorted({p.component or p.name for p, _w in blocked}))
    return Finding(
        title=f"ExternalSecret {es.name} is not synced: {_KIND_TEXT[kind]}"
              + (f"; {len(blocked)} Airflow pod(s) wait for Secret {target}" if blocked else ""),
        message=(f"External Secrets cannot create or refresh Secret {target} from ExternalSecret {es.name} "
                 f"({_KIND_TEXT[kind]})."
                 + (f" The pods that read it ({who}) cannot start: CreateContainerConfigError." if blocked else
                    " Pods that start or restart while it is missing cannot read it.")),
        resource=Resource("ExternalSecret", es.name, ctx.target.namespace, None),
        evidence=evidence,
        remediation=Remediation(summary, cmds),
        caused_by=caused_by,
    )


_ESO_NAME = re.compile(r"(?i)external[-_]?secrets?|(^|[-_.])eso([-_.]|@)")
_SM_ROLES = ("roles/secretmanager.viewer", "roles/secretmanager.secretAccessor", "roles/secretmanager.admin")


def _eso_identity(ctx: Context) -> tuple[str | None, list[str]]:
    """The External Secrets operator's Google service account as the project IAM policy shows it (a
    service account named for the operator holding a Secret Manager role), with the roles it holds;
    (None, []) when the policy does not single one out."""
    e = ctx.entry("project_iam")
    if e is None or not e.ok or not isinstance(e.data, dict):
        return None, []
    held: dict[str, list[str]] = {}
    for b in as_list(e.data.get("bindings")):
        b = as_dict(b)
        role = str(b.get("role") or "")
        if role not in _SM_ROLES:
            continue
        for m in as_list(b.get("members")):
            if isinstance(m, str) and m.startswith("serviceAccount:") and _ESO_NAME.search(m.split(":", 1)[1].split("@")[0]):
                held.setdefault(m.split(":", 1)[1], []).append(role)
    if len(held) != 1:
        return None, []
    email, roles = next(iter(held.items()))
    return email, sorted(roles)


def _fix(ctx: Context, kind: str, store: Obj | None, es: Obj | None, blob: str, mism: list[str]) -> tuple[str, list[str]]:
    n = q(ns(ctx))
    p = str(_gcpsm(store).get("projectID") or project(ctx))
    ksa, gsa = _gsa(ctx, store)
    viewer = _eso_identity(ctx)[0] if not gsa else None
    if viewer:
        gsa = viewer
    member = f"serviceAccount:{gsa}" if gsa else "serviceAccount:ESO_GSA_EMAIL"
    cmds: list[str] = []
    if kind == "api":
        return ("Enable the Secret Manager API in the project that holds the secrets.",
                [f"gcloud services enable secretmanager.googleapis.com --project {q(p)}"])
    if kind == "wi-404" and store is not None:
        wi = {"clusterLocation": ctx.target.location or "LOCATION", "clusterName": ctx.target.cluster or "CLUSTER",
              "clusterProjectID": ctx.target.project or "PROJECT_ID"}
        patch = json.dumps({"spec": {"provider": {"gcpsm": {"auth": {"workloadIdentity": wi}}}}}, separators=(",", ":"))
        return ("Make spec.provider.gcpsm.auth.workloadIdentity name this cluster exactly as GKE does (a regional "
                "cluster's location is the region, not a zone), or drop the block and let the operator's own "
                "annotated service account authenticate.",
                [f"gcloud container clusters list --project {q(ctx.target.project or p)} --format='value(name,location)'",
                 f"kubectl patch secretstore {q(store.name)} --namespace {n} --type merge -p {q(patch)}"])
    if kind == "wi-binding":
        pool = f"{ctx.target.project or p}.svc.id.goog"
        who = f"serviceAccount:{pool}[{ctx.target.namespace}/{ksa or 'KSA'}]"
        return ("Allow the Kubernetes service account to impersonate the Google service account "
                "(roles/iam.workloadIdentityUser).",
                [f"gcloud iam service-accounts add-iam-policy-binding {q(gsa or 'ESO_GSA_EMAIL')} --project {q(p)} "
                 f"--role roles/iam.workloadIdentityUser --member {q(who)}"])
    if kind in ("denied", "missing"):
        secrets = sorted({m.group(2) for m in _SECRET_RES.finditer(blob)})
        if not secrets and es is not None:
            secrets = [str(as_dict(d.get("remoteRef")).get("key")) for d in as_list(dig(es.raw, "spec", "data"))
                       if isinstance(d, dict)][:3]
        if kind == "denied":
            for s in secrets or ["SECRET_NAME"]:
                cmds.append(f"gcloud secrets add-iam-policy-binding {q(s)} --project {q(p)} --member {q(member)} "
                            "--role roles/secretmanager.secretAccessor")
            roles = _eso_identity(ctx)[1] if viewer else []
            if "roles/secretmanager.viewer" in roles and "roles/secretmanager.secretAccessor" not in roles:
                return (f"The operator's identity {viewer} holds roles/secretmanager.viewer on project {p}, which reads "
                        "secrets' metadata but not their values (secretmanager.versions.access is in "
                        "roles/secretmanager.secretAccessor): grant secretAccessor on the secrets, then force a "
                        "refresh.", cmds + _refresh(es, n))
            return ("Grant the identity the store authenticates as roles/secretmanager.secretAccessor on the secrets "
                    "(or the project), then force a refresh.", cmds + _refresh(es, n))
        for s in secrets or ["SECRET_NAME"]:
            cmds.append(f"gcloud secrets versions list {q(s)} --project {q(p)}")
        return ("Create the secret (or fix the remote key / version the ExternalSecret names) in Secret Manager.",
                cmds + _refresh(es, n))
    if kind == "store" and es is not None:
        return ("Fix the SecretStore first (see its finding); the ExternalSecret syncs on its next refresh.",
                [f"kubectl describe secretstore {q(str(dig(es.raw, 'spec', 'secretStoreRef', 'name') or ''))} "
                 f"--namespace {n}"] + _refresh(es, n))
    what = f"externalsecret {q(es.name)}" if es is not None else f"secretstore {q(store.name) if store else ''}"
    return ("Read the condition and events of the object and fix what the provider reports.",
            [f"kubectl describe {what} --namespace {n}"] + _refresh(es, n))


def _refresh(es: Obj | None, n: str) -> list[str]:
    if es is None:
        return []
    return [f"kubectl annotate externalsecret {q(es.name)} --namespace {n} force-sync=$(date +%s) --overwrite"]

