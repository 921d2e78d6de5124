"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` package, which
.ci/run installs) driven by Playwright with the system executable (no browser download).

It renders the seed-incident page and a 20-target fleet page from disk, as a user opens a CI
artifact, and asserts on the DOM after the page's script ran: finding titles in report order, the
counts, cause links and grid cells that land on their finding, copy buttons that copy (Clipboard
API and the fallback), evidence holding markup that stays text, and a page that requests nothing
but itself. Screenshots are kept in $TEST_ARTIFACTS (default .test-artifacts/) for CI to keep.

BROWSER REQUIRED IN CI: without Chromium these tests fail when $CI is set (a CI run must not pass
without them) and are skipped, saying why, on a developer's machine.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from html_pages import EVIL, fleet, seed_report

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS") or ROOT / ".test-artifacts")
DOCS_SHOT = ROOT / "docs" / "report-seed-incident.png"
# Chromium as root in a container, on a machine with no network: no sandbox, no background traffic.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
        "--font-render-hinting=none"]

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    for c in (os.environ.get("AIRFLOW_GKE_CHROMIUM"), "chromium", "chromium-browser"):
        path = c and shutil.which(c)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        msg = ("BROWSER TESTS NOT RUN: no Chromium (/usr/bin/chromium: `apt-get install chromium`, which "
               ".ci/run does; or set AIRFLOW_GKE_CHROMIUM)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


# Records what the copy buttons hand to the clipboard, by either path; `no-clipboard` removes the
# Clipboard API so the page falls back to a selected textarea and execCommand("copy").
SPY = """
window.__copied = [];
if (window.__noClipboard) { Object.defineProperty(Navigator.prototype, "clipboard", {get: () => undefined}); }
else if (navigator.clipboard) {
  const write = navigator.clipboard.writeText.bind(navigator.clipboard);
  navigator.clipboard.writeText = (t) => { window.__copied.push(["clipboard", t]); return write(t); };
}
const exec = document.execCommand.bind(document);
document.execCommand = (cmd, ...rest) => {
  const el = document.activeElement;
  if (cmd === "copy" && el && "value" in el) { window.__copied.push(["fallback", el.value.slice(el.selectionStart, el.selectionEnd)]); }
  return exec(cmd, ...rest);
};
"""


class Opened:
    def __init__(self, browser, path: Path, no_clipboard: bool = False, width: int = 1280):
        self.ctx = browser.new_context(viewport={"width": width, "height": 1000})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page = self.page = self.ctx.new_page()
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        if no_clipboard:
            page.add_init_script("window.__noClipboard = true;")
        page.add_init_script(SPY)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")

    def in_view(self, selector: str) -> bool:
        return self.page.evaluate("""(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
            return r.top >= -1 && r.top < window.innerHeight; }""", selector)

    def close(self):
        self.ctx.close()


def _write(tmp_path: Path, name: str, html: str) -> Path:
    p = tmp_path / name
    p.write_text(html, encoding="utf-8")
    return p


def _keep(page, name: str, full: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    page.screenshot(path=str(out), full_page=full)
    assert out.stat().st_size > 10_000
    return out


@pytest.fixture(scope="module")
def seed():
    return seed_report()


def test_seed_incident_page(browser, seed, tmp_path):
    from airflow_gke.report.html import render

    path = _write(tmp_path, "seed-incident.html", render(seed, "error"))
    o = Opened(browser, path)
    p = o.page
    try:
        assert p.title() == "airflow-gke doctor: failed — 3 errors, 2 warnings"
        assert p.inner_text("h1 .verdict") == "failed"
        assert p.inner_text('.top [data-count="error"]') == "3 errors"
        assert p.inner_text('.top [data-count="warning"]') == "2 warnings"
        assert "Target: namespace airflow" in p.inner_text(".target-line")
        titles = [t.strip() for t in p.locator("article.finding h3.finding-title").all_inner_texts()]
        assert titles == [f.title for f in seed.findings]
        # the contents list links to each finding
        toc = p.locator("ol.toc a")
        assert toc.count() == 5 and toc.nth(4).inner_text() == seed.findings[4].title
        # a cause link lands on the causing finding, which is then on screen
        write = p.locator('article.finding[data-check="gcs-log-write-denied"]')
        write.locator("a.cause").click()
        cause_id = p.evaluate("location.hash").lstrip("#")
        assert p.get_attribute(f"#{cause_id}", "data-check") == "node-storage-scope-read-only"
        assert o.in_view(f"#{cause_id}")
        # ... and its "Explains" link leads back
        p.locator(f"#{cause_id} a.effect").first.click()
        assert p.get_attribute(p.evaluate("location.hash"), "data-check") == "gcs-log-write-denied"
        # every in-page link resolves to an element
        dangling = p.evaluate("""() => [...document.querySelectorAll('a[href^="#"]')]
            .map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id))""")
        assert dangling == []
        # one copy button per pasteable block; clicking one copies exactly that block
        blocks = sum(len(f.remediation.blocks) for f in seed.findings)
        assert p.locator("button.copy").count() == blocks
        sel = 'article.finding[data-check="pvc-access-mode-unsupported"] button.copy'
        _record_labels(p, sel, 1)   # the label reverts to "Copy" after 2 s: record it, never race the timer
        p.locator(sel).nth(1).click()
        p.wait_for_function("() => window.__copied.length > 0 && window.__labels.length > 0")
        how, text = p.evaluate("window.__copied[0]")
        assert how == "clipboard" and text == "\n".join(seed.findings[0].remediation.blocks[1])
        assert p.evaluate("window.__labels[0]") == "Copied"
        # the symptoms folded under the PVC finding
        sym = p.locator('article.finding[data-check="pvc-access-mode-unsupported"] .symptoms > ul > li')
        assert sym.count() == 4 and "component-not-ready" in sym.first.inner_text()
        assert o.requests == [path.as_uri()], o.requests          # nothing but the page itself
        assert o.errors == []
        p.evaluate("window.scrollTo(0, 0); history.replaceState(null, '', location.pathname)")
        _keep(p, "seed-incident.png")
        if os.environ.get("AIRFLOW_GKE_UPDATE_DOCS"):   # the README's picture (docs/report-seed-incident.png)
            p.set_viewport_size({"width": 1100, "height": 1750})
            p.screenshot(path=str(DOCS_SHOT), full_page=False)
    finally:
        o.close()


def test_copy_falls_back_without_the_clipboard_api(browser, seed, tmp_path):
    from airflow_gke.report.html import render

    path = _write(tmp_path, "seed-fallback.html", render(seed, "error"))
    o = Opened(browser, path, no_clipboard=True)
    try:
        p = o.page
        assert p.evaluate("navigator.clipboard === undefined")
        _record_labels(p, "button.copy", 0)
        p.locator("button.copy").first.click()
        p.wait_for_function("() => window.__copied.length > 0 && window.__labels.length > 0")
        how, text = p.evaluate("window.__copied[0]")
        assert how == "fallback" and text == "\n".join(seed.findings[0].remediation.blocks[0])
        assert p.evaluate("window.__labels[0]") in ("Copied", "Select and copy")
        assert p.locator("textarea").count() == 0         # the helper is gone again
        assert o.errors == []
    finally:
        o.close()


def test_markup_in_evidence_stays_text_in_the_browser(browser, seed, tmp_path):
    import copy

    from airflow_gke.report.html import render

    rep = copy.deepcopy(seed)
    f = next(c for c in rep.checks if c.id == "pvc-access-mode-unsupported").findings[0]
    f.evidence.append(EVIL)
    f.title = f.title + EVIL
    o = Opened(browser, _write(tmp_path, "evil.html", render(rep, "error")))
    try:
        p = o.page
        assert p.evaluate("window.__pwned") is None and o.dialogs == []
        assert p.title().startswith("airflow-gke doctor: failed")
        assert p.locator("script").count() == 1 and p.locator("main img").count() == 0
        assert EVIL in p.locator("article.finding").first.inner_text()        # shown, as text
        assert all(u.startswith("file://") for u in o.requests) and not any(u.endswith("/x") for u in o.requests)
    finally:
        o.close()


def test_fleet_page_of_20_targets(browser, tmp_path):
    from airflow_gke.report.html import render_fleet

    f = fleet(20, unreachable=1)
    path = _write(tmp_path, "fleet-20.html", render_fleet(f, "error"))
    o = Opened(browser, path, width=1600)
    try:
        p = o.page
        assert p.inner_text("h1 .verdict") == "failed"
        assert p.inner_text('.top [data-count="targets"]') == "20 targets"
        assert p.inner_text('.top [data-count="unreachable"]') == "1 not diagnosed"
        errors = sum(r.summary()["findings"]["error"] for r in f.reports)
        assert p.inner_text('.top [data-count="error"]') == f"{errors} errors"
        rows = p.locator("table.grid tbody tr")
        assert rows.count() == 20
        gone = p.locator("table.grid tr.unreachable")
        assert gone.count() == 1 and "cluster-20/?/?" in gone.inner_text()
        assert "not diagnosed: unreachable: Kubernetes API https://127.0.0.1:9: connection refused" in gone.inner_text()
        assert p.locator("section.target").count() == 19
        # every cell links to an element of the page
        dangling = p.evaluate("""() => [...document.querySelectorAll('a[href^="#"]')]
            .map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id))""")
        assert dangling == []
        # a red cell opens its finding: in the right target's section, of the cell's check, on screen
        cell = p.locator("table.grid td.cell.error a").first
        label = cell.get_attribute("title")              # "<target> · <check>: error (n findings)"
        target, check = label.split(" · ")[0], label.split(" · ")[1].split(":")[0]
        cell.click()
        anchor = p.evaluate("location.hash")
        assert p.get_attribute(anchor, "data-check") == check
        assert p.evaluate(f"document.querySelector('{anchor}').closest('section').querySelector('h2').innerText"
                          ).startswith(target)
        assert o.in_view(anchor)
        # a grey (skip) cell opens the check's line in the target's check table, unfolding it
        skip = p.locator("table.grid td.cell.skip a").first
        skip.click()
        row = p.evaluate("location.hash")
        assert p.evaluate(f"document.querySelector('{row}').closest('details').open") is True
        assert o.in_view(row)
        # columns whose check passed everywhere are hidden until asked for
        visible = p.locator("table.grid thead th.col:visible").count()
        p.locator("#show-all-checks").check()
        assert p.locator("table.grid thead th.col:visible").count() > visible
        assert o.requests == [path.as_uri()] and o.errors == []
        p.evaluate("window.scrollTo(0, 0); history.replaceState(null, '', location.pathname)")
        _keep(p, "fleet-20.png", full=False)
    finally:
        o.close()


def _record_labels(page, selector: str, index: int) -> None:
    """Record every label the ``index``-th button matching ``selector`` shows, in window.__labels."""
    page.evaluate("""([sel, i]) => {
        window.__labels = [];
        const b = document.querySelectorAll(sel)[i];
        new MutationObserver(() => window.__labels.push(b.textContent))
            .observe(b, {childList: true, characterData: true, subtree: true});
    }""", [selector, index])
