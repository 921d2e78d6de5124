#!/usr/bin/env bash
# PyPI has distributions named `doctor` and `checks` whose top-level packages are `doctor` and
# `checks`. airflow-gke installs only `airflow_gke`, so installing them beside it must change
# nothing: same findings on the bundled scenario, same registered checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
V=$(mktemp -d)/venv
"$PY" -m venv "$V"
"$V/bin/python" -m pip install --quiet --upgrade pip
"$V/bin/python" -m pip install --quiet .
before=$(cd / && "$V/bin/airflow-gke" doctor --snapshot "$OLDPWD/fixtures/scenarios/seed-incident" --output json --fail-on never --now 2026-11-20T10:00:00Z | "$V/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print(sorted(f["id"] for f in d["findings"]), len(d["checks"]))')
# --no-deps: only their import packages matter here (their own dependencies are unmaintained pins).
"$V/bin/python" -m pip install --quiet --no-deps doctor checks
(cd / && "$V/bin/python" -c 'import importlib.util as u; s = [u.find_spec(n) for n in ("doctor", "Checks")]; assert all(x and "site-packages" in x.origin for x in s), s; print("foreign packages installed:", *[x.origin for x in s])')
after=$(cd / && "$V/bin/airflow-gke" doctor --snapshot "$OLDPWD/fixtures/scenarios/seed-incident" --output json --fail-on never --now 2026-11-20T10:00:00Z | "$V/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print(sorted(f["id"] for f in d["findings"]), len(d["checks"]))')
[ "$before" = "$after" ] || { echo "PyPI's doctor/checks changed airflow-gke's result:"; echo "$before"; echo "$after"; exit 1; }
echo "clash check: PyPI's doctor and checks installed beside airflow-gke change nothing ($after)"
