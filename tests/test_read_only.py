"""The read-only guarantee: across every test of a session, the replay servers record no mutating
request except the write probe's object (tests/conftest.py asserts it when the session ends, from
the registry in tests/replay.py). These tests prove that check can fail."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT, is_probe_write, unexpected_writes
from replay import Request


def req(service, method, path, query="", body=b"", status=200):
    return Request(service, method, path, query, status, 0.0, None, {}, body)


def test_reads_and_probe_writes_pass_everything_else_is_named():
    probe_post = req("storage", "POST", "/upload/storage/v1/b/logs/o", "uploadType=multipart",
                     b'--x\r\n\r\n{"name": "prod/.airflow-gke-probe/p-1.txt"}\r\n--x--')
    probe_delete = req("storage", "DELETE", "/storage/v1/b/logs/o/prod/.airflow-gke-probe/p-1.txt", status=204)
    other_object = req("storage", "POST", "/upload/storage/v1/b/logs/o", "uploadType=media&name=dags/x.py")
    enable = req("serviceusage", "POST", "/v1/projects/p/services/container.googleapis.com:enable", status=405)
    delete_pod = req("k8s", "DELETE", "/api/v1/namespaces/airflow/pods/x", status=405)
    t = "tests/test_x.py::test_y (call)"
    assert is_probe_write(probe_post, True) and is_probe_write(probe_delete, True)
    assert not is_probe_write(probe_post, False)            # only where the test opted in to writes
    assert not is_probe_write(other_object, True)           # only the probe's own objects
    assert unexpected_writes([(probe_post, True, t), (probe_delete, True, t)], set()) == []
    bad = unexpected_writes([(other_object, True, t), (enable, False, t), (delete_pod, False, t),
                             (delete_pod, False, "tests/test_z.py::test_refused (call)")],
                            {"tests/test_z.py::test_refused"})
    assert bad == ["POST storage /upload/storage/v1/b/logs/o (answered 200) during tests/test_x.py::test_y",
                   f"POST serviceusage {enable.path} (answered 405) during tests/test_x.py::test_y",
                   f"DELETE k8s {delete_pod.path} (answered 405) during tests/test_x.py::test_y"]


def test_a_session_whose_tests_send_a_write_fails(tmp_path):
    """End to end: a test (unmarked) that sends one DELETE to a replay server passes by itself, and
    the session still fails, naming the request."""
    (tmp_path / "test_sneaky.py").write_text(textwrap.dedent(f"""
        import urllib.request
        from replay import ReplayServer

        def test_looks_harmless():
            with ReplayServer({str(ROOT / "fixtures" / "scenarios" / "api-disabled-preflight")!r}) as srv:
                r = urllib.request.Request(srv.k8s_url + "/api/v1/namespaces/airflow/pods/x", method="DELETE")
                try:
                    urllib.request.urlopen(r, timeout=10)
                except Exception:
                    pass
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_sneaky.py")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert "1 passed" in p.stdout, p.stdout[-2000:]
    assert p.returncode == 1, p.stdout[-2000:]
    assert "UNEXPECTED WRITE: DELETE k8s /api/v1/namespaces/airflow/pods/x (answered 405) during " \
           "test_sneaky.py::test_looks_harmless" in p.stdout
