"""The data layer: typed, indexed views over what was read, with one caching rule.

``Context`` is what a check receives. It is assembled from small view mixins:

- ``base``: entries, bodies, lists, failed-read tracking, and ``derive``/``view``, the one way a
  derived value is cached (its failed reads follow it to every consumer);
- ``kube``: Kubernetes object wrappers and the indexed lists of the namespace and the cluster;
- ``airflow``: the release, chart and Airflow versions, the resolved configuration, the executor;
- ``google``: the cluster, node pools, project number, service states.

Checks import from this package (and the model, the registry and the remediation toolkit) only.
"""
from __future__ import annotations

from .airflow import AIRFLOW_COMPONENTS, AirflowViews
from .base import (BaseContext, DataUnavailable, FailedReads, as_dict, as_list, as_str, dig, event_time,
                   human_age, no_answer_reason, str_map, unreadable, view)
from .google import WRITE_SCOPES, GoogleViews, NodePool
from ..snapshot import parse_time
from .kube import PVC, ContainerStatus, KubeViews, Obj, Pod, StorageClass, owner_of


class Context(AirflowViews, GoogleViews):
    """Everything a check may look at for one target."""


__all__ = ["AIRFLOW_COMPONENTS", "BaseContext", "Context", "ContainerStatus", "DataUnavailable", "FailedReads",
           "NodePool", "Obj", "PVC", "Pod", "StorageClass", "WRITE_SCOPES", "as_dict", "as_list", "as_str", "dig",
           "event_time", "human_age", "no_answer_reason", "owner_of", "parse_time", "str_map", "unreadable", "view"]
