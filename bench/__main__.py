"""``python -m bench``: how fast the doctor is on large namespaces, offline and live.

For each size N (task pods; default 1,000, 10,000 and 50,000) it generates a snapshot once
(``bench/generate.py``, cached in ``bench/out/snapshots/``), then measures, each as a subprocess:

* ``airflow-gke doctor --snapshot``: wall and CPU time, peak RSS (the process's own ``VmHWM``), the JSON
  report's ``checks[].duration_s``, and whether the seeded failures were found;
* ``python -m bench.phases``: the same run split into the load of each list and every check on a
  warm context (``duration_s`` charges a list's first load to the check that touches it first);
* ``python -m bench.liveread``: the live read alone against the replay server (every path the
  catalog needs, lists in pages of 500 with ``continue`` tokens): its peak RSS;
* ``airflow-gke doctor`` live against the replay server of ``tests/replay.py`` (the real
  kubernetes and Google clients over loopback): wall time, peak RSS, HTTP requests (from the
  server's request log: distinct paths, pages, log reads, duplicates), the server's own time, and
  whether the findings equal the offline run's;
* start-up: ``airflow-gke --version``, ``airflow-gke checks`` and ``doctor --snapshot`` on the
  ``seed-incident`` fixture (median of 5), and which client libraries ``doctor --snapshot``
  imports (``python -X importtime``);
* ``airflow-gke report`` on a folder of ``--reports`` (100) stored reports of 40 targets
  (``bench/reports.py``): the grid with each target's findings, with each target's whole report
  (``--full``), the fleet JSON, the HTML page and the Markdown comment, median of 5.
* the fleet: ``doctor --snapshot -A`` over R releases of N task pods (``bench.generate --releases``)
  against one release of R*N (wall and CPU; must stay under 4x), and its peak RSS against -A over
  one release of N (memory stays flat across targets).

It prints a table and writes ``bench/out/bench-<time>.json`` (and ``bench/out/latest.json``).
No number here is asserted by a test; ``tests/test_scale.py`` only checks correctness at small N.
The machine may be shared: CPU seconds are reported beside wall time.

    python -m bench                        # 1,000 / 10,000 / 50,000 (minutes; ~1 GB of snapshots)
    python -m bench --sizes 1000           # a quick run
    python -m bench --sizes 10000 --no-live --profile 10000   # + cProfile of the offline run
    python -m bench --sizes 1000 --no-live --fleet 20x1000     # + -A over 20 releases vs one of 20,000
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SEED = ROOT / "fixtures" / "scenarios" / "seed-incident"
DEFAULT_SIZES = (1000, 10_000, 50_000)
# The console script's entry (main() with no argv owns the process, as `airflow-gke` does), which
# writes the process's own peak RSS to $BENCH_PEAK_FILE as it ends (see ``measure``).
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'airflow-gke'; import bench.peak; "
                             "from airflow_gke.cli import main; main()"]
CLIENT_LIBS = ("kubernetes", "google.cloud", "google.auth", "google.api_core", "googleapiclient", "grpc",
               "urllib3", "requests", "yaml", "jsonschema", "rich")


# --- measuring one subprocess -------------------------------------------------------------------

def measure(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> dict:
    """Run ``cmd``; wall time, peak RSS of that process, exit code, output.

    The peak is the process's own ``VmHWM`` (bench/peak.py writes it as the process ends, for the
    CLI and bench.liveread), not ``wait4``'s ``ru_maxrss``: Linux folds the RSS of the process that
    forked the child (this one, holding a replay server's parsed lists after a live run: GBs) into
    the child's ``ru_maxrss`` at exec. ``wait4`` is the fallback for commands that do not report."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(prefix="bench-peak-") as peak:
        env = dict(os.environ if env is None else env)
        env["BENCH_PEAK_FILE"] = peak.name
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT), env.get("PYTHONPATH")) if x)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _pid, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        own = Path(peak.name).read_text().strip()
        return {"wall_s": wall, "rss_mb": float(own) if own else ru.ru_maxrss / 1024,
                "rss_source": "VmHWM" if own else "wait4", "cpu_s": ru.ru_utime + ru.ru_stime,
                "code": p.returncode, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


def median_wall(cmd: list[str], runs: int = 5) -> dict:
    results = [measure(cmd) for _ in range(runs)]
    return {"wall_s": statistics.median(r["wall_s"] for r in results),
            "rss_mb": max(r["rss_mb"] for r in results), "code": results[-1]["code"]}


# --- snapshots ------------------------------------------------------------------------------------

def _stamp() -> str:
    """Changes when the generated bytes may change: the generator's version or the factories."""
    from bench.generate import GENERATOR_VERSION

    h = hashlib.sha256(GENERATOR_VERSION.encode())
    h.update((ROOT / "fixtures" / "build.py").read_bytes())
    return h.hexdigest()[:16]


def _generated(dest: Path, args: list[str], what: str, log, last_line: bool) -> Path:
    """``dest`` as ``python -m bench.generate ARGS`` writes it, generated once per version of the
    generator and factories (a ``.stamp`` file records which)."""
    stamp_file = dest / ".stamp"
    stamp = _stamp()
    if (dest / "EXPECTED.json").is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return dest
    log(f"generating {what} into {dest} ...")
    r = measure([sys.executable, "-m", "bench.generate", *args])
    if r["code"] != 0:
        raise SystemExit(f"generator failed:\n{r['stderr']}")
    if last_line:
        log("  " + r["stderr"].strip().splitlines()[-1])
    stamp_file.write_text(stamp)
    return dest


def snapshot(n: int, log) -> Path:
    """The generated snapshot of size ``n``."""
    dest = OUT / "snapshots" / f"n{n}"
    return _generated(dest, [str(n), str(dest)], f"{n} task pods", log, last_line=True)


def fleet_snapshot(releases: int, n: int, log) -> Path:
    """A cluster of ``releases`` namespaces of ``n`` task pods each (``bench.generate --releases``)."""
    dest = OUT / "snapshots" / f"fleet{releases}x{n}"
    return _generated(dest, [str(n), str(dest), "--releases", str(releases)],
                      f"{releases} releases of {n} task pods", log, last_line=False)


def fleet(releases: int, n: int, log, repeat: int = 1) -> dict:
    """``doctor --snapshot -A`` over ``releases`` releases of ``n`` task pods against one release of
    ``releases * n`` (time: the fleet must stay under 4x the single release), and against one
    release of ``n`` under -A (peak RSS: memory stays flat across targets)."""
    def run(snap: Path, *extra: str) -> dict:
        runs = [measure(CLI + ["doctor", "--snapshot", str(snap), "--output", "json", "--fail-on", "never", *extra])
                for _ in range(repeat)]
        r = runs[-1]
        doc = _report(r)
        if r["code"] != 0 or doc is None:
            return {"error": f"exit {r['code']}: {r['stderr'][-2000:]}"}
        return {"wall_s": statistics.median(x["wall_s"] for x in runs),
                "cpu_s": statistics.median(x["cpu_s"] for x in runs), "rss_mb": max(x["rss_mb"] for x in runs),
                "targets": len(doc["targets"]) if "targets" in doc else 1}

    many, one, big = fleet_snapshot(releases, n, log), fleet_snapshot(1, n, log), snapshot(releases * n, log)
    log(f"fleet: -A over {releases} x {n} ...")
    out = {"releases": releases, "n": n, "fleet": run(many, "-A")}
    log(f"fleet: -A over 1 x {n} ...")
    out["fleet_one"] = run(one, "-A")
    log(f"fleet: one release of {releases * n} ...")
    out["single"] = run(big)
    f, s1 = out["fleet"], out["single"]
    if "wall_s" in f and "wall_s" in s1:
        out["wall_ratio"] = f["wall_s"] / s1["wall_s"]
        out["cpu_ratio"] = f["cpu_s"] / s1["cpu_s"]
    return out


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


# --- the runs -------------------------------------------------------------------------------------

def _report(r: dict) -> dict | None:
    try:
        return json.loads(r["stdout"])
    except ValueError:
        return None


def _seeded(doc: dict, snap: Path) -> dict:
    from bench.generate import expected

    want = expected(snap)
    got = {(f["check"], f["resource"]["kind"], f["resource"]["name"]) for f in doc["findings"]}
    missing = [list(w) for w in want if tuple(w) not in got]
    return {"expected": len(want), "found": len(want) - len(missing), "missing": missing}


def _check_times(doc: dict) -> list[list]:
    rows = sorted(((c["id"], c["duration_s"]) for c in doc["checks"]), key=lambda t: -t[1])
    return [[cid, round(d, 4)] for cid, d in rows]


def offline(snap: Path, repeat: int) -> dict:
    runs = [measure(CLI + ["doctor", "--snapshot", str(snap), "--output", "json", "--fail-on", "never"])
            for _ in range(repeat)]
    r = runs[-1]
    doc = _report(r)
    if r["code"] != 0 or doc is None:
        return {"error": f"exit {r['code']}: {r['stderr'][-2000:]}"}
    return {
        "wall_s": statistics.median(x["wall_s"] for x in runs), "walls_s": [x["wall_s"] for x in runs],
        "rss_mb": max(x["rss_mb"] for x in runs), "cpu_s": statistics.median(x["cpu_s"] for x in runs),
        "report_duration_s": doc["run"]["duration_s"],
        "checks": _check_times(doc), "summary": doc["summary"], "seeded": _seeded(doc, snap),
        "finding_ids": sorted(f["id"] for f in doc["findings"]),
        "_findings": {f["id"]: f for f in doc["findings"]},
    }


def _request_stats(log) -> dict:
    entries = log.entries
    keyed = Counter()
    pages = logs = 0
    for e in entries:
        q = urllib.parse.parse_qsl(e.query, keep_blank_values=True)
        if "/log" in e.path and e.service == "k8s":
            logs += 1
        if any(k == "continue" for k, _ in q):
            pages += 1      # the next page of a list read: not a read of its own
            continue
        keyed[(e.service, e.method, e.path, tuple(sorted(q)))] += 1
    repeated = {f"{k[0]} {k[1]} {k[2]}": n for k, n in keyed.items() if n > 1}
    by_service = Counter(e.service for e in entries)
    return {
        # distinct: reads of distinct paths (a list's pages count once, its continued pages apart)
        "requests": len(entries), "distinct": len(keyed), "continued_pages": pages, "log_reads": logs,
        "repeated_reads": len(repeated), "repeated": dict(list(repeated.items())[:10]),
        "mutating": sum(1 for e in entries if e.mutating), "by_service": dict(by_service),
        "server_time_s": sum(e.duration for e in entries),
    }


def _replay_env(srv, tmp: Path) -> dict:
    """This process's environment pointed at the replay server ``srv`` (a kubeconfig in ``tmp``, its
    Google endpoints), without endpoints or an in-cluster host inherited from the caller."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW_GKE_ENDPOINT_") and k != "KUBERNETES_SERVICE_HOST"}
    env.update(srv.env(kubeconfig=srv.write_kubeconfig(tmp / "kubeconfig")))
    return env


def live(snap: Path, offline_ids: list[str] | None, max_logs: int, offline_findings: dict | None = None) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from replay import ReplayServer  # tests/replay.py: the loopback Kubernetes + Google server

    meta = json.loads((snap / "meta.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp, ReplayServer(snap) as srv:
        env = _replay_env(srv, Path(tmp))
        cmd = CLI + ["doctor", "--output", "json", "--fail-on", "never", "--verbose", "--now", meta["captured_at"],
                     "--timeout", "900", "--request-timeout", "300", "--max-logs", str(max_logs)]
        if meta.get("release"):
            cmd += ["--release", meta["release"]]
        r = measure(cmd, env=env)
        stats = _request_stats(srv.log)
    doc = _report(r)
    if r["code"] != 0 or doc is None:
        return {"error": f"exit {r['code']}: {r['stderr'][-2000:]}", **stats}
    m = re.search(r"live read: (\d+) requests, (\d+) paths \((\d+) failed\) in ([\d.]+) s", r["stderr"])
    ids = sorted(f["id"] for f in doc["findings"])
    return {
        "wall_s": r["wall_s"], "rss_mb": r["rss_mb"], "cpu_s": r["cpu_s"], **stats,
        "read_s": float(m.group(4)) if m else None, "failed_reads": int(m.group(3)) if m else None,
        "checks": _check_times(doc), "summary": doc["summary"], "seeded": _seeded(doc, snap),
        "same_findings_as_offline": None if offline_ids is None else ids == offline_ids,
        "findings_only_live": sorted(set(ids) - set(offline_ids or ids))[:10],
        "findings_only_offline": sorted(set(offline_ids or ids) - set(ids))[:10],
        # same id, other content: mostly evidence from logs the live run did not read (--max-logs)
        "findings_with_other_evidence": sorted(f["id"] for f in doc["findings"]
                                               if offline_findings and f["id"] in offline_findings
                                               and offline_findings[f["id"]] != f)[:10],
    }


def live_read(snap: Path, page_size: int = 500) -> dict:
    """``python -m bench.liveread`` against the replay server: the live read alone (every path the
    catalog needs, lists in pages of ``page_size``), its peak RSS from outside (``wait4``) and inside."""
    sys.path.insert(0, str(ROOT / "tests"))
    from replay import ReplayServer

    meta = json.loads((snap / "meta.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-liveread-") as tmp, ReplayServer(snap) as srv:
        env = _replay_env(srv, Path(tmp))
        cmd = [sys.executable, "-m", "bench.liveread", "--page-size", str(page_size), "--now", meta["captured_at"]]
        if meta.get("release"):
            cmd += ["--release", meta["release"]]
        r = measure(cmd, env=env)
        pages = sum(1 for e in srv.log.entries if "continue=" in e.query)
    if r["code"] != 0:
        return {"error": f"exit {r['code']}: {r['stderr'][-2000:]}"}
    inner = json.loads(r["stdout"].strip().splitlines()[-1])
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "rss_mb": r["rss_mb"], "continued_pages": pages, **inner}


def phases(snap: Path) -> dict:
    """bench.phases in a subprocess: each list's load apart, then every check on a warm context."""
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        out = Path(tmp) / "phases.json"
        r = measure([sys.executable, "-m", "bench.phases", str(snap), "--json", str(out)])
        if r["code"] != 0 or not out.is_file():
            return {"error": r["stderr"][-2000:]}
        rows = json.loads(out.read_text())
    checks = sorted(([label[6:], w] for label, w, _c in rows if label.startswith("check ")), key=lambda t: -t[1])
    loads = [[label, w] for label, w, _c in rows if not label.startswith("check ")]
    return {"loads": loads, "checks_warm": checks, "checks_warm_total_s": sum(w for _n, w in checks),
            "total_s": sum(w for _l, w, _c in rows)}


def startup() -> dict:
    out = {
        "version": median_wall(CLI + ["--version"]),
        "checks": median_wall(CLI + ["checks"]),
        "seed_incident": median_wall(CLI + ["doctor", "--snapshot", str(SEED), "--output", "json"]),
    }
    r = measure([sys.executable, "-X", "importtime", *CLI[1:], "doctor", "--snapshot", str(SEED), "--output", "json"])
    imported = set()
    for line in r["stderr"].splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)", line)
        if m:
            imported.add(m.group(2))
    out["snapshot_imports"] = sorted(lib for lib in CLIENT_LIBS
                                     if any(mod == lib or mod.startswith(lib + ".") for mod in imported))
    return out


