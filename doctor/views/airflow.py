"""The Airflow deployment: the Helm release, chart and Airflow versions, the chart's ConfigMap,
the resolved Airflow configuration of each component, the executor."""
from __future__ import annotations

import re
from collections import Counter

from ..airflow_config import AirflowConfig, env_of_container
from .base import DataUnavailable, as_dict, dig, view
from .kube import KubeViews, Obj, Pod

AIRFLOW_COMPONENTS = ("scheduler", "api-server", "webserver", "triggerer", "dag-processor", "worker",
                      "execution-api-server")


def _is_airflow_pod(p: Pod, rel: str | None) -> bool:
    """``AirflowViews.is_airflow_pod`` for the release ``rel`` (``release_or_given()``)."""
    labels = p.labels
    if not (p.is_task_pod or labels.get("tier") == "airflow" or p.component in AIRFLOW_COMPONENTS
            or (rel and labels.get("app.kubernetes.io/instance") == rel)):
        return False
    if rel is None:
        return True
    return labels.get("release", labels.get("app.kubernetes.io/instance")) in (None, rel)


class AirflowViews(KubeViews):
    """Views over the Airflow release the target holds."""

    @view
    def release(self) -> str | None:
        """The Helm release: ``--release``, the snapshot's, else the most common ``release`` label
        on the chart's (``tier=airflow``) pods and workloads."""
        if self._release_override:
            return self._release_override
        counts: Counter = Counter()
        for key_name in ("pods", "deployments", "statefulsets", "configmaps"):
            try:
                objs = self.items(key_name)
            except DataUnavailable:
                continue
            for o in objs:
                labels = as_dict(dig(o, "metadata", "labels"))
                if labels.get("tier") == "airflow" and labels.get("release"):
                    counts[labels["release"]] += 1
        return counts.most_common(1)[0][0] if counts else None

    @view
    def deployer(self) -> tuple[str, str | None, str | None]:
        """Who applies the release, from its workloads' metadata (hook Jobs left out): ("flux",
        HelmRelease name, its namespace), ("argocd", Application name, None) or ("helm", None, None).
        Flux's post-renderer labels decide first; Argo CD's tracking annotation, or its instance label
        on objects without Helm's release annotations, next; else Helm."""
        rel = self.release_or_given()
        objs = []
        for key_name in ("deployments", "statefulsets"):
            try:
                objs += self.items(key_name)
            except DataUnavailable:
                continue
        mine = [o for o in objs if as_dict(dig(o, "metadata", "labels")).get("release") in (None, rel)
                and as_dict(dig(o, "metadata", "labels")).get("tier") == "airflow"] or objs
        for o in mine:
            labels = as_dict(dig(o, "metadata", "labels"))
            if labels.get("helm.toolkit.fluxcd.io/name"):
                return ("flux", str(labels["helm.toolkit.fluxcd.io/name"]),
                        str(labels.get("helm.toolkit.fluxcd.io/namespace") or self.target.namespace))
        for o in mine:
            labels = as_dict(dig(o, "metadata", "labels"))
            ann = as_dict(dig(o, "metadata", "annotations"))
            tracking = ann.get("argocd.argoproj.io/tracking-id")
            if tracking:
                return ("argocd", str(tracking).split(":", 1)[0], None)
            if labels.get("app.kubernetes.io/instance") and "meta.helm.sh/release-name" not in ann:
                return ("argocd", str(labels["app.kubernetes.io/instance"]), None)
        return ("helm", None, None)

    def release_or_given(self) -> str | None:
        """The release, or the one given on the command line when the lists it is read from failed."""
        try:
            return self.release
        except DataUnavailable:
            return self.target.release

    def is_airflow_pod(self, p: Pod) -> bool:
        """A pod of the Airflow release: a KubernetesExecutor task pod, a chart pod (``tier=airflow``),
        an Airflow component, or a pod of the release's subcharts (``app.kubernetes.io/instance``);
        when the release is known, not one labelled with another release."""
        return _is_airflow_pod(p, self.release_or_given())

    @view
    def airflow_pods(self) -> list[Pod]:
        """The pods (in ``pods`` order) that ``is_airflow_pod`` accepts: the release asked once, not
        once per pod (what walks every pod of a large namespace uses this)."""
        pods = self.pods
        if not pods:
            return []
        rel = self.release_or_given()
        return [p for p in pods if _is_airflow_pod(p, rel)]

    @view
    def airflow_images(self) -> dict[str, Pod]:
        """Each image of the Airflow pods -> the first pod (in ``pods`` order) that uses it, in
        first-use order (10,000 task pods share a handful of images)."""
        out: dict[str, Pod] = {}
        for p in self.airflow_pods:
            for field in ("initContainers", "containers"):   # pod_images(p), without copying lists
                cs = p.spec.get(field)
                if isinstance(cs, list):
                    for c in cs:
                        if isinstance(c, dict) and c.get("image"):
                            out.setdefault(str(c.get("image")), p)
        return out

    @view
    def chart_version(self) -> str | None:
        for key_name in ("deployments", "statefulsets", "configmaps", "serviceaccounts"):
            try:
                objs = self.items(key_name)
            except DataUnavailable:
                continue
            for o in objs:
                labels = as_dict(dig(o, "metadata", "labels"))
                chart = labels.get("chart")
                if labels.get("tier") == "airflow" and isinstance(chart, str) and chart.startswith("airflow-"):
                    if self.release is None or labels.get("release") == self.release:
                        return chart[len("airflow-"):]
        return None

    @view
    def airflow_version(self) -> str | None:
        """From the ``airflow_version`` label of task pods, else the image tag of the scheduler."""
        try:
            pods = self.pods
        except DataUnavailable:
            return None
        for p in pods:
            v = p.labels.get("airflow_version")
            if p.is_task_pod and isinstance(v, str) and v:
                return v.replace("_", "+") if re.match(r"^\d", v) else v
        for comp in ("scheduler", "api-server", "webserver", "triggerer", "dag-processor", "worker"):
            for p in self.pods_by_component.get(comp, []):
                m = re.search(r"(?:^|[:\-])(\d+\.\d+\.\d+)", str(p.main_container.get("image", "")).rsplit(":", 1)[-1])
                if m:
                    return m.group(1)
        return None

    @property
    def airflow_major(self) -> int | None:
        v = self.airflow_version
        if v and v[0].isdigit():
            return int(v.split(".")[0])
        if self.pods_by_component_safe("api-server"):
            return 3
        if self.pods_by_component_safe("webserver"):
            return 2
        return None

    def pods_by_component_safe(self, comp: str) -> list[Pod]:
        try:
            return self.pods_by_component.get(comp, [])
        except DataUnavailable:
            return []

    @view
    def config_map(self) -> Obj | None:
        """The chart's ``<release>-config`` ConfigMap."""
        cms = self.configmaps
        if self.release and f"{self.release}-config" in cms:
            return cms[f"{self.release}-config"]
        for cm in cms.values():
            if cm.labels.get("component") == "config" and "airflow.cfg" in as_dict(cm.raw.get("data")):
                if self.release is None or cm.labels.get("release") == self.release:
                    return cm
        return None

    @view
    def airflow_cfg(self) -> str | None:
        cm = self.config_map
        if cm is None:
            return None
        v = as_dict(cm.raw.get("data")).get("airflow.cfg")
        return v if isinstance(v, str) else None

    @view
    def pod_template(self) -> dict | None:
        """The KubernetesExecutor pod template (``pod_template_file.yaml`` of the config map)."""
        cm = self.config_map
        text = as_dict(cm.raw.get("data")).get("pod_template_file.yaml") if cm else None
        if not isinstance(text, str):
            return None
        import yaml  # only loaded when a check needs the template

        try:   # the C loader when PyYAML was built with libyaml (the same results, ~10x faster)
            doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            return None
        return doc if isinstance(doc, dict) else None

    def component_container(self, component: str) -> dict | None:
        """The Airflow container spec of a component: from a live pod, else its workload's
        template, else (task pods) the pod template file."""
        if component == "task":
            for p in self.task_pods:
                return p.main_container
            tpl = self.pod_template
            if tpl:
                return Pod(tpl).main_container
            return None
        for p in self.pods_by_component.get(component, []):
            return p.main_container
        for coll in (self.deployments, self.statefulsets):
            for w in coll.values():
                if w.labels.get("component") == component and (
                        self.release is None or w.labels.get("release") == self.release):
                    spec = as_dict(dig(w.raw, "spec", "template"))
                    return Pod(spec).main_container
        return None

    def config(self, component: str = "scheduler") -> AirflowConfig:
        """Airflow configuration as ``component`` resolves it (airflow.cfg + that container's env)."""
        return self.derive(("config", component), self._config, component)

    def _config(self, component: str) -> AirflowConfig:
        try:
            container = self.component_container(component)
        except DataUnavailable:
            container = None
        env = env_of_container(container) if container else {}
        return AirflowConfig(self.airflow_cfg, env)

    @view
    def executor(self) -> str | None:
        cfg = self.config("scheduler")
        v = cfg.get("core", "executor")
        if v:
            return v
        for d in list(self.deployments.values()) + list(self.statefulsets.values()):
            if d.labels.get("component") == "scheduler" and d.labels.get("executor"):
                return d.labels["executor"]
        return None

    @property
    def kubernetes_executor(self) -> bool:
        return "KubernetesExecutor" in (self.executor or "")

    @property
    def celery_executor(self) -> bool:
        return "Celery" in (self.executor or "")

