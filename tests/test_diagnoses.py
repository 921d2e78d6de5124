"""Diagnoses an operator can act on, checked on every scenario.

- The scenarios of fixtures/scenarios_diagnoses.py: each expected finding has exactly the declared
  severity, ``caused_by`` chain and remediation commands.
- Every scenario: no command leaves a placeholder for a value the snapshot holds, grants a role the
  snapshot's IAM policies show as granted, or runs ``helm upgrade`` on a release whose objects say
  Argo CD or Flux manages it (the controller would revert it).
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from conftest import doctor_json, scenario, scenario_names
from airflow_gke.remediation import safe_placeholders

import fixtures.build  # noqa: F401  (registers every scenario module first)
from fixtures.scenarios_diagnoses import DIAGNOSES, SCENARIOS as _MINE

for _build in _MINE.values():   # building a scenario declares its exact diagnoses
    _build()

_DOCS: dict[str, dict] = {}


def _doc(run_cli, name: str) -> dict:
    if name not in _DOCS:
        _DOCS[name] = doctor_json(run_cli, name, "--extended")[1]
    return _DOCS[name]


@pytest.mark.parametrize("name", sorted(DIAGNOSES))
def test_exact_severity_causes_and_commands(name, run_cli):
    doc = _doc(run_cli, name)
    by_id = {f["id"]: f for f in doc["findings"]}
    # a finding merged into another of the same cause and fix (members): the same commands, its own
    # resource's name where the merged finding names its first resource
    own: dict[str, str] = {}
    for f in doc["findings"]:
        for m, r in zip(f.get("members", []), f.get("resources", [])):
            by_id.setdefault(m["id"], f)
            own[m["id"]] = r["name"]
    for fid, want in DIAGNOSES[name].items():
        assert fid in by_id, f"{name}: no finding {fid}; got {sorted(by_id)}"
        f = by_id[fid]
        commands = f["remediation"]["commands"]
        if fid != f["id"]:
            first = re.escape(f["resource"]["name"])
            commands = [re.sub(rf"(?<![\w.-]){first}(?![\w-])", own[fid], c) for c in commands]
        got = {"severity": f["severity"], "caused_by": f["caused_by"], "commands": commands}
        assert got == want, f"{name}: {fid}"


# --- what the snapshot holds ------------------------------------------------------------------------

def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


class Snap:
    def __init__(self, name: str) -> None:
        self.root = scenario(name)
        self.meta = json.loads((self.root / "meta.json").read_text())
        ns = self.meta["namespace"]
        k8s = self.root / "k8s"
        self.items: dict[str, list[dict]] = {}
        for kind, rel in (("deployments", f"apis/apps/v1/namespaces/{ns}/deployments.json"),
                          ("statefulsets", f"apis/apps/v1/namespaces/{ns}/statefulsets.json"),
                          ("serviceaccounts", f"api/v1/namespaces/{ns}/serviceaccounts.json"),
                          ("secretstores", f"apis/external-secrets.io/v1/namespaces/{ns}/secretstores.json")):
            body = _load(k8s / rel)
            self.items[kind] = (body or {}).get("items") or []
        gcp = self.root / "gcp"
        p = self.meta.get("project")
        self.cluster = None
        if p and self.meta.get("location") and self.meta.get("cluster"):
            self.cluster = _load(gcp / f"container/v1/projects/{p}/locations/{self.meta['location']}/clusters/"
                                       f"{self.meta['cluster']}.json")
        self.project_policy = _load(gcp / f"cloudresourcemanager/v3/projects/{p}:getIamPolicy.json") if p else None
        self.gcp = gcp
        self.pods = (_load(k8s / f"api/v1/namespaces/{ns}/pods.json") or {}).get("items") or []
        self.nodes = (_load(k8s / "api/v1/nodes.json") or {}).get("items") or []

    def containers(self) -> list[dict]:
        out = []
        for o in self.items["deployments"] + self.items["statefulsets"]:
            spec = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
            out += (spec.get("containers") or []) + (spec.get("initContainers") or [])
        for o in self.pods:
            spec = o.get("spec") or {}
            out += (spec.get("containers") or []) + (spec.get("initContainers") or [])
        return out

    def cloud_sql_instance(self) -> bool:
        """A Cloud SQL Auth Proxy container names its instance (PROJECT:REGION:INSTANCE)."""
        for c in self.containers():
            if "cloud-sql-proxy" in (c.get("image") or "") or "cloudsql" in (c.get("image") or ""):
                words = " ".join((c.get("command") or []) + (c.get("args") or []))
                if re.search(r"[a-z][a-z0-9-]*:[a-z0-9-]+:[a-z][a-z0-9-]*", words):
                    return True
        return False

    def git_repo(self) -> bool:
        return any(e.get("name") in ("GITSYNC_REPO", "GIT_SYNC_REPO") and e.get("value")
                   for c in self.containers() for e in c.get("env") or [])

    def node_zones(self) -> bool:
        return any("topology.kubernetes.io/zone" in ((n.get("metadata") or {}).get("labels") or {}) for n in self.nodes)

    def pools(self) -> list[str]:
        return [np["name"] for np in (self.cluster or {}).get("nodePools") or []]

    def annotated_gsas(self) -> set[str]:
        return {sa["metadata"].get("annotations", {}).get("iam.gke.io/gcp-service-account")
                for sa in self.items["serviceaccounts"]} - {None}

    def policy_of(self, cmd: list[str]) -> dict | None:
        """The IAM policy a ``gcloud ... add-iam-policy-binding`` command changes, when the snapshot holds it."""
        p = self.meta.get("project")
        if cmd[:3] == ["gcloud", "projects", "add-iam-policy-binding"]:
            return _load(self.gcp / f"cloudresourcemanager/v3/projects/{cmd[3]}:getIamPolicy.json")
        if cmd[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]:
            return _load(self.gcp / f"storage/storage/v1/b/{cmd[4].removeprefix('gs://').rstrip('/')}/iam.json")
        if cmd[:4] == ["gcloud", "iam", "service-accounts", "add-iam-policy-binding"] and p:
            return _load(self.gcp / f"iam/v1/projects/{p}/serviceAccounts/{cmd[4]}:getIamPolicy.json")
        return None

    def gitops(self) -> str | None:
        """Argo CD or Flux, when the release's workload objects say so (deployers-iam-autopilot rules)."""
        for o in self.items["deployments"] + self.items["statefulsets"]:
            md = o["metadata"]
            labels, ann = md.get("labels") or {}, md.get("annotations") or {}
            if "helm.toolkit.fluxcd.io/name" in labels:
                return "Flux"
            if "argocd.argoproj.io/tracking-id" in ann or (
                    labels.get("app.kubernetes.io/instance") and "meta.helm.sh/release-name" not in ann):
                return "Argo CD"
        return None


