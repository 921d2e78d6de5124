"""Helpers of the per-check test modules (tests/checks/test_<check>.py): the doctor's JSON report on
a fixture scenario (run once per scenario and flags, then shared), and ways to pick findings, pods
and texts out of it."""
from __future__ import annotations

import json

from conftest import doctor_json, findings_of, scenario

_DOCS: dict[tuple, tuple[int, dict]] = {}


def report(run_cli, name: str, *flags: str) -> dict:
    """The doctor's JSON report on scenario ``name`` (run once per scenario and flags)."""
    key = (name, flags)
    if key not in _DOCS:
        _DOCS[key] = doctor_json(run_cli, name, *flags)
    return _DOCS[key][1]


def reports(run_cli, *default_flags: str):
    """``get(name, *flags)``: the report on a scenario, with ``default_flags`` when none are given."""
    def get(name: str, *flags: str) -> dict:
        return report(run_cli, name, *(flags or default_flags))
    return get


P = "acme-data-prod"


GSA = f"airflow@{P}.iam.gserviceaccount.com"


NODE_SA = f"gke-nodes@{P}.iam.gserviceaccount.com"


COMPUTE_SA = "481516234200-compute@developer.gserviceaccount.com"


def one(d: dict, check: str) -> dict:
    fs = findings_of(d, check)
    assert len(fs) == 1, [f["resource"] for f in fs]
    return fs[0]


def has(lines: list[str], *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in lines)


def only(d: dict, check: str) -> dict:
    fs = findings_of(d, check)
    assert len(fs) == 1, [f["resource"] for f in fs]
    return fs[0]


def text(f: dict) -> str:
    return "\n".join([f["title"], f["message"], *f["evidence"], f["remediation"]["summary"],
                      *f["remediation"]["commands"]])


def cmds(f: dict) -> str:
    return "\n".join(f["remediation"]["commands"])


HEALTHY = ("healthy-af2-celery", "healthy-minimal", "healthy-af3-k8s-wi")


def _pods(name: str) -> list[dict]:
    meta = json.loads((scenario(name) / "meta.json").read_text())
    return json.loads((scenario(name) / f"k8s/api/v1/namespaces/{meta['namespace']}/pods.json").read_text())["items"]


def _pod(name: str, component: str | None = None, dag: str | None = None, task: str | None = None) -> str:
    for p in _pods(name):
        labels = p["metadata"].get("labels") or {}
        if component and labels.get("component") == component and labels.get("kubernetes_executor") != "True":
            return p["metadata"]["name"]
        if task and labels.get("task_id") == task and (dag is None or labels.get("dag_id") == dag):
            return p["metadata"]["name"]
    raise AssertionError(f"{name}: no pod {component or task}")


def _check(doc: dict, check: str) -> tuple[str, str | None]:
    c = next(c for c in doc["checks"] if c["id"] == check)
    return c["status"], c["reason"]


def _one(doc: dict, check: str, kind: str, name: str) -> dict:
    found = [f for f in findings_of(doc, check) if (f["resource"]["kind"], f["resource"]["name"]) == (kind, name)]
    assert len(found) == 1, [f["id"] for f in findings_of(doc, check)]
    return found[0]


def _ev(f: dict) -> str:
    return "\n".join(f["evidence"])


def _cmds(f: dict) -> str:
    return "\n".join(f["remediation"]["commands"])


def _copy(tmp_path, name: str):
    import shutil

    dst = tmp_path / name
    shutil.copytree(scenario(name), dst)
    return dst


def _edit(root, rel: str, fn) -> None:
    path = root / rel
    body = json.loads(path.read_text())
    fn(body)
    path.write_text(json.dumps(body))


def _blocked_pods(name: str, claim: str) -> set[str]:
    pods = json.loads((scenario(name) / "k8s/api/v1/namespaces/airflow/pods.json").read_text())["items"]
    return {p["metadata"]["name"] for p in pods if p["status"]["phase"] != "Running"
            and any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim for v in p["spec"].get("volumes", []))}


def _all_commands(f: dict) -> str:
    return "\n".join(f["remediation"]["commands"])
