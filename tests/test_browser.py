"""End to end in a real browser: `streamlit run app.py`, driven by Playwright with Debian's Chromium.

Needs `pip install playwright` and the `chromium` Debian package (`/usr/bin/chromium`); Playwright's
own browser download (`playwright install`) is never used. Skipped when either is missing.

The first-render time is measured from `page.goto` to the verdict being visible. The server runs the
script only when the first browser session connects, so this time includes the first import of
TensorFlow/shiftkit, training the default model and the permutation tests: it is the honest cold
start a user sees. The full-page screenshot is saved to docs/dashboard.png (or to
$SHIFTKIT_SCREENSHOT when set).
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: A hang guard, not a speed target (speed targets live in benchmarks/): the cold first render (TensorFlow
#: import, training the demo model, the tests) takes 10-20 s alone on 2 cores, longer beside the other
#: test worker (`pytest -n 2`); the measured time is printed.
FIRST_RENDER_BUDGET_S = 90.0
#: Where the screenshot goes: docs/dashboard.png, or $SHIFTKIT_SCREENSHOT (a run that must leave docs/ alone).
SCREENSHOT = pathlib.Path(os.environ.get("SHIFTKIT_SCREENSHOT") or ROOT / "docs" / "dashboard.png")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """`streamlit run app.py` on a free port; killed at the end whatever happens."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed by the finalizer
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )

    def stop():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.read().decode().strip() == "ok":
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"streamlit did not become healthy in 60 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return url


def _wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app is connected and its script has finished running."""
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-connection-state='CONNECTED'][data-test-script-state='notRunning']",
        timeout=timeout_ms,
    )


@pytest.mark.slow
def test_dashboard_in_a_real_browser(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(server)
            page.get_by_text("Verdict:", exact=False).first.wait_for(state="visible", timeout=120_000)
            first_render = time.perf_counter() - start
            _wait_idle(page)
            complete = time.perf_counter() - start
            status = page.get_by_text("Analysis ready").first.inner_text()
            print(f"\nfirst render (page.goto -> verdict visible, cold server incl. TensorFlow import, "
                  f"default model training, 2 x 500 permutations): {first_render:.1f} s; whole page done "
                  f"in {complete:.1f} s; {status}")
            assert page.locator("[data-testid='stException']").count() == 0
            assert "Verdict: Shift at alpha=0.05" in page.get_by_text("Verdict:").first.inner_text()
            assert page.locator("[data-testid='stMetric']").count() >= 4
            print(f"first render: {first_render:.1f} s")
            assert first_render < FIRST_RENDER_BUDGET_S, f"first render took {first_render:.1f} s"

            page.get_by_role("button", name="Run adaptation").click()
            page.get_by_text("Before / after adaptation").wait_for(state="visible", timeout=120_000)
            _wait_idle(page)
            table = page.locator("[data-testid='stTable']").first
            text = table.inner_text()
            assert "feature MMD^2 normalized" in text and "target accuracy" in text
            assert page.locator("[data-testid='stException']").count() == 0

            # Both downloads, with the adaptation in them (the HTML is built on click, in a thread).
            with page.expect_download(timeout=120_000) as info:
                page.get_by_role("button", name="Download HTML report").click()
            html_text = pathlib.Path(info.value.path()).read_text(encoding="utf-8")
            assert html_text.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html_text
            assert 'id="shiftkit-adaptation"' in html_text and len(html_text.encode()) < 1_000_000
            assert 'id="shiftkit-diagnosis"' in html_text  # issue 10: the downloads hold what the page shows
            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name="Download JSON report").click()
            bundle = json.loads(pathlib.Path(info.value.path()).read_text(encoding="utf-8"))
            assert bundle["shift_report"]["is_shift"] is True and bundle["adaptation"]["comparison"]["rows"]
            recommended = bundle["diagnosis"]["recommendation"]
            assert page.get_by_text(f"Recommended: {recommended}", exact=False).count() >= 1
            _wait_idle(page)

            # Streamlit scrolls inside its main container, so a "full page" screenshot would stop at
            # the viewport: grow the viewport to the content first.
            height = page.evaluate(
                "() => Math.max(...[...document.querySelectorAll("
                "'[data-testid=stMain], [data-testid=stSidebarContent]')].map(e => e.scrollHeight))"
            )
            page.set_viewport_size({"width": 1400, "height": int(height) + 40})
            page.wait_for_timeout(1000)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            tmp = SCREENSHOT.with_suffix(".tmp.png")
            page.screenshot(path=str(tmp), full_page=True)
            shutil.move(tmp, SCREENSHOT)
            assert SCREENSHOT.stat().st_size > 50_000
        finally:
            browser.close()
