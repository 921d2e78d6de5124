"""The metadata database as the pods see it: which Secret holds the connection, what the Airflow
containers' logs say about reaching it, the chart's bundled PostgreSQL and PgBouncer."""
from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_gke.views import Context, DataUnavailable, Obj, owner_of, Pod, secret_ref, status_of, unhealthy
from airflow_gke.model import finding_id
from airflow_gke.remediation import k8s_resource


# A connection URL whose password (or user) holds an unencoded '@', ':', '/', '?' or '#': part of the
# password is read as the host (DB_HOST=123@10.0.0.5, could not translate host name "p@10.0.0.5")
# or as the port. The image's entrypoint and libpq/urllib print these (apache/airflow#16000, #43150).
URL = re.compile(r"""(?ix)\bDB_HOST=\S*@\S+ | run_nc\s+'[^']*@[^']*' | could\ not\ translate\ host\ name\ "[^"]*@[^"]*"
                     | Port\ could\ not\ be\ cast\ to\ integer\ value | invalid\ port\ number|invalid\ integer\ value\ "[^"]*"\ for\ connection\ option\ "port\"""")
KINDS = [  # (kind, pattern); first match wins, most specific first
    ("url", URL),
    ("pgbouncer-auth", re.compile(r"(?i)wrong password type|server login failed|server login has been failing|"
                                  r"cannot do SCRAM authentication")),
    ("auth", re.compile(r"(?i)password authentication failed for user|no pg_hba\.conf entry|"
                        r"role \"[^\"]+\" does not exist")),
    ("too-many", re.compile(r"(?i)too many clients already|remaining connection slots are reserved|"
                            r"too many connections for role")),
    ("dns", re.compile(r"(?i)could not translate host name|name or service not known|"
                       r"temporary failure in name resolution|nodename nor servname")),
    ("refused", re.compile(r"(?i)connection refused")),
    ("timeout", re.compile(r"(?i)timeout expired|connection timed out|operation timed out")),
]
DB_CONTEXT = re.compile(r"(?i)psycopg|OperationalError|sqlalchemy|connection to server|DB_HOST|\(postgresql\)|"
                        r"FATAL:|pg8000|asyncpg|postgres")
NOT_DB = re.compile(r"(?i)redis|:6379|broker|celery@|amqp|git-sync|github\.com|statsd")
HOSTS = [
    re.compile(r'connection to server at "([^"]+)"(?: \(([\d.:a-f]+)\))?, port (\d+)'),
    re.compile(r'could not translate host name "([^"]+)"'),
    re.compile(r"\bDB_HOST=(\S+)"),
    re.compile(r"^\s*(\S+) \[[\d.:a-f]+:(\d+)\] \(postgresql\)"),
    re.compile(r"[a-z+0-9]+://[^@\s/]*@([\w.-]+)(?::(\d+))?/"),
    re.compile(r'for user "[^"]+".*?host "([^"]+)"'),
]
KIND_TEXT = {
    "url": "the connection URL is not URL-encoded: part of the password is read as the host or port",
    "pgbouncer-auth": "PgBouncer cannot log in to the database server (server login failed)",
    "auth": "the database rejects the user or password",
    "too-many": "the database has no connection slots left",
    "dns": "the database host name does not resolve",
    "refused": "nothing accepts connections at the database address",
    "timeout": "connections to the database time out",
}


@dataclass
class DbError:
    pod: Pod
    container: str
    which: str
    kind: str
    line: str
    host: str | None
    port: str | None


def metadata_secret(pod: Pod, container: dict | None = None) -> str | None:
    """The Secret of ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` (older: ``AIRFLOW__CORE__SQL_ALCHEMY_CONN``)."""
    cs = [container] if container else []
    cs += pod.containers + pod.init_containers
    for c in cs:
        if not c:
            continue
        for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__SQL_ALCHEMY_CONN"):
            ref = secret_ref(c, name)
            if ref:
                return ref[0]
    return None


