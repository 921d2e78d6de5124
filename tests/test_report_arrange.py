"""How reports arrange findings: one finding per cause and fix, causes first, readable at any scale.

* grouping: the bench's 1,000-pod namespace reports its OOMKilled task pods as one finding; the four
  component pods waiting for one missing Secret are one finding caused by its ExternalSecret;
* order: on every scenario every cause prints before what it explains; seed-incident's PVC (which
  keeps four components Pending) comes before the Workload Identity migration;
* scale: on the bench's namespace the terminal report fits 400 lines at 120 columns and the
  Markdown one GitHub comment, every failing check and every finding's title and fix still there;
  cut harder, they say what was cut and where the full JSON is;
* reading: prose wraps at word boundaries at COLUMNS, commands are never broken (nor by explain).
"""
from __future__ import annotations

import io
import re

import pytest

from conftest import doctor_json, scenario, scenario_names

from bench import generate

N = 1000          # the size the issue measures: writes in about a second


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    dest = tmp_path_factory.mktemp("arrange") / f"n{N}"
    generate.write(N, dest)
    return dest


@pytest.fixture(scope="module")
def bench_json(bench_dir):
    from click.testing import CliRunner

    from airflow_gke.cli import cli
    import json

    r = CliRunner().invoke(cli, ["doctor", "--snapshot", str(bench_dir), "--output", "json"])
    assert r.exit_code == 1, r.output[-2000:]
    return json.loads(r.output)


def _oom_pods(bench_dir) -> set[str]:
    import orjson

    pods = orjson.loads((bench_dir / "k8s/api/v1/namespaces/airflow/pods.json").read_bytes())["items"]
    out = set()
    for p in pods:
        for c in p["status"].get("containerStatuses") or []:
            if c["state"].get("terminated", {}).get("reason") == "OOMKilled":
                out.add(p["metadata"]["name"])
    return out


def test_oomkilled_task_pods_of_one_fix_are_one_finding_with_every_pod(bench_dir, bench_json):
    oom = [f for f in bench_json["findings"] if f["check"] == "task-pod-oomkilled"]
    assert len(oom) == 1
    f = oom[0]
    names = [r["name"] for r in f["resources"]]
    assert f["count"] == len(names) == len(set(names)) >= 50
    # one finding per task before; each task's most recent OOMKilled pod is a resource
    assert set(names) <= _oom_pods(bench_dir)
    assert f["resource"] == f["resources"][0] and f["id"] == f"task-pod-oomkilled:Pod/airflow/{names[0]}"
    assert names == sorted(names)
    assert f["title"] == f"{len(names)} task pods were OOMKilled (memory limit none)"
    assert [m["id"] for m in f["members"]] == [f"task-pod-oomkilled:Pod/airflow/{n}" for n in names]
    assert any(c.startswith("helm upgrade airflow ") and "workers.resources.limits.memory=" in c
               for c in f["remediation"]["commands"])
    assert len(bench_json["findings"]) < 15


def test_task_pods_waiting_for_one_full_pool_are_one_finding(run_cli):
    _, doc = doctor_json(run_cli, "task-pods-selector-pool-full")
    [f] = [f for f in doc["findings"] if f["check"] == "task-pod-unschedulable"]
    names = ["sales-reconcile-build-invoices-7jk1hr7z", "sales-reconcile-reconcile-ledger-1ey47rg5"]
    assert f["count"] == 2 and [r["name"] for r in f["resources"]] == names
    assert f["id"] == f"task-pod-unschedulable:Pod/airflow/{names[0]}"      # the first member's id
    assert [m["id"] for m in f["members"]] == [f"task-pod-unschedulable:Pod/airflow/{n}" for n in names]
    assert f["title"] == ("2 task pods Pending without a node: the 4 node(s) its selector matches (node pool "
                          "airflow-tasks) lack free cpu")
    assert any("--node-pool airflow-tasks" in c for c in f["remediation"]["commands"])


