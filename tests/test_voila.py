"""Real-browser test of the Voilà dashboard: every tab's figures draw their data, and closed pages lose their kernel.

Serves ``notebooks/dashboard.ipynb`` exactly as the README says (``voila notebooks/dashboard.ipynb``
from a folder holding ``voila.json`` and ``notebooks/``: tmp copies of the repository's, at ``ci``
scale, with a tmp run cache), opens it in Debian Chromium through Playwright (the page loads with
the CPU throttled 4x, like a student's laptop: plotly's 5 MB widget bundle then takes seconds to
load, which anywidget >= 0.9.17 turns into frozen plots) and, tab by tab,
checks that each explorer's plotly figures hold their traces and draw them with finite SVG
coordinates on first show and after one interaction, that no source code and no truncated tab
label is shown, and that the browser console logged no error. Then it closes the page and waits
for Voilà to cull the kernel (the copied ``voila.json`` with its idle timeout shortened). The
whole dashboard is saved as ``docs/img/voila_dashboard.png`` when ``OICSR_LAB_SAVE_SCREENSHOTS=1``.
Skips with the reason when Chromium, Playwright or Voilà is missing.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from browser_helpers import (
    CHANNELS,
    CHROMIUM_ARGS,
    DOCS_IMG,
    ENERGY,
    ENERGY_OVERLAY,
    FIGURES_JS,
    PRUNING,
    REPO,
    Console,
    check_fits,
    chromium,
    copy_notebooks,
    figures,
    kernel_env,
    press,
    sync_api,
    voila_server,
    wait_changed,
    wait_drawn,
    wait_readout,
)

LOAD_S = 600  # the dashboard trains the four ci runs first (an empty cache)
UPDATE_S = 120
CULL_IDLE_S = 20  # the test's idle timeout (the shipped voila.json says 120 s)
THROTTLE = 4  # the page loads on a CPU 4x slower than this one's: a student's laptop
TABS = ("Pruning", "Energy", "Channel viewer")


@pytest.fixture
def voila_app(tmp_path: Path, data_dir: Path):
    """Voilà over tmp copies of voila.json and notebooks/ (run from their folder, as the README says); yields
    (url, log)."""
    app = tmp_path / "app"
    copy_notebooks(app / "notebooks")
    config = json.loads((REPO / "voila.json").read_text())
    config["MappingKernelManager"].update(cull_idle_timeout=CULL_IDLE_S, cull_interval=5)
    (app / "voila.json").write_text(json.dumps(config))
    log = tmp_path / "voila.log"
    with voila_server(app, "notebooks/dashboard.ipynb", kernel_env(tmp_path, data_dir, tmp_path / "cache"), log) as url:
        yield url, log


def _tab(page, title: str) -> None:
    """Show the dashboard tab whose label starts with ``title``."""
    page.locator(".lm-TabBar-tab", has_text=title).first.click()
    page.wait_for_timeout(500)


def _full_page_screenshot(page, name: str, tmp_path: Path) -> None:
    """The whole dashboard, not the first screen of it: grow the window to the content's height first."""
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('.jp-Cell, .jp-OutputArea-output')]"
                           ".map(e => e.getBoundingClientRect().bottom + window.scrollY))")
    page.set_viewport_size({"width": 1280, "height": min(int(height) + 40, 6000)})
    page.wait_for_timeout(1500)  # plotly autosizes to the new window
    png = page.screenshot(full_page=True, animations="disabled")
    (tmp_path / name).write_bytes(png)
    if os.environ.get("OICSR_LAB_SAVE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        (DOCS_IMG / name).write_bytes(png)
    page.set_viewport_size({"width": 1280, "height": 1000})


def test_voila_json_culls_closed_pages() -> None:
    """The shipped voila.json shuts down kernels with no page connected after a short idle time, never busy ones."""
    km = json.loads((REPO / "voila.json").read_text())["MappingKernelManager"]
    assert 30 <= km["cull_idle_timeout"] <= 600 and 0 < km["cull_interval"] <= km["cull_idle_timeout"]
    assert km["cull_connected"] is False and km["cull_busy"] is False  # an open page keeps its kernel


@pytest.mark.browser
@pytest.mark.timeout(1200)
def test_voila_dashboard_draws_every_explorer(voila_app, tmp_path: Path) -> None:
    """All three tabs draw their figures on first show and after one interaction; closing the page culls the kernel."""
    url, log = voila_app
    executable = chromium()
    api = sync_api()
    with api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True,
                                     chromium_sandbox=False)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            console = Console(page)
            cdp = page.context.new_cdp_session(page)
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": THROTTLE})  # slow JavaScript while the page loads
            page.goto(url, timeout=LOAD_S * 1000, wait_until="domcontentloaded")
            pruning = page.locator(".oicsr-pruning-explorer").first
            pruning.wait_for(state="visible", timeout=LOAD_S * 1000)
            body = page.inner_text("body")
            assert "import os" not in body and "from oicsr_lab" not in body, "Voila must not show source code"
            assert "OICSR_LAB_RESULTS" not in body
            cut = page.evaluate("() => [...document.querySelectorAll('.lm-TabBar-tabLabel')]"
                                ".filter(l => l.scrollWidth > l.clientWidth + 1).map(l => l.textContent)")
            assert not cut, f"tab labels cut off: {cut}"

            # tab 1: the pruning explorer, on load and after moving the FLOPs slider
            state0 = wait_readout(page, pruning, UPDATE_S)
            before = wait_drawn(pruning, PRUNING, UPDATE_S, "Voila, pruning explorer on load")
            check_fits(pruning, "Voila, pruning explorer")
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
            console.check("after the dashboard loaded")
            press(pruning.locator(".widget-slider", has_text="FLOPs pruned").locator(".noUi-handle").first,
                  "ArrowRight", 20)
            wait_readout(page, pruning, UPDATE_S, previous=state0["table"])
            after = wait_drawn(pruning, PRUNING, UPDATE_S, "Voila, pruning explorer after moving the FLOPs slider")
            assert all(a < b for a, b in zip(after[0]["sums"][1:], before[0]["sums"][1:])), "the bars did not fall"
            _full_page_screenshot(page, "voila_dashboard.png", tmp_path)
            console.check("after moving the FLOPs slider")

            # tab 2: the energy explorer, first shown now; then every run overlaid on a log axis
            _tab(page, TABS[1])
            energy = page.locator(".oicsr-energy-explorer").first
            wait_drawn(energy, ENERGY, UPDATE_S, "Voila, energy explorer on first show")
            check_fits(energy, "Voila, energy explorer")
            energy.locator(".widget-checkbox", has_text="overlay all regularisers").locator("input").check()
            energy.locator(".widget-checkbox", has_text="log y").locator("input").check()
            wait_drawn(energy, ENERGY_OVERLAY, UPDATE_S, "Voila, energy explorer with every run overlaid")
            page.wait_for_function(f"(r) => ({FIGURES_JS.strip()})(r)[1].ytype === 'log'",
                                   arg=energy.element_handle(), timeout=UPDATE_S * 1000, polling=500)
            energy.screenshot(path=str(tmp_path / "voila_energy.png"))
            console.check("on the energy tab")

            # tab 3: the channel viewer, first shown now; then the next channels
            _tab(page, TABS[2])
            viewer = page.locator(".oicsr-channel-viewer").first
            first = wait_drawn(viewer, CHANNELS, UPDATE_S, "Voila, channel viewer on first show")
            check_fits(viewer, "Voila, channel viewer")
            press(viewer.locator(".widget-slider", has_text="channel").locator(".noUi-handle").first, "ArrowRight", 2)
            wait_changed(page, viewer, 0, first[0]["sums"], UPDATE_S)
            wait_drawn(viewer, CHANNELS, UPDATE_S, "Voila, channel viewer after moving the channel slider")
            viewer.screenshot(path=str(tmp_path / "voila_channels.png"))
            console.check("on the channel viewer tab")

            # back to the first tab: still drawn after being hidden
            _tab(page, TABS[0])
            assert figures(pruning)[0]["sums"] == after[0]["sums"]
            wait_drawn(pruning, PRUNING, UPDATE_S, "Voila, pruning explorer shown again")
            console.check("after switching back to the pruning tab")
            page.close()
        finally:
            browser.close()

    culled = re.compile(r"Culling '\w+' kernel '\w+' \([-0-9a-f]+\) with 0 connections")
    deadline = time.monotonic() + CULL_IDLE_S + 60
    while not culled.search(log.read_text()) and time.monotonic() < deadline:
        time.sleep(1)
    text = log.read_text()
    assert f"Culling kernels with idle durations > {CULL_IDLE_S} seconds" in text, \
        "voila.json's culling was not applied"
    assert culled.search(text) and "Kernel shutdown" in text, \
        f"the closed page's kernel was not culled:\n{text[-2000:]}"
