"""The remediation toolkit: what checks use to build fixes and evidence, in one place.

- names of the target with a visible placeholder when unknown (``project``, ``location``,
  ``cluster_name``, ``release``, ``ns``);
- commands with the real names quoted for the shell (``q``, ``gke_flags``, ``helm_upgrade``,
  ``helm_sa_annotation``, ``kubectl``) and the chart's values keys (``CHART_KEY``);
- resources findings are about (``k8s_resource``, ``workload_resource``, ``release_resource``,
  ``project_resource``, ``node_pool_resource``, ``cluster_resource``, ``bucket_resource``,
  ``gsa_resource``);
- evidence: events and log lines quoted, cut and masked (``quote_event``, ``grep``, ``excerpt``,
  ``telling_lines``, ``clip``, ``masked``), env sources, resources and memory sizes as text
  (``source_text``, ``resources_text``, ``memory_text``, ``doubled_memory``).

Checks import from here, the views, the model and the registry only (tests/test_architecture.py).
"""
from __future__ import annotations

import re
import shlex
from typing import Iterable

from .model import Resource
from .redact import Redactor
from .views import QUANTITY_UNITS, Context, DataUnavailable, Pod, as_dict, owner_of, quantity

# --- names of the target -----------------------------------------------------------------------


def project(ctx: Context) -> str:
    return ctx.target.project or "PROJECT_ID"


def location(ctx: Context) -> str:
    return ctx.target.location or "LOCATION"


def region(ctx: Context) -> str:
    """The cluster's region (a zonal cluster's zone without its suffix), ``REGION`` when unknown."""
    loc = ctx.target.location or ""
    return (loc.rsplit("-", 1)[0] if re.fullmatch(r"[a-z]+-[a-z]+\d+-[a-z]", loc) else loc) or "REGION"


def registry_path(ctx: Context) -> str:
    """``REGION-docker.pkg.dev/PROJECT``: an Artifact Registry host and project from what was read (the
    cluster's region; ``REGION``/``PROJECT_ID`` only when the target does not name them)."""
    return f"{region(ctx)}-docker.pkg.dev/{project(ctx)}"


def cluster_name(ctx: Context) -> str:
    return ctx.target.cluster or "CLUSTER"


def release(ctx: Context) -> str:
    try:
        return ctx.release or "RELEASE"
    except DataUnavailable:
        return ctx.target.release or "RELEASE"


def ns(ctx: Context) -> str:
    return ctx.target.namespace


# --- commands ----------------------------------------------------------------------------------

def q(value: str) -> str:
    """Shell-quote a value for a copy-pasteable command."""
    return shlex.quote(value)


def gke_flags(ctx: Context) -> str:
    return f"--location {q(location(ctx))} --project {q(project(ctx))}"


def planned(ctx: Context) -> bool:
    """Planned mode (``doctor --manifests``): the objects do not exist yet, fixes are values changes."""
    return ctx.mode == "planned"


