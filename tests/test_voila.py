"""Real-browser test of the Voila app: ``voila notebooks/dashboard.ipynb`` serves the explorers without code.

Starts Voila on 127.0.0.1 over a temporary copy of ``notebooks/`` at ``ci`` scale, opens it in
Debian Chromium through Playwright, checks that no source code is shown, moves the pruning
explorer's FLOPs slider and checks that the readout changes. Saves
``docs/img/voila_dashboard.png``. Skips with the reason when Chromium, Playwright or Voila is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "img" / "voila_dashboard.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_app(tmp_path: Path, data_dir: Path):
    """A Voila server for dashboard.ipynb on loopback; yields its URL."""
    if shutil.which("voila", path=str(Path(sys.executable).parent)) is None and shutil.which("voila") is None:
        pytest.skip("voila is not installed (pip install -e '.[dev]' installs it)")
    root = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    port = _free_port()
    env = dict(os.environ, OICSR_LAB_NB_PRESET="ci", OICSR_LAB_NB_CACHE=str(tmp_path / "cache"),
               OICSR_LAB_PROGRESS="0", OICSR_LAB_THREADS="1", OICSR_LAB_DATA=str(data_dir),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"), JUPYTER_DATA_DIR=str(tmp_path / "jdata"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jrt"))
    exe = Path(sys.executable).parent / "voila"
    log = tmp_path / "voila.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(exe) if exe.exists() else "voila", "dashboard.ipynb", "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1", "--ServerApp.allow_root=True"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"voila exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:  # a TCP connect only: a GET of the page would start a kernel and run the notebook
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"voila did not answer within 120 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_voila_dashboard_serves_widgets_without_code(voila_app: str, tmp_path: Path) -> None:
    """The dashboard renders in a real browser with no code, and the FLOPs slider updates the readout."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does this)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(voila_app, timeout=600_000, wait_until="domcontentloaded")
            slider = page.locator(".widget-slider").first
            slider.wait_for(state="visible", timeout=600_000)  # the notebook trains four ci runs first
            page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=120_000)
            body = page.inner_text("body")
            assert "import os" not in body and "from oicsr_lab" not in body, "Voila must not show source code"
            readout = page.locator(".widget-html").filter(has_text="MACs").first
            before = readout.inner_text()
            handle = slider.locator(".noUi-handle, .ui-slider-handle").first
            handle.focus()
            for _ in range(20):
                page.keyboard.press("ArrowRight")
            deadline = time.monotonic() + 120
            while readout.inner_text() == before and time.monotonic() < deadline:
                time.sleep(0.5)
            after = readout.inner_text()
            assert after != before, "the readout did not change after moving the FLOPs slider"
            time.sleep(1.0)
            page.screenshot(path=str(tmp_path / "voila_dashboard.png"), full_page=True)
            if os.environ.get("OICSR_LAB_SAVE_SCREENSHOTS") == "1":  # refresh docs/img on request only
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
