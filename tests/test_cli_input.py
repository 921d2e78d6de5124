"""User input at the command line: report files (`--output-file [FORMAT:]PATH`), `collect --dest`,
kubectl's kubeconfig rules (`KUBECONFIG=a:b`), the credential plugin's and ADC's messages, and
malformed config/kubeconfig files: every input error is exit 2 with the file and line, never exit 4
and never a traceback."""
from __future__ import annotations

import json
import os
import random
import stat

import pytest

from conftest import SCENARIOS, scenario
from replay import ReplayServer

SEED = str(scenario("seed-incident"))
HEALTHY = "healthy-af3-k8s-wi"
CHEAP = ("--check", "pvc-access-mode-unsupported")


# --- --output-file --------------------------------------------------------------------------------------
def test_unknown_format_prefix_is_exit_2_listing_the_valid_ones(run_cli, tmp_path):
    target = tmp_path / "x.yaml"
    r = run_cli("doctor", "--snapshot", SEED, *CHEAP, "--output-file", f"yaml:{target}")
    assert r.code == 2, r.err
    assert "unknown report format 'yaml'" in r.err and "valid: table, json, junit, markdown" in r.err
    assert not target.exists() and not (tmp_path / f"yaml:{target}").exists() and r.out == ""


def test_format_prefix_is_case_insensitive(run_cli, tmp_path):
    out = tmp_path / "y.json"
    r = run_cli("doctor", "--snapshot", SEED, *CHEAP, "--output-file", f"JSON:{out}")
    assert r.code == 1 and f"wrote json report: {out}" in r.err
    assert json.loads(out.read_text())["checks"][0]["id"] == "pvc-access-mode-unsupported"


def test_the_extension_wins_over_output(run_cli, tmp_path):
    xml, other = tmp_path / "r.xml", tmp_path / "r.report"
    r = run_cli("doctor", "--snapshot", SEED, *CHEAP, "-ojson", "--output-file", str(xml),   # (-ojson: stdout is no JSON)
                "--output-file", str(other))
    assert r.code == 1, r.err
    assert xml.read_text().startswith("<?xml") and "<testsuites" in xml.read_text()   # JUnit, not JSON
    json.loads(other.read_text())          # no known extension: --output's format
    assert r.out.startswith("airflow-gke doctor")                                     # terminal on stdout


def test_a_path_with_a_colon_is_still_a_path(run_cli, tmp_path):
    out = tmp_path / "a:b.md"
    r = run_cli("doctor", "--snapshot", SEED, *CHEAP, "--output-file", str(out))
    assert r.code == 1 and out.read_text().startswith("## airflow-gke doctor")


# --- live: collect --dest, KUBECONFIG=a:b, credential plugin ---------------------------------------------
@pytest.fixture
def srv(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)
    with ReplayServer(SCENARIOS / HEALTHY) as s:
        yield s


def _live(run_cli, srv, *args, env=None):
    m = srv.meta
    return run_cli(*args, "--now", m["captured_at"], "--release", m["release"], env={**srv.env(), **(env or {})})


def test_collect_dest_and_the_deprecated_output_spelling(run_cli, srv, tmp_path):
    kc = srv.write_kubeconfig(tmp_path / "kc")
    new, old = tmp_path / "new", tmp_path / "old"
    r = _live(run_cli, srv, "collect", "--dest", str(new), *CHEAP, env={"KUBECONFIG": str(kc)})
    assert r.code == 0 and r.out.strip() == str(new) and "deprecated" not in r.err
    r = _live(run_cli, srv, "collect", "-o", str(old), *CHEAP, env={"KUBECONFIG": str(kc)})
    assert r.code == 0 and r.out.strip() == str(old) and (old / "meta.json").is_file()
    assert "`collect -o/--output PATH` is deprecated" in r.err and "use `collect --dest PATH`" in r.err
    r = _live(run_cli, srv, "collect", "-o", str(old), "--dest", str(new), env={"KUBECONFIG": str(kc)})
    assert r.code == 2 and "give the path once" in r.err


