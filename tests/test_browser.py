"""Real-browser tests in JupyterLab 4: every explorer draws its data, after load and after one interaction.

One JupyterLab server (module scope) over a tmp copy of ``notebooks/`` at ``ci`` scale, with a tmp
run cache the notebooks share (the first one trains the four ci runs, in seconds). Debian Chromium,
driven by Playwright, opens notebook 04 (pruning explorer) and notebook 02 (energy explorer and
channel viewer), runs all cells from the Run menu, and checks for each widget, on load and after
moving one of its controls, that every plotly figure holds its traces and draws them (bars,
lines+markers, heatmap images) with finite SVG coordinates, and that the console logged no error.
Screenshots of each whole widget go to the test's tmp dir, and to ``docs/img`` when
``OICSR_LAB_SAVE_SCREENSHOTS=1``. Skips with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_helpers import (
    CHANNELS,
    CHROMIUM_ARGS,
    ENERGY,
    ENERGY_OVERLAY,
    FIGURES_JS,
    PRUNING,
    Console,
    check_fits,
    chromium,
    copy_notebooks,
    figures,
    kernel_env,
    lab_server,
    press,
    save_screenshot,
    sync_api,
    wait_changed,
    wait_drawn,
    wait_readout,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

RUN_ALL_S = 900  # the first notebook trains four ci runs (seconds each) when the cache is empty
UPDATE_S = 120
# How far the explorer's plots stick out of their output area (px), and whether anything scrolls sideways.
_FIT_JS = """
(out) => {
  const right = out.getBoundingClientRect().right;
  const plots = [...out.querySelectorAll('.js-plotly-plot .main-svg')]
    .filter((e, i, a) => e.parentElement.querySelector('.main-svg') === e);
  const overflow = Math.max(0, ...plots.map(p => p.getBoundingClientRect().right - right));
  const scroll = Math.max(0, ...[out, ...out.querySelectorAll('.widget-box')].map(e => e.scrollWidth - e.clientWidth));
  const side = document.querySelector('#jp-left-stack');
  return {plots: plots.length, overflow, scroll,
          sidebar_open: !!side && !side.classList.contains('lm-mod-hidden')
                        && side.getBoundingClientRect().width > 100};
}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """JupyterLab over a tmp copy of notebooks/ with one tmp run cache; yields (base url, token)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = copy_notebooks(tmp / "notebooks")
    with lab_server(root, kernel_env(tmp, data_dir, tmp / "cache"), tmp / "jupyter-lab.log") as server:
        yield server


@pytest.fixture
def browser():
    """(playwright sync api, a headless Debian Chromium)."""
    executable = chromium()
    api = sync_api()
    with api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True, chromium_sandbox=False)
        try:
            yield api, b
        finally:
            b.close()


def _run_notebook(page, lab, notebook: str) -> None:
    """Open ``notebook`` in JupyterLab, wait for an idle kernel, then Run > Run All Cells."""
    base, token = lab
    page.goto(f"{base}/lab/tree/{notebook}?reset&token={token}", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_timeout(2000)
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")  # older settings may still ask
    if dialog.count():
        dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click()
    page.wait_for_function(
        "() => document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\") !== null"
        " || [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\|\\s*Idle/.test(e.textContent))",
        timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _results_hidden(page) -> None:
    """The machine-readable results cell (OICSR_LAB_RESULTS ...) is collapsed: students never see it."""
    shown = page.evaluate("""() => [...document.querySelectorAll('.jp-Cell')]
        .filter(c => c.textContent.includes('OICSR_LAB_RESULTS'))
        .flatMap(c => [...c.querySelectorAll('.jp-InputArea-editor, .jp-OutputArea-output')])
        .filter(e => e.textContent.includes('OICSR_LAB_RESULTS') && e.checkVisibility())
        .map(e => e.textContent.slice(0, 120))""")
    assert not shown, f"a results cell's code or output is visible: {shown}"


def _widget(page, css_class: str, tmp_path: Path, api):
    """The root element of the explorer with ``css_class`` once Run All has displayed it."""
    root = page.locator(f".{css_class}").first
    try:
        root.wait_for(state="visible", timeout=RUN_ALL_S * 1000)
    except api.TimeoutError:
        page.screenshot(path=str(tmp_path / "timeout.png"), full_page=True)
        errs = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        pytest.fail(f"{css_class} was not displayed within {RUN_ALL_S}s; stderr outputs: {errs[-3:]}; "
                    f"screenshot: {tmp_path / 'timeout.png'}")
    root.scroll_into_view_if_needed()
    return root


def test_pruning_explorer_in_jupyterlab(lab, browser, tmp_path: Path) -> None:
    """Notebook 04: both figures draw on load; the FLOPs slider redraws the bars and the readout."""
    api, b = browser
    page = b.new_page(viewport={"width": 1280, "height": 900})  # a laptop screen, file browser open
    console = Console(page)
    _run_notebook(page, lab, "04_global_greedy_pruning.ipynb")
    root = _widget(page, "oicsr-pruning-explorer", tmp_path, api)
    state0 = wait_readout(page, root, UPDATE_S)
    before = wait_drawn(root, PRUNING, UPDATE_S, "pruning explorer on load")
    check_fits(root, "pruning explorer")
    root.screenshot(path=str(tmp_path / "pruning_explorer-load.png"))
    assert state0["readout"].strip() in ("0%", "0.0%"), state0["readout"]
    assert before[0]["legend"] == ["dense", "L2", "GL", "L1-BN", "OICSR-GL"], before[0]["legend"]  # nothing clipped
    console.check("after the pruning explorer loaded")

    press(root.locator(".widget-slider", has_text="FLOPs pruned").locator(".noUi-handle").first, "ArrowRight", 25)
    state1 = wait_readout(page, root, UPDATE_S, previous=state0["table"])
    after = wait_drawn(root, PRUNING, UPDATE_S, "pruning explorer after moving the FLOPs slider")
    fit = page.evaluate(_FIT_JS, root.element_handle())
    save_screenshot(page, root, "pruning_explorer.png", tmp_path)
    page.set_viewport_size({"width": 1000, "height": 900})  # narrower still: the figures rewrap, no overflow
    page.wait_for_timeout(2000)
    fit_narrow = page.evaluate(_FIT_JS, root.element_handle())
    # after a window resize plotly refits on its own, before the page rewraps: the figures may not fill their
    # boxes exactly, but must still draw and must not stick out of them
    narrow = wait_drawn(root, PRUNING, 30, "pruning explorer in a 1000 px window", fill=False)
    page.screenshot(path=str(tmp_path / "page-1000.png"))
    console.check("after moving the FLOPs slider")
    _results_hidden(page)

    assert state1["readout"].strip() not in ("0%", "0.0%"), f"slider readout did not move: {state1['readout']!r}"
    assert any(p in state1["table"] for p in ("24", "25", "26")), state1["table"]
    kept_before, kept_after = before[0]["sums"][1:], after[0]["sums"][1:]  # per run, weighted kept channels
    assert all(a < b for a, b in zip(kept_after, kept_before)), ("kept channels did not fall", kept_before, kept_after)
    assert narrow[0]["sums"] == after[0]["sums"]
    assert fit["sidebar_open"], "the file browser should stay open: the explorer must fit next to it"
    for f in (fit, fit_narrow):
        assert f["plots"] == 2 and f["overflow"] <= 1 and f["scroll"] <= 1, \
            f"the explorer overflows its output area: {f}"


def test_energy_explorer_and_channel_viewer_in_jupyterlab(lab, browser, tmp_path: Path) -> None:
    """Notebook 02: the energy explorer (overview + sorted energies) and the channel viewer draw and redraw."""
    api, b = browser
    page = b.new_page(viewport={"width": 1280, "height": 900})
    console = Console(page)
    _run_notebook(page, lab, "02_channel_energy.ipynb")
    energy = _widget(page, "oicsr-energy-explorer", tmp_path, api)
    figs = wait_drawn(energy, ENERGY, UPDATE_S, "energy explorer on load")
    check_fits(energy, "energy explorer")
    assert figs[1]["ytype"] == "linear"
    console.check("after the energy explorer loaded")

    energy.locator(".widget-dropdown", has_text="run").locator("select").select_option(label="OICSR-GL")
    energy.locator(".widget-checkbox", has_text="overlay all regularisers").locator("input").check()
    energy.locator(".widget-checkbox", has_text="log y").locator("input").check()
    wait_drawn(energy, ENERGY_OVERLAY, UPDATE_S, "energy explorer with every run overlaid")
    page.wait_for_function(f"(r) => ({FIGURES_JS.strip()})(r)[1].ytype === 'log'", arg=energy.element_handle(),
                           timeout=UPDATE_S * 1000, polling=500)
    figs = figures(energy)
    kept, below = figs[0]["colors"]
    assert kept and below and kept.lower() != below.lower(), \
        f"'kept' and 'below threshold' share a colour: {kept}, {below}"
    save_screenshot(page, energy, "energy_explorer.png", tmp_path)
    console.check("after overlaying the runs on a log axis")

    viewer = _widget(page, "oicsr-channel-viewer", tmp_path, api)
    first = wait_drawn(viewer, CHANNELS, UPDATE_S, "channel viewer on load")
    check_fits(viewer, "channel viewer")
    texts = first[0]["legend"] + first[0]["annotations"]
    assert not any("^{" in t or "#" in t for t in texts), f"raw TeX or a hex colour in the figure's text: {texts}"
    press(viewer.locator(".widget-slider", has_text="channel").locator(".noUi-handle").first, "ArrowRight", 3)
    wait_changed(page, viewer, 0, first[0]["sums"], UPDATE_S)
    wait_drawn(viewer, CHANNELS, UPDATE_S, "channel viewer after moving the channel slider")
    save_screenshot(page, viewer, "channel_viewer.png", tmp_path)
    console.check("after moving the channel slider")
    _results_hidden(page)

