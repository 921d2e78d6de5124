"""One live read, alone, for its peak memory: ``python -m bench.liveread [--page-size N]``.

Run as a subprocess by ``python -m bench`` with the environment of a replay server
(``tests/replay.py``: KUBECONFIG and the AIRFLOW_GKE_ENDPOINT_* variables): it reads everything
the whole catalog of checks needs (lists in pages of ``limit`` with ``continue`` tokens, as from a
real API server), builds no report, and prints one JSON line: its peak RSS (``VmHWM``), the
read's duration, requests, entries, and the pods and events it holds.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--now", default=None, help="RFC 3339 time the ages are judged at")
    ap.add_argument("--release", default=None)
    args = ap.parse_args(argv)
    gc.disable()   # as the CLI runs
    import os

    from airflow_gke.live import LiveOptions
    from airflow_gke.live.plan import keys_for
    from airflow_gke.live.reader import LiveReader
    from airflow_gke.registry import load_checks
    from airflow_gke.snapshot import parse_time

    opts = LiveOptions(page_size=args.page_size, now=parse_time(args.now) if args.now else None,
                       release=args.release, timeout=900, request_timeout=300, env=dict(os.environ))
    t0 = time.perf_counter()
    result = LiveReader(opts).read(keys_for(load_checks().values()))
    took = time.perf_counter() - t0

    def count(suffix: str) -> int:
        return sum(len(e.data.get("items") or []) for p, e in result.source.entries.items()
                   if p.endswith(suffix) and e.ok and isinstance(e.data, dict))

    from bench.peak import peak_mb

    print(json.dumps({"rss_mb": peak_mb(), "read_s": took,
                      "requests": result.requests, "entries": len(result.source.entries),
                      "pods": count("/pods"), "events": count("/events")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
