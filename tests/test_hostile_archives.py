"""Snapshots from strangers: decompression bombs, FIFOs, lying tar headers, links and special
files, and proof that reading any of them writes nothing outside one temporary folder, which is
gone when the run ends (whether it succeeded or failed).

tests/test_snapshot_reader.py covers ``..``, absolute paths, symlink/hardlink/device members and
the bounds set on the module; this file drives the bounds through their environment variables in
a fresh interpreter whose every file-system write is recorded by a Python audit hook
(``sys.addaudithook``: ``open`` for writing, ``os.mkdir``, ``os.rename``, ``shutil.rmtree``, ...).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from conftest import ROOT, SCENARIOS, scenario_names

META = {"format": "airflow-gke/snapshot@1", "captured_at": "2026-11-20T10:00:00Z", "tool_version": "0.1.0",
        "context": None, "project": "acme-data-prod", "location": None, "cluster": None, "namespace": "airflow",
        "release": None}
PODS = "k8s/api/v1/namespaces/airflow/pods.json"
BOUND_BYTES = 8 * 1024 * 1024          # AIRFLOW_GKE_MAX_ARCHIVE_BYTES in the child
BOUND_FILES = 400                      # AIRFLOW_GKE_MAX_ARCHIVE_FILES in the child
BOMB_BYTES = 256 * 1024 * 1024         # what the bomb unpacks to


# --- building hostile inputs --------------------------------------------------------------------
class Zeros(io.RawIOBase):
    """A file object of ``n`` zero bytes, without holding them."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def _info(name: str, size: int = 0, type_: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.linkname, ti.mode = size, type_, linkname, 0o644
    return ti


def _meta_member() -> tuple[tarfile.TarInfo, bytes]:
    data = json.dumps(META).encode()
    return _info("meta.json", len(data)), data


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | io.RawIOBase | None]]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=6) as tar:
        for info, data in members:
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif data is not None:
                tar.addfile(info, io.BufferedReader(data, 1 << 20))
            else:
                tar.addfile(info)
    return path


def bomb(path: Path) -> Path:
    """A small .tar.gz whose one JSON member unpacks to 256 MiB of zeros."""
    return write_tar(path, [_meta_member(), (_info(PODS, BOMB_BYTES), Zeros(BOMB_BYTES))])


def lying_tar(path: Path, tail: int = 32 * 1024 * 1024) -> Path:
    """A member whose header says 12 bytes, followed by a stream of ``tail`` more bytes that no
    header describes (a reader that trusted the stream instead of the header would write them)."""
    meta_info, meta = _meta_member()
    body = b'{"items":[]}'
    raw = io.BytesIO()
    for info, data in ((meta_info, meta), (_info(PODS, len(body)), body)):
        raw.write(info.tobuf(format=tarfile.GNU_FORMAT))
        raw.write(data + b"\0" * (-len(data) % 512))
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = gz.compress(raw.getvalue())
    chunk = b"\x01" * (1 << 20)
    for _ in range(tail // len(chunk)):
        out += gz.compress(chunk)
    path.write_bytes(out + gz.flush())
    return path


def scenario_tar(path: Path, name: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(SCENARIOS / name, arcname=name)
    return path


def small_scenario() -> str:
    names = scenario_names()
    for n in ("seed-incident", "api-disabled-preflight"):
        if n in names:
            return n
    return names[0]


# --- a fresh interpreter that records every write -------------------------------------------------
CHILD = r'''
import json, os, sys
WRITES = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):
            return
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS):
            WRITES.append((event, os.fsdecode(path)))
    elif event in ("os.mkdir", "os.rmdir", "os.remove", "os.symlink", "os.link", "os.chmod", "os.chown",
                   "os.truncate", "os.utime", "shutil.rmtree", "tempfile.mkdtemp", "tempfile.mkstemp",
                   "os.rename", "os.replace", "shutil.copyfile", "shutil.move"):
        paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
        dir_fd = args[-1] if event in ("os.mkdir", "os.rmdir", "os.remove") else None
        if isinstance(dir_fd, int) and paths and not os.path.isabs(os.fsdecode(paths[0])):
            return   # relative to a directory fd: inside a tree whose own event was recorded (rmtree)
        for p in paths[:2]:
            WRITES.append((event, os.fsdecode(p)))

import contextlib, io, time
sys.addaudithook(hook)
from airflow_gke.cli import main

results = []
for args in json.loads(sys.argv[1]):
    WRITES.clear()
    t0 = time.perf_counter()
    err, out = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
    left = sorted(os.listdir(os.environ["TMPDIR"]))
    results.append({"args": args, "code": code, "err": err.getvalue(), "writes": list(WRITES), "tmp_left": left,
                    "seconds": time.perf_counter() - t0})
print(json.dumps(results))
'''


def run_child(runs: list[list[str]], tmp_path: Path) -> tuple[list[dict], dict[str, Path]]:
    dirs = {k: tmp_path / k for k in ("tmp", "home", "cwd")}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_GKE_")}
    env.update(TMPDIR=str(dirs["tmp"]), HOME=str(dirs["home"]), PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1",
               PYTHONPATH=str(ROOT), AIRFLOW_GKE_MAX_ARCHIVE_BYTES=str(BOUND_BYTES),
               AIRFLOW_GKE_MAX_ARCHIVE_FILES=str(BOUND_FILES))
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(runs)], capture_output=True, text=True,
                       cwd=dirs["cwd"], env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1]), dirs


