"""The optional Cloud Identity read (group membership) in live mode: the real google-auth
AuthorizedSession against the replay server (groups:lookup, then
memberships:checkTransitiveMembership), answered and denied, on the scenario whose only doubt is a
group binding (remote-log-read-legacy-reader-group: only group:data-eng@acme-data.example holds
objectViewer on the log bucket)."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import SCENARIOS
from replay import Fault, ReplayServer
from test_live import live  # noqa: F401 - the fixture

NAME = "remote-log-read-legacy-reader-group"
GROUP = "data-eng@acme-data.example"
GSA = "airflow@acme-data-prod.iam.gserviceaccount.com"
CHECK = "remote-log-read-denied"
ANSWER = f"gcp/cloudidentity/v1/groups/{GROUP}/memberships:checkTransitiveMembership/{GSA}.json"


def _scenario(tmp_path, has: bool | None):
    root = tmp_path / NAME
    shutil.copytree(SCENARIOS / NAME, root)
    if has is not None:
        f = root / ANSWER
        f.parent.mkdir(parents=True)
        f.write_text(json.dumps({"hasMembership": has}))
    return root


def _findings(doc: dict) -> list[dict]:
    return [f for f in doc["findings"] if f["check"] == CHECK]


def _run(live, root, faults=()):
    srv = ReplayServer(root, faults).start()
    try:
        r = live(srv, "doctor", "--output", "json")
        reads = [(e.method, e.path) for e in srv.log.entries if e.service == "cloudidentity"]
        assert not srv.log.mutating()
        return r, reads
    finally:
        srv.stop()


def test_not_a_member_decides_denied_without_the_caveat(live, tmp_path):  # noqa: F811
    r, reads = _run(live, _scenario(tmp_path, False))
    assert ("GET", "/v1/groups:lookup") in reads
    assert any(p.endswith("/memberships:checkTransitiveMembership") for _m, p in reads)
    (f,) = _findings(r.json)
    assert f["severity"] == "error"
    assert "unless" not in f["title"] and "check-transitive-membership" not in " ".join(f["remediation"]["commands"])
    assert (f"Cloud Identity (groups.memberships.checkTransitiveMembership) answered: {GSA} is not in group {GROUP}"
            in " ".join(f["evidence"]))
    assert f["remediation"]["commands"][0] == (
        f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs --member serviceAccount:{GSA} "
        "--role roles/storage.objectViewer")


def test_a_member_is_granted_through_the_group(live, tmp_path):  # noqa: F811
    r, _reads = _run(live, _scenario(tmp_path, True))
    assert _findings(r.json) == []
    (c,) = [c for c in r.json["checks"] if c["id"] == CHECK]
    assert c["status"] == "pass"


@pytest.mark.parametrize("fault", [
    Fault(service="cloudidentity", status=403, permission="cloudidentity.groups.memberships.checkTransitiveMembership"),
    None,   # no answer stored: the replay server refuses the lookup as Cloud Identity does for an unseen group
])
def test_denied_keeps_the_caveat_and_names_the_optional_permission(live, tmp_path, fault):  # noqa: F811
    r, reads = _run(live, _scenario(tmp_path, None), [fault] if fault else [])
    assert reads == [("GET", "/v1/groups:lookup")]
    (f,) = _findings(r.json)
    assert f["severity"] == "error"
    assert f"unless {GSA} is in group {GROUP}" in f["title"]
    assert f["remediation"]["commands"][0] == (
        f"gcloud identity groups memberships check-transitive-membership --group-email={GROUP} --member-email={GSA}")
    assert any("cloudidentity.groups.memberships.checkTransitiveMembership" in e and "would settle it" in e
               for e in f["evidence"])
    (c,) = [c for c in r.json["checks"] if c["id"] == CHECK]
    assert c["status"] == "fail"


def test_permissions_lists_the_membership_read_as_optional(run_cli):
    r = run_cli("permissions")
    head, _, optional = r.out.partition("OPTIONAL")
    assert "cloudidentity.groups.memberships.checkTransitiveMembership" not in head
    assert "cloudidentity.groups.memberships.checkTransitiveMembership" in optional
    assert "gcs-log-write-denied and remote-log-read-denied" in optional
