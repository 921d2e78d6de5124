"""What GKE Autopilot's admission webhook recorded about the resources it rewrote: the
``autopilot.gke.io/resource-adjustment`` annotation (``{"input": ..., "output": ..., "modified":
true}``) of a workload or a bare pod (autopilot-resources-adjusted, and the OOM checks that link to it)."""
from __future__ import annotations

import json

from airflow_gke.views import Context, DataUnavailable, Obj, Pod, as_dict, as_list, owner_of, quantity

ANNOTATION = "autopilot.gke.io/resource-adjustment"


def adjustment(obj: Obj) -> dict | None:
    """The annotation's document, None when absent, not JSON, or not a modification."""
    raw = obj.annotations.get(ANNOTATION)
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("modified") is False:
        return None
    return doc


def containers(doc: dict, part: str) -> dict[str, dict]:
    """``input`` or ``output`` of the annotation: container name -> its resources."""
    side = as_dict(doc.get(part))
    out = {}
    for key in ("initContainers", "containers"):
        for c in as_list(side.get(key)):
            c = as_dict(c)
            if c.get("name"):
                out[str(c["name"])] = c
    return out


def memory_lowered(ctx: Context, pod: Pod, container: str) -> bool:
    """Autopilot gave ``container`` of ``pod`` a lower memory limit than it was asked for, or one where
    none was asked (read on the pod, else on the Deployment/StatefulSet that created it)."""
    docs = [adjustment(pod)]
    o = owner_of(pod)
    if o is not None and o[0] in ("Deployment", "StatefulSet"):
        try:
            w = (ctx.deployments if o[0] == "Deployment" else ctx.statefulsets).get(o[1])
        except DataUnavailable:
            w = None
        if w is not None:
            docs.append(adjustment(w))
    for doc in docs:
        if doc is None:
            continue
        asked, got = containers(doc, "input").get(container, {}), containers(doc, "output").get(container, {})
        a = quantity(as_dict(asked.get("limits")).get("memory"))
        b = quantity(as_dict(got.get("limits")).get("memory"))
        if b is not None and (a is None or b < a):
            return True
    return False
