"""One remediation plan per report, on every scenario:

- every pasteable block (each option its own) is valid shell (``bash -n``);
- no two findings' commands contradict: the same object given different values (a node pool created
  twice with different flags, two new pools for one service account, a Helm value or a KSA annotation
  set to two values, one member given two roles on one bucket, a role granted by one finding and
  removed by another);
- a command that recreates nodes, restarts pods, deletes data or removes a role says so on the line
  before it, and removing a role from the Compute Engine default service account names what else may
  depend on it;
- seed-incident: the Compute Engine default SA finding and the read-only scope finding propose the
  same one new node pool, with the dedicated service account, cloud-platform scope and the GKE
  metadata server.
"""
from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import doctor_json, scenario_names

from airflow_gke.model import command_blocks
from airflow_gke.remediation import safe_placeholders

_DOCS: dict[str, dict] = {}


def _doc(run_cli, name: str) -> dict:
    if name not in _DOCS:
        _DOCS[name] = doctor_json(run_cli, name, "--extended")[1]
    return _DOCS[name]


def _words(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def _flags(words: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            if "=" in w:
                k, v = w.split("=", 1)
            elif i + 1 < len(words) and not words[i + 1].startswith("-"):
                k, v = w, words[i + 1]
                i += 1
            else:
                k, v = w, "true"
            out[k] = v
        i += 1
    return out


def assignments(line: str) -> list[tuple[tuple, str]]:
    """(object, value) pairs a command sets: what two findings must agree on."""
    try:
        w = _words(line)
    except ValueError:
        return []
    if not w:
        return []
    out: list[tuple[tuple, str]] = []
    if w[:4] == ["gcloud", "container", "node-pools", "create"] and len(w) > 4:
        f = _flags(w[5:])
        settings = {k: v for k, v in f.items() if k not in ("--cluster", "--location", "--project", "--region", "--zone")}
        out.append((("node pool", w[4], "created with"), repr(sorted(settings.items()))))
        if "--service-account" in f:
            out.append((("new node pool for service account", f["--service-account"]), w[4]))
    if w[:4] == ["gcloud", "container", "node-pools", "update"] and len(w) > 4:
        for k, v in _flags(w[5:]).items():
            if k not in ("--cluster", "--location", "--project", "--region", "--zone"):
                out.append((("node pool", w[4], k), v))
    if w[:4] == ["gcloud", "container", "clusters", "update"] and len(w) > 4:
        for k, v in _flags(w[5:]).items():
            if k not in ("--location", "--project", "--region", "--zone"):
                out.append((("cluster", w[4], k), v))
    if w[:2] == ["helm", "upgrade"] and len(w) > 2:
        for i, x in enumerate(w):
            if x in ("--set", "--set-string") and i + 1 < len(w) and "=" in w[i + 1]:
                k, v = w[i + 1].split("=", 1)
                out.append((("helm value", w[2], k), v))
    if w[:2] == ["kubectl", "annotate"] and len(w) > 3:
        for x in w[4:]:
            if "=" in x and not x.startswith("-"):
                k, v = x.split("=", 1)
                if not k.startswith("force-sync"):
                    out.append((("annotation", w[2], w[3], k), v))
    if w[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"] and len(w) > 4:
        f = _flags(w[5:])
        out.append((("bucket role of", w[4], f.get("--member")), f.get("--role", "")))
    for verb in ("add-iam-policy-binding", "remove-iam-policy-binding"):
        if w[0] == "gcloud" and verb in w:
            f = _flags(w[w.index(verb) + 2:])
            out.append((("iam", " ".join(w[1:w.index(verb)]), w[w.index(verb) + 1], f.get("--member"),
                         f.get("--role")), verb.split("-")[0]))
    return out


@pytest.mark.parametrize("name", scenario_names())
def test_no_two_findings_contradict_and_every_block_is_valid_shell(name, run_cli):
    doc = _doc(run_cli, name)
    seen: dict[tuple, tuple[str, str]] = {}
    for f in doc["findings"]:
        blocks = command_blocks(f["remediation"]["commands"])
        for block in blocks:
            text = "\n".join(block) + "\n"
            r = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
            assert r.returncode == 0, f"{name}: {f['id']}: not valid shell:\n{text}{r.stderr}"
            for line in block:     # <placeholder> unquoted is valid syntax, and a redirection when pasted
                assert safe_placeholders(line) == line, f"{name}: {f['id']}: unquoted <...> in {line!r}"
        options = [b for b in blocks if re.match(r"#\s*(option|or)\b", b[0].strip(), re.I)]
        # alternatives of one finding may differ; the finding's first choice is what it proposes
        mine: dict[tuple, str] = {}
        for block in [b for b in blocks if b not in options[1:]]:
            for line in block:
                for obj, value in assignments(line):
                    mine.setdefault(obj, value)
        for obj, value in mine.items():
            if obj in seen and seen[obj][1] != value:
                other, was = seen[obj]
                pytest.fail(f"{name}: {f['id']} and {other} contradict on {obj}: {value!r} vs {was!r}")
            seen.setdefault(obj, (f["id"], value))


_RISKY = [
    (re.compile(r"^gcloud container node-pools update \S+ .*--(workload-metadata|machine-type|image-type)\b"),
     "recreates"),
    (re.compile(r"^gcloud container node-pools delete "), "deletes"),
    (re.compile(r"^kubectl drain "), "evicts"),
    (re.compile(r"^kubectl rollout restart "), "restarts"),
    (re.compile(r"^kubectl delete "), "deletes"),
    (re.compile(r"^gcloud .*remove-iam-policy-binding "), "removes"),
]


@pytest.mark.parametrize("name", scenario_names())
def test_what_a_command_disrupts_is_said_on_the_line_before_it(name, run_cli):
    doc = _doc(run_cli, name)
    for f in doc["findings"]:
        lines = [ln for c in f["remediation"]["commands"] for ln in c.splitlines()]
        for i, ln in enumerate(lines):
            j = i
            while j > 0 and lines[j - 1].strip().startswith("#"):
                j -= 1
            before = " ".join(x.strip() for x in lines[j:i])      # the comment lines right before it
            for rx, verb in _RISKY:
                if rx.match(ln.strip()):
                    assert verb in before, f"{name}: {f['id']}: {ln!r} after {before!r}"
            if "remove-iam-policy-binding" in ln and "-compute@developer.gserviceaccount.com" in ln:
                assert "Compute Engine default service account" in before and "depend" in before, ln
                assert "Compute Engine VMs" in before and "node pools" in before, ln


def test_seed_incident_proposes_one_new_node_pool(run_cli):
    doc = _doc(run_cli, "seed-incident")
    creates = {}
    for f in doc["findings"]:
        for c in f["remediation"]["commands"]:
            for ln in c.splitlines():
                if ln.startswith("gcloud container node-pools create "):
                    creates.setdefault(ln, []).append(f["check"])
    assert len(creates) == 1, creates
    [(cmd, checks)] = creates.items()
    assert sorted(checks) == ["default-compute-sa-nodes", "node-storage-scope-read-only"]
    w = _words(cmd)
    assert w[4] == "default-pool-sa"
    f = _flags(w[5:])
    assert f["--service-account"] == "gke-nodes@acme-data-prod.iam.gserviceaccount.com"
    assert f["--scopes"] == "cloud-platform" and f["--workload-metadata"] == "GKE_METADATA"
    # the pool needs the cluster's Workload Identity pool: both enable it first, with the same command
    enable = ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
              "--workload-pool=acme-data-prod.svc.id.goog")
    for check in checks:
        [fi] = [x for x in doc["findings"] if x["check"] == check]
        lines = [ln for c in fi["remediation"]["commands"] for ln in c.splitlines()]
        assert lines.index(enable) < lines.index(cmd), check


def test_the_checks_of_one_object_agree_across_the_identity_scenarios(run_cli):
    """The same object named by several findings of one report gets one value (a sanity check
    that the assignment parser sees what it must: it reads pools, helm values and bucket roles)."""
    got = assignments("gcloud container node-pools create p --cluster c --location l --project x "
                      "--service-account s@x.iam.gserviceaccount.com --scopes=cloud-platform")
    assert (("new node pool for service account", "s@x.iam.gserviceaccount.com"), "p") in got
    assert assignments("helm upgrade airflow apache-airflow/airflow --namespace a --reuse-values "
                       "--set logs.persistence.enabled=false") == [
        (("helm value", "airflow", "logs.persistence.enabled"), "false")]
    assert assignments("gcloud storage buckets add-iam-policy-binding gs://b --member serviceAccount:g "
                       "--role roles/storage.objectUser") == [
        (("bucket role of", "gs://b", "serviceAccount:g"), "roles/storage.objectUser"),
        (("iam", "storage buckets", "gs://b", "serviceAccount:g", "roles/storage.objectUser"), "add")]


def test_a_pod_delete_comment_names_the_pods_not_a_flag():
    """``kubectl delete pods --namespace NS -l SEL`` once got '# deletes pod --namespace: its
    controller restarts it': the name is the first argument that is not a flag or a flag's value."""
    from airflow_gke.remediation import disruption

    assert disruption("kubectl delete pods --namespace airflow -l kubernetes_executor=True").startswith(
        "# deletes the pods labelled kubernetes_executor=True: a pod its controller owns comes back, a bare task pod "
        "does not")
    assert disruption("kubectl delete pod --namespace airflow etl-1").startswith("# deletes pod etl-1:")
    assert disruption("kubectl delete pvc airflow-logs --namespace airflow").startswith("# deletes pvc airflow-logs:")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["kubectl", "helm", "--set", "a=b", "x", " ", "  ", "\t", "\n", "\r", "'", '"', "\\",
                                 "\x0b", "\x0c", "\x1c", "\x1f", "\x1b", "\xa0", "\u2003", "é", "#", "--overrides={}"]),
                max_size=12))
def test_the_words_of_a_command_are_shlex_s(pieces):
    # what disruption() reads a command as: split without shlex only where shlex splits the same
    from airflow_gke.remediation import _words
    line = "".join(pieces)
    try:
        expected = shlex.split(line, comments=False)
    except ValueError:
        expected = line.split()
    assert _words(line) == expected
