"""Private nodes without Cloud NAT cannot reach the internet: GKE nodes without an external IP
(``privateClusterConfig.enablePrivateNodes``, or a node pool's ``networkConfig.enablePrivateNodes``)
reach Google APIs and registries through Private Google Access, and everything else (GitHub for
git-sync, Docker Hub, quay.io, registry.k8s.io) only through a Cloud NAT on a Cloud Router of the
cluster's network in its region. Without one, image pulls end in ``dial tcp <ip>:443: i/o timeout``
(``ErrImagePull``/``ImagePullBackOff``) and git-sync's clone in ``Connection timed out`` until
``too many failures, aborting``. Reported (ERROR) when such timeouts reach a host outside Google
from pods on private nodes and no NAT of the region's routers covers the cluster's subnetwork; with
a NAT that covers it the timeouts have another cause (a firewall egress rule) and nothing is reported."""
from __future__ import annotations

import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import cluster_resource, excerpt, project, q, workload_resource
from airflow_gke.views import Context, Pod, as_dict, as_list
from airflow_gke.views.google import image_host

from ._gitsync import gitsync_containers, readable, repo_host, settings

# The TCP connect that never gets an answer: Go's dialer (containerd, git-sync v4's HTTP), curl
# and OpenSSH (git over SSH or HTTPS inside git-sync).
_TIMEOUT = re.compile(r"dial tcp [^ ]+: (?:i/o timeout|connect: connection timed out)|Connection timed out"
                      r"|Failed to connect to \S+ port \d+\b.*(?:timed out|Timeout)|Operation timed out", re.I)
_PULL = re.compile(r'Failed to pull image "([^"]+)"')
# Hosts Private Google Access serves without a NAT.
_GOOGLE = re.compile(r"(?:^|\.)(?:googleapis\.com|pkg\.dev|gcr\.io|source\.developers\.google\.com)$")
_COVERS_ALL = ("ALL_SUBNETWORKS_ALL_IP_RANGES", "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES")


def _google(host: str) -> bool:
    return bool(_GOOGLE.search(host.lower()))


@check(id="private-nodes-no-egress", title="Private nodes reach the internet hosts Airflow pulls from (Cloud NAT)",
       severity="error", category=Category.NETWORKING, needs=("cluster", "pods", "events"),
       uses=("routers", "logs", "nodes"))
def run(ctx: Context) -> Result:
    """Private nodes time out reaching GitHub / Docker Hub / quay.io and no Cloud NAT covers their subnetwork."""
    private = {p.name for p in ctx.private_pools()}
    if not private:
        return skipped("no node pool has private nodes (nodes have external IPs)")
    hits: list[tuple[Pod, str, str]] = []   # (pod, host, evidence)
    for pod in ctx.pods:
        if not any(pl.name in private for pl in ctx.pools_of([pod])):
            continue
        hits += _timeouts(ctx, pod)
    if not hits:
        return passed()
    net, sub, region = ctx.cluster_network
    routers = ctx.body("routers", region=region)   # DataUnavailable: not checked, never a pass
    in_network = [r for r in as_list(as_dict(routers).get("items"))
                  if isinstance(r, dict) and str(r.get("network") or "").rsplit("/", 1)[-1] == net]
    if any(_covers(n, sub) for r in in_network for n in as_list(r.get("nats"))):
        return passed()
    return from_findings([_finding(ctx, hits, sorted(private), in_network, routers, net, sub, region)])


def _timeouts(ctx: Context, pod: Pod) -> list[tuple[Pod, str, str]]:
    out = []
    for e in ctx.events_for("Pod", pod.name, "Failed"):
        msg = str(e.get("message") or "")
        m, t = _PULL.search(msg), _TIMEOUT.search(msg)
        if m and t:
            host = image_host(m.group(1)) or "docker.io"
            if not _google(host):
                out.append((pod, host, f"event Failed on pod {pod.name} (x{e.get('count') or 1}): "
                                       f"{excerpt(msg, t, 300)}"))
                break
    for c, _init in gitsync_containers(pod):
        host = repo_host(settings(pod, c).repo)[0]
        if _google(host):
            continue
        name = str(c.get("name") or "")
        for which, ln in reversed(ctx.log_history(pod, name)):
            text = readable(ln)
            t = _TIMEOUT.search(text)
            if t:
                out.append((pod, host, f"{which} of {pod.name}/{name} (repo host {host}): {excerpt(text, t, 300)}"))
                break
    return out