def tree(p: Path) -> dict[str, int]:
    return {str(f.relative_to(p)): f.stat().st_size for f in p.rglob("*")} if p.exists() else {}


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    return d


# --- the tests -------------------------------------------------------------------------------------
def test_hostile_archives_refused_with_exit_2_and_nothing_written_outside_the_temp_folder(tmp_path, inputs):
    name = small_scenario()
    good = scenario_tar(inputs / "good.tar.gz", name)
    fifo_member = _info("k8s/fifo.json", type_=tarfile.FIFOTYPE)
    cases = {
        "bomb": (bomb(inputs / "bomb.tar.gz"), "unpacks to more than 8388608 bytes; refused (set AIRFLOW_GKE_MAX_ARCHIVE_BYTES"),
        "many": (write_tar(inputs / "many.tar.gz", [_meta_member()] + [(_info(f"k8s/f{i}.json"), b"{}")
                                                                          for i in range(BOUND_FILES + 5)]),
                 f"more than {BOUND_FILES} members; refused (set AIRFLOW_GKE_MAX_ARCHIVE_FILES"),
        "fifo": (write_tar(inputs / "fifo.tar.gz", [_meta_member(), (fifo_member, None)]), "is not a regular file; refused"),
        "dotdot": (write_tar(inputs / "dotdot.tar.gz", [_meta_member(), (_info("a/../../escaped.json"), b"{}")]),
                   "absolute or parent path; refused"),
        "absolute": (write_tar(inputs / "abs.tar.gz", [_meta_member(), (_info(str(tmp_path / "abs.json")), b"{}")]),
                     "absolute or parent path; refused"),
        "symlink": (write_tar(inputs / "sym.tar.gz", [_meta_member(), (_info(PODS, type_=tarfile.SYMTYPE,
                                                                              linkname="/etc/passwd"), None)]),
                    "is a link; refused"),
        "hardlink": (write_tar(inputs / "hard.tar.gz", [_meta_member(), (_info(PODS, type_=tarfile.LNKTYPE,
                                                                                linkname="meta.json"), None)]),
                     "is a link; refused"),
        "device": (write_tar(inputs / "dev.tar.gz", [_meta_member(), (_info("k8s/zero", type_=tarfile.CHRTYPE), None)]),
                   "is not a regular file; refused"),
        "no-meta": (write_tar(inputs / "nometa.tar.gz", [(_info(PODS), b'{"items":[]}')]), "no meta.json"),
        "truncated": (None, "cannot read archive"),
        "not-an-archive": (None, "neither a snapshot directory nor a .tar.gz archive"),
        "fifo-path": (None, "not a regular file"),
    }
    raw = good.read_bytes()
    trunc = inputs / "truncated.tar.gz"
    trunc.write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = (trunc, cases["truncated"][1])
    junk = inputs / "junk.tar.gz"
    junk.write_bytes(os.urandom(4096))
    cases["not-an-archive"] = (junk, cases["not-an-archive"][1])
    fifo = inputs / "snapshot.fifo"
    os.mkfifo(fifo)
    cases["fifo-path"] = (fifo, cases["fifo-path"][1])
    assert bomb(inputs / "b2.tar.gz").stat().st_size * 500 < BOMB_BYTES      # a real bomb: > 500:1

    before = tree(inputs)
    runs = [["doctor", "--snapshot", str(good), "--output", "json"],
            ["doctor", "--snapshot", str(SCENARIOS / name), "--output", "json"]]
    runs += [["doctor", "--snapshot", str(path), "--output", "json"] for path, _msg in cases.values()]
    results, dirs = run_child(runs, tmp_path)

    tmp = os.path.realpath(dirs["tmp"])
    for r in results:
        outside = [(ev, p) for ev, p in r["writes"] if not os.path.realpath(p).startswith(tmp + os.sep)
                   and os.path.realpath(p) != tmp]
        assert not outside, (r["args"], outside)
        assert r["tmp_left"] == [], (r["args"], r["tmp_left"])      # the temp folder is gone, also on failure
        assert "Traceback" not in r["err"]
    good_r, dir_r = results[0], results[1]
    assert good_r["code"] in (0, 1, 3), good_r["err"]
    assert any(ev == "tempfile.mkdtemp" for ev, _ in good_r["writes"])   # it did extract, under TMPDIR
    assert dir_r["code"] in (0, 1, 3) and dir_r["writes"] == []           # a directory: no write at all
    for (case, (_path, msg)), r in zip(cases.items(), results[2:]):
        assert r["code"] == 2, (case, r["code"], r["err"])
        assert msg in r["err"], (case, r["err"])
        assert r["err"].startswith("airflow-gke: error: ") and len(r["err"].strip().splitlines()) == 1, (case, r["err"])
        assert r["seconds"] < 10, (case, r["seconds"])
    bomb_r = results[2]
    # refused on the declared size, before a byte of it was inflated: the only file written is meta.json
    assert [p for ev, p in bomb_r["writes"] if ev == "open"] == [p for ev, p in bomb_r["writes"]
                                                                  if ev == "open" and p.endswith("meta.json")]
    assert tree(inputs) == before                          # inputs untouched
    assert tree(dirs["cwd"]) == {} and tree(dirs["home"]) == {}


