"""Reading snapshot-v1 directories and ``.tar.gz`` archives (see docs/snapshot-format.md)."""
from __future__ import annotations

import mmap
import os
import re
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import orjson

from .compact import Interner, compact, parse_list_in_slices
from .errors import UserError
from .redact import Redactor, kept_as_is
from .source import Entry, Source, in_namespace

FORMAT = "airflow-gke/snapshot@1"
_KINDS = ((".error.json", "error"), (".json", "json"), (".log", "log"))
# Lists read slice by slice when their file is at least this large (see SnapshotSource._load_sliced).
SLICED_LISTS = ("/pods", "/events")
SLICED_MIN_BYTES = int(os.environ.get("AIRFLOW_GKE_SLICED_MIN_BYTES", 8 * 1024**2))

# Bounds for archives from strangers; override with the environment for very large snapshots.
MAX_ARCHIVE_BYTES = int(os.environ.get("AIRFLOW_GKE_MAX_ARCHIVE_BYTES", 4 * 1024**3))
MAX_ARCHIVE_FILES = int(os.environ.get("AIRFLOW_GKE_MAX_ARCHIVE_FILES", 500_000))


@dataclass
class Meta:
    captured_at: datetime
    namespace: str
    project: str | None = None
    location: str | None = None
    cluster: str | None = None
    release: str | None = None
    context: str | None = None
    tool_version: str | None = None
    raw: dict = field(default_factory=dict)


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 timestamp → aware UTC datetime; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_time(value)


@lru_cache(maxsize=65536)   # events and pods repeat timestamps; a large namespace asks ~300,000 times
def _parse_time(value: str) -> datetime | None:
    if len(value) == 20 and value[19] in "Zz" and value[10] in "Tt":   # the API's usual form, whole seconds
        try:
            return datetime.fromisoformat(value[:19]).replace(tzinfo=timezone.utc)
        except ValueError:
            return None
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    # Python 3.10's fromisoformat does not take fractions of other than 3 or 6 digits.
    v = re.sub(r"\.(\d{1,6})\d*(?=[+-]\d\d:\d\d$)", lambda m: "." + m.group(1).ljust(6, "0"), v)
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def parse_meta(raw: Any, where: str) -> Meta:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: meta.json must hold a JSON object")
    if raw.get("format") != FORMAT:
        raise UserError(
            f"{where}: meta.json has format {raw.get('format')!r}; this version reads {FORMAT!r}")
    captured = parse_time(raw.get("captured_at"))
    if captured is None:
        raise UserError(f"{where}: meta.json 'captured_at' must be an RFC 3339 timestamp")
    ns = raw.get("namespace")
    if not isinstance(ns, str) or not ns:
        raise UserError(f"{where}: meta.json 'namespace' must be a non-empty string")

    def opt(k: str) -> str | None:
        v = raw.get(k)
        return v if isinstance(v, str) and v else None

    return Meta(captured, ns, opt("project"), opt("location"), opt("cluster"), opt("release"),
                opt("context"), opt("tool_version"), raw)


