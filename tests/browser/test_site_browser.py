"""A real browser on the course website and on the regression report: headless Chromium opens the site (built
into a temporary folder, served on 127.0.0.1) and a report page written from synthetic results, and no request
may leave them. Run with ``make test-browser``; skipped unless ``MEDXAI_BROWSER_TEST=1``. Screenshots in
``runs/browser/``."""
import functools
import http.server
import importlib.util
import os
import shutil
import threading
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("MEDXAI_BROWSER_TEST") != "1",
                                reason="browser test: run `make test-browser`")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "runs" / "browser"
NOTEBOOK = ROOT / "notebooks" / "03_cam_vs_gradcam_mura.ipynb"
LOCAL = ("data:", "blob:", "about:")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served_site(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("medxai_site_build", ROOT / "site" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    site = tmp_path_factory.mktemp("site") / "html"
    build.build_site(site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def browser_context():
    """A Chromium context that aborts and records every request outside ``allowed`` (set by the test)."""
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian chromium is not installed (make test-browser installs it)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        state = {"allowed": (), "outside": [], "seen": []}

        def guard(route):
            url = route.request.url
            state["seen"].append(url)
            if url.startswith(state["allowed"] + LOCAL):
                route.continue_()
            else:
                state["outside"].append(url)
                route.abort()

        context.route("**/*", guard)
        yield context, state
        browser.close()


def _figures_outside_solutions(notebook: Path) -> int:
    return sum(1 for cell in nbformat.read(notebook, as_version=4).cells
               if cell.cell_type == "code" and "solution" not in cell.metadata.get("tags", [])
               for output in cell.get("outputs", []) if any(k.startswith("image/") for k in output.get("data", {})))


def test_the_site_shows_figures_math_solutions_and_search_offline(served_site, browser_context):
    context, state = browser_context
    state["allowed"] = (served_site + "/",)
    page = context.new_page()
    page.goto(f"{served_site}/notebooks/{NOTEBOOK.stem}.html", wait_until="load")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    figures = page.evaluate("() => [...document.images].filter(i => !i.closest('details'))"
                            ".map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(figures) == _figures_outside_solutions(NOTEBOOK) > 0
    assert all(width > 0 for _, width in figures), f"figures that did not load: {[s for s, w in figures if not w]}"
    page.wait_for_function("() => document.querySelector('mjx-container') !== null", timeout=30_000)  # MathJax, local
    page.locator("img").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "site-notebook-03.png"))

    solution = page.locator("details.hide").first
    assert solution.evaluate("d => d.open") is False
    body = solution.locator(".cell_input").first
    assert not body.is_visible(), "a solution is shown before its toggle is opened"
    solution.locator("summary").click()
    assert solution.evaluate("d => d.open") is True and body.is_visible()
    solution.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "site-solution-open.png"))

    page.goto(f"{served_site}/search.html?q=Grad-CAM", wait_until="load")
    page.wait_for_function("() => document.querySelectorAll('#search-results li').length > 0", timeout=30_000)
    hits = page.evaluate("() => [...document.querySelectorAll('#search-results li a')].map(a => a.getAttribute('href'))")
    assert any(f"notebooks/{NOTEBOOK.stem}.html" in h for h in hits), hits
    page.screenshot(path=str(SHOTS / "site-search.png"))
    assert state["seen"] and not state["outside"], f"requests that left the site: {state['outside']}"
    assert (SHOTS / "site-notebook-03.png").stat().st_size > 10_000


def test_the_run_report_draws_history_and_flags_regressions(tmp_path, browser_context):
    from medxai_lib.run_report import history_entry, write_index
    baselines = {"01_a": {"auroc": {"value": 0.9, "tolerance": 0.05, "direction": "higher"}}}
    runs = [{"notebook": "01_a.ipynb", "status": "ok", "wall_s": 10.0, "peak_mb": 800.0, "error": "", "html": "",
             "metrics": {"auroc": v}, "claims": [{"kind": "CLAIM", "sentence": "the map beats chance", "verdict": "holds"}]}
            for v in (0.95, 0.93, 0.80)]
    page_path = write_index(runs[-1:], tmp_path, ["01_a: auroc regressed"], baselines=baselines,
                            history=[history_entry([r]) for r in runs])
    context, state = browser_context
    state["allowed"] = (page_path.as_uri(),)
    page = context.new_page()
    page.goto(page_path.as_uri(), wait_until="load")
    spark = page.locator('tr[data-metric="auroc"] svg.spark')
    box = spark.bounding_box()
    assert box and box["width"] >= 100 and box["height"] >= 20
    assert page.locator('tr[data-metric="auroc"] svg.spark polyline').get_attribute("points").count(",") == 3
    assert "outside" in page.locator('tr[data-metric="auroc"]').inner_text()
    claims = page.locator("details.claims").first
    claims.locator("summary").click()
    assert claims.locator("li").first.is_visible() and "the map beats chance" in claims.inner_text()
    page.screenshot(path=str(SHOTS / "run-report.png"))
    assert not state["outside"], f"the report loaded {state['outside']}"
