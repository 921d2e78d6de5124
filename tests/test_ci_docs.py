"""docs/ci/: the GitHub Actions and GitLab CI examples are valid YAML that run the doctor after
the deploy whatever it did, publish all three reports and gate on the exit code; their doctor
command lines are accepted by the real CLI. Shell completion works as docs/ci/README.md says."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "docs" / "ci"


def doctor_commands(script: str) -> list[list[str]]:
    """`airflow-gke doctor ...` invocations in a shell script (continuations joined, `|| ...` cut)."""
    text = script.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("airflow-gke doctor"):
            line = line.split("||")[0]
            out.append(shlex.split(line))
    return out


def parse(argv: list[str], env: dict) -> dict:
    from airflow_gke.cli import cli

    assert argv[:2] == ["airflow-gke", "doctor"]
    filled = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], a) for a in argv[2:]]
    return cli.commands["doctor"].make_context("doctor", filled).params


def assert_reports(params: dict) -> dict[str, str]:
    files = dict(x.split(":", 1) for x in params["output_file"])
    assert set(files) == {"junit", "markdown", "json"}
    assert params["fail_on"] == "error"
    return files


def test_github_actions_workflow():
    wf = yaml.safe_load((CI / "github-actions.yml").read_text())
    on = wf.get(True, wf.get("on"))                           # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    assert wf["permissions"]["id-token"] == "write"
    steps = wf["jobs"]["deploy"]["steps"]
    names = [s.get("name") or s.get("uses") for s in steps]
    helm = next(s for s in steps if s.get("id") == "helm")
    assert helm["continue-on-error"] is True and "helm upgrade --install" in helm["run"]
    doctor = next(s for s in steps if s.get("id") == "doctor")
    assert names.index("airflow-gke doctor") > names.index("helm upgrade")
    (cmd,) = doctor_commands(doctor["run"])
    files = assert_reports(parse(cmd, wf["env"]))
    assert '1) echo "::error::' in doctor["run"] and "exit 1" in doctor["run"]
    after = steps[names.index("airflow-gke doctor") + 1:]
    assert all(s.get("if") in ("always()", "steps.helm.outcome == 'failure'") for s in after)
    report = next(s for s in after if str(s.get("uses", "")).startswith("mikepenz/action-junit-report"))
    assert report["with"]["report_paths"] == files["junit"]
    upload = next(s for s in after if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert set(upload["with"]["path"].split()) == set(files.values())
    summary = next(s for s in after if s.get("name") == "Job summary")
    assert files["markdown"] in summary["run"] and "GITHUB_STEP_SUMMARY" in summary["run"]
    assert steps[-1]["if"] == "steps.helm.outcome == 'failure'" and "exit 1" in steps[-1]["run"]


def test_gitlab_ci_job():
    ci = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    assert ci["stages"] == ["deploy", "verify"]
    assert ci["deploy-airflow"]["stage"] == "deploy"
    job = ci["airflow-gke-doctor"]
    assert job["stage"] == "verify" and job["when"] == "always" and job["extends"] == ".gke-auth"
    script = "\n".join(job["script"])
    (cmd,) = doctor_commands(script)
    files = assert_reports(parse(cmd, ci["variables"]))
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == files["junit"]
    assert set(job["artifacts"]["paths"]) == set(files.values())
    assert 'if [ "$rc" -eq 3 ]' in script and script.rstrip().endswith('exit "$rc"')
    auth = "\n".join(ci[".gke-auth"]["before_script"])
    assert "get-credentials" in auth and "GOOGLE_APPLICATION_CREDENTIALS" in auth


def test_the_exit_code_table_is_the_cli_contract():
    from airflow_gke import cli

    text = (CI / "README.md").read_text()
    rows = re.findall(r"^\| (\d) \| ", text, re.M)
    assert rows == ["0", "1", "2", "3", "4"]
    assert (cli.EXIT_OK, cli.EXIT_FINDINGS, cli.EXIT_USAGE, cli.EXIT_INCOMPLETE, cli.EXIT_INTERNAL) == (0, 1, 2, 3, 4)


def test_shell_completion_scripts_and_answers(run_cli):
    r = run_cli(env={"_AIRFLOW_GKE_COMPLETE": "bash_source"})
    assert r.code == 0 and "complete -o nosort -F _airflow_gke_completion airflow-gke" in r.out
    r = run_cli(env={"_AIRFLOW_GKE_COMPLETE": "zsh_source"})
    assert r.out.startswith("#compdef airflow-gke")
    r = run_cli(env={"_AIRFLOW_GKE_COMPLETE": "fish_source"})
    assert "complete --no-files --command airflow-gke" in r.out
    r = run_cli(env={"_AIRFLOW_GKE_COMPLETE": "bash_complete", "COMP_WORDS": "airflow-gke doctor --output ",
                     "COMP_CWORD": "3"})
    assert r.out.split() == ["plain,table", "plain,json", "plain,junit", "plain,markdown", "plain,html"]
    r = run_cli(env={"_AIRFLOW_GKE_COMPLETE": "bash_complete", "COMP_WORDS": "airflow-gke doctor --min-sev",
                     "COMP_CWORD": "2"})
    assert r.out.split() == ["plain,--min-severity"]
