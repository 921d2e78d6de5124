"""Reports in Cloud Storage: ``doctor --output-file gs://BUCKET/PREFIX/`` writes the JSON report of
each target as one object, and ``airflow-gke report gs://BUCKET/PREFIX/`` reads them back.

The write is the only one the tool makes besides ``--probe`` (docs/security.md): one create per
target, named ``<prefix>/<project>/<cluster>/<namespace>/<timestamp>.json`` (UTC, sortable:
``20261205T031500Z``), under the location the user typed and nowhere else, with the precondition
``ifGenerationMatch=0`` so that it never replaces an object (the identity needs
``storage.objects.create`` on the bucket and nothing more: no get, list or delete). Reading lists
the objects under the prefix (``storage.objects.list``) and downloads the ``.json`` ones
(``storage.objects.get``).

The official ``google-cloud-storage`` client, Application Default Credentials; an
``AIRFLOW_GKE_ENDPOINT_STORAGE`` loopback URL (tests) gets anonymous credentials, as for every read.
Nothing here is imported unless a ``gs://`` location is given.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import UserError
from .live.apierror import api_message

SCHEME = "gs://"
# Cloud Storage bucket names: 3-63 characters (222 with dots), lower-case letters, digits, '-', '_'
# and '.', starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_STAMP = "%Y%m%dT%H%M%SZ"
READ_WORKERS = 8
MAX_OBJECT_BYTES = 64 * 1024 * 1024      # a report is far smaller; anything larger is not one
TIMEOUT = 60.0


@dataclass(frozen=True)
class GcsPrefix:
    """``gs://bucket/prefix/`` as the user typed it (prefix without surrounding slashes)."""
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    def url(self, name: str) -> str:
        return f"{SCHEME}{self.bucket}/{name}"


def is_gs(spec: str) -> bool:
    return spec[:5].lower() == SCHEME