def _placeholders(snap: Snap, finding: dict) -> dict[str, bool]:
    """Placeholder token -> does the snapshot hold the value it stands for."""
    m = snap.meta
    evidence = " ".join(finding["evidence"])
    pools_named = set(re.findall(r"node pool ([a-z][a-z0-9-]*)", evidence + " " + finding["message"]))
    return {
        "PROJECT_ID": bool(m.get("project")), "PROJECT": bool(m.get("project")),
        "LOCATION": bool(m.get("location")), "CLUSTER": bool(m.get("cluster")),
        "RELEASE": bool(m.get("release")), "NAMESPACE": True,
        "POOL": len(snap.pools()) == 1 or len(pools_named & set(snap.pools())) == 1,
        "GSA_EMAIL": bool(snap.annotated_gsas()),
        "ESO_GSA_EMAIL": any("external-secrets" in mem or "eso" in mem.split("@")[0]
                             for b in (snap.project_policy or {}).get("bindings") or []
                             if b.get("role", "").startswith("roles/secretmanager.") for mem in b.get("members") or []),
    }


def _angle_placeholders(snap: Snap, finding: dict) -> dict[str, bool]:
    """``<placeholder>`` -> does the snapshot hold the value it stands for (outside quotes the
    runner prints them as TOKENS: ``<cloud-sql-instance>`` -> ``CLOUD_SQL_INSTANCE``)."""
    words = _placeholders(snap, finding)
    return {
        "<project>": words["PROJECT"], "<release>": words["RELEASE"], "<namespace>": True, "<ns>": True,
        "<pool>": words["POOL"], "<current zones>": words["POOL"] and snap.cluster is not None,
        "<cloud-sql-instance>": snap.cloud_sql_instance(), "<git repository URL>": snap.git_repo(),
        "<repository URL>": snap.git_repo(), "<a zone with nodes>": snap.node_zones(),
        "<gsa>": words["GSA_EMAIL"], "<cluster>": words["CLUSTER"],
    }


