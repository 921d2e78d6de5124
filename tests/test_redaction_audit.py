"""Redaction audit: secrets planted wherever they occur in practice never come out.

``fixtures/scenarios_security.py`` builds ``secrets-everywhere`` (the seed incident plus 75
distinct secrets in airflow.cfg keys, other ConfigMap keys, env values of pods / Deployments / Jobs,
``AIRFLOW_CONN_*`` URIs and key files, ``_CMD`` values, command arguments, log lines, annotations,
event messages, a GKE cluster body and an API error body) into a temporary directory. Every way
the tool can emit something is then run, offline and live (the replay server, real clients), and
every output is grepped for every secret:

* ``doctor`` in every ``--output`` format the CLI offers, plus ``--output-file`` copies, with
  ``--verbose`` (stderr included);
* live ``doctor`` (json and table, ``--verbose``), ``--save-snapshot``, ``collect`` to a directory
  and to a ``.tar.gz`` (every file and every archive member), and ``doctor --snapshot`` on what
  was collected;
* the ``redacted`` list in the collected ``meta.json`` (key names, never values).

The audit is not vacuous: with redaction switched off, every planted secret reaches a collected
file, and those planted in quoted evidence reach the report, so each one sits in data the tool
really reads, and the reports are a real way out.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from replay import ReplayServer


@pytest.fixture(scope="module")
def planted_snapshot(tmp_path_factory):
    from fixtures.scenarios_security import secrets_everywhere

    sc, planted = secrets_everywhere()
    root = tmp_path_factory.mktemp("security") / "secrets-everywhere"
    for rel, data in sc.files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root, planted


def _formats() -> list[str]:
    from airflow_gke.cli import doctor

    opt = next(p for p in doctor.params if p.name == "output")
    return list(opt.type.choices)


def _has_option(name: str) -> bool:
    from airflow_gke.cli import doctor

    return any(p.name == name for p in doctor.params)


@pytest.fixture
def live_env(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)

    def make(srv: ReplayServer) -> tuple[list[str], dict]:
        kc = srv.write_kubeconfig(tmp_path / "kubeconfig")
        meta = srv.meta
        return ["--now", meta["captured_at"], "--release", meta["release"]], srv.env(kubeconfig=kc)

    return make


def _files_text(paths: list[Path]) -> list[tuple[str, str]]:
    out = []
    for p in paths:
        if p.is_dir():
            out += [(str(f), f.read_bytes().decode("utf-8", "replace")) for f in sorted(p.rglob("*")) if f.is_file()]
        elif p.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(p) as tar:
                out += [(f"{p}:{m.name}", tar.extractfile(m).read().decode("utf-8", "replace"))
                        for m in tar if m.isfile()]
        elif p.exists():
            out.append((str(p), p.read_bytes().decode("utf-8", "replace")))
    return out


def everything_emitted(run_cli, snap: Path, tmp: Path, live_env) -> tuple[list[tuple[str, str]], Path]:
    """(name, text) of every output and written file; and the collected directory."""
    outs: list[tuple[str, str]] = []
    written: list[Path] = []
    for fmt in _formats():
        extra = []
        if _has_option("output_files"):
            f = tmp / f"report-{fmt}.out"
            extra = ["--output-file", f"{fmt}:{f}"]
            written.append(f)
        r = run_cli("doctor", "--snapshot", str(snap), "--output", fmt, "--extended", "--verbose", *extra)
        assert r.code in (0, 1, 3), (fmt, r.err)
        outs += [(f"snapshot doctor -o {fmt} stdout", r.out), (f"snapshot doctor -o {fmt} stderr", r.err)]
    collected = tmp / "collected"
    with ReplayServer(snap) as srv:
        args, env = live_env(srv)
        for fmt in ("json", "table"):
            r = run_cli("doctor", *args, "--output", fmt, "--extended", "--verbose", env=env)
            assert r.code in (0, 1, 3), (fmt, r.err)
            outs += [(f"live doctor -o {fmt} stdout", r.out), (f"live doctor -o {fmt} stderr", r.err)]
        saved = tmp / "saved.tar.gz"
        r = run_cli("doctor", *args, "--output", "json", "--save-snapshot", str(saved), env=env)
        outs += [("live doctor --save-snapshot stdout", r.out), ("live doctor --save-snapshot stderr", r.err)]
        archive = tmp / "collected.tar.gz"
        for dest in (collected, archive):
            c = run_cli("collect", *args, "--dest", str(dest), "--verbose", env=env)
            assert c.code == 0, c.err
            outs += [(f"collect --dest {dest.name} stdout", c.out), (f"collect --dest {dest.name} stderr", c.err)]
        written += [saved, collected, archive]
        assert not srv.log.mutating()
    for fmt in _formats():
        r = run_cli("doctor", "--snapshot", str(archive), "--output", fmt, "--extended", "--verbose")
        outs += [(f"doctor on collected -o {fmt}", r.out + r.err)]
    outs += _files_text(written)
    return outs, collected


def test_no_planted_secret_appears_in_any_output_or_collected_file(run_cli, planted_snapshot, tmp_path, live_env):
    snap, planted = planted_snapshot
    outs, collected = everything_emitted(run_cli, snap, tmp_path, live_env)
    leaks = [(where, name) for where, secret in planted for name, text in outs if secret in text]
    assert not leaks, "secrets leaked:\n" + "\n".join(f"  {w}  ->  {n}" for w, n in leaks[:40])
    import json

    meta = json.loads((collected / "meta.json").read_text())
    masked = "\n".join(meta["redacted"])
    assert not [s for _w, s in planted if s in masked]
    for key in ("sql_alchemy_conn", "fernet_key", "jwt_secret", "broker_url", "result_backend",
                "AIRFLOW_CONN_WAREHOUSE", "AIRFLOW_VAR_PARTNER_API_TOKEN", "AIRFLOW__WEBSERVER__SECRET_KEY_CMD",
                "kubectl.kubernetes.io/last-applied-configuration", "password", "clientKey"):
        assert key in masked, key          # what was masked is listed, by name
    print(f"\nredaction audit: {len(planted)} planted secrets x {len(outs)} outputs and files grepped, 0 leaks")


def test_the_audit_is_not_vacuous(run_cli, planted_snapshot, tmp_path, live_env, monkeypatch):
    """With redaction switched off, every planted secret reaches a collected file (the tool reads
    each place), and the report quotes the ones planted in evidence (reports are a real way out)."""
    from airflow_gke.redact import Redactor

    monkeypatch.setattr(Redactor, "body", lambda self, path, data: data)
    monkeypatch.setattr(Redactor, "log", lambda self, text: text)
    monkeypatch.setattr(Redactor, "text", lambda self, text: text)
    snap, planted = planted_snapshot
    with ReplayServer(snap) as srv:
        args, env = live_env(srv)
        out = tmp_path / "unredacted"
        c = run_cli("collect", *args, "--dest", str(out), env=env)
        assert c.code == 0, c.err
        r = run_cli("doctor", *args, "--output", "json", "--extended", env=env)
    blob = "\n".join(text for _n, text in _files_text([out]))
    unread = [where for where, secret in planted if secret in blob]
    assert len(unread) == len(planted), [w for w, s in planted if s not in blob]
    in_report = [where for where, secret in planted if secret in r.out]
    assert {"log line quoted as evidence: Bearer token", "log line quoted as evidence: password=",
            "event message: token="} <= set(in_report), in_report
    print(f"\nwithout redaction: {len(unread)}/{len(planted)} secrets in the collected files, "
          f"{len(in_report)} in the JSON report")


def test_new_redaction_rules(tmp_path):
    """Rules added by the audit: Google and error bodies are walked, the argument after a secret
    flag is masked, webhook and DSN keys are secret."""
    from airflow_gke.redact import MASK, Redactor

    r = Redactor()
    cluster = {"name": "c", "masterAuth": {"username": "admin", "password": "pw1", "clientKey": "ck1",
                                           "clusterCaCertificate": "CA"},
               "nodePools": [{"config": {"metadata": {"startup-script": "curl -H 'Authorization: Bearer tok12345678'"}}}]}
    out = r.body("gcp/container/v1/projects/p/locations/l/clusters/c", cluster)
    assert out["masterAuth"] == {"username": "admin", "password": MASK, "clientKey": MASK, "clusterCaCertificate": "CA"}
    assert "tok12345678" not in str(out)
    err = r.body("k8s/api/v1/namespaces/a/pods", {"kind": "Status", "message": "proxy http://u:pw2@proxy refused"})
    assert "pw2" not in str(err)
    gerr = r.body("gcp/iam/v1/x", {"error": {"message": "token=tk3 rejected", "details": [{"reason": "x"}]}})
    assert "tk3" not in str(gerr) and gerr["error"]["details"] == [{"reason": "x"}]
    assert r.argv(["redis-server", "--requirepass", "pw4", "--port", "6379"], "redis") == \
        ["redis-server", "--requirepass", MASK, "--port", "6379"]
    assert r.is_sensitive_env("SLACK_WEBHOOK_URL") and r.is_sensitive_env("AIRFLOW__SENTRY__SENTRY_DSN")
    deep: object = "x"
    for _ in range(5000):
        deep = [deep]
    r.body("gcp/storage/storage/v1/b/b", {"a": deep})     # no recursion limit