def report_grid(n: int, log) -> dict:
    """``airflow-gke report`` on a folder of n stored reports (generated once into bench/out/)."""
    from bench import reports as store

    dest = OUT / f"reports-{n}"
    if not dest.is_dir() or len(list(dest.rglob("*.json"))) != n:
        log(f"writing {n} stored reports into {dest.relative_to(ROOT)} ...")
        store.write(dest, n, min(40, n))
    now = ["--now", store.NOW.isoformat().replace("+00:00", "Z")]
    out = {"reports": n, "targets": min(40, n)}
    for label, args in (("table", ["--output", "table"]), ("full", ["--full"]), ("json", ["--output", "json"]),
                        ("html", ["--output", "html"]), ("markdown", ["--output", "markdown"])):
        out[label] = median_wall(CLI + ["report", str(dest), *args, *now])
    return out


def profile(snap: Path, n: int) -> Path:
    """cProfile of the offline run; the top of the listing goes to ``bench/out/profile-n<N>.txt``."""
    import io
    import pstats

    prof = OUT / f"profile-n{n}.prof"
    # main() with argv: the console entry would end the process before the profile is written
    code = ("import cProfile, sys\nfrom airflow_gke.cli import main\npr = cProfile.Profile()\npr.enable()\n"
            "try:\n    main(sys.argv[2:])\nexcept SystemExit:\n    pass\npr.disable()\npr.dump_stats(sys.argv[1])\n")
    r = measure([sys.executable, "-c", code, str(prof), "doctor", "--snapshot", str(snap), "--output", "json",
                 "--fail-on", "never"])
    if not prof.is_file():
        raise RuntimeError(f"profiling failed: {r['stderr'][-500:]}")
    buf = io.StringIO()
    st = pstats.Stats(str(prof), stream=buf)
    st.sort_stats("cumulative").print_stats(40)
    st.sort_stats("tottime").print_stats(25)
    txt = OUT / f"profile-n{n}.txt"
    txt.write_text(buf.getvalue())
    return txt