def _lines(commands: list[str]) -> list[str]:
    out = []
    for c in commands:
        for line in c.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _walk(run_cli):
    for name in scenario_names():
        doc = _doc(run_cli, name)
        snap = Snap(name)
        for f in doc["findings"]:
            yield name, snap, f, _lines(f["remediation"]["commands"])


def test_no_placeholder_for_a_value_the_snapshot_holds(run_cli):
    bad = []
    for name, snap, f, lines in _walk(run_cli):
        angle = _angle_placeholders(snap, f)
        known = {**{safe_placeholders(k): v for k, v in angle.items()}, **_placeholders(snap, f)}
        for line in lines:
            for tok in re.findall(r"(?<![\w$./=-])[A-Z][A-Z0-9_]{2,}(?![\w])", line):
                if known.get(tok):
                    bad.append(f"{name}: {f['id']}: {tok} in `{line[:160]}`")
        for line in lines:
            for tok in re.findall(r"<[a-zA-Z][^<>]{0,60}>", line):
                if angle.get(tok):
                    bad.append(f"{name}: {f['id']}: {tok} in `{line[:160]}`")
    assert not bad, "\n".join(bad)


def test_no_grant_of_a_role_already_granted(run_cli):
    bad = []
    for name, snap, f, lines in _walk(run_cli):
        for line in lines:
            if "add-iam-policy-binding" not in line:
                continue
            try:
                argv = shlex.split(line)
            except ValueError:
                continue
            opts = {}
            for i, a in enumerate(argv):
                if a.startswith("--") and "=" in a:
                    k, v = a[2:].split("=", 1)
                    opts[k] = v
                elif a.startswith("--") and i + 1 < len(argv):
                    opts[a[2:]] = argv[i + 1]
            policy = snap.policy_of(argv)
            if not policy or "member" not in opts or "role" not in opts:
                continue
            for b in policy.get("bindings") or []:
                if b.get("role") == opts["role"] and opts["member"] in (b.get("members") or []) and not b.get("condition"):
                    bad.append(f"{name}: {f['id']}: grants {opts['role']} to {opts['member']}, already granted: `{line}`")
    assert not bad, "\n".join(bad)


def test_the_walkers_detect_what_they_guard(run_cli):
    """The three walkers are not vacuous: on a fabricated finding they flag each kind of fault."""
    snap = Snap("task-pods-selector-pool-full")
    f = {"evidence": ["node pool airflow-tasks: machine e2-standard-4"], "message": ""}
    known = _placeholders(snap, f)
    assert known["POOL"] and known["PROJECT_ID"] and known["RELEASE"]
    angle = _angle_placeholders(snap, f)
    assert angle["<project>"] and angle["<a zone with nodes>"] and angle["<current zones>"]
    assert not angle["<cloud-sql-instance>"]
    assert _angle_placeholders(Snap("task-pods-sidecar-never-exits"), f)["<cloud-sql-instance>"]
    assert safe_placeholders("gcloud sql instances describe <cloud-sql-instance>").endswith(" CLOUD_SQL_INSTANCE")
    assert snap.gitops() is None
    policy = snap.policy_of(shlex.split("gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs "
                                        "--member serviceAccount:x --role roles/storage.objectAdmin"))
    assert policy is not None and any(b["role"] == "roles/storage.objectAdmin" for b in policy["bindings"])


def test_log_evidence_quotes_telling_lines_not_tracebacks(run_cli):
    """Log lines in evidence are the telling ones: no traceback headers or frames, at most eight per
    finding, none longer than a screen line or two."""
    bad = []
    scaffold = re.compile(r'Traceback \(most recent call last\)|^\s*(previous )?log [^:]+: \s*File "|'
                          r"The above exception was the direct cause|During handling of the above exception")
    for name, _snap, f, _lines in _walk(run_cli):
        logs = [e for e in f["evidence"] if re.match(r"(previous )?log ", e)]
        if len(logs) > 8:
            bad.append(f"{name}: {f['id']}: {len(logs)} log lines")
        for e in logs:
            if scaffold.search(e) or len(e) > 600:
                bad.append(f"{name}: {f['id']}: {e[:120]}")
    assert not bad, "\n".join(bad)
def test_no_helm_upgrade_for_a_release_argo_cd_or_flux_manages(run_cli):
    bad = []
    for name, snap, f, lines in _walk(run_cli):
        tool = snap.gitops()
        if tool is None:
            continue
        for line in lines:
            if line.startswith("helm upgrade") or line.startswith("helm install"):
                bad.append(f"{name} ({tool}): {f['id']}: `{line[:160]}`")
    assert not bad, "\n".join(bad)


