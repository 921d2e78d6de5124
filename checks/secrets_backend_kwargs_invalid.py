"""``[secrets] backend_kwargs`` of Airflow's Google Secret Manager backend
(``CloudSecretManagerBackend``) cannot work: it is not valid JSON (Airflow's ``conf.getjson``
refuses it, so every component fails to load the secrets backend), its ``gcp_key_path`` names a file
no volume of the container provides (every lookup fails), its ``project_id`` names no project (not a
project id at all, or Secret Manager answers ``CONSUMER_INVALID`` for it: the project cannot be found
or was deleted), or it carries a whole service account key in ``gcp_keyfile_dict`` (a key in a
ConfigMap anyone who can read the namespace's ConfigMaps gets: a warning). A ``project_id`` Secret
Manager only refuses (403 ``... (or it may not exist)``) is undecided, never passed: the reason says
what settles it. Judged on configuration: it runs on a plan too."""
from __future__ import annotations

import posixpath

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import CHART_KEY, clip, masked, q
from airflow_gke.views import Context, DataUnavailable, as_dict, as_list, component_pods, template_spec
from airflow_gke.views.secrets import BackendUse, backend_uses, prefixes, secret_ids, valid_project

from ._secrets import _components, _set_kwargs, _where


@check(id="secrets-backend-kwargs-invalid", title="The Secret Manager secrets backend's backend_kwargs can work",
       severity="error", category=Category.SECRETS, needs=("configmaps",),
       uses=("pods", "deployments", "statefulsets", "sm_secrets"), evidence="config",
       severity_note="a service account key in gcp_keyfile_dict is a warning")
def run(ctx: Context) -> Result:
    """backend_kwargs of CloudSecretManagerBackend is invalid JSON, names a key file no volume mounts, or holds a key."""
    uses = backend_uses(ctx)
    if not uses:
        return skipped("not applicable: no component uses the Secret Manager secrets backend")
    findings: list[Finding] = []
    invalid = [u for u in uses if u.json_error is not None]
    if invalid:
        findings.append(_invalid_json(ctx, invalid))
    missing: dict[str, list[tuple[BackendUse, str]]] = {}
    keyfile: list[BackendUse] = []
    for u in uses:
        kw = u.kwargs or {}
        path = kw.get("gcp_key_path")
        if isinstance(path, str) and path.strip():
            why = _not_provided(ctx, u.component, path.strip())
            if why:
                missing.setdefault(path.strip(), []).append((u, why))
        if kw.get("gcp_keyfile_dict"):
            keyfile.append(u)
    for path, hits in missing.items():
        findings.append(_missing_key_file(ctx, path, hits))
    if keyfile:
        findings.append(_key_in_config(ctx, keyfile))
    undecided: list[str] = []
    by_project: dict[str, list[BackendUse]] = {}
    for u in uses:
        pid = (u.kwargs or {}).get("project_id")
        if pid:   # the provider's own test (`if project_id:`): "" or null means the credentials' project
            by_project.setdefault(str(pid).strip(), []).append(u)
    for pid, pusers in by_project.items():
        f = _project_id(ctx, pid, pusers, undecided)
        if f is not None:
            findings.append(f)
    if findings:
        return from_findings(findings)
    if undecided:
        raise DataUnavailable("error", "; ".join(undecided), ("sm_secrets",))
    if all(u.kwargs_opaque for u in uses):
        return skipped("backend_kwargs comes from a Secret or a command (" + uses[0].kwargs_source
                       + "): not read, so it cannot be judged")
    return passed()


def _invalid_json(ctx: Context, uses: list[BackendUse]) -> Finding:
    u = uses[0]
    evidence = [f"{u.kwargs_source}: backend_kwargs = {masked(clip(u.kwargs_text or '', 300))}",
                f"not valid JSON: {u.json_error}",
                f"[secrets] backend = CloudSecretManagerBackend for {_components(uses)} ({u.backend_source})"]
    if u.repaired is not None:
        fixed = {k: v for k, v in u.repaired.items()}
        summary = ("Write backend_kwargs as JSON (double quotes, true/false/null): the value below is the same "
                   "settings in JSON.")
        cmds = _set_kwargs(ctx, uses, fixed)
        evidence.append("it reads as a Python dict literal (single quotes or True/False/None), which JSON is not")
    else:
        summary = ("Write backend_kwargs as one JSON object; the command sets the backend's default prefixes: "
                   "put your own prefixes and project_id in it.")
        cmds = _set_kwargs(ctx, uses, {"connections_prefix": "airflow-connections",
                                       "variables_prefix": "airflow-variables", "sep": "-"})
    return Finding(
        title="[secrets] backend_kwargs of the Secret Manager backend is not valid JSON",
        message=(f"{_components(uses)} configure Airflow's Google Secret Manager backend with a backend_kwargs that "
                 "is not a JSON object. Airflow parses it with `conf.getjson` when it loads the secrets backend and "
                 "refuses it (`Unable to parse [secrets] 'backend_kwargs' as valid json`), so the components fail "
                 "when they start and no connection or variable is read from Secret Manager."),
        resource=_where(ctx, uses),
        evidence=evidence,
        remediation=Remediation(summary=summary, commands=cmds),
    )