def _kubeconfig(path, *, current=None, contexts=(), server="http://127.0.0.1:9", user=None, ns="default"):
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": c, "cluster": {"server": server}} for c in contexts],
           "users": [{"name": c, "user": user or {"token": "t"}} for c in contexts],
           "contexts": [{"name": c, "context": {"cluster": c, "user": c, "namespace": ns}} for c in contexts]}
    if current is not None:
        doc["current-context"] = current
    path.write_text(json.dumps(doc))
    return path


def test_kubeconfig_list_selects_kubectls_context(run_cli, srv, tmp_path):
    """KUBECONFIG=first:second: kubectl takes the first file's current-context (the Python client the
    last one's) and the first definition of a context; the namespace comes from that context."""
    first = _kubeconfig(tmp_path / "first", current="replay", contexts=("replay",), server=srv.k8s_url,
                        ns=srv.meta["namespace"])
    # the second file redefines "replay" (pointing nowhere) and sets its own current-context
    second = _kubeconfig(tmp_path / "second", current="elsewhere", contexts=("elsewhere", "replay"))
    env = {"KUBECONFIG": os.pathsep.join([str(first), str(second)])}
    r = _live(run_cli, srv, "doctor", "-o", "json", *CHEAP, "--project", srv.meta["project"], "--location",
              srv.meta["location"], "--cluster", srv.meta["cluster"], env=env)
    assert r.code == 0, r.err
    assert r.json["run"]["context"] == "replay" and r.json["run"]["namespace"] == srv.meta["namespace"]
    assert srv.log.count("/api/v1/namespaces/airflow/persistentvolumeclaims", "k8s") >= 1
    # the first file only names the current context; the second defines it: still kubectl's choice
    only_current = tmp_path / "only-current"
    only_current.write_text("current-context: replay\n")
    third = _kubeconfig(tmp_path / "third", current="elsewhere", contexts=("replay", "elsewhere"),
                        server=srv.k8s_url, ns="airflow")
    env = {"KUBECONFIG": os.pathsep.join([str(tmp_path / "empty"), str(only_current), str(third)])}
    (tmp_path / "empty").write_text("")
    r = _live(run_cli, srv, "doctor", "-o", "json", *CHEAP, "--project", srv.meta["project"], "--location",
              srv.meta["location"], "--cluster", srv.meta["cluster"], env=env)
    assert r.code == 0, r.err
    assert r.json["run"]["context"] == "replay"
    # --context wins over every current-context
    r = _live(run_cli, srv, "doctor", "-o", "json", *CHEAP, "--context", "nosuch", env=env)
    assert r.code == 2 and "context 'nosuch' is not in the kubeconfig" in r.err and "replay, elsewhere" in r.err


def _script(path, body: str):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


HINT = ("Install gke-gcloud-auth-plugin for use with kubectl by following\n"
        "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin")


@pytest.mark.parametrize("plugin", ["fails", "missing"])
def test_a_failed_credential_plugin_shows_its_message_and_the_install_hint(run_cli, srv, tmp_path, plugin):
    if plugin == "fails":
        cmd = str(_script(tmp_path / "gke-gcloud-auth-plugin",
                          "echo 'ERROR: gcloud failed to load: the config directory is not writable' >&2\n"
                          "echo 'run gcloud auth login' >&2\nexit 1\n"))
        said = ["  exit status 1:", "  ERROR: gcloud failed to load: the config directory is not writable",
                "  run gcloud auth login"]
    else:
        cmd = str(tmp_path / "no-such-dir" / "gke-gcloud-auth-plugin")
        said = [f"  [Errno 2] No such file or directory: '{cmd}'"]
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": cmd,
                     "installHint": HINT, "provideClusterInfo": True, "interactiveMode": "IfAvailable"}}
    kc = _kubeconfig(tmp_path / "kc", current="replay", contexts=("replay",), server=srv.k8s_url, user=user,
                     ns="airflow")
    m = srv.meta
    r = _live(run_cli, srv, "doctor", "-o", "json", *CHEAP, "--project", m["project"], "--location", m["location"],
              "--cluster", m["cluster"], env={"KUBECONFIG": str(kc)})
    lines = r.err.splitlines()
    head = lines.index(f"airflow-gke: warning: the kubeconfig's credential plugin {cmd} failed:")
    assert lines[head + 1:head + 1 + len(said)] == said
    rest = lines[head + 1 + len(said):]
    assert rest[:3] == ["installHint (from the kubeconfig):", "  " + HINT.splitlines()[0],
                        "  " + HINT.splitlines()[1]]


