"""A rich progress display on stderr while a run reads and diagnoses (only used when stderr is a
terminal: doctor/cli.py ``_progress``): the reads done of those planned and how many are in flight,
and for a fleet (``-A``, several contexts) the targets diagnosed of how many."""
from __future__ import annotations

import threading

from .reader import Progress


class RichProgress(Progress):
    def __init__(self, console=None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as _P, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._p = _P(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=console or Console(stderr=True), transient=True)
        self._reads = self._p.add_task("connecting", total=None, visible=False)   # shown at the first read
        self._targets = None
        self._total = 0
        self._phase = "connecting"
        self._flight = 0
        self._lock = threading.Lock()
        self._p.start()

    def _describe(self) -> None:   # under the lock
        self._p.update(self._reads, description=f"{self._phase} ({self._flight} in flight)")

    def add(self, n: int, phase: str) -> None:
        with self._lock:
            self._total += n
            self._phase = phase
            self._p.update(self._reads, total=self._total, visible=True)
            self._describe()

    def start(self, label: str) -> None:
        with self._lock:
            self._flight += 1
            self._describe()

    def done(self, label: str) -> None:
        with self._lock:
            self._flight = max(0, self._flight - 1)
            self._p.update(self._reads, advance=1)
            self._describe()

    def targets(self, n: int) -> None:
        with self._lock:
            if self._targets is None:
                self._targets = self._p.add_task("targets diagnosed", total=n)
            else:
                self._p.update(self._targets, total=n)

    def target_done(self, label: str) -> None:
        with self._lock:
            if self._targets is not None:
                self._p.update(self._targets, advance=1, description=f"targets diagnosed (last: {label})")

    def stop(self) -> None:
        self._p.stop()
