"""deploy/: the image, the manifests and the Helm hook values. Every Kubernetes object validates
against the Kubernetes schemas (kubernetes-validate, strict); the RBAC is what `airflow-gke
permissions` generates; the Helm values are rendered the way the chart's extraObjects template
does (toYaml, then tpl with the release) by substituting the three template expressions they
use, and validated too; the Jobs' command lines are accepted by the real CLI."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MANIFESTS = DEPLOY / "manifests"
HELM = DEPLOY / "helm" / "values-airflow-gke.yaml"
# the oldest GKE minor still in support when this was written, and the newest the library knows
_LATEST = min(Version("1.35"), Version(kv_utils.latest_version()))
VERSIONS = sorted({"1.30", f"{_LATEST.major}.{_LATEST.minor}"})


def generator():
    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def docs_of(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_validate(obj: dict) -> None:
    for v in VERSIONS:
        kubernetes_validate.validate(obj, v, strict=True)


MANIFEST_FILES = ["rbac.yaml", "config.yaml", "job.yaml", "probe-job.yaml", "cronjob.yaml", "cronjob-rbac.yaml"]


@pytest.mark.parametrize("name", MANIFEST_FILES)
def test_manifests_validate_against_the_kubernetes_schemas(name):
    docs = docs_of(MANIFESTS / name)
    assert docs
    for d in docs:
        k8s_validate(d)


def test_the_validation_is_strict():
    job = docs_of(MANIFESTS / "job.yaml")[0]
    job["spec"]["template"]["spec"]["serviceAcountName"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(job)


def test_generated_files_are_current():
    """deploy/manifests/rbac.yaml and deploy/helm/values-airflow-gke.yaml are generated: a check that
    reads new data changes them. Fix a failure with: python deploy/generate.py"""
    gen = generator()
    for path, text in gen.outputs().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `python deploy/generate.py`"
    assert gen.main(["--check"]) == 0


def test_rbac_is_the_permissions_command_output_bound_to_the_jobs_account(run_cli):
    r = run_cli("permissions", "--output", "yaml", "--namespace", "airflow")
    want = {d["kind"]: d["rules"] for d in yaml.safe_load_all(r.out) if d}
    docs = {d["kind"]: d for d in docs_of(MANIFESTS / "rbac.yaml")}
    assert {k: docs[k]["rules"] for k in want} == want
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    sa = docs["ServiceAccount"]["metadata"]
    for b, role in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        assert docs[b]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role,
                                      "name": docs[role]["metadata"]["name"]}
        assert docs[b]["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
    job = docs_of(MANIFESTS / "job.yaml")[0]["spec"]["template"]["spec"]
    assert job["serviceAccountName"] == sa["name"]
    # read-only: no write verb anywhere, never Secrets
    for kind in ("Role", "ClusterRole"):
        for rule in docs[kind]["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"} and "secrets" not in rule["resources"]


def test_kustomization_lists_existing_files_and_the_jobs_image():
    k = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert k["kind"] == "Kustomization" and k["namespace"] == "airflow"
    assert all((MANIFESTS / r).is_file() for r in k["resources"])
    assert set(k["resources"]) == {"rbac.yaml", "config.yaml", "job.yaml"}
    images = {i["name"] for i in k["images"]}
    for name in ("job.yaml", "probe-job.yaml", "cronjob.yaml"):
        c = pod_spec(docs_of(MANIFESTS / name)[0])["containers"][0]
        assert c["image"].rsplit(":", 1)[0] in images
    # the optional files, commented out, name files that exist
    optional = re.findall(r"(?m)^# - ([\w.-]+\.yaml)", (MANIFESTS / "kustomization.yaml").read_text())
    assert optional == ["probe-job.yaml", "cronjob-rbac.yaml", "cronjob.yaml"]
    assert all((MANIFESTS / f).is_file() for f in optional)


def pod_spec(obj: dict) -> dict:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return spec["template"]["spec"]


def cli_accepts(args: list[str]) -> dict:
    """Parse a container's args with the real `airflow-gke` CLI (env references filled in)."""
    from airflow_gke.cli import cli

    assert args[0] == "doctor"
    filled = [re.sub(r"\$\(([A-Z_]+)\)", "airflow", a) for a in args[1:]]
    ctx = cli.commands["doctor"].make_context("doctor", filled)
    return ctx.params