def test_a_member_that_claims_a_small_size_is_read_for_that_size_only(inputs, run_cli):
    """The header says 12 bytes; 32 MiB more follow. Only the 12 bytes are written, the stream
    after them is never inflated, and the temporary folder goes away with the source."""
    from airflow_gke.snapshot import open_snapshot

    arc = lying_tar(inputs / "lying.tar.gz")
    assert arc.stat().st_size < 1024 * 1024
    t0 = time.perf_counter()
    src = open_snapshot(arc)
    took = time.perf_counter() - t0
    tmp_root = src._cleanup
    files = {str(f.relative_to(src.root)): f.stat().st_size for f in src.root.rglob("*") if f.is_file()}
    assert files == {"meta.json": len(json.dumps(META)), PODS: 12}
    assert src.get(PODS[: -len(".json")]).data == {"items": []}
    assert took < 2.0, took                                 # 32 MiB were not inflated
    src.close()
    assert not tmp_root.exists()
    r = run_cli("doctor", "--snapshot", str(arc), "--output", "json")
    assert r.code in (0, 3), r.err


def test_snapshot_directory_with_links_and_fifos_reads_none_of_them(tmp_path, run_cli):
    """A snapshot directory (unpacked by the user, from a stranger) whose files are symlinks to
    files outside it or FIFOs: not followed, not read (a FIFO would block the run forever); the
    checks that needed them say so."""
    snap = tmp_path / "snap"
    (snap / "k8s/api/v1/namespaces/airflow").mkdir(parents=True)
    (snap / "meta.json").write_text(json.dumps(dict(META, cluster="c", location="l")))
    secret = tmp_path / "outside.json"
    secret.write_text(json.dumps({"items": [{"metadata": {"name": "from-outside"}}]}))
    (snap / PODS).symlink_to(secret)
    os.mkfifo(snap / "k8s/api/v1/namespaces/airflow/events.json")
    os.mkfifo(snap / "k8s/api/v1/namespaces/airflow/configmaps.json")
    t0 = time.perf_counter()
    r = run_cli("doctor", "--snapshot", str(snap), "--output", "json")
    assert time.perf_counter() - t0 < 10
    assert r.code in (0, 1, 3), r.err
    assert "from-outside" not in r.out
    reasons = " ".join(c["reason"] or "" for c in r.json["checks"])
    assert "is not a regular file (a symlink, FIFO or device); not read" in reasons
    # meta.json itself may not be a link either
    other = tmp_path / "snap2"
    other.mkdir()
    (other / "meta.json").symlink_to(snap / "meta.json")
    r = run_cli("doctor", "--snapshot", str(other))
    assert r.code == 2 and "no meta.json" in r.err
