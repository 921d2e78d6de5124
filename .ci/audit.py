#!/usr/bin/env python3
"""Audit an environment's installed distributions for known vulnerabilities; exit 1 on any.

    python .ci/audit.py --python .ci-venv/bin/python [--ignore-vuln ID]... [--strict]

Runs ``pip-audit`` (from the interpreter running this script) against the environment of
``--python`` (``PIPAPI_PYTHON_LOCATION``), first with the OSV database, then, when OSV cannot be
reached, with PyPI's vulnerability data (``--vulnerability-service pypi``). Some package indexes
and mirrors do not serve the per-release JSON that pip-audit's PyPI service asks for
(``/pypi/<name>/<version>/json``) and pip-audit then *skips* those packages: a run that audited
nothing would pass. So every skipped package is looked up again in the project JSON
(``/pypi/<name>/json``), whose ``vulnerabilities`` list applies to the latest release: when the
installed version is that release, the package is audited from it. What still cannot be audited is
listed; ``--strict`` (or ``AUDIT_STRICT=1``, set it in CI with internet access) makes that fail too.

The project itself (``airflow-gke``, installed from the checkout) is not on PyPI and is left out.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

SELF = {"airflow-gke"}


def norm(name: str) -> str:
    """PEP 503 normalized name (``boolean.py`` and ``boolean-py`` are one project)."""
    return re.sub(r"[-_.]+", "-", name).lower()
PYPI = os.environ.get("AUDIT_PYPI_URL", "https://pypi.org/pypi")


def pip_audit(python: str, service: str, ignore: list[str]) -> dict | None:
    cmd = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
           "--vulnerability-service", service]
    for v in ignore:
        cmd += ["--ignore-vuln", v]
    env = {**os.environ, "PIPAPI_PYTHON_LOCATION": python}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit: pip-audit with {service} did not run: {last}", file=sys.stderr)
        return None
    return doc if isinstance(doc, dict) and "dependencies" in doc else None


def installed(python: str) -> dict[str, str]:
    out = subprocess.run([python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    return {norm(d["name"]): d["version"] for d in json.loads(out)}


def project_json_vulns(name: str, version: str) -> tuple[str, list[dict]]:
    """("audited" | "unaudited: why", vulnerabilities of ``version``) from the project JSON."""
    try:
        with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=30) as r:
            doc = json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"unaudited: {type(e).__name__}: {getattr(e, 'reason', e)}", []
    latest = (doc.get("info") or {}).get("version")
    if latest != version:
        return f"unaudited: {version} is not the latest release ({latest}), whose data is all the index serves", []
    if "vulnerabilities" not in doc:
        return "unaudited: the index serves no vulnerability data", []
    vulns = [v for v in doc.get("vulnerabilities") or [] if not v.get("withdrawn")]
    return "audited", vulns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True, help="interpreter of the environment to audit")
    ap.add_argument("--ignore-vuln", action="append", default=[], metavar="ID",
                    help="a vulnerability ID to accept (say why where you pass it)")
    ap.add_argument("--strict", action="store_true", default=os.environ.get("AUDIT_STRICT") == "1",
                    help="also fail when a package could not be audited")
    a = ap.parse_args()

    doc = pip_audit(a.python, "osv", a.ignore_vuln) or pip_audit(a.python, "pypi", a.ignore_vuln)
    if doc is None:
        print("audit: FAILED: pip-audit could not reach OSV or PyPI", file=sys.stderr)
        return 1
    versions = installed(a.python)
    found: list[str] = []
    skipped: list[str] = []
    by_pip_audit = 0
    for dep in doc["dependencies"]:
        name = norm(dep["name"])
        if name in SELF:
            continue
        if "skip_reason" in dep:
            skipped.append(name)
            continue
        by_pip_audit += 1
        for v in dep.get("vulns") or []:
            found.append(f"{name} {dep.get('version')}: {v.get('id')} (fixed in {', '.join(v.get('fix_versions') or []) or '?'})")
    unaudited: list[str] = []
    by_json = 0
    with cf.ThreadPoolExecutor(8) as pool:
        results = dict(zip(skipped, pool.map(lambda n: project_json_vulns(n, versions.get(n, "?")), skipped)))
    for name, (state, vulns) in sorted(results.items()):
        if state != "audited":
            unaudited.append(f"{name} {versions.get(name, '?')} ({state[len('unaudited: '):]})")
            continue
        by_json += 1
        for v in vulns:
            ids = {v.get("id"), *(v.get("aliases") or [])}
            if ids & set(a.ignore_vuln):
                continue
            found.append(f"{name} {versions[name]}: {v.get('id')} (fixed in {', '.join(v.get('fixed_in') or []) or '?'})")
    total = by_pip_audit + len(results)
    print(f"audit: {by_pip_audit + by_json} of {total} installed distributions audited "
          f"({by_pip_audit} by pip-audit, {by_json} from the PyPI project JSON), {len(unaudited)} could not be")
    for line in unaudited:
        print(f"audit:   not audited: {line}")
    for line in found:
        print(f"audit:   VULNERABLE: {line}")
    if found:
        print(f"audit: FAILED: {len(found)} known vulnerabilit{'y' if len(found) == 1 else 'ies'}", file=sys.stderr)
        return 1
    if unaudited and a.strict:
        print("audit: FAILED: --strict and some distributions could not be audited", file=sys.stderr)
        return 1
    print("audit: no known vulnerabilities" + (" in what could be audited" if unaudited else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