@pytest.mark.parametrize("name", ["job.yaml", "probe-job.yaml"])
def test_the_jobs_command_lines_are_accepted_by_the_cli(name):
    c = docs_of(MANIFESTS / name)[0]["spec"]["template"]["spec"]["containers"][0]
    params = cli_accepts(c["args"])
    assert params["output"] == "json" and params["config_path"] == "/etc/airflow-gke/config.yaml"
    if name == "probe-job.yaml":
        assert params["probe"] is True and params["only"] == ("gcs-log-write-denied",)
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"AIRFLOW_GKE_POD_NAMESPACE": "metadata.namespace",
                   "AIRFLOW_GKE_POD_SERVICE_ACCOUNT": "spec.serviceAccountName",
                   "AIRFLOW_GKE_NODE_NAME": "spec.nodeName"}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/etc/airflow-gke"] == "config"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]


def test_the_configmap_holds_a_valid_config_file(tmp_path):
    from airflow_gke import config

    cm = docs_of(MANIFESTS / "config.yaml")[0]
    p = tmp_path / "config.yaml"
    p.write_text(cm["data"]["config.yaml"])
    cfg = config.load(p)
    assert cfg.doctor["fail-on"] == "error" and {"project", "location", "cluster"} <= set(cfg.doctor)
    job = docs_of(MANIFESTS / "job.yaml")[0]["spec"]["template"]["spec"]
    vol = next(v for v in job["volumes"] if v["name"] == "config")
    assert vol["configMap"]["name"] == cm["metadata"]["name"]


# --- the Helm values, rendered as the chart renders extraObjects ---------------------------
def render_extra_objects(release: str, namespace: str) -> list[dict]:
    """The chart does `tpl (toYaml $obj) $`: the values only use the release name and namespace."""
    values = yaml.safe_load(HELM.read_text())
    out = []
    for obj in values["extraObjects"]:
        text = yaml.safe_dump(obj, sort_keys=False)
        text = text.replace("{{ .Release.Name }}", release).replace("{{ .Release.Namespace }}", namespace)
        assert "{{" not in text, f"a template expression this test does not render: {text[text.index('{{'):][:80]}"
        out.append(yaml.safe_load(text))
    return out