def host_of(lines: list[str]) -> tuple[str | None, str | None]:
    for ln in lines:
        for rx in HOSTS:
            m = rx.search(ln)
            if m:
                host = m.group(1)
                port = None
                if rx.groups >= 3:
                    port = m.group(3)
                elif rx.groups == 2:
                    port = m.group(2)
                return host, port
    return None, None


def db_errors(ctx: Context) -> list[DbError]:
    """Metadata-DB connection errors in the logs of unhealthy Airflow containers (components and the
    migration Job; not task pods, whose logs carry their DAGs' own database errors; not git-sync,
    PgBouncer or Redis)."""
    return ctx.derive("db_errors", _db_errors, ctx)


def _db_errors(ctx: Context) -> list[DbError]:
    out: list[DbError] = []
    for pod in ctx.unhealthy_pods:   # only unhealthy containers are read below
        if not ctx.is_airflow_pod(pod) or pod.component in ("pgbouncer", "redis", "statsd", "flower"):
            continue
        if pod.is_task_pod:
            continue   # a task's own database errors (its DAG's connections) are not the metadata DB's
        for c in pod.init_containers + pod.containers:
            name = str(c.get("name") or "")
            if name.startswith("git-sync") or name.endswith("log-groomer"):
                continue
            cs = status_of(pod, name)
            if cs is None or not unhealthy(cs):
                continue
            logs = ctx.recent_logs(pod, name)
            lines = [ln for _w, ln in logs]
            for i, (which, ln) in enumerate(logs):
                if NOT_DB.search(ln):
                    continue
                kind = next((k for k, rx in KINDS if rx.search(ln)), None)
                if kind is None:
                    continue
                window = lines[max(0, i - 12): i + 1]
                if not any(DB_CONTEXT.search(w) and not NOT_DB.search(w) for w in window):
                    continue
                host, port = host_of([ln] + list(reversed(window)) + lines)
                if host and "@" in host:   # an unencoded '@' in the password: the host is what follows the last one
                    host = host.rsplit("@", 1)[1] or None
                out.append(DbError(pod, name, which, kind, ln, host, port))
    return out


# --- bundled PostgreSQL, PgBouncer ----------------------------------------------------------------

def bundled_postgres(ctx: Context, rel: str | None) -> list[Obj]:
    out = []
    for s in ctx.statefulsets.values():
        lab = s.labels
        chart = str(lab.get("helm.sh/chart") or "")
        named = rel is not None and s.name == f"{rel}-postgresql"
        bitnami = lab.get("app.kubernetes.io/name") == "postgresql" and chart.startswith("postgresql-")
        if bitnami and (rel is None or lab.get("app.kubernetes.io/instance") == rel or named):
            out.append(s)
    return out


def postgres_pods(ctx: Context, rel: str | None) -> list[Pod]:
    out = []
    for p in ctx.pods:
        o = owner_of(p)
        lab = p.labels
        if lab.get("app.kubernetes.io/name") == "postgresql" and (
                rel is None or lab.get("app.kubernetes.io/instance") == rel):
            out.append(p)
        elif o and o[0] == "StatefulSet" and rel and o[1] == f"{rel}-postgresql":
            out.append(p)
    return out


def pgbouncer_deployment(ctx: Context, rel: str | None) -> Obj | None:
    for d in ctx.deployments.values():
        if d.labels.get("component") == "pgbouncer" and (rel is None or d.labels.get("release") == rel):
            return d
    return None


def pgbouncer_id(ctx: Context, rel: str | None) -> str | None:
    d = pgbouncer_deployment(ctx, rel)
    return finding_id("pgbouncer-auth-mismatch", k8s_resource(ctx, "Deployment", d.name)) if d else None


def postgres_image_ids(ctx: Context, rel: str | None) -> list[str]:
    return [finding_id("postgres-image-unavailable", k8s_resource(ctx, "Pod", p.name)) for p in postgres_pods(ctx, rel)]


