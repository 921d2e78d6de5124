"""CONTRIBUTING.md's recipes stay true: this test follows the "add a data source" and "add a check"
recipes with a throwaway data key and check, and shows that everything the recipes say follows from
the declarations does: the live planner and reader, ``airflow-gke permissions``, the replay server,
the generated docs tables, the registry, and a live run of the new check against the replay server.

The throwaway data key is a Google read (Secret Manager secret metadata, per secret named by the
Airflow configuration); the throwaway check is a module that registers itself with ``@check``.
"""
from __future__ import annotations

import json
import shutil
import sys
import textwrap

import pytest

from conftest import ROOT, scenario
from replay import ReplayServer

from airflow_gke import data, gendocs
from airflow_gke.data import KEYS, DataKey, Items, Target
from airflow_gke.registry import REGISTRY, load_checks

SCENE = "healthy-af3-k8s-wi"
SECRET = "airflow-connections-warehouse"
CHECK_ID = "throwaway-secret-present"
MODULE = "throwaway_contrib"

# What CONTRIBUTING.md's data-source recipe writes in doctor/data.py (step 1) ...
KEY = DataKey(
    name="throwaway_secret", template="gcp/secretmanager/v1/projects/{project}/secrets/{secret}",
    scope="gcp", requires=("project",), describe="get the metadata of secret {secret} in project {project}",
    iam="secretmanager.secrets.get", not_found_is_data=True, per="secret",
    items=Items("Secret Manager secret(s)", f"{MODULE}:secret_names", ("configmaps",)),
    doc="throwaway: the metadata of the secrets the Airflow configuration names, never their values")

# ... the item function (step 2) and the check module (the check recipe), in one throwaway module.
SOURCE = textwrap.dedent(f'''
    from airflow_gke.model import Finding, Remediation, Result, from_findings
    from airflow_gke.registry import Category, check
    from airflow_gke.remediation import project_resource
    from airflow_gke.views import Context


    def secret_names(ctx: Context, opts=None) -> list[str]:
        """The items of throwaway_secret: one secret when the chart's config map is there."""
        return [{SECRET!r}] if ctx.config_map is not None else []


    @check(id={CHECK_ID!r}, title="The warehouse connection secret exists", severity="error",
           category=Category.SECRETS, needs=("throwaway_secret", "configmaps"))
    def run(ctx: Context) -> Result:
        """The Secret Manager secret the connection names is missing."""
        if ctx.body("throwaway_secret", secret={SECRET!r}) is not None:
            return from_findings([])
        return from_findings([Finding(
            title="Secret {SECRET} does not exist", message="Airflow cannot read the connection.",
            resource=project_resource(ctx), evidence=["Secret Manager answered 404"],
            remediation=Remediation(summary="Create it.", commands=["gcloud secrets create {SECRET}"]))])
''')


def secret_fixture(project: str, name: str) -> dict:
    """The fixture factory of the recipe: what Secret Manager's REST API returns for secrets.get."""
    return {"name": f"projects/481516234200/secrets/{name}", "replication": {"automatic": {}},
            "createTime": "2026-01-05T10:00:00.000000Z", "etag": "\"16115f6c2d8c1d\""}


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    load_checks()
    monkeypatch.setitem(KEYS, KEY.name, KEY)
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(MODULE)
    try:
        yield REGISTRY[CHECK_ID]
    finally:
        REGISTRY.pop(CHECK_ID, None)
        sys.modules.pop(MODULE, None)


def _target(meta: dict) -> Target:
    return Target(namespace=meta["namespace"], project=meta["project"], location=meta["location"],
                  cluster=meta["cluster"], release=meta["release"])


def test_a_new_data_key_and_check_are_picked_up_everywhere(throwaway, run_cli, tmp_path, monkeypatch):
    from airflow_gke.live.plan import derived_reads, keys_for
    from airflow_gke.snapshot import open_snapshot
    from airflow_gke.views import Context

    chk = throwaway
    assert chk.module == MODULE and chk.data_keys == ("throwaway_secret", "configmaps")

    # the planner: phase 1 reads what the items are named from, phase 2 the items
    keys = keys_for([chk])
    assert keys == {"throwaway_secret", "configmaps"}
    with open_snapshot(scenario(SCENE)) as src:
        meta = json.loads((scenario(SCENE) / "meta.json").read_text())
        ctx = Context(src, _target(meta))
        reads, notes = derived_reads(ctx, keys, 0)
    assert reads == [("throwaway_secret", {"secret": SECRET})]
    assert f"Secret Manager secret(s): {SECRET}" in notes

    # airflow-gke permissions grants the read and what it is derived from
    r = run_cli("permissions", "--check", CHECK_ID)
    assert r.code == 0 and "secretmanager.secrets.get" in r.out and "list configmaps" in r.out

    # the docs tables are generated with its row and path
    assert "`get the metadata of secret {secret} in project {project}` | `secretmanager.secrets.get`" \
        in gendocs.reads_table("gcp")
    assert "- `gcp/secretmanager/v1/projects/<p>/secrets/<secret>.json`: throwaway" in gendocs.paths_list("gcp")
    assert data.reads_for({"throwaway_secret"}) == {"throwaway_secret", "configmaps"}

    # the registry lists the check; a live run reads the key through the replay server
    assert CHECK_ID in run_cli("checks").out
    snap = tmp_path / "snap"
    shutil.copytree(scenario(SCENE), snap)
    for exists in (True, False):
        secret_file = snap / f"gcp/secretmanager/v1/projects/{meta['project']}/secrets/{SECRET}.json"
        if exists:
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(json.dumps(secret_fixture(meta["project"], SECRET)))
        else:
            secret_file.unlink()
        srv = ReplayServer(snap).start()
        try:
            monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
            env = srv.env(kubeconfig=srv.write_kubeconfig(tmp_path / "kubeconfig"))
            r = run_cli("doctor", "--check", CHECK_ID, "--now", meta["captured_at"], "--release", meta["release"],
                        "--output", "json", env=env)
            got = [e.path for e in srv.log.entries if e.service == "secretmanager"]
        finally:
            srv.stop()
        assert got == [f"/v1/projects/{meta['project']}/secrets/{SECRET}"], got
        status = next(c["status"] for c in r.json["checks"] if c["id"] == CHECK_ID)
        assert status == ("pass" if exists else "fail"), (status, r.err)
        assert [f["check"] for f in r.json["findings"]] == ([] if exists else [CHECK_ID])


def test_contributing_names_the_files_each_recipe_touches():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for path in ("doctor/data.py", "checks/", "docs/runbooks/", "fixtures/scenarios_", "fixtures/build.py",
                 "tests/checks/test_<id with - as _>.py", "Category.",
                 "doctor/report/formats.py", "python -m airflow_gke.gendocs", "tests/test_data_keys.py",
                 "doctor/live/gcloud.py", "tests/replay.py"):
        assert path in text, path
    for heading in ("## Add a check", "## Add a data source", "## Add a report format"):
        assert heading in text, heading
