"""docs/security.md stays true: every read the code can make is listed, every dependency's range
is deliberate (bounded above) and explained, and CI runs the vulnerability audit."""
from __future__ import annotations

import re

from conftest import ROOT

DOC = (ROOT / "docs" / "security.md").read_text()


def _requirements() -> list[str]:
    """Runtime and test requirements of pyproject.toml (no TOML parser needed on Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text()
    out = []
    for block in re.findall(r"(?ms)^(?:dependencies|test)\s*=\s*\[(.*?)^\]", text):
        out += re.findall(r'^\s*"([^"]+)"', block, flags=re.M)
    return out


def test_every_read_is_listed():
    from airflow_gke.data import KEYS

    missing = sorted({k.describe for k in KEYS.values() if f"`{k.describe}`" not in DOC})
    assert not missing, f"reads in doctor/data.py missing from docs/security.md 'What it reads': {missing}"
    for k in KEYS.values():
        perm = f"`{k.iam}`" if k.iam else f"`{k.rbac[2]}` {k.rbac[1]}"
        assert perm in DOC, (k.name, perm)


def test_every_dependency_range_is_bounded_and_explained():
    reqs = _requirements()
    assert len(reqs) >= 10
    for req in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", req)
        name, spec = m.group(1), m.group(3).replace(" ", "")
        assert re.search(r">=[\d.]+", spec) and re.search(r"<[\d.]+", spec), f"{req}: needs a lower and an upper bound"
        row = re.search(rf"(?m)^\| {re.escape(name)}( \(test\))? \| `{re.escape(spec)}` \| (.+) \|$", DOC)
        assert row and len(row.group(2)) > 10, f"{req}: no row with this exact range in docs/security.md"


def test_ci_runs_the_audit():
    run = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"(?m)^\"\$TOOLS/bin/python\" \.ci/audit\.py --python \"\$VENV/bin/python\"$", run)
    assert "pip-audit>=" in run and (ROOT / ".ci" / "audit.py").is_file()


def test_audit_reads_the_project_json_for_what_pip_audit_skips(tmp_path, monkeypatch):
    """The fallback of .ci/audit.py, against a local index: the latest release's vulnerabilities
    count (withdrawn ones and ignored ids do not), an older release is reported unaudited."""
    import http.server
    import importlib.util
    import json
    import threading

    index = {
        "oldlib": {"info": {"version": "2.0"}, "vulnerabilities": [
            {"id": "PYSEC-1", "aliases": ["CVE-1"], "fixed_in": ["2.1"], "withdrawn": None},
            {"id": "PYSEC-2", "aliases": [], "fixed_in": [], "withdrawn": "2024-01-01T00:00:00Z"}]},
        "fine": {"info": {"version": "1.0"}, "vulnerabilities": []},
    }

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            name = self.path.strip("/").split("/")[0]
            body = json.dumps(index[name]).encode() if name in index else b"{}"
            self.send_response(200 if name in index else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
        audit = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(audit)
        monkeypatch.setattr(audit, "PYPI", f"http://127.0.0.1:{srv.server_address[1]}")
        state, vulns = audit.project_json_vulns("oldlib", "2.0")
        assert state == "audited" and [v["id"] for v in vulns] == ["PYSEC-1"]
        state, vulns = audit.project_json_vulns("oldlib", "1.9")
        assert state.startswith("unaudited: 1.9 is not the latest release (2.0)") and vulns == []
        assert audit.project_json_vulns("fine", "1.0") == ("audited", [])
        assert audit.project_json_vulns("absent", "1.0")[0].startswith("unaudited: HTTPError")
        assert audit.norm("Boolean.py") == audit.norm("boolean_py") == "boolean-py"
    finally:
        srv.shutdown()
