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


def read_live(opts: LiveOptions, keys, progress=None, overlay=None):
    """Discover the target and read ``keys`` (data key names); see :mod:`airflow_gke.live.reader`.
    ``overlay(source, target)`` (planned mode) gives a second source whose buckets and Google
    service accounts are read too (those the plan names, besides those the namespace names now)."""
    from .reader import LiveReader

    reader = LiveReader(opts, progress=progress)
    reader.overlay = overlay
    return reader.read(keys)
