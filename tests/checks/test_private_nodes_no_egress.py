"""private-nodes-no-egress: private nodes time out reaching internet hosts and no Cloud NAT covers them."""
from __future__ import annotations


from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit

CHECK = "private-nodes-no-egress"
ROUTERS = "gcp/compute/compute/v1/projects/acme-data-prod/regions/europe-west1/routers.json"


def test_private_nodes_without_nat_is_one_error_on_the_cluster_with_the_router_and_nat_to_create(run_cli):
    code, doc = doctor_json(run_cli, "private-nodes-no-nat")
    assert code == 1
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("Cluster", "airflow-prod")
    ev = "\n".join(f["evidence"])
    assert "git-sync-init (repo host github.com)" in ev and "port 22: Connection timed out" in ev
    assert "dial tcp 44.219.83.121:443: i/o timeout" in ev
    assert "node pool(s) private-pool: private nodes (no external IP) in network default" in ev
    assert "no Cloud Router of network default in europe-west1" in ev
    assert f["remediation"]["commands"][0] == (
        "gcloud compute routers create nat-router --network default --region europe-west1 --project acme-data-prod\n"
        "gcloud compute routers nats create nat-config --router nat-router --region europe-west1 --project "
        "acme-data-prod --auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges")
    # the floor's three findings are the same failure: folded under this one, not top-level
    assert findings_of(doc, "component-not-ready") == []
    assert {s["check"] for s in f["symptoms"]} == {"component-not-ready"} and len(f["symptoms"]) == 3


def test_a_nat_covering_the_subnetwork_is_not_this_cause(run_cli):
    code, doc = doctor_json(run_cli, "private-nodes-with-nat-egress-denied")
    assert status_of(doc, CHECK) == "pass"
    assert len(findings_of(doc, "component-not-ready")) == 3
    assert code == 1


def test_an_existing_router_without_nat_gets_a_nat_not_a_second_router(run_cli, tmp_path):
    root = _copy(tmp_path, "private-nodes-with-nat-egress-denied")

    def drop_nat(body: dict) -> None:
        body["items"][0].pop("nats")
    _edit(root, ROUTERS, drop_nat)
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    cmds = f["remediation"]["commands"][0]
    assert "routers create" not in cmds
    assert cmds.startswith("# the router nat-router exists in network default: add a NAT to it\n"
                           "gcloud compute routers nats create nat-config --router nat-router --region europe-west1")
    assert "nat-router (0 NAT); none NATs subnetwork default" in "\n".join(f["evidence"])


def test_a_nat_for_other_subnetworks_only_does_not_count(run_cli, tmp_path):
    root = _copy(tmp_path, "private-nodes-with-nat-egress-denied")

    def other_subnet(body: dict) -> None:
        nat = body["items"][0]["nats"][0]
        nat["sourceSubnetworkIpRangesToNat"] = "LIST_OF_SUBNETWORKS"
        nat["subnetworks"] = [{"name": "https://www.googleapis.com/compute/v1/projects/acme-data-prod/regions/"
                                       "europe-west1/subnetworks/batch", "sourceIpRangesToNat": ["ALL_IP_RANGES"]}]
    _edit(root, ROUTERS, other_subnet)
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert f["remediation"]["commands"][0].startswith("# the router nat-router exists")
    assert "gcloud compute routers nats create default-nat --router nat-router" in f["remediation"]["commands"][0]


def test_routers_not_collected_is_not_checked_never_a_pass(run_cli, tmp_path):
    root = _copy(tmp_path, "private-nodes-no-nat")
    (root / ROUTERS).unlink()
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) not in ("pass", "fail")
    assert findings_of(doc, CHECK) == []


def test_public_nodes_are_not_applicable(run_cli):
    _code, doc = doctor_json(run_cli, "seed-incident")
    assert status_of(doc, CHECK) == "skip"