# --- config, suppressions, kubeconfig: exit 2 with file and line ------------------------------------------
def test_an_impossible_expiry_date_is_exit_2_with_the_line(run_cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("suppressions:\n  - check: gcs-log-write-denied\n    reason: retired bucket\n"
                   "    expires: 2026-31-12\n")
    r = run_cli("doctor", "--snapshot", SEED, "--config", str(cfg))
    assert r.code == 2
    assert r.err.strip() == (f"airflow-gke: error: config {cfg}: suppressions[1].expires (line 4): "
                             "'2026-31-12' is not a date (YYYY-MM-DD)")


def test_a_malformed_kubeconfig_is_exit_2_with_file_and_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nclusters:\n- name: a\n  cluster: {server: x\ncontexts: []\n")
    r = run_cli("doctor", "--kubeconfig", str(kc))
    assert r.code == 2 and r.err.startswith(f"airflow-gke: error: kubeconfig {kc}:5: not valid YAML"), r.err
    kc.write_text("apiVersion: v1\ncontexts:\n- name: a\n  context: [x]\ncurrent-context: a\n")
    r = run_cli("doctor", env={"KUBECONFIG": str(kc)})      # the default kubeconfig, not a flag: still exit 2
    assert r.code == 2 and f"kubeconfig {kc}:4: contexts[1] (a): context must be a mapping" in r.err, r.err


# --- fuzz: malformed config and kubeconfig files ----------------------------------------------------------
CONFIG = """version: 1
doctor:
  fail-on: warning
  output: table
  output-file: [json:OUT/r.json, OUT/r.md]
  include: [pvc-*]
  exclude: [category:database]
  min-severity: warning
  timeout: 30
  max-logs: 5
  annotation-ignores: true
suppressions:
  - check: gcs-log-write-denied
    resource: Bucket/acme-airflow-logs
    reason: retired bucket (PLAT-1)
    expires: 2026-12-31
"""

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: replay
clusters:
- name: replay
  cluster:
    server: SERVER
    insecure-skip-tls-verify: true
users:
- name: replay
  user:
    token: abc
contexts:
- name: replay
  context:
    cluster: replay
    user: replay
    namespace: airflow
"""

TOKENS = [":", ": ", "- ", "[", "]", "{", "}", "\t", "'", '"', "&a ", "*a", "!!binary ", "!!python/object ", "2026-31-12",
          "~", "null", "[]", "{}", "0x1F", "...", "---", "%", "@", "`", "\u00e9", "-1", ".inf", "1e999", "? ", "|", ">",
          "#", "yes", "12:30:00", "2026-02-30T25:00:00Z", "<<: *a", "\x00", "\ufeff"]


# hand-picked: what broke before (a timestamp that is no date, a parser error), then shapes and bytes
CONFIG_BAD = ["suppressions:\n- check: x\n  reason: why not\n  expires: 2026-31-12\n", "doctor: [1, 2]\n",
              "suppressions: {a: 1}\n", "doctor:\n\tfail-on: error\n", "\x00\x01\x02", "doctor: {timeout: .nan}\n",
              "doctor: {output-file: 'yaml:x'}\n", "doctor: {output-file: ['JSON:OUT/j.json']}\n", "[",
              "doctor:\n  include: [zz-*]\n", "&a [*a]\n", "doctor: !!python/object:os.system {}\n",
              "suppressions:\n- check: x\n  reason: why not\n  expires: 2026-02-30\n"]
KUBECONFIG_BAD = ["contexts: 5\n", "contexts:\n- name: [x]\n", "current-context: [a]\n", "clusters:\n- cluster: {}\n",
                  "apiVersion: v1\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\n",
                  "apiVersion: v1\nusers:\n- name: u\n  user: {exec: {}}\ncontexts:\n- name: a\n  context: {user: u}\n"
                  "current-context: a\n", "current-context: a\nexpiry: 2026-31-12\n", "\ufeff{", "\x00", "- a\n- b\n",
                  "clusters:\n- name: c\n  cluster: {server: 5}\ncontexts:\n- name: a\n  context: {cluster: c}\n"
                  "current-context: a\n"]


def mutations(text: str, n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        lines = text.splitlines()
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(len(lines))
            op = rnd.randrange(7)
            if op == 0:
                del lines[i]
            elif op == 1:
                lines.insert(i, lines[rnd.randrange(len(lines))])
            elif op == 2:
                pos = rnd.randint(0, len(lines[i]))
                lines[i] = lines[i][:pos] + rnd.choice(TOKENS) + lines[i][pos:]
            elif op == 3 and ":" in lines[i]:
                key = lines[i].split(":", 1)[0]
                lines[i] = f"{key}: {rnd.choice(TOKENS)}"
            elif op == 4:
                lines[i] = " " * rnd.randint(0, 5) + lines[i].lstrip()
            elif op == 5:
                j = rnd.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines = lines[:i]
            if not lines:
                lines = [rnd.choice(TOKENS)]
        out.append("\n".join(lines) + rnd.choice(["\n", ""]))
    return out


def _never_internal(r, what: str) -> None:
    assert r.code in (0, 1, 2, 3), f"exit {r.code} for {what!r}: {r.err}"
    assert "Traceback" not in r.err and "internal error" not in r.err, f"{what!r}: {r.err}"


def test_fuzz_config_files_never_exit_4(run_cli, tmp_path):
    cfg = tmp_path / ".airflow-gke.yaml"
    codes = set()
    out = str(tmp_path / "out")
    for text in [s.replace("OUT", out) for s in CONFIG_BAD] + mutations(CONFIG.replace("OUT", out), 120, seed=11):
        cfg.write_text(text, encoding="utf-8")
        r = run_cli("doctor", "--snapshot", SEED, "--config", str(cfg), "--check", "pvc-access-mode-unsupported")
        _never_internal(r, text)
        codes.add(r.code)
        if r.code == 2:
            assert r.err.startswith("airflow-gke: error: config ") or r.err.startswith("Usage:"), r.err
    assert 2 in codes and codes & {0, 1}     # the mutations hit both bad and still-valid files


def test_fuzz_kubeconfig_files_never_exit_4(run_cli, srv, tmp_path):
    from airflow_gke.errors import UserError
    from airflow_gke.live import kube

    kc = tmp_path / "kubeconfig"
    texts = KUBECONFIG_BAD + mutations(KUBECONFIG.replace("SERVER", srv.k8s_url), 300, seed=7)
    for text in texts:                       # the loader in-process: only UserError, or a target
        kc.write_text(text, encoding="utf-8")
        for flag in (str(kc), None):
            try:
                kube.load(flag, None, {"KUBECONFIG": str(kc)})
            except UserError as e:
                assert str(e).startswith(("kubeconfig ", "cannot load context", "context ")), str(e)
    m = srv.meta
    for text in texts[:12]:                   # and whole runs through the CLI
        kc.write_text(text, encoding="utf-8")
        r = _live(run_cli, srv, "doctor", "-o", "json", *CHEAP, "--max-logs", "0", "--timeout", "5",
                  "--project", m["project"], "--location", m["location"], "--cluster", m["cluster"],
                  env={"KUBECONFIG": str(kc)})
        _never_internal(r, text)
