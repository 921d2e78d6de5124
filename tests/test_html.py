"""``--output html`` (doctor/report/html.py): one self-contained page per run, rendered with
Jinja2 with autoescaping, for one target and for a fleet. What a browser shows is tested in
tests/test_html_browser.py; here: the page's content and links as text, escaping, the CLI."""
from __future__ import annotations

import re

import pytest

from conftest import scenario
from html_pages import EVIL, Page, fleet, seed_report

PVC = "pvc-access-mode-unsupported"


@pytest.fixture(scope="module")
def seed():
    return seed_report()


def test_seed_page_findings_in_report_order_with_counts_fix_and_runbook(seed):
    from airflow_gke.report.html import render

    html = render(seed, "error")
    page = Page(html)
    titles = re.findall(r'<h3 class="finding-title"><a class="self" href="#(f\d+)">([^<]*)</a>', html)
    assert [a for a, _t in titles] == [f"f{i + 1}" for i in range(len(seed.findings))]
    assert [t for _a, t in titles] == [_esc(f.title) for f in seed.findings]    # arrange.order, as every report
    assert '<span class="count error" data-count="error">3 errors</span>' in html
    assert '<span class="count warn" data-count="warning">2 warnings</span>' in html
    assert "Target: namespace airflow (the snapshot&#39;s meta.json), release airflow" in html
    # the cause is a link to the causing finding, which links back
    write = next(i for i, f in enumerate(seed.findings) if f.check == "gcs-log-write-denied")
    scope = next(i for i, f in enumerate(seed.findings) if f.check == "node-storage-scope-read-only")
    assert scope < write
    art = html.split(f'id="f{write + 1}"', 1)[1].split("</article>", 1)[0]
    assert f'<a class="cause" href="#f{scope + 1}">' in art
    cause = html.split(f'id="f{scope + 1}"', 1)[1].split("</article>", 1)[0]
    assert f'<a class="effect" href="#f{write + 1}">' in cause
    # the PVC finding holds the folded rollouts as symptoms, and one copy button per option
    pvc = html.split('id="f1"', 1)[1].split("</article>", 1)[0]
    assert seed.findings[0].check == PVC
    assert "Also seen as" in pvc and pvc.count("<code>component-not-ready</code>") == 4
    assert pvc.count('class="copy" data-copy="f1-fix') == len(seed.findings[0].remediation.blocks) == 2
    assert "# Option B: Filestore-backed ReadWriteMany" in pvc
    assert f'<a href="https://github.com/airflow-gke/airflow-gke/blob/main/docs/runbooks/{PVC}.md"' in pvc
    # every in-page link resolves, ids are unique, nothing is loaded from elsewhere
    assert len(page.ids) == len(set(page.ids))
    missing = [h for h in page.links if h.startswith("#") and h[1:] not in page.ids]
    assert not missing, missing
    assert page.external == [] and page.scripts == 1
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    # the component-not-ready cell of a grid opens the finding its symptoms are folded under
    row = html.split('id="check-component-not-ready"', 1)[1].split("</tr>", 1)[0]
    assert 'href="#f1"' in row and "badge small warn" in row


def _esc(s: str) -> str:
    from markupsafe import escape

    return str(escape(s))


def test_evidence_from_the_cluster_renders_inert(seed):
    """Evidence, titles and resource names are cluster text: autoescaped, never markup."""
    import copy

    from airflow_gke.report.html import render

    rep = copy.deepcopy(seed)
    f = rep.checks[[c.id for c in rep.checks].index(PVC)].findings[0]
    f.evidence.append(EVIL)
    f.title = 'PVC <b onmouseover="x()">airflow-logs</b>'
    f.remediation.commands.append("# Option C: echo '</code></pre><script>alert(1)</script>'")
    html = render(rep, "error")
    assert "<script>document.title" not in html and "<img src=x" not in html and "<b onmouseover" not in html
    assert "&lt;script&gt;document.title=&#34;pwned&#34;" in html
    assert "&lt;b onmouseover=&#34;x()&#34;&gt;airflow-logs&lt;/b&gt;" in html
    page = Page(html)
    assert page.scripts == 1 and not [t for t, _a in page.tags if t in ("img", "b")]
    assert not any(k.startswith("on") for _t, a in page.tags for k in a)


def test_fleet_page_grid_rows_cells_and_unreachable(tmp_path):
    from airflow_gke.report.html import render_fleet

    f = fleet(8, unreachable=2)
    html = render_fleet(f, "error")
    page = Page(html)
    grid = html.split('<table class="grid">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>\s*<th class=\"row\">(.*?)</tr>", grid, re.S)
    assert len(rows) == 8
    gone = [r for r in rows if "not diagnosed" in r]
    assert len(gone) == 2 and all('class="cell unreachable"' in r for r in gone)
    assert "cluster-07/?/?" in gone[0] and "connection refused (try 1)" in gone[0]
    # the seed target's cells: its error checks are red and open their finding in its section
    seed_row = next(r for r in rows if ">cluster-01/airflow/airflow<" in r)
    cells = re.findall(r'<td class="cell (\w+) col-\w+"><a href="#([^"]+)" title="([^"]+)"', seed_row)
    by_check = {t.split(" · ")[1].split(":")[0]: (res, href) for res, href, t in cells}
    assert by_check[PVC][0] == "error" and by_check["default-compute-sa-nodes"][0] == "warn"
    sec = re.search(r'<section class="target" id="(t\d+)">\s*<h2 class="target-title">cluster-01/airflow/airflow', html)
    assert by_check[PVC][1] == f"{sec.group(1)}-f1"
    assert by_check["component-not-ready"] == ("warn", f"{sec.group(1)}-f1")
    assert by_check["dags-not-delivered"][0] == "pass"
    # every cell's link and every other in-page link resolves; ids are unique across the targets
    assert len(page.ids) == len(set(page.ids))
    missing = [h for h in page.links if h.startswith("#") and h[1:] not in page.ids]
    assert not missing, missing[:5]
    assert page.external == [] and page.scripts == 1
    # columns: the worst results first
    cols = re.findall(r'<th class="col col-(\w+)"', grid)
    from airflow_gke.report.html import RESULTS

    assert [RESULTS.index(c) for c in cols] == sorted(RESULTS.index(c) for c in cols)


def test_html_from_the_cli_single_and_fleet(run_cli, tmp_path):
    out = tmp_path / "seed.html"
    r = run_cli("doctor", "--snapshot", str(scenario("seed-incident")), "--output-file", str(out))
    assert r.code == 1 and f"wrote html report: {out}" in r.err
    assert out.read_text().startswith("<!DOCTYPE html>")
    r = run_cli("doctor", "--snapshot", str(scenario("healthy-minimal")), "--output", "html")
    assert r.code == 0 and "airflow-gke doctor: <span class=\"verdict\">passed</span>" in r.out
    assert "No findings." in r.out