def helm_upgrade(ctx: Context, *sets: str) -> str:
    args = " ".join(sets)
    if planned(ctx):   # the values the plan was rendered from, changed: no --reuse-values, no objects yet
        version = _chart_version(ctx)
        return (f"helm upgrade --install {q(release(ctx))} apache-airflow/airflow --namespace {q(ns(ctx))}"
                + (f" --version {q(version)}" if version else "") + " -f values.yaml" + (f" {args}" if args else ""))
    tool, name, where = deployer(ctx)
    if tool == "argocd" and sets:
        # Argo CD renders the chart itself and reverts a helm upgrade: change the Application's values
        app = q(name or release(ctx))
        if any(s_.startswith("--set-json") for s_ in sets):   # argocd app set has no JSON form
            values = ", ".join(re.sub(r"^--set(-string|-json)? ", "", s_) for s_ in sets if s_ != "--set-json")
            return (f"# Argo CD manages release {release(ctx)} (Application {name}): a helm upgrade would be reverted; "
                    f"commit these values to the Application's source in Git (JSON values): {values}\n"
                    f"argocd app sync {app}")
        helm_sets = " ".join(re.sub(r"^--set(-string)? ", lambda m: f"--helm-set{m.group(1) or ''} ", s_) for s_ in sets)
        return (f"# Argo CD manages release {release(ctx)} (Application {name}): a helm upgrade would be reverted; "
                "commit these values to the Application's source in Git, or set them on the Application:\n"
                f"argocd app set {app} {helm_sets}\nargocd app sync {app}")
    if tool == "flux" and sets:
        values = ", ".join(re.sub(r"^--set(-string|-json)? ", "", s_) for s_ in sets if s_ != "--set-json")
        return (f"# Flux manages release {release(ctx)} (HelmRelease {where}/{name}): a helm upgrade would be rolled "
                f"back; set in the HelmRelease's spec.values in Git: {values}\n"
                f"flux reconcile helmrelease {q(name or release(ctx))} --namespace {q(where or ns(ctx))} --with-source")
    return (f"helm upgrade {q(release(ctx))} apache-airflow/airflow --namespace {q(ns(ctx))} --reuse-values"
            + (f" {args}" if args else ""))


def deployer(ctx: Context) -> tuple[str, str | None, str | None]:
    """("argocd", app, None), ("flux", helmrelease, namespace) or ("helm", None, None) (views.deployer)."""
    try:
        return ctx.deployer
    except DataUnavailable:
        return ("helm", None, None)


def _chart_version(ctx: Context) -> str | None:
    try:
        return ctx.chart_version
    except DataUnavailable:
        return None


def kubectl(ctx: Context, *args: str) -> str:
    return "kubectl " + " ".join(args) + f" --namespace {q(ns(ctx))}"


# The chart's values key of each component (for --set <key>.resources..., <key>.livenessProbe...,
# <key>.serviceAccount...).
CHART_KEY = {
    "scheduler": "scheduler", "api-server": "apiServer", "webserver": "webserver", "triggerer": "triggerer",
    "dag-processor": "dagProcessor", "worker": "workers", "task": "workers", "execution-api-server": "apiServer",
}


def helm_sa_annotation(component_key: str, gsa: str) -> str:
    """``--set-string`` for a chart service account's Workload Identity annotation."""
    key = component_key + ".serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account"
    return f"--set-string {q(key + '=' + gsa)}"


# --- resources ---------------------------------------------------------------------------------

def k8s_resource(ctx: Context, kind: str, name: str) -> Resource:
    return Resource(kind, name, ns(ctx), None)


def workload_resource(ctx: Context, pod: Pod) -> Resource:
    """The pod's controller as a resource (the pod itself when it has none, e.g. task pods)."""
    o = owner_of(pod)
    if o is None:
        return k8s_resource(ctx, "Pod", pod.name)
    return k8s_resource(ctx, o[0], o[1])


def release_resource(ctx: Context) -> Resource:
    return Resource("HelmRelease", release(ctx), ctx.target.namespace, None)


def project_resource(ctx: Context) -> Resource:
    p = project(ctx)
    return Resource("Project", p, None, f"//cloudresourcemanager.googleapis.com/projects/{p}")


def cluster_resource(ctx: Context) -> Resource:
    return Resource("Cluster", cluster_name(ctx), None,
                    f"//container.googleapis.com/projects/{project(ctx)}/locations/{location(ctx)}"
                    f"/clusters/{cluster_name(ctx)}")


def node_pool_resource(ctx: Context, pool: str) -> Resource:
    return Resource("NodePool", pool, None,
                    f"//container.googleapis.com/projects/{project(ctx)}/locations/{location(ctx)}"
                    f"/clusters/{cluster_name(ctx)}/nodePools/{pool}")


