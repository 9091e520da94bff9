"""Real-browser test: JupyterLab on loopback + Debian Chromium driven by Playwright.

Opens the pruning notebook (04) in JupyterLab, runs all cells from the Run menu, waits for the
pruning explorer to render, moves its FLOPs slider with the keyboard and checks that the plotly
bars and the readout change. Screenshots go to ``docs/img/pruning_explorer.png`` and the test's
tmp dir. Runs at ``ci`` scale (``OICSR_LAB_NB_PRESET=ci``) against a temporary copy of
``notebooks/`` (JupyterLab autosaves outputs; the committed notebooks must stay clean) and a
temporary run cache. Skips with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "04_global_greedy_pruning.ipynb"
SCREENSHOT = REPO / "docs" / "img" / "pruning_explorer.png"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}
SERVER_START_S = 120
RUN_ALL_S = 900  # trains four ci runs (seconds each) when the cache is empty; generous for a busy CPU
UPDATE_S = 120


def _chromium() -> str:
    """Path of the system Chromium, or skip."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does this); no browser download is possible here")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll the server's status API until it answers (or fail with its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer {url} within {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(tmp_path: Path, data_dir: Path):
    """A JupyterLab server on 127.0.0.1 over a tmp copy of notebooks/; yields (base url, token, root)."""
    root = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    home = tmp_path / "jupyter"
    for sub in ("config", "data", "runtime", "workspaces", "settings"):
        (home / sub).mkdir(parents=True)
    # user settings: start the notebook's kernel without asking, no news toast
    for plugin, values in SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), uuid.uuid4().hex
    env = dict(os.environ)
    env.update({
        "OICSR_LAB_NB_PRESET": "ci", "OICSR_LAB_PROGRESS": "0", "OICSR_LAB_NB_CACHE": str(tmp_path / "cache"),
        "OICSR_LAB_DATA": str(data_dir), "OICSR_LAB_THREADS": env.get("OICSR_LAB_THREADS", "1"),
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    log = tmp_path / "jupyter-lab.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser", "--ServerApp.open_browser=False",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log, SERVER_START_S)
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# JavaScript run in the page: the state of the explorer's first plotly graph and its readout.
_STATE_JS = """
() => {
  const outs = [...document.querySelectorAll('.jp-OutputArea-output')];
  const out = outs.find(o => [...o.querySelectorAll('.widget-label')].some(l => l.textContent.includes('FLOPs pruned')));
  if (!out) return null;
  const plots = [...out.querySelectorAll('.js-plotly-plot')];
  const bars = plots.length && plots[0].data ? plots[0].data.filter(t => t.type === 'bar').map(t => Array.from(t.y || [])) : null;
  const rects = plots.length ? plots[0].querySelectorAll('.barlayer path').length : 0;
  const table = [...out.querySelectorAll('.widget-html-content')].map(e => e.innerText).find(t => t.includes('FLOPs (MACs)')) || '';
  const slider = [...out.querySelectorAll('.widget-slider')].find(s => s.innerText.includes('FLOPs pruned'));
  const readout = slider ? (slider.querySelector('.widget-readout') || {}).innerText || '' : '';
  return {bars, rects, table, readout, plots: plots.length, busy: out.innerText.includes('computing')};
}
"""


# How far the explorer's plots stick out of their output area (px), and whether anything scrolls sideways.
_FIT_JS = """
(out) => {
  const right = out.getBoundingClientRect().right;
  const plots = [...out.querySelectorAll('.js-plotly-plot .main-svg')].filter((e, i, a) => e.parentElement.querySelector('.main-svg') === e);
  const overflow = Math.max(0, ...plots.map(p => p.getBoundingClientRect().right - right));
  const scroll = Math.max(0, ...[out, ...out.querySelectorAll('.widget-box')].map(e => e.scrollWidth - e.clientWidth));
  const side = document.querySelector('#jp-left-stack');
  return {plots: plots.length, overflow, scroll, out_width: out.getBoundingClientRect().width,
          sidebar_open: !!side && !side.classList.contains('lm-mod-hidden') && side.getBoundingClientRect().width > 100};
}
"""


def _state(page):
    return page.evaluate(_STATE_JS)


def _accept_kernel_dialog(page) -> None:
    """Accept a 'Select Kernel' dialog if one is open (older settings may still ask)."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click()
        dialog.wait_for(state="detached", timeout=30_000)


def _run_all(page) -> None:
    """Run > Run All Cells from JupyterLab's menu bar."""
    _accept_kernel_dialog(page)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _widget_screenshot(page, out) -> bytes:
    """PNG of the explorer's output area, cropped to the right edge of its widgets."""
    box = out.bounding_box()
    right = page.evaluate(
        "(el) => Math.max(...[...el.querySelectorAll('.js-plotly-plot .main-svg, .widget-html-content table, .widget-slider, .widget-toggle-button')]"
        ".map(e => e.getBoundingClientRect().right))", out.element_handle())
    width = min(box["width"], max(200.0, right - box["x"] + 12))
    return page.screenshot(clip={"x": box["x"], "y": box["y"], "width": width, "height": box["height"]})


def test_pruning_explorer_in_jupyterlab(lab, tmp_path: Path) -> None:
    """Run notebook 04 in JupyterLab; the FLOPs slider changes the bars and the readout."""
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    base, token, root = lab
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True,
                                     chromium_sandbox=False)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})  # a laptop screen, file browser open
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?reset&token={token}", timeout=120_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            page.wait_for_timeout(2000)
            _accept_kernel_dialog(page)
            # a ready kernel: the notebook's execution indicator says idle
            page.wait_for_function(
                "() => document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\") !== null"
                " || [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\|\\s*Idle/.test(e.textContent))",
                timeout=120_000)
            _run_all(page)
            # the first code cell ran: it has an execution count
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].some(p => /\\[[0-9*]+\\]/.test(p.textContent))",
                timeout=120_000)
            try:
                page.wait_for_function(f"({_STATE_JS})() && ({_STATE_JS})().plots > 0 && ({_STATE_JS})().rects > 0",
                                       timeout=RUN_ALL_S * 1000, polling=2000)
            except sync_api.TimeoutError:
                page.screenshot(path=str(tmp_path / "timeout.png"), full_page=True)
                errs = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
                pytest.fail(f"the pruning explorer did not render within {RUN_ALL_S}s; stderr outputs: {errs[-3:]}; "
                            f"page errors: {errors[-3:]}; screenshot: {tmp_path / 'timeout.png'}")
            # let the background accuracy of the initial state land before comparing
            page.wait_for_function(f"!({_STATE_JS})().busy && ({_STATE_JS})().table.includes('%')",
                                   timeout=UPDATE_S * 1000, polling=500)
            before = _state(page)
            assert before["bars"], f"no bar traces in the explorer's plot: {before}"
            assert before["readout"].strip() in ("0%", "0.0%"), before["readout"]

            out = page.locator(".jp-OutputArea-output", has=page.locator(".widget-label", has_text="FLOPs pruned")).first
            out.scroll_into_view_if_needed()
            handle = out.locator(".widget-slider", has_text="FLOPs pruned").locator(".noUi-handle").first
            handle.click()
            for _ in range(25):  # 25 steps of 1% -> 25% of FLOPs
                handle.press("ArrowRight")
            page.wait_for_function(
                f"(b) => {{ const s = ({_STATE_JS})(); return s && JSON.stringify(s.bars) !== b && !s.busy"
                f" && s.table.includes('%') && !s.table.includes('…'); }}",
                arg=json.dumps(before["bars"]), timeout=UPDATE_S * 1000, polling=500,
            )
            after = _state(page)
            fit = page.evaluate(_FIT_JS, out.element_handle())
            shot = _widget_screenshot(page, out)
            (tmp_path / SCREENSHOT.name).write_bytes(shot)
            if os.environ.get("OICSR_LAB_SAVE_SCREENSHOTS") == "1":  # refresh the README's picture on request only
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                SCREENSHOT.write_bytes(shot)
            page.screenshot(path=str(tmp_path / "page.png"), full_page=False)
            page.set_viewport_size({"width": 1000, "height": 900})  # narrower still: the figures rewrap, no overflow
            page.wait_for_timeout(2000)
            fit_narrow = page.evaluate(_FIT_JS, out.element_handle())
            page.screenshot(path=str(tmp_path / "page-1000.png"), full_page=False)
        finally:
            browser.close()

    assert after["readout"].strip() not in ("0%", "0.0%"), f"slider readout did not move: {after['readout']!r}"
    assert after["table"] != before["table"], "the readout table did not change"
    kept_before = [sum(b) for b in before["bars"]]
    kept_after = [sum(b) for b in after["bars"]]
    assert all(a < b for a, b in zip(kept_after, kept_before)), (kept_before, kept_after)
    assert "25" in after["table"] or "24" in after["table"] or "26" in after["table"], after["table"]
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors
    assert fit["sidebar_open"], "the file browser should stay open: the explorer must fit next to it"
    for f in (fit, fit_narrow):
        assert f["plots"] == 2 and f["overflow"] <= 1 and f["scroll"] <= 1, f"the explorer overflows its output area: {f}"
