"""Reading snapshots: directories and archives, and every way an input can fail to be one."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from airflow_gke.snapshot import UserError, open_snapshot

META = {"format": "airflow-gke/snapshot@1", "captured_at": "2026-11-20T10:00:00Z", "tool_version": "0.1.0",
        "context": None, "project": "acme-data-prod", "location": None, "cluster": None, "namespace": "airflow",
        "release": None}


def make(tmp: Path, meta=META, files: dict | None = None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    if meta is not None:
        (tmp / "meta.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    for rel, body in (files or {}).items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body if isinstance(body, str) else json.dumps(body))
    return tmp


SVC = "gcp/serviceusage/v1/projects/acme-data-prod/services/container.googleapis.com"


def test_directory_entries_parse_lazily_and_report_errors(tmp_path):
    snap = make(tmp_path / "s", files={
        SVC + ".json": {"name": "projects/481516234200/services/container.googleapis.com", "state": "ENABLED"},
        "gcp/cloudresourcemanager/v3/projects/acme-data-prod:getIamPolicy.error.json":
            {"status": 403, "body": {"error": {"code": 403, "message": "The caller does not have permission",
                                               "status": "PERMISSION_DENIED"}}},
        "k8s/api/v1/namespaces/airflow/pods.json": "{not json",
    })
    src = open_snapshot(snap)
    assert src.meta.project == "acme-data-prod" and src.meta.captured_at.isoformat() == "2026-11-20T10:00:00+00:00"
    assert src.get(SVC).data["state"] == "ENABLED"
    err = src.get("gcp/cloudresourcemanager/v3/projects/acme-data-prod:getIamPolicy")
    assert err.status == 403 and err.message == "The caller does not have permission" and not err.ok
    bad = src.get("k8s/api/v1/namespaces/airflow/pods")
    assert not bad.ok and "invalid JSON" in bad.message
    assert src.get("k8s/api/v1/namespaces/airflow/events") is None


@pytest.mark.parametrize("meta, message", [
    (None, "no meta.json"),
    ("{oops", "invalid JSON"),
    (dict(META, format="airflow-gke/snapshot@9"), "format"),
    (dict(META, captured_at="yesterday"), "captured_at"),
    (dict(META, namespace=""), "namespace"),
    ([1, 2], "JSON object"),
])
def test_not_a_snapshot_exits_2_with_a_clear_message(tmp_path, run_cli, meta, message):
    snap = make(tmp_path / "s", meta=meta)
    r = run_cli("doctor", "--snapshot", str(snap))
    assert r.code == 2
    assert message in r.err and "Traceback" not in r.err and r.out == ""


def test_missing_path_and_non_archive_exit_2(tmp_path, run_cli):
    r = run_cli("doctor", "--snapshot", str(tmp_path / "nope"))
    assert r.code == 2 and "no such file or directory" in r.err
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not an archive")
    r = run_cli("doctor", "--snapshot", str(junk))
    assert r.code == 2 and "neither a snapshot directory nor a .tar.gz archive" in r.err


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def test_archive_with_single_top_folder_is_read_and_cleaned_up(tmp_path):
    meta = json.dumps(META).encode()
    arc = _tar(tmp_path / "snap.tar.gz", [_file("snap/meta.json", meta),
                                           _file(f"snap/{SVC}.json", b'{"state": "DISABLED"}')])
    src = open_snapshot(arc)
    tmp_root = src._cleanup
    assert src.get(SVC).data == {"state": "DISABLED"}
    src.close()
    assert not tmp_root.exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_hostile_archives_are_refused_and_write_nothing_outside(tmp_path, run_cli, kind):
    meta = _file("meta.json", json.dumps(META).encode())
    if kind == "dotdot":
        bad = _file("../escaped.txt", b"x")
    elif kind == "absolute":
        bad = _file(str(tmp_path / "abs-escaped.txt"), b"x")
    elif kind in ("symlink", "hardlink"):
        info = tarfile.TarInfo("k8s/link.json")
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname = "/etc/passwd"
        bad = (info, None)
    else:
        info = tarfile.TarInfo("k8s/dev")
        info.type = tarfile.CHRTYPE
        bad = (info, None)
    arc = _tar(tmp_path / "evil.tar.gz", [meta, bad])
    r = run_cli("doctor", "--snapshot", str(arc))
    assert r.code == 2, r.err
    assert "refused" in r.err and "Traceback" not in r.err
    assert not (tmp_path.parent / "escaped.txt").exists() and not (tmp_path / "abs-escaped.txt").exists()


def test_archive_bounds(tmp_path, monkeypatch, run_cli):
    import airflow_gke.snapshot as snapshot

    monkeypatch.setattr(snapshot, "MAX_ARCHIVE_BYTES", 1000)
    arc = _tar(tmp_path / "big.tar.gz", [_file("meta.json", json.dumps(META).encode()),
                                         _file("k8s/big.json", b"0" * 5000)])
    r = run_cli("doctor", "--snapshot", str(arc))
    assert r.code == 2 and "more than 1000 bytes" in r.err
    monkeypatch.setattr(snapshot, "MAX_ARCHIVE_BYTES", 10**9)
    monkeypatch.setattr(snapshot, "MAX_ARCHIVE_FILES", 3)
    arc = _tar(tmp_path / "many.tar.gz", [_file("meta.json", json.dumps(META).encode())]
               + [_file(f"k8s/f{i}.json", b"{}") for i in range(5)])
    r = run_cli("doctor", "--snapshot", str(arc))
    assert r.code == 2 and "more than 3 members" in r.err


def test_a_log_that_lacks_a_literal_is_not_read_and_one_that_holds_it_is_read_redacted(tmp_path):
    # Source.lacks: a check may skip a log that surely does not hold what its pattern needs; the
    # answer comes from the file's bytes, nothing unredacted is kept, and only a readable regular log
    # is answered that way.
    logs = "k8s/api/v1/namespaces/airflow/pods/p/log/"
    snap = make(tmp_path / "s", files={
        logs + "base.log": "connecting postgresql://airflow:hunter2@db/airflow\nPermissionError: [Errno 13] "
                           "Permission denied: '/opt/airflow/logs/x'\n",
        logs + "base.previous.log": "password=hunter2\nall fine\n",
        logs + "other.log": "x",
    })
    (snap / logs / "linked.log").symlink_to(snap / logs / "base.log")
    src = open_snapshot(snap)
    p = "k8s/api/v1/namespaces/airflow/pods/p/log/"
    assert src.lacks(p + "base.previous", "[Errno 1") is True
    assert p + "base.previous" not in src._cache   # not read into the source
    assert src.lacks(p + "base", "[Errno 1") is False
    assert src.lacks(p + "never-collected", "[Errno 1") is True
    assert src.lacks(p + "linked", "[Errno 1") is False   # get() says why it is not read
    assert "not a regular file" in src.get(p + "linked").message
    for written in ("<redacted>", "redact", "PRIVATE KEY", "-----"):   # what redaction may write: the text tells
        assert src.lacks(p + "other", written) is False
    text = src.get(p + "base").data
    assert "hunter2" not in text and "[Errno 13]" in text
    assert src.lacks(p + "base", "hunter2") is True         # once read: the redacted text answers
    assert src.get(p + "base.previous").data == "password=<redacted>\nall fine\n"