def region_resource(ctx: Context, region: str) -> Resource:
    """A Compute Engine region of the project (what its regional quotas belong to)."""
    return Resource("Region", region, None, f"//compute.googleapis.com/projects/{project(ctx)}/regions/{region}")


def bucket_resource(bucket: str) -> Resource:
    return Resource("Bucket", bucket, None, f"//storage.googleapis.com/projects/_/buckets/{bucket}")


def gsa_project(ctx: Context, email: str) -> str:
    """The project a Google service account lives in (from its email; the diagnosed project for
    the Compute Engine default and other Google-managed domains)."""
    m = re.match(r"^[^@]+@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$", email)
    return m.group(1) if m else project(ctx)


def gsa_resource(ctx: Context, email: str) -> Resource:
    return Resource("ServiceAccount", email, None,
                    f"//iam.googleapis.com/projects/{gsa_project(ctx, email)}/serviceAccounts/{email}")


# --- evidence ----------------------------------------------------------------------------------

def quote_event(e: dict) -> str:
    """An event as evidence: ``Warning ProvisioningFailed (x12, persistentvolume-controller): message``."""
    count = e.get("count") or (e.get("series") or {}).get("count") or 1
    src = (e.get("source") or {}).get("component") or e.get("reportingComponent") or e.get("reportingController") or ""
    where = f"x{count}" + (f", {src}" if src else "")
    return f"event {e.get('type', '')} {e.get('reason', '')} ({where}): {str(e.get('message', '')).strip()}"


def grep(lines: Iterable[tuple[str, str]], rx: re.Pattern) -> list[tuple[str, str]]:
    """The (which, line) pairs whose line matches ``rx``."""
    return [(w, ln) for w, ln in lines if rx.search(ln)]


def clip(text: str, n: int = 400, mark: str = "…") -> str:
    """``text`` stripped and cut to at most ``n`` characters, ending with ``mark`` when cut."""
    text = text.strip()
    return text if len(text) <= n else text[: n - len(mark)] + mark


_redactor = Redactor()


def masked(line: str) -> str:
    """A log line for evidence: credentials masked again, whatever the source did, then clipped."""
    return clip(_redactor.text(line))