def _covers(nat: object, subnet: str) -> bool:
    nat = as_dict(nat)
    mode = str(nat.get("sourceSubnetworkIpRangesToNat") or "")
    if mode in _COVERS_ALL:
        return True
    return mode == "LIST_OF_SUBNETWORKS" and any(
        str(as_dict(s).get("name") or "").rsplit("/", 1)[-1] == subnet for s in as_list(nat.get("subnetworks")))


def _finding(ctx: Context, hits: list[tuple[Pod, str, str]], pools: list[str], routers: list[dict],
             body: object, net: str, sub: str, region: str) -> Finding:
    p = project(ctx)
    hosts = sorted({h for _p, h, _e in hits})
    pods = list(dict.fromkeys(pod.name for pod, _h, _e in hits))
    evidence = [ev for _p, _h, ev in hits[:4]]
    if len(hits) > 4:
        evidence.append(f"{len(hits)} timed-out connections in all, from pods {', '.join(pods)}")
    evidence.append(f"node pool(s) {', '.join(pools)}: private nodes (no external IP) in network {net}, "
                    f"subnetwork {sub}, region {region}")
    total = len([r for r in as_list(as_dict(body).get("items")) if isinstance(r, dict)])
    if routers:
        evidence.append(f"Cloud Router(s) of network {net} in {region}: "
                        + ", ".join(f"{r.get('name')} ({len(as_list(r.get('nats')))} NAT)" for r in routers)
                        + f"; none NATs subnetwork {sub}")
    else:
        evidence.append(f"no Cloud Router of network {net} in {region} ({total} router(s) in the region, "
                        "in other networks): no Cloud NAT")
    taken = {str(as_dict(r).get("name")) for r in as_list(as_dict(body).get("items"))}
    flags = f"--region {q(region)} --project {q(p)}"
    nat_name = "nat-config" if not any(any(as_dict(n).get("name") == "nat-config" for n in as_list(r.get("nats")))
                                       for r in routers) else f"{net}-nat"
    steps = []
    if routers:
        router = str(routers[0].get("name"))
        steps.append(f"# the router {router} exists in network {net}: add a NAT to it")
    else:
        router = "nat-router" if "nat-router" not in taken else f"{net}-nat-router"
        steps.append(f"gcloud compute routers create {q(router)} --network {q(net)} {flags}")
    steps.append(f"gcloud compute routers nats create {q(nat_name)} --router {q(router)} {flags} "
                 "--auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges")
    retry = [f"# the pods retry on their back-off; to retry now (deletes the pods, their controllers recreate them):\n"
             f"kubectl delete pod {' '.join(pods)} --namespace {q(ctx.target.namespace)}"]
    alt = ("# Option B (no internet egress): mirror the images into Artifact Registry and point the chart's image "
           "repositories (defaultAirflowRepository, images.gitSync/statsd/redis.repository) at it, and serve DAGs "
           "from a source Private Google Access reaches")
    subjects = [f"Pod/{ctx.target.namespace}/{n}" for n in pods]
    owners = list(dict.fromkeys(workload_resource(ctx, pod).ref for pod, _h, _e in hits))
    return Finding(
        title=f"Private nodes have no Cloud NAT in {region}: {', '.join(hosts)} cannot be reached",
        message=(f"The nodes of {', '.join(pools)} have no external IP, and no Cloud NAT of network {net} covers "
                 f"subnetwork {sub} in {region}. Private Google Access reaches Google APIs and registries only, so "
                 f"connections to {', '.join(hosts)} time out: image pulls fail and git-sync cannot clone. "
                 "Affected: " + ", ".join(owners) + "."),
        resource=cluster_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            summary=(f"Give the cluster's network egress in {region}: a Cloud NAT on a Cloud Router of network {net} "
                     "for all its subnetwork ranges (no node or pod is recreated). Or keep the nodes off the internet "
                     "and pull everything from Google."),
            commands=["\n".join(steps), *retry, alt]),
        subjects=subjects,
    )

