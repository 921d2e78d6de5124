"""Reports to render as HTML in the tests (tests/test_html.py, tests/test_html_browser.py): the
seed incident, and fleets of single-target reports of the bundled scenarios, each target told
apart by its context, with targets that could not be reached."""
from __future__ import annotations

import copy
import dataclasses
from html.parser import HTMLParser

from conftest import scenario

SEED = "seed-incident"
# Scenarios of a fleet: broken and healthy releases, a project with an API disabled (incomplete).
FLEET_SCENARIOS = ("seed-incident", "healthy-minimal", "gcs-bucket-missing", "task-pod-init-stuck",
                   "api-disabled-cluster-403", "healthy-af2-celery", "pvc-pending-wffc",
                   "image-pull-403-ar", "metadata-db-password-rotated", "remote-logging-readonly-scope")
EVIL = '<script>document.title="pwned";window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def diagnose(name: str):
    from airflow_gke.app import RunRequest, diagnose as run

    return run(RunRequest(snapshot=str(scenario(name))))


def seed_report():
    return diagnose(SEED)


def fleet(n: int, unreachable: int = 1, reports: dict | None = None):
    """A fleet of ``n`` targets: ``n - unreachable`` diagnosed ones cycling through FLEET_SCENARIOS
    (context ``cluster-NN``), then ``unreachable`` that were not."""
    from airflow_gke.fleet import FleetReport, Unreached

    reports = {} if reports is None else reports
    out = []
    for i in range(n - unreachable):
        name = FLEET_SCENARIOS[i % len(FLEET_SCENARIOS)]
        if name not in reports:
            reports[name] = diagnose(name)
        rep = copy.copy(reports[name])          # no __post_init__: findings are merged once already
        rep.run = dataclasses.replace(rep.run, context=f"cluster-{i + 1:02d}")
        out.append(rep)
    gone = [Unreached({"context": f"cluster-{n - unreachable + j + 1:02d}", "namespace": None, "release": None},
                      f"unreachable: Kubernetes API https://127.0.0.1:9: connection refused (try {j + 1})")
            for j in range(unreachable)]
    return FleetReport("0.0.0-test", "live", "2026-11-21T15:40:00Z", reports=out, unreached=gone)


class Page(HTMLParser):
    """What the tests read back from a page: ids, links, scripts, external references."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.external: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "script":
            self.scripts += 1
        for k in ("src", "srcset", "poster", "data"):
            if a.get(k):
                self.external.append(f"{tag} {k}={a[k]}")
        if tag == "link":
            self.external.append(f"link {a}")
