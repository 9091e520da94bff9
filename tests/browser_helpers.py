"""Shared pieces of the real-browser tests: servers on loopback, Chromium, console errors, what a figure draws.

The checks look at what the page *draws*, not at Python state: for every plotly figure inside a
widget, how many traces it holds, how many of them reached the SVG as bars / lines+markers /
heatmap images, whether any SVG attribute holds ``NaN`` (plotly's "MNaN,NaNHNaN" paths when it
draws into a zero-sized or hidden box) and whether the figure has a size at all. Every console
error and uncaught page error fails a test; the only exception is Voilà's template linking Font
Awesome from a CDN (it also bundles the font, and this sandbox has no internet).
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS_IMG = REPO / "docs" / "img"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LAB_SETTINGS = {  # JupyterLab user settings: start the notebook's kernel without asking, no news toast
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}
# Voilà's lab template links Font Awesome from a CDN and bundles it too; offline, only the link fails.
OFFLINE_OK = ("https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free",)
SERVER_START_S = 120

# What each explorer's figures hold at ci scale (four runs): traces, and visible traces per type.
REGS = 4  # l2, gl, l1bn, oicsr_gl
PRUNING = [{"traces": 1 + REGS, "scatter": 1, "bar": REGS}, {"traces": 2, "bar": 2}]  # kept channels, accuracy
ENERGY = [{"traces": 2, "bar": 2}, {"traces": REGS, "scatter": 1}]  # overview, sorted energies of one pair
ENERGY_OVERLAY = [ENERGY[0], {"traces": REGS, "scatter": REGS}]  # ... with every run overlaid
CHANNELS = [{"traces": 5, "heatmap": 2, "bar": 2, "scatter": 1}]  # out-part, in-part, energy bars, current mark

# The pruning explorer's readout: its table text, the FLOPs slider's readout, whether accuracy is being computed.
READOUT_JS = """
(root) => {
  const table = [...root.querySelectorAll('.widget-html-content')].map(e => e.innerText)
    .find(t => t.includes('FLOPs (MACs)')) || '';
  const slider = [...root.querySelectorAll('.widget-slider')].find(s => s.innerText.includes('FLOPs pruned'));
  return {table, readout: slider ? (slider.querySelector('.widget-readout') || {}).innerText || '' : '',
          busy: root.innerText.includes('computing')};
}
"""


def chromium() -> str:
    """Path of the system Chromium, or skip (no browser download is possible here)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); no browser download is possible here")
    return path