def unreachable_ids(ctx: Context) -> list[str]:
    """Ids the ``metadata-db-unreachable`` findings would have (one per metadata Secret)."""
    ids = []
    for e in db_errors(ctx):
        secret = metadata_secret(e.pod) or "metadata"
        ids.append(finding_id("metadata-db-unreachable", k8s_resource(ctx, "Secret", secret)))
    return list(dict.fromkeys(ids))


# --- how many connections the Airflow pods may open (the 'too-many' kind) --------------------------

PG_DEFAULT_MAX = 100
TASK_CONNECTIONS = 2   # an Airflow 2 task: the supervising job and the task process, each without a pool


def _int(v, default: int) -> int:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return default


def connection_budget(ctx: Context, rel: str | None) -> list[str]:
    """Evidence for 'no connection slots left': the connections the Airflow pods may open at most
    when they all connect directly (no PgBouncer), from the pods that exist and the configuration;
    nothing when what it needs was not read (the log line decided the finding, not this)."""
    try:
        return _budget(ctx, rel)
    except DataUnavailable:
        return []


def _budget(ctx: Context, rel: str | None) -> list[str]:
    try:
        d = pgbouncer_deployment(ctx, rel)
    except DataUnavailable:
        return []   # whether PgBouncer is in front cannot be told: no arithmetic that may be wrong
    if d is not None:
        return [f"PgBouncer {d.name} is in front of the database: the slots are taken by its server pool "
                "(pgbouncer.metadataPoolSize) and by clients that bypass it"]
    cfg = ctx.config("scheduler")
    size = _int(cfg.get("database", "sql_alchemy_pool_size"), 5)
    overflow = _int(cfg.get("database", "sql_alchemy_max_overflow"), 10)
    pooled = cfg.getboolean("database", "sql_alchemy_pool_enabled", True)
    per_pool = size + max(overflow, 0) if pooled else 1
    pool_text = (f"sql_alchemy_pool_size {size} + sql_alchemy_max_overflow {overflow}" if pooled
                 else "sql_alchemy_pool_enabled = False")
    af3 = ctx.airflow_major == 3
    parts: list[tuple[str, int]] = []
    pods_total = 0
    for comp in ("scheduler", "api-server", "webserver", "dag-processor", "triggerer", "worker"):
        pods = [p for p in ctx.pods_by_component.get(comp, []) if not p.is_task_pod and p.phase in ("Running", "Pending")]
        if not pods:
            continue
        pods_total += len(pods)
        n = len(pods)
        if comp in ("api-server", "webserver"):
            key = ("api", "workers") if comp == "api-server" else ("webserver", "workers")
            workers = _int(ctx.config(comp).get(*key), 4)
            parts.append((f"{comp} {n} pod(s) x {workers} workers x {per_pool}", n * workers * per_pool))
        elif comp == "worker":
            conc = _int(ctx.config("worker").get("celery", "worker_concurrency"), 16)
            per_task = 0 if af3 else TASK_CONNECTIONS
            parts.append((f"worker {n} pod(s) x ({per_pool} + worker_concurrency {conc} tasks x {per_task})",
                          n * (per_pool + conc * per_task)))
        else:
            parts.append((f"{comp} {n} pod(s) x {per_pool}", n * per_pool))
    tasks = [p for p in ctx.task_pods if p.phase == "Running"]
    if tasks and not af3:
        pods_total += len(tasks)
        parts.append((f"{len(tasks)} running task pod(s) x {TASK_CONNECTIONS}", len(tasks) * TASK_CONNECTIONS))
    if not parts:
        return []
    total = sum(n for _t, n in parts)
    return [f"no PgBouncer: {pods_total} Airflow pods connect to the database directly; each process's pool holds up "
            f"to {per_pool} connections ({pool_text})" + ("" if not af3 else "; Airflow 3 tasks use the api-server"),
            "connections they may open: " + ", ".join(f"{t} = {n}" for t, n in parts) + f"; {total} in all, against "
            f"PostgreSQL's default max_connections {PG_DEFAULT_MAX} (Cloud SQL's default depends on the instance's "
            "memory; superuser-reserved slots come off it)"]
