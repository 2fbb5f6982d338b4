"""A real browser: JupyterLab in headless Chromium runs notebook 03, moves the explorer's image slider and
checks that the heatmap figure changed. Run with ``make test-browser`` (installs Debian chromium and
playwright for Python; no browser download). Skipped unless ``MEDXAI_BROWSER_TEST=1``."""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("MEDXAI_BROWSER_TEST") != "1",
                                reason="browser test: run `make test-browser`")
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "03_cam_vs_gradcam_mura.ipynb"
FIGURE = ".widget-interact .widget-output img"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout_s} s")


@pytest.fixture()
def lab(tmp_path):
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (JupyterLab 4 otherwise detaches cells scrolled out of view)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = {**os.environ, "MEDXAI_STATIC_WIDGETS": "0", "MEDXAI_CACHE": str(ROOT / "data" / "cache"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings")}
    jupyter = Path(sys.executable).parent / "jupyter"
    process = subprocess.Popen([str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                                f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
                                "--ServerApp.open_browser=False", "--LabApp.news_url=None"]
                               + (["--allow-root"] if os.geteuid() == 0 else []),
                               env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}")
        yield f"http://127.0.0.1:{port}", token
    finally:
        process.terminate()
        process.wait(timeout=30)


def _figure_source(page) -> str:
    return page.locator(FIGURE).first.get_attribute("src") or ""


def test_explorer_slider_redraws_the_heatmap(lab):
    from playwright.sync_api import sync_playwright
    base, token = lab
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian chromium is not installed (make test-browser installs it)"
    shots = ROOT / "runs" / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        page.wait_for_function("() => document.body.innerText.includes('| Idle')", timeout=120_000)  # kernel up
        page.get_by_role("menuitem", name="Run").first.click()
        page.get_by_text("Run All Cells", exact=True).click()
        slider = page.locator(".widget-slider").first
        slider.wait_for(timeout=300_000)
        page.wait_for_selector(FIGURE, timeout=300_000)
        before = _figure_source(page)
        slider.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "explorer-before.png"))
        handle = slider.locator(".noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        deadline = time.time() + 120
        after = before
        while time.time() < deadline and after == before:
            time.sleep(1)
            after = _figure_source(page) or before
        slider.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "explorer-after.png"))
        label = slider.locator(".widget-readout").first.inner_text()
        browser.close()
    assert before.startswith("data:image/png"), "the explorer drew no figure"
    assert label.strip() == "1", f"the image slider did not move (readout {label!r})"
    assert after != before, "moving the slider did not change the heatmap figure"
    assert (shots / "explorer-after.png").stat().st_size > 10_000