def sync_api():
    """playwright.sync_api, or skip."""
    return pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kernel_env(tmp: Path, data_dir: Path, cache: Path) -> dict[str, str]:
    """Environment of a server and its kernels: ci preset, trained (not shipped) runs in a tmp cache, private Jupyter
    dirs."""
    env = dict(os.environ)
    env.update({
        "OICSR_LAB_NB_PRESET": "ci", "OICSR_LAB_PROGRESS": "0", "OICSR_LAB_NB_CACHE": str(cache),
        # the four ci-trained runs the expected trace counts are written for (the notebooks' default, the
        # shipped networks, draws the same widgets with as many networks as the manifest lists)
        "OICSR_LAB_NB_SOURCE": "train",
        "OICSR_LAB_DATA": str(data_dir), "OICSR_LAB_THREADS": env.get("OICSR_LAB_THREADS", "1"),
        "JUPYTER_CONFIG_DIR": str(tmp / "jupyter" / "config"), "JUPYTER_DATA_DIR": str(tmp / "jupyter" / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter" / "runtime"), "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


def copy_notebooks(dest: Path) -> Path:
    """A tmp copy of notebooks/ (front ends autosave outputs; the committed notebooks must stay clean)."""
    shutil.copytree(REPO / "notebooks", dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return dest


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a server we started (it shuts its kernels down), kill it if it hangs."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _wait_answer(probe, proc: subprocess.Popen, log: Path, what: str) -> None:
    """Poll ``probe()`` until it is true; fail with the server log if the server exits or never answers."""
    deadline = time.monotonic() + SERVER_START_S
    while not probe():
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer within {SERVER_START_S}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@contextmanager
def lab_server(root: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab on 127.0.0.1 over ``root``; yields (base url, token)."""
    home = Path(env["JUPYTER_CONFIG_DIR"]).parent
    for sub in ("config", "data", "runtime", "workspaces", "settings"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    for plugin, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), uuid.uuid4().hex
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser", "--ServerApp.open_browser=False",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait_answer(answers, proc, log, "jupyter lab")
        yield base, token
    finally:
        _stop(proc)


@contextmanager
def voila_server(cwd: Path, notebook: str, env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """``voila <notebook>`` run in ``cwd`` (so it reads ``cwd/voila.json``) on 127.0.0.1; yields its URL."""
    exe = Path(sys.executable).parent / "voila"
    if not exe.exists() and shutil.which("voila") is None:
        pytest.skip("voila is not installed (pip install -e '.[dev]' installs it)")
    port = free_port()
    cmd = [str(exe) if exe.exists() else "voila", notebook, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           "--ServerApp.allow_root=True", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def answers() -> bool:  # a TCP connect only: a GET of the page would start a kernel and run the notebook
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False

    try:
        _wait_answer(answers, proc, log, "voila")
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc)


class Console:
    """Every console error, uncaught page error and failed request of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.failed: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.failed.append(r.url))

    def _on_console(self, msg: Any) -> None:
        if msg.type == "error":
            url = (msg.location or {}).get("url", "")
            if not (msg.text.startswith("Failed to load resource") and url.startswith(OFFLINE_OK)):
                self.errors.append(f"console.error: {msg.text} [{url}]")

    def check(self, when: str) -> None:
        """Fail when the page logged any error so far."""
        assert not self.errors, f"browser console errors {when}:\n" + "\n".join(self.errors[:12])


# What every plotly figure under an element holds and draws (one dict per figure, in page order):
# per trace type, the visible traces, those with something to draw, and the SVG groups that drew it.
FIGURES_JS = """
(root) => [...root.querySelectorAll('.js-plotly-plot')].map(gd => {
  const flat = v => (Array.isArray(v) || ArrayBuffer.isView(v)) ? Array.from(v).flatMap(flat) : [Number(v)];
  const finite = d => !!d && !/NaN|Infinity|undefined/.test(d) && d !== 'M0,0Z';
  const area = p => { const b = p.getBBox(); return b.width > 0 && b.height > 0; };  // a zero-height bar is not drawn
  const drawn = (sel, marks, solid) => [...gd.querySelectorAll(sel)]
      .filter(g => [...g.querySelectorAll(marks)].some(p => finite(p.getAttribute('d')) && (!solid || area(p)))).length;
  const full = gd._fullData || [];
  const kind = t => t.type === 'bar' ? 'bar' : t.type === 'heatmap' ? 'heatmap' : 'scatter';
  const hasData = t => t.type === 'heatmap' ? flat(t.z || []).some(Number.isFinite)
      : t.type === 'bar' ? flat(t.y || []).some(v => Number.isFinite(v) && v !== 0)
      : flat(t.y || []).some(Number.isFinite);
  const count = f => ({bar: 0, scatter: 0, heatmap: 0,
                        ...full.filter(f).reduce((c, t) => (c[kind(t)] = (c[kind(t)] || 0) + 1, c), {})});
  const box = gd.getBoundingClientRect();
  const lay = gd._fullLayout || {};
  const svg = gd.querySelector('.main-svg');
  let edge = Infinity;  // the right edge of the nearest box that clips or scrolls the figure
  for (let e = gd.parentElement; e && e !== document.body; e = e.parentElement) {
    if (getComputedStyle(e).overflowX !== 'visible') { edge = e.getBoundingClientRect().right; break; }
  }
  return {
    traces: (gd.data || []).length,
    visible: count(t => t.visible === true),
    withdata: count(t => t.visible === true && hasData(t)),
    drawn: {bar: drawn('.barlayer .trace', 'path', true),
             scatter: drawn('.scatterlayer .trace', 'path.js-line, path.point'),
             heatmap: [...gd.querySelectorAll('.heatmaplayer image')]
               .filter(i => +(i.getAttribute('width') || 0) > 0).length},
    nan: [...gd.querySelectorAll('*')].filter(e => ['d', 'transform', 'x', 'y', 'width', 'height']
      .some(a => /NaN/.test(e.getAttribute(a) || ''))).length,
    width: Math.round(box.width), height: Math.round(box.height),
    clipped: svg ? Math.max(0, Math.round(svg.getBoundingClientRect().right - edge)) : 0,
    slack: svg ? Math.round(gd.parentElement.getBoundingClientRect().width - svg.getBoundingClientRect().width) : 0,
    ytype: lay.yaxis ? lay.yaxis.type : null,
    title: (lay.title && lay.title.text) || '',
    legend: [...gd.querySelectorAll('.legendtext')].map(t => t.textContent),
    annotations: [...gd.querySelectorAll('.annotation-text')].map(t => t.textContent),
    colors: full.map(t => t.marker && typeof t.marker.color === 'string' ? t.marker.color : null),
    sums: (gd.data || []).map(t => flat(t.z || t.y || [])
      .reduce((s, v, i) => s + (Number.isFinite(v) ? v * (i + 1) : 0), 0)),
  };
})
"""


def figures(root: Any) -> list[dict[str, Any]]:
    """What each plotly figure under the element ``root`` (a locator) holds and draws."""
    return root.evaluate(FIGURES_JS)


def mismatches(figs: list[dict[str, Any]], expected: list[dict[str, int]], fill: bool = True) -> list[str]:
    """Why ``figs`` do not draw ``expected``; empty when they do.

    ``expected`` has one dict per figure: ``traces`` (all traces) and the number of *visible* traces
    per type (``bar``, ``scatter``, ``heatmap``; absent means 0). Every visible type must have data,
    every trace with data must reach the SVG, no SVG coordinate may be NaN, the figure must have a size
    and must fill the width of the box that holds it (unless ``fill`` is False) without sticking out of it.
    """
    if len(figs) != len(expected):
        return [f"{len(figs)} figures on the page, expected {len(expected)}"]
    out = []
    for i, (f, e) in enumerate(zip(figs, expected)):
        if f["width"] < 150 or f["height"] < 150:
            out.append(f"figure {i} is {f['width']}x{f['height']} px")
        if f["clipped"] > 1:
            out.append(f"figure {i} sticks out of its box by {f['clipped']} px (clipped or scrolled)")
        if fill and f["slack"] > 10:
            out.append(f"figure {i} leaves {f['slack']} px of its box empty (not fitted to its width)")
        if f["nan"]:
            out.append(f"figure {i} has {f['nan']} SVG elements with NaN coordinates")
        if f["traces"] != e["traces"]:
            out.append(f"figure {i} holds {f['traces']} traces, expected {e['traces']}")
        for kind in ("bar", "scatter", "heatmap"):
            want = e.get(kind, 0)
            if f["visible"][kind] != want:
                out.append(f"figure {i}: {f['visible'][kind]} visible {kind} traces, expected {want}")
            if want and not f["withdata"][kind]:
                out.append(f"figure {i}: no visible {kind} trace has data")
            if f["drawn"][kind] != f["withdata"][kind]:
                out.append(f"figure {i}: {f['drawn'][kind]} {kind} traces drawn, {f['withdata'][kind]} have data")
    return out


def wait_drawn(root: Any, expected: list[dict[str, int]], timeout_s: float, what: str,
               fill: bool = True) -> list[dict[str, Any]]:
    """Poll until every figure under ``root`` draws what ``expected`` says; fail with the last mismatch."""
    deadline, figs, bad = time.monotonic() + timeout_s, [], ["never inspected"]
    while time.monotonic() < deadline:
        figs = figures(root)
        bad = mismatches(figs, expected, fill)
        if not bad:
            return figs
        time.sleep(0.5)
    keys = ("traces", "visible", "withdata", "drawn", "nan", "width", "height", "clipped", "slack")
    pytest.fail(f"{what}: the figures do not draw their data after {timeout_s:.0f}s: {bad}; "
                f"figures: {[{k: f[k] for k in keys} for f in figs]}")


# How far anything in a widget sticks out of it or scrolls sideways (px): controls must wrap, not clip.
OVERFLOW_JS = """
(root) => {
  const right = root.getBoundingClientRect().right;
  const out = Math.max(0, ...[...root.querySelectorAll('.widget-inline-hbox, .widget-dropdown, .widget-slider,'
    + ' .widget-checkbox, .widget-toggle-buttons, .widget-toggle-button, .js-plotly-plot .main-svg')]
    .filter(e => e.getBoundingClientRect().width > 0).map(e => e.getBoundingClientRect().right - right));
  const scroll = Math.max(0, ...[root, ...root.querySelectorAll('.widget-box')]
    .map(e => e.scrollWidth - e.clientWidth));
  return {out: Math.round(out), scroll: Math.round(scroll)};
}
"""


def check_fits(root: Any, what: str) -> None:
    """Nothing in the widget ``root`` sticks out of it or makes it scroll sideways."""
    fit = root.evaluate(OVERFLOW_JS)
    assert fit["out"] <= 1 and fit["scroll"] <= 1, f"{what}: controls or figures stick out of the widget: {fit}"


def save_screenshot(page: Any, root: Any, name: str, tmp_path: Path) -> Path:
    """PNG of the whole element ``root`` into the test's tmp dir, and into docs/img when OICSR_LAB_SAVE_SCREENSHOTS=1.

    The window grows (height only) to hold the whole widget first, so nothing fixed on the page (a
    status bar) lies over it.
    """
    size = page.viewport_size
    height = root.bounding_box()["height"]
    if height + 200 > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": int(height) + 250})
        page.wait_for_timeout(1000)
    root.scroll_into_view_if_needed()
    png = root.screenshot(animations="disabled")
    page.set_viewport_size(size)
    (tmp_path / name).write_bytes(png)
    if os.environ.get("OICSR_LAB_SAVE_SCREENSHOTS") == "1":  # refresh the README's pictures on request only
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        (DOCS_IMG / name).write_bytes(png)
    return tmp_path / name


def press(locator: Any, key: str, times: int) -> None:
    """Focus a slider handle (or any control) and press ``key`` ``times`` times."""
    locator.focus()
    for _ in range(times):
        locator.press(key)


def wait_readout(page: Any, root: Any, timeout_s: float, previous: str | None = None) -> dict[str, Any]:
    """Wait until the pruning explorer's readout is complete (and differs from ``previous``); returns it."""
    page.wait_for_function(
        f"([r, old]) => {{ const s = ({READOUT_JS})(r); return !s.busy && s.table.includes('%')"
        f" && !s.table.includes('…') && s.table !== old; }}",
        arg=[root.element_handle(), previous], timeout=timeout_s * 1000, polling=500)
    return root.evaluate(READOUT_JS)


def wait_changed(page: Any, root: Any, figure: int, before: list[float], timeout_s: float) -> None:
    """Wait until figure ``figure`` under ``root`` holds other data than ``before`` (its ``sums``)."""
    page.wait_for_function(
        f"([r, old]) => {{ const s = ({FIGURES_JS.strip()})(r)[{figure}].sums;"
        f" return s.length !== old.length || s.some((v, i) => Math.abs(v - old[i]) > 1e-9 * (1 + Math.abs(v))); }}",
        arg=[root.element_handle(), before], timeout=timeout_s * 1000, polling=500)