def _mounts(ctx: Context, component: str) -> tuple[list[dict], list[dict]] | None:
    """(volumeMounts of the Airflow container, volumes of the pod) for a component, or None."""
    spec = None
    for p in component_pods(ctx, component):
        spec = p.spec
        break
    if spec is None:
        spec = template_spec(ctx, component)
    if spec is None:
        return None
    name = {"task": "base"}.get(component, component)
    cs = [c for c in as_list(spec.get("containers")) if isinstance(c, dict)]
    main = next((c for c in cs if c.get("name") in (name, "base", "worker", "airflow")), cs[0] if cs else None)
    if main is None:
        return None
    return ([m for m in as_list(main.get("volumeMounts")) if isinstance(m, dict)],
            [v for v in as_list(spec.get("volumes")) if isinstance(v, dict)])


def _not_provided(ctx: Context, component: str, path: str) -> str | None:
    """Why ``path`` does not exist in the component's Airflow container, or None when a volume
    provides it (or the pod spec cannot be read: nothing to judge)."""
    found = _mounts(ctx, component)
    if found is None:
        return None
    mounts, volumes = found
    path = posixpath.normpath(path)
    by_name = {str(v.get("name")): v for v in volumes}
    for m in mounts:
        mp = posixpath.normpath(str(m.get("mountPath") or "/nonexistent"))
        if path != mp and not path.startswith(mp.rstrip("/") + "/"):
            continue
        vol = by_name.get(str(m.get("name")), {})
        src = as_dict(vol.get("secret")) or as_dict(vol.get("configMap"))
        items = [as_dict(i) for i in as_list(src.get("items"))]
        sub = m.get("subPath")
        rel = posixpath.relpath(path, mp) if path != mp else (sub or "")
        if items and not sub and not any(posixpath.normpath(str(i.get("path"))) == rel for i in items):
            kind = "Secret" if vol.get("secret") else "ConfigMap"
            return (f"volume {m.get('name')} ({kind} {src.get('secretName') or src.get('name')}) is mounted at {mp} "
                    f"with items {[i.get('path') for i in items]}, none of them {rel}")
        return None
    shown = ", ".join(sorted(str(m.get("mountPath")) for m in mounts)) or "none"
    return f"no volume of the {component if component != 'task' else 'task pod'} container is mounted at or above " \
           f"{posixpath.dirname(path) or '/'} (its mounts: {shown})"


def _missing_key_file(ctx: Context, path: str, hits: list[tuple[BackendUse, str]]) -> Finding:
    uses = [u for u, _ in hits]
    evidence = [f"{hits[0][0].kwargs_source}: gcp_key_path = {path}"]
    evidence += [f"{u.label}: {why}" for u, why in hits[:4]]
    comps = _components(uses)
    rest = {k: v for k, v in (uses[0].kwargs or {}).items() if k != "gcp_key_path"}
    keys = sorted({CHART_KEY.get(u.component, u.component) for u in uses})
    return Finding(
        title=f"The Secret Manager backend's gcp_key_path {path} does not exist in {comps}",
        message=(f"backend_kwargs tells CloudSecretManagerBackend to authenticate with the key file {path}, but no "
                 f"volume provides that file in the containers of {comps}: every connection, variable and config "
                 "lookup through Secret Manager fails when the credentials are loaded (unless the image itself "
                 "contains the file, which would also put a key in the image). Without gcp_key_path the backend "
                 "uses the pod's own identity (Workload Identity), which needs no key at all."),
        resource=_where(ctx, uses),
        evidence=evidence,
        remediation=Remediation(
            summary=("Prefer Workload Identity: drop gcp_key_path so the backend uses the pod's Google identity "
                     "(which needs roles/secretmanager.secretAccessor on the secrets). To keep the key, mount the Secret that "
                     f"holds it at {posixpath.dirname(path)} in {', '.join(keys)} (extraVolumes/extraVolumeMounts)."),
            commands=_set_kwargs(ctx, uses, rest)),
    )