def parse(spec: str, what: str = "--output-file") -> GcsPrefix:
    """A ``gs://BUCKET[/PREFIX][/]`` location, or a UserError saying what is wrong with it."""
    if not is_gs(spec) or not spec.startswith(SCHEME):
        raise UserError(f"{what} {spec}: a Cloud Storage location starts with gs:// (lower case)", usage=True)
    rest = spec[len(SCHEME):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UserError(f"{what} {spec}: no bucket name after gs:// (gs://BUCKET/PREFIX/)", usage=True)
    if not _BUCKET.match(bucket) or ".." in bucket or (len(bucket) > 63 and "." not in bucket):
        raise UserError(f"{what} {spec}: {bucket!r} is not a Cloud Storage bucket name (3-63 lower-case "
                        "letters, digits, '-', '_' or '.', starting and ending with a letter or digit)", usage=True)
    parts = prefix.split("/")
    inner = [p for p in parts if p]
    if any(p in (".", "..") for p in inner) or "//" in prefix.strip("/") or any(
            ord(c) < 32 or c in "#[]*?" for c in prefix):
        raise UserError(f"{what} {spec}: the prefix {prefix!r} holds an empty, '.' or '..' segment, or a "
                        "character Cloud Storage object names should not hold (control characters, # [ ] * ?)",
                        usage=True)
    return GcsPrefix(bucket, "/".join(inner))


def stamp(started_at: str | None, now: datetime | None = None) -> str:
    """``20261205T031500Z`` for an RFC 3339 time (the run's start), else ``now`` (UTC)."""
    t = None
    if isinstance(started_at, str) and started_at:
        try:
            t = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
        except ValueError:
            t = None
    t = t or now or datetime.now(timezone.utc)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime(_STAMP)


def _segment(value) -> str:
    """One path segment from a name the report holds ('_' when it holds none)."""
    s = str(value or "").strip().replace("/", "_")
    return s if s and s not in (".", "..") else "_"


def object_names(loc: GcsPrefix, runs: list[dict], started_at: str | None) -> list[str]:
    """The object name of each target's report: ``<prefix>/<project>/<cluster>/<namespace>/<stamp>.json``;
    targets of one run that share project, cluster and namespace (several releases in one namespace)
    get ``<stamp>-<release>.json`` so that no object replaces another."""
    ts = stamp(started_at)
    dirs = ["/".join(x for x in (loc.prefix, _segment(r.get("project")), _segment(r.get("cluster")),
                                 _segment(r.get("namespace"))) if x) for r in runs]
    out = []
    for d, r in zip(dirs, runs):
        shared = dirs.count(d) > 1
        out.append(f"{d}/{ts}-{_segment(r.get('release'))}.json" if shared else f"{d}/{ts}.json")
    return out


# --- the client ---------------------------------------------------------------------------------

def _client(env: dict, scope: str):
    from google.auth import exceptions as aexc

    from .live.options import endpoint

    ep = endpoint("storage", env)
    if ep.anonymous:
        from google.auth.credentials import AnonymousCredentials

        creds, project = AnonymousCredentials(), None
    else:
        import google.auth

        try:
            creds, project = google.auth.default(scopes=[f"https://www.googleapis.com/auth/{scope}"])
        except aexc.DefaultCredentialsError as e:
            from .live.gcloud import adc_missing

            raise UserError(f"Cloud Storage: {adc_missing(e, env)}") from None
    from google.cloud import storage

    client = storage.Client(project=project or "-", credentials=creds,
                            client_options={"api_endpoint": ep.url} if ep.url else None)
    # google-cloud-storage >= 3.5 fetches each bucket's metadata in a background thread (a GET of the
    # bucket, for tracing attributes): a read the identity need not be granted (storage.buckets.get),
    # and a request the user did not ask for. Off: only the calls below are sent.
    if getattr(client, "_bucket_metadata_cache", None) is not None:
        client._bucket_metadata_cache = None
    return client


_DENIED_WHO = re.compile(r"^(\S+@\S+) does not have ")


def _member(msg: str) -> str:
    """The IAM member Cloud Storage's 403 names ("<email> does not have storage.objects.create
    access ..."); SA_EMAIL only when the answer names nobody."""
    m = _DENIED_WHO.match(msg)
    if not m:
        return "serviceAccount:SA_EMAIL"
    who = m.group(1)
    return f"{'serviceAccount' if who.endswith('.gserviceaccount.com') else 'user'}:{who}"


def _explain(e: BaseException, loc: GcsPrefix, what: str, needs: str, role: str) -> str:
    """One line for a failed Cloud Storage call: what failed (``what``: 'write gs://...'), the
    API's words, what to do."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    action = what
    if isinstance(e, gexc.GoogleAPICallError):
        code = e.code if isinstance(e.code, int) else None
        msg = api_message(e)
        if code == 404:
            return f"cannot {action}: bucket {loc.bucket} does not exist (HTTP 404: {msg})"
        if code in (401, 403):
            return (f"cannot {action}: permission denied (HTTP {code}: {msg}); the identity needs {needs} "
                    f"on bucket {loc.bucket}: gcloud storage buckets add-iam-policy-binding gs://{loc.bucket} "
                    f"--member {_member(msg)} --role {role}")
        if code == 412:
            return f"cannot {action}: the object already exists (HTTP 412); reports are never replaced"
        return f"cannot {action}: HTTP {code}: {msg}"
    if isinstance(e, (aexc.RefreshError, aexc.TransportError)):
        return f"cannot {action}: no Google access token ({e})"
    return f"cannot {action}: {type(e).__name__}: {e}"


def upload(loc: GcsPrefix, objects: list[tuple[str, bytes]], env: dict | None = None,
           timeout: float = TIMEOUT) -> list[str]:
    """Create each (name, JSON bytes) object under ``loc``; the ``gs://`` URLs written. The first
    failure is a UserError naming the location, the API's answer and the grant that fixes it."""
    env = dict(os.environ) if env is None else env
    client = _client(env, "devstorage.read_write")
    bucket = client.bucket(loc.bucket)       # no request: the identity may lack storage.buckets.get
    done = []
    for name, data in objects:
        try:
            bucket.blob(name).upload_from_string(data, content_type="application/json", if_generation_match=0,
                                                 timeout=timeout, retry=None)
        except Exception as e:  # noqa: BLE001 - every failure is one line (GoogleAPICallError, transport)
            written = f" ({len(done)} of {len(objects)} written: {', '.join(done)})" if done else ""
            raise UserError(_explain(e, loc, f"write the JSON report to {loc.url(name)}", "storage.objects.create",
                                     "roles/storage.objectCreator") + written) from None
        done.append(loc.url(name))
    return done


def read_all(loc: GcsPrefix, env: dict | None = None, timeout: float = TIMEOUT,
             warn=None) -> list[tuple[str, bytes]]:
    """(gs:// URL, bytes) of every ``.json`` object under the prefix, in name order."""
    from concurrent.futures import ThreadPoolExecutor

    env = dict(os.environ) if env is None else env
    client = _client(env, "devstorage.read_only")
    prefix = f"{loc.prefix}/" if loc.prefix else ""
    try:
        blobs = [b for b in client.list_blobs(loc.bucket, prefix=prefix or None, timeout=timeout)
                 if b.name.endswith(".json")]
    except Exception as e:  # noqa: BLE001
        raise UserError(_explain(e, loc, f"list the reports under {loc}", "storage.objects.list and storage.objects.get",
                                 "roles/storage.objectViewer")) from None
    big = [b for b in blobs if (b.size or 0) > MAX_OBJECT_BYTES]
    for b in big:
        if warn:
            warn(f"skipped {loc.url(b.name)}: {b.size} bytes, larger than a report can be")
    blobs = sorted((b for b in blobs if b not in big), key=lambda b: b.name)

    def get(b):
        try:
            return loc.url(b.name), b.download_as_bytes(timeout=timeout), None
        except Exception as e:  # noqa: BLE001
            return loc.url(b.name), None, _explain(e, loc, f"read {loc.url(b.name)}", "storage.objects.get",
                                                   "roles/storage.objectViewer")

    out = []
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        for url, data, err in pool.map(get, blobs):
            if err:
                if warn:
                    warn(f"skipped {url}: {err}")
                continue
            out.append((url, data))
    return out
