"""Imported first by the benchmark's subprocesses: as the process ends, write its own peak RSS
(``VmHWM`` of /proc/self/status, in MB) to ``$BENCH_PEAK_FILE``. ``VmHWM`` belongs to the memory
of this program only; ``ru_maxrss`` (getrusage, wait4) also holds the RSS of the process that
forked it, at exec. The CLI ends with ``os._exit`` (doctor/cli.py ``_exit_now``): that is wrapped
too, as atexit handlers do not run there."""
from __future__ import annotations

import atexit
import os


def peak_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def write() -> None:
    path = os.environ.get("BENCH_PEAK_FILE")
    mb = peak_mb()
    if path and mb is not None:
        with open(path, "w") as fh:
            fh.write(f"{mb:.1f}\n")


atexit.register(write)
_os_exit = os._exit


def _exit(code: int) -> None:
    write()
    _os_exit(code)


os._exit = _exit