def _key_in_config(ctx: Context, uses: list[BackendUse]) -> Finding:
    kd = (uses[0].kwargs or {}).get("gcp_keyfile_dict")
    email = kd.get("client_email") if isinstance(kd, dict) else None
    key_id = kd.get("private_key_id") if isinstance(kd, dict) else None
    rest = {k: v for k, v in (uses[0].kwargs or {}).items() if k != "gcp_keyfile_dict"}
    if isinstance(kd, dict) and kd.get("project_id") and "project_id" not in rest:
        rest["project_id"] = kd["project_id"]
    cmds = _set_kwargs(ctx, uses, rest)
    if email:
        cmds.append("# after the components use their own identity, delete the exposed key (it cannot be "
                    "un-leaked):")
        if isinstance(key_id, str) and key_id and "redacted" not in key_id:
            cmds.append(f"gcloud iam service-accounts keys delete {q(key_id)} --iam-account {q(str(email))}")
        else:
            cmds.append(f"gcloud iam service-accounts keys list --iam-account {q(str(email))} --managed-by user")
    return Finding(
        title="A service account key sits in [secrets] backend_kwargs (gcp_keyfile_dict)",
        message=(f"backend_kwargs of the Secret Manager backend ({_components(uses)}) holds a whole service account "
                 "key in gcp_keyfile_dict. It lives in the chart's ConfigMap (or a pod's env), which anyone allowed to "
                 "read ConfigMaps or pods in the namespace can read, never expires and is not rotated. Workload "
                 "Identity gives the components a Google identity without any key."),
        resource=_where(ctx, uses),
        evidence=[f"{uses[0].kwargs_source}: backend_kwargs has gcp_keyfile_dict"
                  + (f" for {email}" if email else "") + " (the key itself is masked and never shown)",
                  f"[secrets] backend = CloudSecretManagerBackend for {_components(uses)}"],
        severity="warning",
        remediation=Remediation(
            summary=("Remove gcp_keyfile_dict so the backend uses the pods' Workload Identity (grant that identity "
                     "roles/secretmanager.secretAccessor), then delete the key."),
            commands=cmds),
    )


def _project_id(ctx: Context, pid: str, uses: list[BackendUse], undecided: list[str]) -> Finding | None:
    """A ``project_id`` that names no project: not a project id, or one Secret Manager cannot find."""
    target = ctx.target.project
    if pid == target:
        return None
    if valid_project(pid):
        e = ctx.entry("sm_secrets", project=pid)
        if e is None or e.ok or e.status not in (400, 403, 404):
            return None   # exists (it answered), or not read: another check says what was not read
        if e.error_reason != "CONSUMER_INVALID":
            undecided.append(f"backend_kwargs project_id {pid}: Secret Manager answered HTTP {e.status} for its "
                             f"secrets ({clip(e.message, 160)}), which a project that does not exist and one this run "
                             f"may not list both get; `gcloud projects describe {pid}` by someone with access to it "
                             "settles it, or grant this run secretmanager.secrets.list there")
            return None
        why = (f"Secret Manager answered HTTP {e.status} CONSUMER_INVALID for project {pid} ({clip(e.message, 160)}): "
               "the project cannot be found, or was deleted")
    else:
        why = (f"{pid!r} is not a project id (6 to 30 lower-case letters, digits and hyphens, starting with a "
               "letter) nor a project number: the backend builds secret names projects/<project_id>/secrets/... "
               "from it, which name nothing")
    fixed = _right_project(ctx, pid, uses)
    value = {k: v for k, v in (uses[0].kwargs or {}).items() if k != "project_id"}
    if fixed and fixed != target:
        value["project_id"] = fixed
    evidence = [f"{uses[0].kwargs_source}: project_id = {pid}", why,
                f"[secrets] backend = CloudSecretManagerBackend for {_components(uses)} ({uses[0].backend_source})"]
    if fixed:
        evidence.append(fixed_why(ctx, pid, fixed, uses))
        summary = (f"Point the backend at project {fixed}" + (" (the pods' own project: project_id dropped)"
                                                               if fixed == target else "")
                   + ", where the secrets are.")
        cmds = _set_kwargs(ctx, uses, value)
    else:
        summary = ("Set project_id to the project that holds the secrets (gcloud projects list shows the ids you may "
                   "see), or drop it to use the pods' own project.")
        cmds = ["gcloud projects list --format='table(projectId,name)'"]
    return Finding(
        title=f"The Secret Manager backend's project_id {pid} names no project",
        message=(f"{_components(uses)} look up connections, variables and config in Secret Manager project {pid}, "
                 "which does not exist: every lookup fails (the backend logs `PermissionDenied ... (or it may not "
                 "exist)`), so tasks fail with the connection or variable not defined."),
        resource=_where(ctx, uses),
        evidence=evidence,
        remediation=Remediation(summary=summary, commands=cmds),
    )


def _right_project(ctx: Context, pid: str, uses: list[BackendUse]) -> str | None:
    """The project the backend most likely means: ``projects/<id>`` written in full, else the
    diagnosed project when it holds secrets under the backend's prefixes."""
    stripped = pid.strip().removeprefix("projects/").strip("/")
    if stripped != pid and valid_project(stripped):
        return stripped
    target = ctx.target.project
    if target is None:
        return None
    try:
        ids = secret_ids(ctx, target)
    except DataUnavailable:
        return None
    pre = tuple(prefixes(uses))
    return target if pre and any(s.startswith(pre) for s in ids) else None


def fixed_why(ctx: Context, pid: str, fixed: str, uses: list[BackendUse]) -> str:
    if fixed != ctx.target.project:
        return f"{pid} is the resource name of project {fixed}, not its id"
    try:
        n = sum(1 for s in secret_ids(ctx, fixed) if s.startswith(tuple(prefixes(uses))))
    except DataUnavailable:
        n = 0
    return f"project {fixed} (the pods' own) holds {n} secret(s) under the backend's prefixes ({', '.join(prefixes(uses))})"
