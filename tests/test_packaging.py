"""The wheel ships one import package, airflow_gke, with every folder of doctor/ and checks/."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is in the standard library from 3.11")
def test_every_code_folder_is_a_listed_package():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for top, folder in (("airflow_gke", "doctor"), ("airflow_gke.checks", "checks")):
        assert mapping[top] == folder
        for d in [ROOT / folder, *sorted(p for p in (ROOT / folder).rglob("*") if p.is_dir())]:
            if d.name == "__pycache__" or not any(f.suffix in (".py", ".json") for f in d.iterdir() if f.is_file()):
                continue
            rel = d.relative_to(ROOT / folder).parts
            found.add(".".join((top,) + rel))
    assert found <= listed, f"folders missing from [tool.setuptools] packages: {sorted(found - listed)}"


def test_the_wheel_holds_only_airflow_gke_and_its_dist_info(tmp_path):
    # Built from a copy of the tracked sources: an in-tree build would reuse a stale build/ folder.
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", "doctor", "checks", "docs/runbooks"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("airflow_gke-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"airflow_gke"}
    for must in ("airflow_gke/views/__init__.py", "airflow_gke/checks/__init__.py", "airflow_gke/cli.py",
                 "airflow_gke/schemas/config-v1.json", "airflow_gke/_runbooks/pvc-access-mode-unsupported.md",
                 # --output html: the templates, its CSS and script (package data)
                 "airflow_gke/report/templates/report.html.j2", "airflow_gke/report/templates/fleet.html.j2",
                 "airflow_gke/report/templates/_target.html.j2", "airflow_gke/report/templates/_layout.html.j2",
                 "airflow_gke/report/templates/style.css", "airflow_gke/report/templates/script.js"):
        assert must in names
    assert sum(n.startswith("airflow_gke/checks/") and n.endswith(".py") for n in names) >= 38
