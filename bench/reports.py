"""A store of reports for ``airflow-gke report``: N single-target JSON reports of M targets, laid
out as ``doctor --output-file gs://...`` writes them (``<project>/<cluster>/<namespace>/<stamp>.json``),
several per target at six-hour intervals (the CronJob's schedule), from real reports of fixture
scenarios (a broken, a healthy and a mis-configured release) with their targets renamed.

    python -m bench.reports DEST [--reports 100] [--targets 40]

``python -m bench`` times ``airflow-gke report`` on such a folder (``--reports``); the tests use the
same store (tests/test_stored_reports.py).
"""
from __future__ import annotations

import argparse
import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("seed-incident", "healthy-af2-celery", "gcs-bucket-missing")
NOW = datetime(2026, 12, 5, 3, 15, tzinfo=timezone.utc)


def base_reports() -> list[dict]:
    """The JSON report of each scenario (run in-process, offline)."""
    from airflow_gke.app import RunRequest, diagnose

    return [diagnose(RunRequest(snapshot=str(ROOT / "fixtures" / "scenarios" / s))).to_dict() for s in SCENARIOS]


def target(t: int) -> dict:
    return {"project": f"acme-{t // 8}", "location": "europe-west1", "cluster": f"gke-{t % 8 // 4}",
            "namespace": f"team-{t % 4}", "release": "airflow", "context": None}


def reports(bases: list[dict], n: int = 100, targets: int = 40, now: datetime = NOW) -> list[tuple[str, dict]]:
    """(relative path, report) of n reports over `targets` targets: report k of target t ran
    k * 6 h + t min before `now`, from base (t + k) mod len(bases): the latest of target t is base
    t mod len(bases)."""
    out = []
    for i in range(n):
        t, k = i % targets, i // targets
        doc = copy.deepcopy(bases[(t + k) % len(bases)])
        run = doc["run"]
        run.update(target(t))
        when = now - timedelta(hours=6 * k, minutes=t)
        run["started_at"] = when.isoformat().replace("+00:00", "Z")
        rel = f"{run['project']}/{run['cluster']}/{run['namespace']}/{when.strftime('%Y%m%dT%H%M%SZ')}.json"
        out.append((rel, doc))
    return out


def write(dest: Path, n: int = 100, targets: int = 40, bases: list[dict] | None = None) -> list[tuple[str, dict]]:
    docs = reports(bases or base_reports(), n, targets)
    for rel, doc in docs:
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(doc, indent=2) + "\n")
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--reports", type=int, default=100)
    ap.add_argument("--targets", type=int, default=40)
    args = ap.parse_args(argv)
    write(args.dest, args.reports, args.targets)
    print(f"wrote {args.reports} reports of {args.targets} targets under {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
