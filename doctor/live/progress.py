"""A rich progress display on stderr while a live run reads (only used when stderr is a TTY)."""
from __future__ import annotations

import threading

from .reader import Progress


class RichProgress(Progress):
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as _P, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._p = _P(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._task = self._p.add_task("connecting", total=None)
        self._total = 0
        self._lock = threading.Lock()
        self._p.start()

    def add(self, n: int, phase: str) -> None:
        with self._lock:
            self._total += n
            self._p.update(self._task, total=self._total, description=phase)

    def done(self, label: str) -> None:
        self._p.update(self._task, advance=1)

    def stop(self) -> None:
        self._p.stop()