class SnapshotSource(Source):
    """A snapshot directory, indexed once, each file parsed (and redacted) on first use."""

    mode = "snapshot"

    def __init__(self, root: Path, cleanup: Path | None = None) -> None:
        self.root = root
        self._cleanup = cleanup
        self.redactor = Redactor()
        self.interner = Interner()   # shares repeated parts of large lists (doctor/compact.py)
        meta_path = root / "meta.json"
        if meta_path.is_symlink() or not meta_path.is_file():
            raise UserError(f"{root}: not a snapshot (no meta.json at its top level)")
        try:
            raw = orjson.loads(meta_path.read_bytes())
        except orjson.JSONDecodeError as e:
            raise UserError(f"{root}/meta.json: invalid JSON ({e})") from None
        self.meta = parse_meta(raw, str(root))
        self._files: dict[str, tuple[str, str]] = {}   # snapshot path -> (file, kind)
        self._cache: dict[str, Entry] = {}
        self._index(str(root), "")   # after meta.json: a directory that is no snapshot is not walked

    def _index(self, dirpath: str, rel_dir: str) -> None:
        """Index the files under ``dirpath`` as ``os.walk(followlinks=False)`` would see them, with
        less work per directory (a 50,000-pod snapshot has ~25,000 log directories)."""
        try:
            it = os.scandir(dirpath)
        except OSError:
            return
        subdirs = []
        with it:
            for e in it:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    if not e.is_symlink():
                        subdirs.append(e)
                    continue
                name = e.name
                for ext, kind in _KINDS:
                    if name.endswith(ext):
                        self._files.setdefault(rel_dir + name[: -len(ext)], (e.path, kind))
                        break
        for e in subdirs:
            self._index(e.path, rel_dir + e.name + "/")

    def close(self) -> None:
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)
            self._cleanup = None

    def __enter__(self) -> "SnapshotSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def paths(self, prefix: str = "") -> Iterable[str]:
        return [p for p in self._files if p.startswith(prefix)]

    def forget(self, namespace: str) -> None:
        for path in [p for p in self._cache if in_namespace(p, namespace)]:
            del self._cache[path]
        # what the interner and the redactor remember to share and skip belongs to what was read
        self.interner = Interner()
        self.redactor.forget()

    def get(self, path: str) -> Entry | None:
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        found = self._files.get(path)
        if found is None:
            return None
        file, kind = found   # plain strings: a run reads thousands of logs, Path objects cost more than the read
        entry = _not_regular(path, file) or self._load(path, file, kind)
        self._cache[path] = entry
        return entry

    def lacks(self, path: str, needle: str) -> bool:
        """``Source.lacks`` from the log file's bytes, without parsing or redacting a log that does
        not hold ``needle`` (a 10,000-pod snapshot holds ~2,500 logs that one check searches for one
        literal). Exact for a literal redaction keeps as it is (``redact.kept_as_is``: the redacted
        text holds it only where the bytes do); nothing is kept, and a file that is not a readable
        regular log, or another literal, is left to ``get``."""
        cached = self._cache.get(path)
        if cached is not None:
            return cached.ok and isinstance(cached.data, str) and needle not in cached.data
        found = self._files.get(path)
        if found is None:
            return True   # not collected: get() answers None, no text
        if found[1] != "log" or not kept_as_is(needle) or _not_regular(path, found[0]) is not None:
            return False
        try:
            with open(found[0], "rb") as fh:
                return needle.encode() not in fh.read()
        except OSError:
            return False

    def _rel(self, file: str) -> Path:
        return Path(file).relative_to(self.root)

    def _load(self, path: str, file: str, kind: str) -> Entry:
        if kind == "json" and path.endswith(SLICED_LISTS):
            entry = self._load_sliced(path, file)
            if entry is not None:
                return entry
        try:
            with open(file, "rb") as fh:
                raw = fh.read()
        except OSError as e:
            return Entry(path, error={"message": f"unreadable snapshot file {os.path.basename(file)}: {e.strerror}"})
        try:
            return self._parse(path, file, kind, raw)
        except Exception as e:  # noqa: BLE001 - a body the redactor cannot walk is withheld, never passed on as is
            return Entry(path, error={"message": f"malformed snapshot file {self._rel(file)}, withheld "
                                                 f"(it could not be checked for secrets: {type(e).__name__})"})

    def _load_sliced(self, path: str, file: str) -> Entry | None:
        """A large pod or event list, parsed, redacted and compacted slice by slice from a read-only
        mapping of the file (doctor/compact.py), so neither the file nor the unshared objects are
        in memory at once; None: not large, or not cut cleanly (the caller parses it whole)."""
        try:
            with open(file, "rb") as fh:
                if os.fstat(fh.fileno()).st_size < SLICED_MIN_BYTES:
                    return None
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None
        done = [0]

        def process(items: list) -> None:
            self.redactor.body(path, compact(path, {"items": items}, self.interner))

        def release(end: int) -> None:   # the pages before ``end`` were parsed: out of our memory
            end -= end % mmap.PAGESIZE
            if end > done[0] and hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_DONTNEED, done[0], end - done[0])
                done[0] = end

        try:
            body = parse_list_in_slices(mm, process, release=release)
        except Exception:  # noqa: BLE001 - invalid JSON, odd shapes: the whole-body path reports it
            body = None
        finally:
            mm.close()
        return Entry(path, data=body) if body is not None else None

    def _parse(self, path: str, file: str, kind: str, raw: bytes) -> Entry:
        if kind == "log":
            return Entry(path, data=self.redactor.log(raw.decode("utf-8", errors="replace")))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return Entry(path, error={"message": f"invalid JSON in snapshot file {self._rel(file)}: {e}"})
        if kind == "error":
            # "status": null records a read that got no HTTP answer (timeout, connection failure).
            if not isinstance(body, dict) or "status" not in body or not (
                    body["status"] is None or (isinstance(body["status"], int) and not isinstance(body["status"], bool))):
                return Entry(path, error={"message": f"malformed error file {self._rel(file)}: "
                                                     "expected {\"status\": <int or null>, \"body\": ...}"})
            err = body.get("body")
            if isinstance(err, (dict, str)):
                err = self.redactor.body(path, err) if isinstance(err, dict) else self.redactor.text(err)
            if err is None or err == {}:
                err = {"message": "no answer"} if body["status"] is None else {}
            return Entry(path, status=body["status"], error=err)
        return Entry(path, data=self.redactor.body(path, compact(path, body, self.interner)))