def test_helm_values_render_to_valid_objects_wired_together():
    objs = render_extra_objects("airflow-prod", "data-platform")
    for o in objs:
        k8s_validate(o)
    by = {o["kind"]: o for o in objs}
    assert set(by) == {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Job"}
    name = "airflow-prod-airflow-gke-doctor"
    assert all(o["metadata"].get("namespace", "data-platform") == "data-platform" for o in objs)
    assert by["ServiceAccount"]["metadata"]["name"] == name
    assert by["ClusterRole"]["metadata"]["name"] == f"{name}-data-platform"      # unique per release and namespace
    for b in ("RoleBinding", "ClusterRoleBinding"):
        assert by[b]["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "data-platform"}]
        assert by[b]["roleRef"]["name"] == by[b.replace("Binding", "")]["metadata"]["name"]
    job = by["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert job["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == name
    assert next(v for v in spec["volumes"] if v["name"] == "config")["configMap"]["name"] == by["ConfigMap"]["metadata"]["name"]
    # the RBAC and the command are the plain manifests' (one source: deploy/generate.py)
    plain = {d["kind"]: d for d in docs_of(MANIFESTS / "rbac.yaml")}
    assert by["Role"]["rules"] == plain["Role"]["rules"] and by["ClusterRole"]["rules"] == plain["ClusterRole"]["rules"]
    plain_job = docs_of(MANIFESTS / "job.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    assert spec["containers"][0]["args"] == plain_job["args"]


def test_dockerfile_builds_the_package_as_a_non_root_entrypoint():
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]
    froms = [x.split()[1] for x in lines if x.startswith("FROM ")]
    assert froms and all(re.fullmatch(r"python:3\.\d+-slim", f) for f in froms)
    req = re.search(r'^requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert req and all(int(f.split(".")[1].split("-")[0]) >= int(req.group(1)) for f in froms)
    for x in lines:
        if x.startswith("COPY ") and "--from=" not in x:
            for src in x.split()[1:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    assert 'ENTRYPOINT ["airflow-gke"]' in lines
    user = next(x for x in lines if x.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    job_uid = docs_of(MANIFESTS / "job.yaml")[0]["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert user.split()[1].split(":")[0] == str(job_uid)


# --- the CronJob: `doctor -A` on a schedule, reports to Cloud Storage ---------------------------
def test_cronjob_runs_doctor_all_namespaces_into_gs_and_never_overlaps():
    cj = docs_of(MANIFESTS / "cronjob.yaml")[0]
    assert cj["kind"] == "CronJob" and cj["apiVersion"] == "batch/v1"
    spec = cj["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"] == "Etc/UTC"
    assert len(spec["schedule"].split()) == 5
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    pod = pod_spec(cj)
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    params = cli_accepts(c["args"])
    assert params["all_namespaces"] is True and params["output"] == "json" and params["fail_on"] == "never"
    assert params["config_path"] == "/etc/airflow-gke/config.yaml"
    (spec_,) = params["output_file"]
    assert spec_ == "gs://BUCKET/airflow-gke/"
    # the placeholder is refused with a clear message until it is replaced; a bucket name is accepted
    from airflow_gke.errors import UserError
    from airflow_gke.report.formats import gcs_locations, output_targets

    with pytest.raises(UserError, match="'BUCKET' is not a Cloud Storage bucket name"):
        output_targets("json", (spec_,))
    (loc,) = gcs_locations(output_targets("json", (spec_.replace("BUCKET", "acme-airflow-reports"),)))
    assert (loc.bucket, loc.prefix) == ("acme-airflow-reports", "airflow-gke")
    cm = docs_of(MANIFESTS / "config.yaml")[0]
    assert next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"] == cm["metadata"]["name"]


def test_cronjob_rbac_is_permissions_all_namespaces_bound_to_its_account(run_cli):
    r = run_cli("permissions", "--output", "yaml", "--all-namespaces")
    want = [d for d in yaml.safe_load_all(r.out) if d]
    assert [d["kind"] for d in want] == ["ClusterRole"]          # -A: one ClusterRole, no Role
    docs = {d["kind"]: d for d in docs_of(MANIFESTS / "cronjob-rbac.yaml")}
    assert set(docs) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    assert docs["ClusterRole"]["rules"] == want[0]["rules"]
    # every rule of the namespaced Job, here cluster-wide (doctor -A reads every namespace)
    plain = {d["kind"]: d for d in docs_of(MANIFESTS / "rbac.yaml")}
    granted = {(g, res, v) for rule in docs["ClusterRole"]["rules"] for g in rule["apiGroups"]
               for res in rule["resources"] for v in rule["verbs"]}
    for kind in ("Role", "ClusterRole"):
        for rule in plain[kind]["rules"]:
            assert {(g, res, v) for g in rule["apiGroups"] for res in rule["resources"] for v in rule["verbs"]} <= granted
    assert {v for _g, _r, v in granted} <= {"get", "list", "watch"}       # read-only
    assert not any(res == "secrets" for _g, res, _v in granted)
    sa = docs["ServiceAccount"]["metadata"]
    assert sa["annotations"]["iam.gke.io/gcp-service-account"] == "airflow-gke-fleet@PROJECT_ID.iam.gserviceaccount.com"
    assert "PLACEHOLDER: replace PROJECT_ID" in (MANIFESTS / "cronjob-rbac.yaml").read_text()
    b = docs["ClusterRoleBinding"]
    assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": docs["ClusterRole"]["metadata"]["name"]}
    assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
    assert pod_spec(docs_of(MANIFESTS / "cronjob.yaml")[0])["serviceAccountName"] == sa["name"]
