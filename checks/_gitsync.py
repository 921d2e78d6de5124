"""git-sync containers of the chart (``git-sync-init`` / ``git-sync`` sidecars): their settings as
rendered into the pod spec, their version and what their logs say went wrong."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from airflow_gke.views import as_dict, Context, env_of, image_tag, owner_of, Pod, secret_ref
from airflow_gke.model import finding_id
from airflow_gke.remediation import k8s_resource


CAUSES = [
    ("host-key", re.compile(r"(?i)host key verification failed|no matching host key|remote host identification has "
                            r"changed|no .*host key is known")),
    ("ssh-key-missing", re.compile(r"(?i)can't (?:access|configure) ssh(?: key)?|ssh-key-file.*(?:no such file|not "
                                   r"found)|stat /etc/git-secret/ssh: no such file")),
    ("ssh-auth", re.compile(r"(?i)permission denied \(publickey|load key .*: invalid format|no such identity|"
                            r"ssh: handshake failed|error in libcrypto")),
    ("https-auth", re.compile(r"(?i)authentication failed for|could not read username|could not read password|"
                              r"invalid username or password|the requested url returned error: 40[13]|"
                              r"terminal prompts disabled|http basic: access denied")),
    ("not-found", re.compile(r"(?i)repository not found|couldn't find remote ref|remote branch .* not found|"
                             r"does not appear to be a git repository|not found in upstream|"
                             r"fatal: invalid refspec")),
]
CAUSE_TEXT = {
    "host-key": "the git server's SSH host key is not in known_hosts (dags.gitSync.knownHosts)",
    "ssh-key-missing": "SSH is on but git-sync has no private key file (no git-sync-ssh-key volume / wrong Secret key)",
    "ssh-auth": "the SSH deploy key is refused by the git server (missing, revoked or not authorized on the repository)",
    "https-auth": "the HTTPS credentials are refused or missing (credentials Secret)",
    "not-found": "the repository or branch does not exist (or the credentials cannot see it)",
    "ssh-secret-missing": "the SSH key Secret the pod mounts does not exist",
}
FAILING = re.compile(r"(?i)too many failures, aborting|error syncing repo|exit status 128|fatal:")
SECRET_MOUNT = re.compile(r'(?i)MountVolume\.SetUp failed for volume "(git-sync-ssh-key)" ?: secret "([^"]+)" not found')


def is_gitsync(c: dict) -> bool:
    name = str(c.get("name") or "")
    return name.startswith("git-sync") or "/git-sync" in str(c.get("image") or "")


def gitsync_containers(pod: Pod) -> list[tuple[dict, bool]]:
    """(container spec, is_init) of the git-sync containers of a pod."""
    out = [(c, True) for c in pod.init_containers if is_gitsync(c)]
    out += [(c, False) for c in pod.containers if is_gitsync(c)]
    return out


def major(image: str) -> int | None:
    m = re.match(r"^v?(\d+)\.", image_tag(image))
    return int(m.group(1)) if m else None


@dataclass
class Settings:
    repo: str | None
    ref: str | None
    image: str
    ssh: bool
    key_volume: str | None        # Secret behind the git-sync-ssh-key volume
    known_hosts: bool | None      # GITSYNC_SSH_KNOWN_HOSTS / GIT_KNOWN_HOSTS
    cred_secret: str | None
    cred_keys: list[str] = field(default_factory=list)


def settings(pod: Pod, c: dict) -> Settings:
    env = env_of(c)   # name -> its last entry: what env_value/secret_ref find, looked up once per name

    def value(*names: str) -> str | None:   # env_value(c, *names)
        for n in names:
            v = env.get(n, {}).get("value")
            if isinstance(v, str):
                return v
        return None

    ssh = (value("GITSYNC_SSH", "GIT_SYNC_SSH") or "").lower() == "true"
    kh = value("GITSYNC_SSH_KNOWN_HOSTS", "GIT_KNOWN_HOSTS")
    key_volume = None
    mounts = {str(m.get("name")) for m in c.get("volumeMounts") or [] if isinstance(m, dict)}
    for v in pod.spec.get("volumes") or []:
        v = as_dict(v)
        if v.get("name") in mounts and "secret" in v and (v.get("name") == "git-sync-ssh-key"
                                                          or "ssh" in str(v.get("name"))):
            key_volume = str(as_dict(v.get("secret")).get("secretName") or "")
    cred_secret, keys = None, []
    for name in ("GITSYNC_USERNAME", "GITSYNC_PASSWORD", "GIT_SYNC_USERNAME", "GIT_SYNC_PASSWORD"):
        ref = secret_ref(c, name) if name in env else None
        if ref:
            cred_secret = cred_secret or ref[0]
            keys.append(name)
    return Settings(repo=value("GITSYNC_REPO", "GIT_SYNC_REPO"),
                    ref=value("GITSYNC_REF", "GIT_SYNC_BRANCH", "GIT_SYNC_REV"),
                    image=str(c.get("image") or ""), ssh=ssh, key_volume=key_volume,
                    known_hosts=None if kh is None else kh.lower() == "true", cred_secret=cred_secret,
                    cred_keys=[k for k in keys if k in env])


def repo_host(repo: str | None) -> tuple[str, str | None]:
    """(host, port) of a git URL (``git@host:org/repo``, ``ssh://git@host:2222/...``, ``https://...``)."""
    if not repo:
        return "github.com", None
    m = re.match(r"^[a-z+]+://(?:[^@/]+@)?([^:/]+)(?::(\d+))?", repo)
    if m:
        return m.group(1), m.group(2)
    m = re.match(r"^(?:[^@]+@)?([^:]+):", repo)
    return (m.group(1), None) if m else ("github.com", None)


def readable(line: str) -> str:
    """A git-sync v4 JSON log record as ``msg: the git error`` (stderr unescaped); other lines as they are."""
    ln = line.strip()
    if ln.startswith("{"):
        try:
            rec = json.loads(ln)
        except ValueError:
            return ln
        if isinstance(rec, dict):
            msg = str(rec.get("msg") or "")
            err = str(rec.get("error") or "")
            m = re.search(r'stderr: "(.*)" \}', err, re.S)
            detail = m.group(1) if m else err
            detail = detail.replace("\\r", " ").replace("\\n", " ").replace("\r", " ").replace("\n", " ")
            detail = re.sub(r"\s+", " ", detail.replace('\\"', '"')).strip()
            return f"{msg}: {detail}" if detail else msg
    return ln


def cause_of(lines: list[str]) -> str | None:
    blob = "\n".join(lines)
    for key, rx in CAUSES:
        if rx.search(blob):
            return key
    return None


def workload_key(ctx: Context, pod: Pod) -> tuple[str, str]:
    o = owner_of(pod)
    return o if o else ("Pod", pod.name)


def gitsync_finding_ids(ctx: Context, repo: str | None = None) -> list[str]:
    """Ids the ``gitsync-auth-failed`` findings of the release's long-running workloads would have
    (for ``caused_by`` links from task-pod findings with the same repository)."""
    ids = []
    for p in ctx.pods:
        if p.is_task_pod or not ctx.is_airflow_pod(p):
            continue
        for c, _init in gitsync_containers(p):
            if repo is None or settings(p, c).repo == repo:
                kind, name = workload_key(ctx, p)
                ids.append(finding_id("gitsync-auth-failed", k8s_resource(ctx, kind, name)))
    return list(dict.fromkeys(ids))