def test_a_suppression_of_one_pod_leaves_the_other_as_it_was(run_cli, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("suppressions:\n  - check: task-pod-unschedulable\n"
                    "    resource: sales-reconcile-build-invoices-7jk1hr7z\n    reason: known, PLAT-7\n")
    r = run_cli("doctor", "--snapshot", str(scenario("task-pods-selector-pool-full")), "--output", "json",
                "--config", str(conf))
    [f] = [f for f in r.json["findings"] if f["check"] == "task-pod-unschedulable"]
    assert f["count"] == 1 and f["id"] == "task-pod-unschedulable:Pod/airflow/sales-reconcile-reconcile-ledger-1ey47rg5"
    assert f["title"].startswith("2 pods of task sales_reconcile.reconcile_ledger Pending ")
    assert [s["finding"]["resource"]["name"] for s in r.json["suppressed"]] == ["sales-reconcile-build-invoices-7jk1hr7z"]


_ALL: dict[str, dict] = {}


def all_scenarios(run_cli) -> dict[str, dict]:
    if not _ALL:
        for name in scenario_names():
            _ALL[name] = doctor_json(run_cli, name, "--extended")[1]
    return _ALL


def test_every_cause_prints_before_what_it_explains_in_every_scenario(run_cli):
    for name, doc in all_scenarios(run_cli).items():
        pos = {f["id"]: i for i, f in enumerate(doc["findings"])}
        for i, f in enumerate(doc["findings"]):
            for c in f["caused_by"]:
                assert c in pos, f"{name}: {f['id']} names an unknown cause {c}"
                assert pos[c] < i, f"{name}: cause {c} prints after {f['id']}"
        # no finding of one check repeats another's cause and fix: it would be one finding
        seen: dict = {}
        for f in doc["findings"]:
            key = (f["check"], f["severity"], tuple(sorted(f["caused_by"])),
                   tuple(re.sub(re.escape(f["resource"]["name"]), "*", c) for c in f["remediation"]["commands"]))
            assert key not in seen, f"{name}: {f['id']} and {seen.get(key)} share cause and fix"
            seen[key] = f["id"]


def test_seed_incident_pvc_before_the_workload_identity_migration(run_cli):
    doc = all_scenarios(run_cli)["seed-incident"]
    order = [f["check"] for f in doc["findings"]]
    assert order == ["pvc-access-mode-unsupported", "node-storage-scope-read-only", "gcs-log-write-denied",
                     "default-compute-sa-nodes", "overprivileged-identity"]
    pvc = doc["findings"][0]
    assert sorted(b.split("/")[2].split("-")[1] for b in pvc["blocks"]) == ["api", "dag", "scheduler", "triggerer"]


def test_order_a_warning_cause_comes_before_unrelated_errors():
    from airflow_gke.model import Finding, Remediation, Resource
    from airflow_gke.report.arrange import order

    def f(check, sev, name, caused_by=(), blocks=()):
        return Finding(name, name, Resource("Pod", name, "ns"), ["e"], Remediation("fix"), list(caused_by), sev,
                       check, "r", blocks=list(blocks))

    cause = f("a-cause", "warning", "c")
    effect = f("b-effect", "error", "e", [cause.id])
    lone = f("c-lone", "error", "l")
    big = f("d-big", "error", "b", blocks=["Pod/ns/x", "Pod/ns/y"])
    info = f("e-info", "info", "i")
    got = [x.check for x in order([info, lone, effect, big, cause])]
    # the cause carries its error effect's severity and blocks 2 (itself and the effect)
    assert got == ["d-big", "a-cause", "b-effect", "c-lone", "e-info"]
    loop1 = f("x-loop", "error", "x1", ["y-loop:Pod/ns/y1"])
    loop2 = f("y-loop", "error", "y1", [loop1.id])
    assert {x.check for x in order([loop1, loop2])} == {"x-loop", "y-loop"}


def _env(columns: int) -> dict:
    return {"COLUMNS": str(columns), "NO_COLOR": "1"}


def test_bench_terminal_report_fits_400_lines_and_names_every_failing_check(bench_dir, bench_json, run_cli):
    r = run_cli("doctor", "--snapshot", str(bench_dir), env=_env(120))
    lines = r.out.splitlines()
    assert len(lines) <= 400, len(lines)
    failing = {c["id"] for c in bench_json["checks"] if c["status"] in ("fail", "error", "skip")}
    for cid in failing:
        assert cid in r.out, cid
    for f in bench_json["findings"]:
        assert f["title"][:60] in " ".join(x.strip() for x in lines), f["title"]
        for cmd in f["remediation"]["commands"]:
            for ln in cmd.splitlines():
                assert any(x.rstrip().endswith(ln) for x in lines), ln


def test_terminal_cut_harder_keeps_titles_and_commands_and_says_so(bench_dir, monkeypatch):
    from airflow_gke.report import terminal

    report = _report(bench_dir)
    buf = io.StringIO()
    monkeypatch.setenv("COLUMNS", "120")
    terminal.render(report, file=buf, budget=150)
    out = buf.getvalue()
    assert len(out.splitlines()) <= 150 + 5
    assert "to keep this report under 150 lines; every finding's evidence is in --output json" in out
    flat = " ".join(x.strip() for x in out.splitlines())
    for f in report.findings:
        assert f.title in flat and f.check in out
        assert all(any(x.rstrip().endswith(ln) for x in out.splitlines())
                   for c in f.remediation.commands for ln in c.splitlines())


def _report(snapshot):
    """The report of a doctor run through the application (no rendering)."""
    import json

    from click.testing import CliRunner

    from airflow_gke.cli import cli
    from airflow_gke.model import CheckRun, Finding, Remediation, Resource
    from airflow_gke.report import RunInfo, RunReport

    doc = json.loads(CliRunner().invoke(cli, ["doctor", "--snapshot", str(snapshot), "--output", "json"]).output)
    runs = []
    for c in doc["checks"]:
        fs = []
        for f in doc["findings"]:
            if f["check"] != c["id"]:
                continue
            r = f["resource"]
            fs.append(Finding(f["title"], f["message"], Resource(r["kind"], r["name"], r["namespace"], r["uri"]),
                              f["evidence"], Remediation(f["remediation"]["summary"], f["remediation"]["commands"]),
                              f["caused_by"], f["severity"], f["check"], f["runbook"],
                              resources=[Resource(x["kind"], x["name"], x["namespace"], x["uri"])
                                         for x in f["resources"]]))
        runs.append(CheckRun(c["id"], c["title"], c["severity"], "x", c["status"], c["reason"], 0.0, fs))
    info = RunInfo(**{k: v for k, v in doc["run"].items()})
    return RunReport("0", info, runs)


def test_bench_markdown_fits_one_comment_and_a_harder_cut_keeps_every_title_and_fix(bench_dir, bench_json,
                                                                                    run_cli):
    from airflow_gke.report import markdown

    r = run_cli("doctor", "--snapshot", str(bench_dir), "--output", "markdown")
    assert len(r.out) <= 65_536
    for c in bench_json["checks"]:
        if c["status"] != "pass":
            assert f"| `{c['id']}`" in r.out
    report = _report(bench_dir)
    full = markdown.render(report)
    least = len(markdown._render(report, "error", markdown.LEVELS[-1], "")) + 300    # with the note
    assert least < len(full) * 0.6
    small = markdown.render(report, limit=least, json_path="out/airflow-gke.json")
    assert len(small) <= least and "Cut at" not in small
    assert "**Shortened to fit one comment" in small and "is in `out/airflow-gke.json`" in small
    for f in report.findings:
        assert markdown.cell(f.title) in small and markdown.cell(f.remediation.summary) in small
        for c in f.remediation.commands:
            for ln in c.splitlines():
                assert f"\n{ln}\n" in small, ln


def test_markdown_puts_each_option_in_its_own_block(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario("seed-incident")), "--output", "markdown")
    assert ("```sh\n# Option A: no logs PVC (Helm removes the Pending claim)\nhelm upgrade airflow "
            "apache-airflow/airflow --namespace airflow --reuse-values --set logs.persistence.enabled=false\n```\n\n"
            "```sh\n# Option B: Filestore-backed ReadWriteMany\n") in r.out