def excerpt(line: str, m: "re.Match | None" = None, width: int = 400) -> str:
    """A log line cut to ``width`` characters around what matched (long JSON log lines bury the
    error after the timestamp, the path and the URL)."""
    line = line.strip()
    if len(line) <= width:
        return line
    if m is None or m.end() <= width - 20:
        return line[:width] + " ..."
    start = max(0, min(m.start() - width // 3, len(line) - width))
    return "... " + line[start:start + width] + (" ..." if start + width < len(line) else "")


# Lines of an Airflow/Python log that say what went wrong (the rest is start-up noise).
TELLING = re.compile(
    r"(?i)(traceback|error|exception|fatal|critical|forbidden|denied|refused|killed|sigterm|signal 15|"
    r"invalid|cannot|could not|unable to|not found|timed? ?out|must be set)")


# Traceback scaffolding says nothing on its own: the exception lines and what led to them do.
_SCAFFOLD = re.compile(r'^\s*(Traceback \(most recent call last\):|During handling of the above exception|'
                       r'The above exception was the direct cause|File "|\^[\^~ ]*$)')


def telling_lines(lines: list[tuple[str, str]], n: int = 5) -> list[tuple[str, str]]:
    """The telling lines near the end of a log (an exception and what led to it), else its last lines;
    never the frames and headers of a traceback, and each line once."""
    nonblank = [(w, ln) for w, ln in lines if ln.strip() and not _SCAFFOLD.search(ln)]
    telling = [(w, ln) for w, ln in nonblank if TELLING.search(ln)]
    picked = telling if telling else nonblank[-min(n, 3):]
    seen: set[str] = set()
    out = []
    for w, ln in picked:
        if ln.strip() not in seen:
            seen.add(ln.strip())
            out.append((w, ln))
    return out[-n:]


def source_text(src: tuple[str, str | None, str | None] | None, name: str) -> str:
    """How a container sets env var ``name`` (``views.env_source``), as evidence."""
    if src is None:
        return f"{name} not set"
    kind, obj, key = src
    if kind == "secret":
        return f"{name} from Secret {obj} key {key}"
    if kind == "configmap":
        return f"{name} from ConfigMap {obj} key {key}"
    if kind == "envFrom":
        return f"env from Secret {obj} (envFrom; may or may not hold {name})"
    return f"{name} set as a literal value"


def resources_text(c: dict) -> str:
    """A container's requests and limits, as evidence."""
    r = as_dict(c.get("resources"))
    req, lim = as_dict(r.get("requests")), as_dict(r.get("limits"))
    return (f"requests cpu {req.get('cpu', 'none')}, memory {req.get('memory', 'none')}; "
            f"limits cpu {lim.get('cpu', 'none')}, memory {lim.get('memory', 'none')}")


def memory_text(v: float | None) -> str:
    """A number of bytes as ``1.5Gi`` / ``512Mi``."""
    if v is None:
        return "unknown"
    for unit in ("Gi", "Mi"):
        n = v / QUANTITY_UNITS[unit]
        if n >= 1:
            return f"{int(n)}{unit}" if n == int(n) else f"{n:.1f}{unit}"
    return f"{int(v)}"


def doubled_memory(limit) -> str:
    """A memory size twice ``limit`` (at least 1Gi), rounded up to whole Gi: the value a fix sets."""
    v = quantity(limit) or 0
    gi = max(1, int(-(-2 * v // 2**30)))
    return f"{gi}Gi"


# --- one plan per report: shared fixes, and what a command disrupts ---------------------------------

NODE_SA = "gke-nodes"       # the dedicated node service account every fix that replaces a pool uses


def node_sa_email(ctx: Context) -> str:
    return f"{NODE_SA}@{project(ctx)}.iam.gserviceaccount.com"


def replacement_pool(ctx: Context, pool) -> tuple[str, str]:
    """(name, create command) of THE node pool that replaces ``pool`` when its service account or its
    scopes must change (neither can be changed on an existing pool). Every check that proposes a new
    pool for ``pool`` proposes this one, so one report never creates two: the dedicated node service
    account (``roles/container.defaultNodeServiceAccount``), the ``cloud-platform`` scope (IAM, not
    scopes, limits what it may do), the GKE metadata server (pods act as their Workload Identity, never
    as the node), and the machine type and autoscaling of ``pool``."""
    name = f"{pool.name}-sa"
    cfg = pool.config
    cmd = (f"gcloud container node-pools create {q(name)} --cluster {q(cluster_name(ctx))} {gke_flags(ctx)} "
           f"--service-account {q(node_sa_email(ctx))} --scopes=cloud-platform --workload-metadata=GKE_METADATA")
    if cfg.get("machineType"):
        cmd += f" --machine-type {q(str(cfg['machineType']))}"
    auto = as_dict(pool.raw.get("autoscaling"))
    if auto.get("enabled"):
        cmd += f" --enable-autoscaling --min-nodes {auto.get('minNodeCount', 0)} --max-nodes {auto.get('maxNodeCount', 3)}"
    return name, cmd


def node_sa_commands(ctx: Context) -> list[str]:
    """Create the dedicated node service account and grant it the minimal node role (and read
    access to Artifact Registry when Airflow's images come from a Google registry)."""
    from .views import google_repo

    try:
        registry = ctx.has("pods") and any(google_repo(i) for i in ctx.airflow_images)
    except DataUnavailable:
        registry = False
    p = project(ctx)
    member = q(f"serviceAccount:{node_sa_email(ctx)}")
    out = [f"gcloud iam service-accounts create {NODE_SA} --project {q(p)} --display-name 'GKE nodes'",
           f"gcloud projects add-iam-policy-binding {q(p)} --member {member} --role roles/container.defaultNodeServiceAccount"]
    if registry:
        out.append(f"gcloud projects add-iam-policy-binding {q(p)} --member {member} --role roles/artifactregistry.reader")
    return out


def enable_workload_pool(ctx: Context) -> str | None:
    """The command that turns on the cluster's Workload Identity pool, or None when it is on (a
    pool on the GKE metadata server needs it)."""
    try:
        if ctx.workload_pool:
            return None
    except DataUnavailable:
        pass
    p = project(ctx)
    return f"gcloud container clusters update {q(cluster_name(ctx))} {gke_flags(ctx)} --workload-pool={q(p + '.svc.id.goog')}"


_COMPUTE_SA = re.compile(r"^(?:serviceAccount:)?(\d+)-compute@developer\.gserviceaccount\.com$")


# What shlex treats apart from words and ' \t\r\n', and the other ASCII whitespace str.split splits on.
_NOT_PLAIN = re.compile(r"['\"\\\x0b\x0c\x1c-\x1f]")


def _words(line: str) -> list[str]:
    if line.isascii() and _NOT_PLAIN.search(line) is None:
        return line.split()   # no quote nor escape: the same words as shlex's, ~50x faster (most commands)
    try:
        return shlex.split(line, comments=False)
    except ValueError:
        return line.split()


def _arg(words: list[str], flag: str) -> str | None:
    for i, w in enumerate(words):
        if w == flag and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(flag + "="):
            return w.split("=", 1)[1]
    return None


_VALUE_FLAGS = ("-n", "--namespace", "-l", "--selector", "--context", "-o", "--output", "--field-selector",
                "--grace-period", "-c", "--container", "--timeout")


def _positionals(words: list[str]) -> list[str]:
    """The arguments of a command that are not flags nor a flag's value (``--namespace x``)."""
    out, skip = [], False
    for x in words:
        if skip:
            skip = False
            continue
        if x.startswith("-"):
            skip = "=" not in x and x in _VALUE_FLAGS
            continue
        out.append(x)
    return out


def disruption(line: str, ctx: Context | None = None) -> str | None:
    """What running ``line`` disrupts, as the comment to print on the line before it: recreating
    nodes, restarting pods, deleting data or objects, removing a role. None for a harmless command."""
    w = _words(line.strip())
    if len(w) < 3 or w[0].startswith("#"):
        return None
    head = " ".join(w[:3])
    if head == "gcloud container node-pools" and len(w) > 4:
        verb, pool = w[3], w[4]
        if verb == "update" and any(x.split("=", 1)[0] in ("--workload-metadata", "--machine-type", "--image-type",
                                                           "--disk-type", "--disk-size") for x in w):
            return (f"# recreates every node of node pool {pool}, a few at a time (their pods are evicted and "
                    "rescheduled; Pending until a node is back)")
        if verb == "delete":
            return f"# deletes node pool {pool} and its nodes: move the workloads off it first (drain above)"
    if w[0] == "kubectl":
        verb = w[1]
        if verb == "drain":
            return "# evicts every pod from these nodes (they restart elsewhere; running tasks are interrupted)"
        if verb == "rollout" and w[2] == "restart":
            return "# restarts the pods of " + " ".join(x for x in w[3:] if not x.startswith("-"))[:80]
        if verb == "delete" and len(w) > 3:
            kind, rest = w[2], _positionals(w[3:])
            sel = _arg(w, "-l") or _arg(w, "--selector")
            name = rest[0] if rest else (f"labelled {sel}" if sel else "(all)")
            if kind in ("pvc", "persistentvolumeclaim", "pv", "persistentvolume"):
                return (f"# deletes {kind} {name}: with the Delete reclaim policy its volume and the data on it "
                        "go too (copy what you need first)")
            if kind in ("pod", "pods"):
                what = f"the pods {name}" if sel and not rest else f"pod {name}"
                return (f"# deletes {what}: a pod its controller owns comes back, a bare task pod does not "
                        "(a task still running in it fails and may be retried)")
            if kind in ("statefulset", "sts") and "--cascade=orphan" in w:
                return f"# deletes StatefulSet {name} but not its pods (--cascade=orphan): helm recreates it"
            return f"# deletes {kind} {name}"
    if w[0] == "gcloud" and "remove-iam-policy-binding" in w:
        member, role = _arg(w, "--member") or "?", _arg(w, "--role") or "?"
        where = w[w.index("remove-iam-policy-binding") + 1] if w.index("remove-iam-policy-binding") + 1 < len(w) else ""
        text = f"# removes {role} from {member.split(':', 1)[-1]} on {where}"
        m = _COMPUTE_SA.match(member)
        if m:
            text += ("\n# it is the Compute Engine default service account: " + _default_sa_users(ctx, member)
                     + " may depend on this role; check them before removing it")
        return text
    return None


def _default_sa_users(ctx: Context | None, member: str) -> str:
    """What else may run as the Compute Engine default service account, naming what the snapshot holds."""
    pools: list[str] = []
    if ctx is not None:
        email = member.split(":", 1)[-1]
        try:
            for pool in ctx.node_pools.values():
                if ctx.node_service_account(pool) == email:
                    pools.append(pool.name)
        except DataUnavailable:
            pass
    named = f"node pools {', '.join(pools)} of this cluster, " if pools else "node pools of other clusters, "
    return (named + "other Compute Engine VMs and GKE clusters of the project that name no service account, "
            "Dataflow and Dataproc jobs, Cloud Build, App Engine and Cloud Functions (1st gen)")


_PLACEHOLDER = re.compile(r"<([A-Za-z][\w .-]*)>")


def safe_placeholders(line: str) -> str:
    """A value the snapshot does not hold, written ``<like this>`` outside quotes, becomes
    ``LIKE_THIS``: unquoted, ``<`` and ``>`` are redirections, so pasting the line would read or
    truncate files. Comments and quoted text are left alone."""
    if "<" not in line or line.lstrip().startswith("#"):
        return line
    out, i, quote = [], 0, ""
    while i < len(line):
        c = line[i]
        if quote:
            out.append(c)
            if c == quote:
                quote = ""
            i += 1
            continue
        if c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            out.append(line[i:])
            break
        elif c == "<":
            m = _PLACEHOLDER.match(line, i)
            if m:
                out.append(re.sub(r"[^A-Za-z0-9]+", "_", m.group(1)).strip("_").upper())
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def with_disruptions(commands: list[str], ctx: Context | None = None) -> list[str]:
    """``commands`` with a comment saying what a command disrupts on the line before it (unless a
    comment there already says so). A one-line command gets the comment as its own item before it,
    so each command stays an item of its own; in a multi-line step the comment goes in the step."""
    out: list[str] = []
    for cmd in commands:
        cmd = "\n".join(safe_placeholders(ln) for ln in cmd.splitlines()) if "<" in cmd else cmd
        lines = cmd.splitlines()
        if len(lines) <= 1:
            note = disruption(cmd, ctx)
            prev = out[-1].splitlines()[-1] if out else ""
            if note and not _says(prev, note):
                out.append(note)
            out.append(cmd)
            continue
        new: list[str] = []
        for ln in lines:
            note = disruption(ln, ctx)
            if note and not (new and _says(new[-1], note)):
                new += note.splitlines()
            new.append(ln)
        out.append("\n".join(new))
    return out


_VERBS = ("recreate", "restart", "delete", "remove", "evict")


def _says(comment: str, note: str) -> bool:
    """Whether an existing comment line already warns what ``note`` warns."""
    c = comment.strip().lower()
    if not c.startswith("#"):
        return False
    if "compute engine default service account" in note.lower():
        return "depend" in c
    verb = next((v for v in _VERBS if v in note.lower()), None)
    return verb is not None and verb in c