# --- output -----------------------------------------------------------------------------------------

def _f(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def table(result: dict) -> str:
    lines = []
    hdr = (f"{'N pods':>7} {'events':>7} {'MB':>5} | {'offline s':>9} {'cpu s':>6} {'RSS MB':>6} {'seeded':>6} | "
           f"{'live s':>6} {'cpu s':>6} {'RSS MB':>6} {'reqs':>5} {'distinct':>8} {'pages':>5} {'logs':>4} {'dup':>3} "
           f"{'server s':>8} {'same':>4}")
    lines += [hdr, "-" * len(hdr)]
    for row in result["sizes"]:
        o, lv = row.get("offline") or {}, row.get("live") or {}
        seeded = f"{o['seeded']['found']}/{o['seeded']['expected']}" if "seeded" in o else "-"
        same = {True: "yes", False: "NO", None: "-"}[lv.get("same_findings_as_offline")] if lv else "-"
        lines.append(
            f"{row['n']:>7} {row['events']:>7} {row['snapshot_mb']:>5.0f} | {_f(o.get('wall_s')):>9} "
            f"{_f(o.get('cpu_s')):>6} {_f(o.get('rss_mb'), '{:.0f}'):>6} {seeded:>6} | {_f(lv.get('wall_s')):>6} "
            f"{_f(lv.get('cpu_s')):>6} {_f(lv.get('rss_mb'), '{:.0f}'):>6} {lv.get('requests', '-'):>5} "
            f"{lv.get('distinct', '-'):>8} "
            f"{lv.get('continued_pages', '-'):>5} {lv.get('log_reads', '-'):>4} {lv.get('repeated_reads', '-'):>3} "
            f"{_f(lv.get('server_time_s')):>8} {same:>4}")
    for row in result["sizes"]:
        o = row.get("offline") or {}
        ph = row.get("phases") or {}
        if ph.get("checks_warm"):
            loads = ", ".join(f"{label.replace(' (read, parse, share, redact)', '')} {w:.2f} s"
                              for label, w in ph["loads"] if w >= 0.05)
            lines.append(f"N={row['n']}: phases: {loads}; all {len(ph['checks_warm'])} checks "
                         f"{ph['checks_warm_total_s']:.2f} s")
            top = ", ".join(f"{c} {d * 1000:.0f} ms" for c, d in ph["checks_warm"][:5])
            lines.append(f"N={row['n']}: slowest checks (warm context): {top}")
        elif o.get("checks"):
            top = ", ".join(f"{c} {d * 1000:.0f} ms" for c, d in o["checks"][:5])
            lines.append(f"N={row['n']}: slowest checks (offline report): {top}")
        if o.get("error"):
            lines.append(f"N={row['n']}: offline run failed: {o['error'][:300]}")
        lv = row.get("live") or {}
        if lv.get("findings_with_other_evidence"):
            lines.append(f"N={row['n']}: live findings whose evidence differs from offline (logs over --max-logs "
                         f"not read): {', '.join(lv['findings_with_other_evidence'][:5])}")
        if lv.get("error"):
            lines.append(f"N={row['n']}: live run failed: {lv['error'][:300]}")
    for row in result["sizes"]:
        lr = row.get("live_read") or {}
        if lr.get("rss_mb"):
            lines.append(f"N={row['n']}: live read alone (pages of 500, {lr.get('continued_pages')} continued): "
                         f"peak RSS {lr['rss_mb']:.0f} MB, {lr.get('read_s', 0):.1f} s, {lr.get('cpu_s', 0):.1f} s CPU")
        elif lr.get("error"):
            lines.append(f"N={row['n']}: live read failed: {lr['error'][:300]}")
    fl = result.get("fleet")
    if fl:
        f, one, s1 = fl["fleet"], fl["fleet_one"], fl["single"]
        if "wall_s" in f and "wall_s" in s1 and "rss_mb" in one:
            lines.append(f"fleet: -A over {fl['releases']} releases x {fl['n']} task pods {f['wall_s']:.2f} s "
                         f"({f['cpu_s']:.2f} s CPU, peak RSS {f['rss_mb']:.0f} MB; 1 release under -A: "
                         f"{one['rss_mb']:.0f} MB) vs one release of {fl['releases'] * fl['n']} {s1['wall_s']:.2f} s "
                         f"({s1['cpu_s']:.2f} s CPU): {fl['wall_ratio']:.2f}x wall, {fl['cpu_ratio']:.2f}x CPU")
        else:
            lines.append(f"fleet: failed: {f.get('error') or one.get('error') or s1.get('error')}"[:400])
    s = result.get("startup")
    if s:
        lines.append(f"start-up (median of 5): --version {s['version']['wall_s']:.3f} s, checks "
                     f"{s['checks']['wall_s']:.3f} s, doctor --snapshot seed-incident {s['seed_incident']['wall_s']:.3f} s;"
                     f" client libraries imported by doctor --snapshot: {', '.join(s['snapshot_imports']) or 'none'}")
    g = result.get("report_grid")
    if g:
        lines.append(f"airflow-gke report on {g['reports']} stored reports ({g['targets']} targets, median of 5): "
                     f"grid and findings {g['table']['wall_s']:.3f} s, --full {g['full']['wall_s']:.3f} s, "
                     f"json {g['json']['wall_s']:.3f} s, html {g['html']['wall_s']:.3f} s, markdown "
                     f"{g['markdown']['wall_s']:.3f} s, peak RSS "
                     f"{max(g[k]['rss_mb'] for k in ('table', 'full', 'json', 'html', 'markdown')):.0f} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="comma-separated task pod counts (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=1, help="offline runs per size; the median is reported")
    ap.add_argument("--no-live", action="store_true", help="skip the live runs against the replay server")
    ap.add_argument("--no-startup", action="store_true", help="skip the start-up timings")
    ap.add_argument("--no-phases", action="store_true", help="skip the phase split (loads apart, checks on a warm context)")
    ap.add_argument("--max-logs", type=int, default=50, help="--max-logs of the live runs (default: %(default)s)")
    ap.add_argument("--profile", type=int, metavar="N", help="also cProfile the offline run of size N")
    ap.add_argument("--label", default="", help="a note stored with the results (e.g. 'before')")
    ap.add_argument("--reports", type=int, default=100, metavar="N",
                    help="time `airflow-gke report` on N stored reports (0: skip; default: %(default)s)")
    ap.add_argument("--fleet", default="20x1000", metavar="RxN",
                    help="-A over R releases of N task pods against one release of R*N (default: %(default)s)")
    ap.add_argument("--no-fleet", action="store_true", help="skip the fleet comparison")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    OUT.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result: dict = {"started_at": datetime.now(timezone.utc).isoformat(), "label": args.label,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "git": _git(), "sizes": []}
    if not args.no_startup:
        log("start-up timings ...")
        result["startup"] = startup()
    if args.reports:
        log(f"airflow-gke report on {args.reports} stored reports ...")
        result["report_grid"] = report_grid(args.reports, log)
    for n in sizes:
        snap = snapshot(n, log)
        meta = json.loads((snap / "EXPECTED.json").read_text())
        row = {"n": n, "snapshot": str(snap.relative_to(ROOT)), "snapshot_mb": _size_mb(snap), "phases": meta["phases"],
               "events": 4 * n}
        log(f"N={n}: offline doctor ...")
        row["offline"] = offline(snap, args.repeat)
        if not args.no_phases:
            log(f"N={n}: phases (loads apart, checks on a warm context) ...")
            row["phases"] = phases(snap)
        if not args.no_live:
            log(f"N={n}: live read alone against the replay server (peak RSS) ...")
            row["live_read"] = live_read(snap)
            log(f"N={n}: live doctor against the replay server ...")
            row["live"] = live(snap, row["offline"].get("finding_ids"), args.max_logs, row["offline"].get("_findings"))
        for part in ("offline", "live"):
            row.get(part, {}).pop("finding_ids", None)
            row.get(part, {}).pop("_findings", None)
        result["sizes"].append(row)
        if args.profile == n:
            log(f"N={n}: profiling the offline run ...")
            try:
                row["profile"] = str(profile(snap, n).relative_to(ROOT))
            except RuntimeError as e:
                log(str(e))
    if not args.no_fleet:
        r, _, n = args.fleet.partition("x")
        result["fleet"] = fleet(int(r), int(n), log, args.repeat)
    text = table(result)
    print(text)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    body = json.dumps(result, indent=2) + "\n"
    (OUT / f"bench-{stamp}.json").write_text(body)
    (OUT / "latest.json").write_text(body)
    log(f"wrote {OUT / f'bench-{stamp}.json'}")
    return 0


def _git() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
