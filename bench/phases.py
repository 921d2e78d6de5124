"""Where an offline run spends its time, phase by phase, in one process:

    python -m bench.phases bench/out/snapshots/n10000

1. load each list the checks need, one by one (read, parse with orjson, share repeated parts,
   redact; ``--split`` also times a plain read and parse of each file for comparison);
2. the context's shared views (pods, their indexes, events by object, configuration);
3. each check on the warm context (so its time is its own work, not the first read of a list).

The CLI's per-check ``duration_s`` charges a list's first read to whichever check touches it
first; this splits the two. CPU seconds are printed too (the machine may be shared).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class Clock:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def __call__(self, label: str, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        self.rows.append((label, time.perf_counter() - w, time.process_time() - c))
        return out


def run(snapshot: Path, top: int = 15, split: bool = False) -> list[tuple[str, float, float]]:
    import orjson

    from airflow_gke.views import Context, DataUnavailable
    from airflow_gke.data import KEYS, Target
    from airflow_gke.registry import load_checks
    from airflow_gke.runner import run_check
    from airflow_gke.snapshot import open_snapshot

    clock = Clock()
    gc.disable()   # as the CLI runs
    checks = clock("import + load the checks", lambda: list(load_checks().values()))
    src = clock("index the snapshot directory", lambda: open_snapshot(snapshot))
    m = src.meta
    target = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                    release=m.release, context=m.context)
    needed = sorted({k for c in checks for k in c.data_keys if KEYS[k].per is None})
    for name in needed:
        path = KEYS[name].path(target)
        found = src._files.get(path)
        if found is None:
            continue
        if split:   # the file read and a plain parse on their own (extra work, for comparison)
            file, kind = Path(found[0]), found[1]
            raw = clock(f"  read {name}", file.read_bytes)
            if kind == "json":
                clock(f"  plain parse {name} (orjson)", lambda: orjson.loads(raw))
            del raw
        clock(f"load {name} (read, parse, share, redact)", lambda: src.get(path))
    ctx = Context(src, target, now=m.captured_at)

    def view(attr):
        try:
            return getattr(ctx, attr)
        except DataUnavailable:
            return None

    for attr in ("pods", "pods_by_component", "task_pods", "pods_by_claim", "pods_by_node", "_events_index",
                 "pvcs", "nodes", "release", "airflow_cfg", "executor"):
        clock(f"view ctx.{attr}", lambda a=attr: view(a))
    for chk in checks:
        clock(f"check {chk.id}", lambda c=chk: run_check(ctx, c))
    src.close()
    rows = clock.rows
    total_w = sum(r[1] for r in rows)
    total_c = sum(r[2] for r in rows)
    print(f"{'phase':60} {'wall s':>8} {'cpu s':>8}")
    for label, w, c in rows:
        if not label.startswith("check ") or w >= 0.01:
            print(f"{label:60} {w:8.3f} {c:8.3f}")
    checks_rows = sorted((r for r in rows if r[0].startswith("check ")), key=lambda r: -r[1])
    print(f"{'checks (all ' + str(len(checks_rows)) + ')':60} {sum(r[1] for r in checks_rows):8.3f} "
          f"{sum(r[2] for r in checks_rows):8.3f}")
    print(f"{'total':60} {total_w:8.3f} {total_c:8.3f}")
    print("slowest checks on a warm context: " + ", ".join(f"{r[0][6:]} {r[1] * 1000:.0f} ms"
                                                           for r in checks_rows[:top]))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("snapshot", type=Path)
    ap.add_argument("--split", action="store_true", help="also time the file read and a plain orjson parse of each list")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON [[phase, wall s, cpu s], ...]")
    args = ap.parse_args(argv)
    rows = run(args.snapshot, split=args.split)
    if args.json:
        args.json.write_text(json.dumps([[label, round(w, 4), round(c, 4)] for label, w, c in rows]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
