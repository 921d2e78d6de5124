"""Writing snapshot-v1 (docs/snapshot-format.md) from what a live run read.

Everything written comes out of a ``MemorySource``, whose entries were redacted when they were
read; ``meta.json`` records the names of the masked keys (never their values). A directory is
written in place (it must be new or empty); a ``.tar.gz`` holds one top-level folder.
"""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from . import __version__
from .errors import UserError
from .snapshot import FORMAT
from .source import Entry, MemorySource


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def make_meta(*, captured_at: datetime, namespace: str, context: str | None, project: str | None,
              location: str | None, cluster: str | None, release: str | None, redacted: list[str],
              extra: dict | None = None) -> dict:
    meta = {
        "format": FORMAT,
        "captured_at": rfc3339(captured_at),
        "tool_version": __version__,
        "context": context,
        "project": project,
        "location": location,
        "cluster": cluster,
        "namespace": namespace,
        "release": release,
        "redacted": sorted(set(redacted)),
    }
    meta.update(extra or {})
    return meta


def _safe_rel(path: str) -> str:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") or "\x00" in p or "\\" in p for p in parts):
        raise UserError(f"refusing to write an unsafe snapshot path {path!r}")
    return path


def entry_file(entry: Entry) -> tuple[str, bytes]:
    """(relative file name, bytes) of one entry as snapshot-v1 stores it."""
    rel = _safe_rel(entry.path)
    if not entry.ok:
        doc = {"status": entry.status, "body": entry.error if entry.error is not None else {}}
        return rel + ".error.json", orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    if isinstance(entry.data, str) and "/log/" in rel:
        return rel + ".log", entry.data.encode("utf-8")
    return rel + ".json", orjson.dumps(entry.data, option=orjson.OPT_INDENT_2) + b"\n"


def _files(source: MemorySource, meta: dict) -> list[tuple[str, bytes]]:
    out = [("meta.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")]
    for path in sorted(source.entries):
        out.append(entry_file(source.entries[path]))
    return out


def is_archive(dest: str | os.PathLike) -> bool:
    return str(dest).endswith((".tar.gz", ".tgz"))


def write_snapshot(source: MemorySource, meta: dict, dest: str | os.PathLike) -> Path:
    """Write the snapshot to a directory or a ``.tar.gz``; returns the path written."""
    dest = Path(dest)
    files = _files(source, meta)
    if is_archive(dest):
        return _write_archive(files, dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} exists and is not an empty directory; choose a new path "
                           "(or a .tar.gz file name)")
    tmp = Path(tempfile.mkdtemp(prefix=".airflow-gke-", dir=str(dest.parent if dest.parent.exists() else ".")))
    try:
        for rel, data in files:
            f = tmp / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write {dest}: {e.strerror or e}") from None
    return dest


def _write_archive(files: list[tuple[str, bytes]], dest: Path) -> Path:
    name = dest.name
    top = name[: -len(".tar.gz")] if name.endswith(".tar.gz") else name[: -len(".tgz")]
    top = top or "snapshot"
    if dest.exists() and dest.is_dir():
        raise UserError(f"{dest} is a directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    mtime = int(time.time())
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            dirs: set[str] = set()
            for rel, data in files:
                parts = rel.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i])
                    if d not in dirs:
                        dirs.add(d)
                        ti = tarfile.TarInfo(f"{top}/{d}")
                        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
                        tar.addfile(ti)
                ti = tarfile.TarInfo(f"{top}/{rel}")
                ti.size, ti.mode, ti.mtime = len(data), 0o644, mtime
                tar.addfile(ti, io.BytesIO(data))
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {dest}: {e.strerror or e}") from None
    return dest


def default_name(project: str | None, cluster: str | None, captured_at: datetime) -> str:
    what = "-".join(x for x in (project, cluster) if x) or "snapshot"
    return f"airflow-gke-{what}-{captured_at.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


def count_files(source: MemorySource) -> dict[str, Any]:
    entries = list(source.entries.values())
    ok = sum(1 for e in entries if e.ok)
    not_found = sum(1 for e in entries if e.status == 404)
    return {"files": len(entries), "ok": ok, "not_found": not_found, "failed": len(entries) - ok - not_found}


def count_text(source: MemorySource) -> str:
    n = count_files(source)
    parts = [f"{n['not_found']} not found"] if n["not_found"] else []
    parts.append(f"{n['failed']} failed")
    return f"{n['files']} reads ({', '.join(parts)})"
