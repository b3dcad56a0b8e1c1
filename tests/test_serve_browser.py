"""sbsconvert serve in a real browser: headless Chromium (Debian's chromium and chromium-driver)
loads the page, uploads a sample, waits for its job, opens the viewer in each flat mode and
checks the pixels drawn, then enters VR through a stub of the WebXR API (headless Chromium has no
headset). Set SBSCONVERT_SCREENSHOTS to a folder to keep the screenshots (docs/images uses them)."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)")
pytest.importorskip("starlette", reason="the serve extra is not installed")

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# A headset for the page: two views side by side on the canvas, looking down -z from the origin.
XR_STUB = """
(() => {
  const perspective = (() => { const f = 1 / Math.tan(Math.PI / 4), near = 0.1, far = 100;
    return [f, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1, 0, 0, 2 * far * near / (near - far), 0]; })();
  const identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  const views = ["left", "right"].map(eye => ({ eye, projectionMatrix: perspective, transform: { inverse: { matrix: identity } } }));
  class FakeSession extends EventTarget {
    constructor() { super(); this.renderState = {}; }
    updateRenderState(state) { Object.assign(this.renderState, state); }
    async requestReferenceSpace() { return {}; }
    requestAnimationFrame(callback) { return setTimeout(() => callback(performance.now(), { getViewerPose: () => ({ views }) }), 30); }
    async end() { this.dispatchEvent(new Event("end")); }
  }
  window.XRWebGLLayer = class {
    constructor(session, gl) { this.framebuffer = null; this.gl = gl; }
    getViewport(view) { const w = this.gl.canvas.width, h = this.gl.canvas.height;
      return { x: view.eye === "left" ? 0 : Math.floor(w / 2), y: 0, width: Math.floor(w / 2), height: h }; }
  };
  Object.defineProperty(navigator, "xr", { value: {
    isSessionSupported: async mode => mode === "immersive-vr",
    requestSession: async () => { window.xrSession = new FakeSession(); return window.xrSession; },
  }});
})();
"""


@pytest.fixture
def server(tmp_path: Path):
    import uvicorn

    from sbsconvert.serve.app import ServeConfig, create_app

    served = tmp_path / "library"
    served.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", served / "coffee.jpg")
    app = create_app(ServeConfig(folders=[served], state=tmp_path / "state",
                                 values={"disparity": str(SAMPLES / "disparity")}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while not running.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=30)


def browser(xr_stub: bool):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,760",
                     "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if xr_stub:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": XR_STUB})
    return driver


def wait_for(driver, script: str, limit: float = 120):
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    message = driver.execute_script("return document.querySelector('#message').textContent")
    raise AssertionError(f"waited {limit} s for {script}; the page says: {message}")


def canvas_pixels(driver) -> np.ndarray:
    url = driver.execute_script("return document.querySelector('#canvas').toDataURL('image/png')")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"), np.int16)


def keep(driver, name: str) -> None:
    folder = os.environ.get("SBSCONVERT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def test_upload_convert_and_view_in_each_mode(server: str) -> None:
    from selenium.webdriver.common.by import By

    driver = browser(xr_stub=True)
    try:
        driver.get(server + "/")
        wait_for(driver, "return document.body.dataset.ready")
        driver.find_element(By.ID, "files").send_keys(str(SAMPLES / "chelsea.jpg"))
        wait_for(driver, "return document.querySelector('#selection').textContent === 'chelsea.jpg'")
        driver.find_element(By.ID, "format").send_keys("sbs")
        driver.find_element(By.ID, "divergence").send_keys("4")
        driver.find_element(By.ID, "convert-button").click()
        wait_for(driver, "return document.querySelector('#jobs li[data-status=done] a.output')")
        keep(driver, "serve-queue")
        driver.find_element(By.CSS_SELECTOR, "#jobs a.output").click()
        output = wait_for(driver, "return document.body.dataset.viewing")
        assert output.endswith("chelsea_LR.jpg")

        # the eyes as the server wrote them
        import httpx

        job = httpx.get(server + "/api/jobs").json()[0]
        written = httpx.get(f"{server}/files/converted/{job['outputs'][0]['path']}").content
        with Image.open(io.BytesIO(written)) as frame:
            both = np.asarray(frame.convert("RGB"), np.int16)
        width = both.shape[1] // 2
        left, right = both[:, :width], both[:, width:]
        moved = np.abs(left - right).sum(axis=2) > 60  # where the disparity shifted the picture

        shots = {}
        for mode in ("anaglyph", "wiggle", "crosseye", "slider"):
            driver.find_element(By.CSS_SELECTOR, f"[data-mode={mode}]").click()
            time.sleep(0.4)
            shots[mode] = canvas_pixels(driver)
            keep(driver, f"serve-{mode}")
            if mode == "wiggle":  # the eyes take turns
                wiggles = [shots[mode]] + [(time.sleep(0.09), canvas_pixels(driver))[1] for _ in range(6)]
        anaglyph = shots["anaglyph"]
        assert anaglyph.shape[:2] == left.shape[:2]
        assert moved.mean() > 0.02, "the sample's eyes hardly differ: nothing to check"
        # red comes from the left eye, cyan (green, blue) from the right, so where the eyes
        # differ the anaglyph's channels follow different pictures
        red_error = np.abs(anaglyph[..., 0] - left[..., 0])[moved].mean()
        cyan_error = np.abs(anaglyph[..., 1:] - right[..., 1:])[moved].mean()
        cyan_if_left = np.abs(anaglyph[..., 1:] - left[..., 1:])[moved].mean()
        assert red_error < 6 and cyan_error < 6, (red_error, cyan_error)
        assert cyan_if_left > 3 * cyan_error
        assert np.abs(anaglyph[..., 0] - anaglyph[..., 1])[moved].mean() > np.abs(anaglyph[..., 0] - anaglyph[..., 1])[~moved].mean()

        crossed = shots["crosseye"]
        assert crossed.shape[1] == 2 * width
        assert np.abs(crossed[:, :width] - right).mean() < 6 and np.abs(crossed[:, width:] - left).mean() < 6

        split = shots["slider"]
        assert np.abs(split[:, : width // 2 - 3] - left[:, : width // 2 - 3]).mean() < 6
        assert np.abs(split[:, width // 2 + 3:] - right[:, width // 2 + 3:]).mean() < 6

        errors = [(np.abs(shot - left).mean(), np.abs(shot - right).mean()) for shot in wiggles]
        assert any(to_left < 6 for to_left, _ in errors) and any(to_right < 6 for _, to_right in errors), errors

        # WebXR, as far as headless goes: the page offers VR when navigator.xr says so, and draws
        # each eye's half on a virtual screen in each view
        driver.find_element(By.CSS_SELECTOR, "[data-mode=anaglyph]").click()
        enter = driver.find_element(By.ID, "enter-vr")
        assert enter.is_displayed()
        enter.click()
        wait_for(driver, "return document.body.dataset.xr === 'presenting'", limit=20)
        time.sleep(0.5)
        views = canvas_pixels(driver)
        height, half = views.shape[0], views.shape[1] // 2
        background = views[2, 2]
        assert np.abs(background - 13).max() <= 2  # the clear colour around the screen
        for view in (views[:, :half], views[:, half:]):
            centre = view[height // 3: 2 * height // 3, half // 3: 2 * half // 3]
            assert np.abs(centre - background).mean() > 20  # the photo is on the screen
        keep(driver, "serve-vr-views")
        driver.execute_script("window.xrSession.end()")
        wait_for(driver, "return document.body.dataset.xr === undefined")
    finally:
        driver.quit()


def test_no_vr_button_without_webxr(server: str) -> None:
    driver = browser(xr_stub=False)
    try:
        driver.get(server + "/")
        wait_for(driver, "return document.body.dataset.ready")
        keep(driver, "serve-gallery")
        assert driver.execute_script("return document.querySelector('#enter-vr').hidden") is True
    finally:
        driver.quit()
