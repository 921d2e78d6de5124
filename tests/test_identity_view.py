"""One answer to "which service accounts does each Airflow component run as": the identity view
(doctor/views/identity.py). The checks ask it, and the live planner (doctor/live/plan.py) plans
its Google service account reads from it, so a live run reads exactly the GSAs the checks look up.
"""
from __future__ import annotations

import pytest

from airflow_gke.data import KEYS, Target
from airflow_gke.live.plan import derived_reads
from airflow_gke.registry import load_checks
from airflow_gke.runner import run_checks
from airflow_gke.snapshot import open_snapshot
from airflow_gke.source import Source
from airflow_gke.views import Context, DataUnavailable, annotated_ksas, ksas_in_use, named_gsas, resolve
from airflow_gke.views.identity import COMPONENTS

from conftest import scenario, scenario_names


class Recording(Source):
    """A snapshot that remembers every path asked for."""

    def __init__(self, base: Source) -> None:
        self.base, self.mode, self.asked = base, base.mode, set()

    def get(self, path: str):
        self.asked.add(path)
        return self.base.get(path)

    def paths(self, prefix: str = "") -> list[str]:
        return list(self.base.paths(prefix))


def _ctx(src: Source, meta) -> Context:
    return Context(src, Target(namespace=meta.namespace, project=meta.project, location=meta.location,
                               cluster=meta.cluster, release=meta.release), now=meta.captured_at)


def _planned_gsas(ctx: Context) -> list[str]:
    reads, _notes = derived_reads(ctx, {"gsa", "gsa_iam"}, 0)
    assert {k for k, _p in reads} <= {"gsa", "gsa_iam"}
    emails = list(dict.fromkeys(p["email"] for _k, p in reads))
    assert reads == [(k, {"email": e}) for e in emails for k in ("gsa", "gsa_iam")]
    return emails


@pytest.mark.parametrize("name", scenario_names())
def test_the_planner_reads_the_gsas_the_identity_view_resolves_and_the_checks_look_up(name):
    with open_snapshot(scenario(name)) as base:
        src = Recording(base)
        ctx = _ctx(src, base.meta)
        if not ctx.target.project:
            assert _planned_gsas(ctx) == []
            return
        planned = _planned_gsas(ctx)
        ksas, emails = named_gsas(ctx)
        assert planned == emails
        try:
            in_use = ksas_in_use(ctx)
        except DataUnavailable:
            in_use = None
        if in_use is not None:
            # with every component resolvable, the planner's KSAs and GSAs are the checks' own
            assert ksas == list(in_use)
            assert set(planned) == {g for g, _use in annotated_ksas(ctx).values()}
            resolved = {i.gsa for comp in COMPONENTS for i in resolve(ctx, comp) if i.gsa}
            assert resolved <= set(planned)
        # every Google service account any check looked up in a full run was planned
        src.asked.clear()
        run_checks(_ctx(src, base.meta), list(load_checks().values()))
        gsa_key, iam_key = KEYS["gsa"], KEYS["gsa_iam"]
        looked_up = {p for p in src.asked if p.startswith(gsa_key.template.split("{email}")[0].format(
            project=ctx.target.project))}
        want = {k.path(ctx.target, email=e) for e in planned for k in (gsa_key, iam_key)}
        assert looked_up <= want, sorted(looked_up - want)


def test_a_component_that_cannot_be_resolved_does_not_hide_the_others():
    """Deployments denied: the components with running pods still name their GSAs to the planner;
    the checks that need the whole answer (ksas_in_use) end unreadable, never with a partial one."""
    from airflow_gke.source import Entry

    class Denied(Source):
        def __init__(self, base, prefix):
            self.base, self.prefix, self.mode = base, prefix, base.mode

        def get(self, path):
            if path.startswith(self.prefix):
                return Entry(path, status=403, error={"message": "forbidden"})
            return self.base.get(path)

        def paths(self, prefix=""):
            return list(self.base.paths(prefix))

    with open_snapshot(scenario("healthy-af3-k8s-wi")) as base:
        full = _ctx(base, base.meta)
        denied = _ctx(Denied(base, f"k8s/api/v1/namespaces/{base.meta.namespace}/serviceaccounts"), base.meta)
        assert named_gsas(full)[1], "the scenario names Google service accounts"
        assert named_gsas(denied) == (named_gsas(full)[0], [])
        with pytest.raises(DataUnavailable):
            annotated_ksas(denied)
