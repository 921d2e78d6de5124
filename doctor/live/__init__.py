"""Live mode: read the cluster and the project the selected checks need, into a MemorySource.

Importing this package is cheap: the ``kubernetes`` and Google client libraries are imported only
when a read starts (``airflow-gke --version``, ``checks``, ``explain`` and ``doctor --snapshot``
never load them).

    from airflow_gke.live import LiveOptions, read_live
    result = read_live(LiveOptions(...), keys)      # -> LiveResult(source, target, calls, ...)
"""
from __future__ import annotations

from .options import LiveOptions

__all__ = ["LiveOptions", "read_live"]


def read_live(opts: LiveOptions, keys, progress=None):
    """Discover the target and read ``keys`` (data key names); see :mod:`airflow_gke.live.reader`."""
    from .reader import LiveReader

    return LiveReader(opts, progress=progress).read(keys)