def _not_regular(path: str, file: str) -> Entry | None:
    """Snapshot files are regular files. A symlink (it could point anywhere), a FIFO or a device (reading
    it could block or never end) is not read: its entry says so."""
    try:
        st = os.lstat(file)
    except OSError as e:
        return Entry(path, error={"message": f"unreadable snapshot file {os.path.basename(file)}: {e.strerror}"})
    if not stat.S_ISREG(st.st_mode):
        return Entry(path, error={"message": f"snapshot file {os.path.basename(file)} is not a regular file (a symlink, FIFO "
                                             "or device); not read"})
    return None


def open_snapshot(path: str | os.PathLike) -> SnapshotSource:
    """Open a snapshot directory or ``.tar.gz``; raises UserError with a message for the user."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file or directory")
    if p.is_dir():
        return SnapshotSource(p)
    if not p.is_file():   # a FIFO or a device: reading it could block or never end
        raise UserError(f"{p}: neither a snapshot directory nor a .tar.gz archive (not a regular file)")
    if not tarfile.is_tarfile(p):
        raise UserError(f"{p}: neither a snapshot directory nor a .tar.gz archive")
    tmp = Path(tempfile.mkdtemp(prefix="airflow-gke-snapshot-"))
    try:
        _extract(p, tmp)
        root = tmp
        if not (tmp / "meta.json").exists():
            tops = [c for c in tmp.iterdir()]
            if len(tops) == 1 and tops[0].is_dir():
                root = tops[0]
        return SnapshotSource(root, cleanup=tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _extract(archive: Path, dest: Path) -> None:
    """Extract regular files and folders only, refusing anything that could escape ``dest``."""
    total = 0
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                count += 1
                if count > MAX_ARCHIVE_FILES:
                    raise UserError(f"{archive}: more than {MAX_ARCHIVE_FILES} members; refused "
                                        "(set AIRFLOW_GKE_MAX_ARCHIVE_FILES to allow more)")
                name = m.name
                parts = Path(name).parts
                if name.startswith(("/", "\\")) or Path(name).is_absolute() or ".." in parts or re.match(r"^[A-Za-z]:", name):
                    raise UserError(f"{archive}: member {name!r} has an absolute or parent path; refused")
                if m.issym() or m.islnk():
                    raise UserError(f"{archive}: member {name!r} is a link; refused")
                if m.isdir():
                    (dest / name).mkdir(parents=True, exist_ok=True)
                    continue
                if not m.isfile():
                    raise UserError(f"{archive}: member {name!r} is not a regular file; refused")
                total += m.size
                if total > MAX_ARCHIVE_BYTES:
                    raise UserError(f"{archive}: unpacks to more than {MAX_ARCHIVE_BYTES} bytes; refused "
                                        "(set AIRFLOW_GKE_MAX_ARCHIVE_BYTES to allow more)")
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None:
                    continue
                with src, open(target, "wb") as out:
                    remaining = m.size
                    while remaining > 0:
                        chunk = src.read(min(1 << 20, remaining))
                        if not chunk:
                            break
                        out.write(chunk)
                        remaining -= len(chunk)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{archive}: cannot read archive ({e})") from None
