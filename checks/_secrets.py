"""Helpers of the Secret Manager backend checks: where backend_kwargs is set, and the values change
that sets it (airflow.cfg through the chart's ``config``, or the env entry that overrides it)."""
from __future__ import annotations

import json

from airflow_gke.remediation import helm_upgrade, k8s_resource, q, release
from airflow_gke.views import Context, component_workload
from airflow_gke.views.secrets import BackendUse


def _components(uses: list[BackendUse]) -> str:
    return ", ".join(dict.fromkeys(u.label for u in uses))


def _where(ctx: Context, uses: list[BackendUse]):
    """The resource that holds the value: the chart's ConfigMap for airflow.cfg, else the first
    component's workload (an env entry)."""
    src = uses[0].kwargs_source or ""
    if src.startswith("env "):
        kind, name = _workload(ctx, uses[0].component)
        if kind:
            return k8s_resource(ctx, kind, name)
    return k8s_resource(ctx, "ConfigMap", f"{release(ctx)}-config")


def _workload(ctx: Context, component: str) -> tuple[str | None, str]:
    if component == "task":
        return "ConfigMap", f"{release(ctx)}-config"   # the pod template lives there
    found = component_workload(ctx, component)
    return (found[0], found[1].name) if found else (None, "")


def _set_kwargs(ctx: Context, uses: list[BackendUse], value: dict) -> list[str]:
    """The values change that sets backend_kwargs to ``value`` where it is set now."""
    text = json.dumps(value, separators=(", ", ": "))
    src = uses[0].kwargs_source or ""
    if src.startswith("env "):
        var = src.split()[1]
        return [f"# {var} is set in the chart's env (extraEnv) of {_components(uses)}: set it there to the value "
                f"below, then apply the values (restarts those pods)",
                f"# {var}={text}",
                helm_upgrade(ctx, "-f", "values.yaml")]
    return ["# restarts the Airflow components (their airflow.cfg changes):",
            helm_upgrade(ctx, "--set-json", q("config.secrets.backend_kwargs=" + json.dumps(text)))]