def test_compact_prints_one_line_per_finding(run_cli):
    _, doc = doctor_json(run_cli, "seed-incident")
    r = run_cli("doctor", "--snapshot", str(scenario("seed-incident")), "--compact", env=_env(120))
    rows = [x for x in r.out.splitlines() if x.startswith(("ERROR", "WARN", "INFO"))]
    assert [x.split(" · ", 1)[0].split()[-1] for x in rows] == [f["check"] for f in doc["findings"]]
    assert "Evidence" not in r.out and "Runbook" not in r.out
    assert r.out.rstrip().splitlines()[-1].startswith("Findings: 3 errors, 2 warnings")


@pytest.mark.parametrize("columns", [80, 100])
def test_prose_wraps_at_words_and_commands_stay_whole(run_cli, columns):
    _, doc = doctor_json(run_cli, "seed-incident")
    r = run_cli("doctor", "--snapshot", str(scenario("seed-incident")), env=_env(columns))
    lines = r.out.splitlines()
    commands = {ln for f in doc["findings"] for c in f["remediation"]["commands"] for ln in c.splitlines()}
    for ln in lines:
        body = ln.strip()
        if len(ln) > columns:
            # only a command, or a single word longer than the line (a URL), may go past the width
            longest = max(body.split(), key=len)
            assert body[2:] in commands or body in commands or len(body) - len(longest) < 20, ln
    flat = " ".join(x.strip() for x in lines)
    for f in doc["findings"]:
        assert f["title"] in flat and f["message"] in flat
        for e in f["evidence"]:
            assert e[:200] in flat
    for c in commands:
        assert any(x.rstrip().endswith(c) for x in lines), c


def test_explain_never_breaks_a_command():
    from rich.console import Console

    from airflow_gke.runbooks import print_runbook, runbook_text

    text = runbook_text("pv-zone-affinity-conflict")
    buf = io.StringIO()
    print_runbook(text, Console(file=buf, width=60, force_terminal=True, no_color=True))
    out = [x.rstrip() for x in re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue()).splitlines()]
    code = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert code
    for block in code:
        for ln in block.rstrip("\n").splitlines():
            assert ("    " + ln).rstrip() in out, ln


def test_pods_accepted_by_one_suppression_are_one_suppressed_entry(run_cli, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("suppressions:\n  - check: task-pod-unschedulable\n    resource: 'sales-reconcile-*'\n"
                    "    reason: pool resized in PLAT-9\n")
    r = run_cli("doctor", "--snapshot", str(scenario("task-pods-selector-pool-full")), "--output", "json",
                "--config", str(conf))
    assert not [f for f in r.json["findings"] if f["check"] == "task-pod-unschedulable"]
    [s] = r.json["suppressed"]
    assert s["finding"]["count"] == 2 and s["suppression"]["reason"] == "pool resized in PLAT-9"
    assert [x["name"] for x in s["finding"]["resources"]] == ["sales-reconcile-build-invoices-7jk1hr7z",
                                                              "sales-reconcile-reconcile-ledger-1ey47rg5"]
