"""The data layer: typed, indexed views over what was read, with one caching rule.

``Context`` is what a check receives. It is assembled from small view mixins:

- ``base``: entries, bodies, lists, failed-read tracking, and ``derive``/``view``, the one way a
  derived value is cached (its failed reads follow it to every consumer);
- ``kube``: Kubernetes object wrappers and the indexed lists of the namespace and the cluster;
- ``airflow``: the release, chart and Airflow versions, the resolved configuration, the executor;
- ``google``: the cluster, node pools, project number, service states;
- ``identity``: who each Airflow component runs as (its Kubernetes service accounts, the Google
  identity each acts as), the one answer used by the checks and the live planner;
- ``iam``: what an IAM allow policy grants to whom.

Checks import from this package (and the model, the registry and the remediation toolkit) only.
"""
from __future__ import annotations

from .airflow import AIRFLOW_COMPONENTS, AirflowViews
from .base import (BaseContext, DataUnavailable, FailedReads, as_dict, as_list, as_str, dig, event_time,
                   human_age, no_answer_reason, str_map, unreadable, view)
from .google import WRITE_SCOPES, GoogleViews, NodePool, Repo, google_repo, image_host
from ..snapshot import parse_time
from ..source import error_info
from .kube import (BACKENDS_ANNOTATION, NEG_STATUS_ANNOTATION, PVC, QUANTITY_UNITS, ContainerStatus, GceBackend, KubeViews, Obj, Pod, StorageClass, all_statuses, container_spec, describe_state,
                   env_of, env_source, env_value, image_repo, image_tag, node_matches, node_schedulable, owner_of,
                   pod_images, quantity, secret_ref, selector_matches, spec_of, status_of, tolerates, unhealthy)
from .iam import Evaluation, binding_members, bindings, evaluate, is_federated, member_roles, role_grants, unless_in_groups
from .identity import (COMPONENTS, LOG_READERS, LOG_WRITERS, Identity, KsaUse, annotated_ksas, bucket_of,
                       component_exists, component_pods, component_workload, ksa_pods, ksas_in_use, named_gsas, remote_log_folder,
                       resolve, template_spec)


class Context(AirflowViews, GoogleViews):
    """Everything a check may look at for one target."""


__all__ = ["AIRFLOW_COMPONENTS", "QUANTITY_UNITS", "all_statuses", "as_dict", "as_list", "as_str", "BaseContext", "container_spec",
           "BACKENDS_ANNOTATION", "ContainerStatus", "Context", "GceBackend", "NEG_STATUS_ANNOTATION", "DataUnavailable", "describe_state", "dig", "env_of", "env_source",
           "env_value", "error_info", "event_time", "FailedReads", "google_repo", "human_age", "image_host", "image_repo",
           "image_tag", "no_answer_reason", "node_matches", "node_schedulable", "NodePool", "Obj", "owner_of",
           "parse_time", "Pod", "pod_images", "PVC", "quantity", "Repo", "secret_ref", "selector_matches", "spec_of",
           "status_of", "StorageClass", "str_map", "tolerates", "unhealthy", "unreadable", "view", "WRITE_SCOPES",
           # identity and iam
           "annotated_ksas", "binding_members", "bindings", "bucket_of", "component_exists", "component_pods", "component_workload",
           "COMPONENTS", "evaluate", "Evaluation", "Identity", "ksa_pods", "ksas_in_use", "KsaUse", "LOG_READERS",
           "LOG_WRITERS", "member_roles", "named_gsas", "remote_log_folder", "resolve", "role_grants",
           "template_spec"]
