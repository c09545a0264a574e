"""The editor's server binary, and the page in a real browser (headless Chromium, Selenium).

Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them).
Outside CI the tests skip, saying why, when either is missing; under CI=true
they fail instead. The page is served by `experiments.serve` on the tiny run
with random weights (see `lively_run`); the image the page shows after a
slider move is fetched from the server and compared with the library's own
edit.
"""

import dataclasses
import io
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from conftest import (REPO_ROOT, experiment_command, fails_cleanly, random_models,
                      run_experiment)
from fvae_tf.edit import direction_fit, fitted_directions, photo, session
from fvae_tf.train import latent_stats

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = "chromium", "chromedriver"
TIMEOUT_S = 90  # for the page to react: the first edit also traces TensorFlow


def _missing(reason: str) -> None:
    """Skips with a printed reason, or fails under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    print(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(run_dir: pathlib.Path, tmp_dir: pathlib.Path) -> tuple[subprocess.Popen, str]:
    """Starts experiments.serve on a free port, temporary files in `tmp_dir`; (process, URL)."""
    port = _free_port()
    process = subprocess.Popen(
        experiment_command("serve", f"--checkpoint_dir={run_dir}", f"--port={port}"),
        cwd=REPO_ROOT, env=dict(os.environ, TMPDIR=str(tmp_dir)), stdout=subprocess.PIPE,
        text=True)
    line = process.stdout.readline()
    prefix = f"fvae editor on http://127.0.0.1:{port}/ "
    if not line.startswith(prefix):
        process.kill()
        raise AssertionError(f"the server printed {line!r}, not {prefix!r}...")
    return process, prefix.split()[3]


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


def test_server_refuses_a_bad_run_without_a_traceback(tmp_path):
    fails_cleanly(run_experiment("serve", f"--checkpoint_dir={tmp_path / 'missing'}"),
                  "error: ", "config.json is missing")


def test_server_prints_its_url_and_removes_uploads_at_exit(run_dir, tmp_path):
    process, url = _start_server(run_dir, tmp_path)
    try:
        assert [p.name[:11] for p in tmp_path.iterdir()] == ["fvae_serve_"]
        port = url.rstrip("/").rsplit(":", 1)[1]
        fails_cleanly(run_experiment("serve", f"--checkpoint_dir={run_dir}", f"--port={port}"),
                      f"cannot listen on 127.0.0.1:{port}", "pass another --port")
    finally:
        _stop(process)
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def lively_run(run_dir, tmp_path_factory) -> pathlib.Path:
    """The tiny run with random weights, latent means far apart, a random fitted
    neutral->smile direction, and no mask.

    Three training steps leave the decoder nearly blind to the latent, so a
    slider step would not change a pixel; weights drawn as `random_models`
    draws them and means 10 apart make every step visible (the faces are
    nonsense).
    """
    run = tmp_path_factory.mktemp("lively") / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("best", "checkpoints", "mask"))
    fvae, _ = random_models(gain=1.0)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=fvae), str(run / "best"), 1).save()
    stats = latent_stats.load(run / latent_stats.FILENAME)
    means = np.random.default_rng(1).normal(0, 10, stats.means.shape).astype(np.float32)
    stats = dataclasses.replace(stats, means=means)
    latent_stats.save(run / latent_stats.FILENAME, stats)
    fitted = np.random.default_rng(2).normal(0, 10, means.shape[1]).astype(np.float32)
    fitted_directions.save(run, "neutral", "smile", fitted, stats)
    return run


@pytest.fixture(scope="module")
def server(lively_run, tmp_path_factory):
    """The editor's URL; the server runs for the module."""
    process, url = _start_server(lively_run, tmp_path_factory.mktemp("serve_tmp"))
    yield url
    _stop(process)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium that records the console."""
    paths = {name: shutil.which(name) for name in (CHROMIUM, CHROMEDRIVER)}
    if not all(paths.values()):
        _missing(f"{' and '.join(n for n, p in paths.items() if not p)} not found; install "
                 "Debian's chromium and chromium-driver packages to run the browser tests")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -r requirements.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[CHROMIUM]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1500"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[CHROMEDRIVER]), options=options)
    yield driver
    driver.quit()


def _settled(read, before: str | None, quiet_s: float = 3.0) -> str:
    """What `read()` returns once it differs from `before` and has not changed for `quiet_s`.

    A slider sends one event per step; the page shows each edit that ran, the
    last one last.
    """
    last = _wait(lambda: read() not in (None, before) and read(), "the page to change")
    since = time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        if read() != last:
            last, since = read(), time.monotonic()
    return last


def _wait(condition, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Page:
    """The editor's Edit tab, as a person uses it."""

    def __init__(self, driver, url: str):
        from selenium.webdriver.common.by import By
        self.driver, self.by = driver, By
        driver.get(url)
        _wait(lambda: self._all("#photo input[type=file]"), "the page to load")

    def _all(self, css: str):
        return self.driver.find_elements(self.by.CSS_SELECTOR, css)

    def upload(self, path: pathlib.Path, expect: str) -> str:
        """Uploads a photo (clearing the last one first) and returns the status once it
        mentions `expect`."""
        for clear in self._all("#photo button[aria-label=Clear]"):
            clear.click()
        _wait(lambda: self._all("#photo input[type=file]"), "the upload field")
        self._all("#photo input[type=file]")[0].send_keys(str(path))
        return self.status_becomes(expect)

    def status_becomes(self, expect: str) -> str:
        return _wait(lambda: expect in self.status() and self.status(), f"'{expect}'")

    def status(self) -> str:
        found = self._all("#photo-status")
        return found[0].text if found else ""

    def shown_photo(self) -> str | None:
        """The URL of the edited photo the page shows."""
        images = self._all("#edited-photo img")
        return images[0].get_attribute("src") if images else None

    def move_slider(self, expression: str, steps: int) -> float:
        """Presses the right arrow on a slider `steps` times; returns its value."""
        from selenium.webdriver.common.keys import Keys
        self._all(f"#slider-{expression} input[type=range]")[0].send_keys(
            Keys.ARROW_RIGHT * steps)
        return float(self._all(f"#slider-{expression} input[type=number]")[0]
                     .get_attribute("value"))

    def choose_direction(self, label: str) -> None:
        """Picks one of the direction choices by its label."""
        self._all("#direction input")[0].click()
        choices = _wait(lambda: self._all("ul[role=listbox] li"), "the direction choices")
        next(c for c in choices if c.text == label).click()

    def choose_face(self, number: int) -> None:
        """Picks face `number` (from 1) in the chooser shown for a photo with several faces."""
        self._all("#photo-face input")[0].click()
        options = _wait(lambda: self._all("ul[role=listbox] li"), "the faces to choose from")
        options[number - 1].click()

    def errors(self) -> list[dict]:
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


def _fetch_png(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


def test_upload_move_the_smile_slider_and_download(browser, server, lively_run,
                                                     package_photos, tmp_path):
    page = Page(browser, server)
    path = package_photos[0]
    page.upload(path, "face found")
    before = _wait(page.shown_photo, "the reconstruction")
    value = page.move_slider("smile", 10)
    assert value == pytest.approx(0.5)
    after = _settled(page.shown_photo, before)
    screenshot = tmp_path / "editor.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("FVAE_EDITOR_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["FVAE_EDITOR_SCREENSHOT"])
    assert page.errors() == []

    # What the page shows, at full resolution, is the library's edit of the photo.
    shown = _fetch_png(after)
    editor = session.Editor.load(lively_run)
    opened = editor.open_photo(path)
    reference = photo.edit_aligned(editor.fvae, opened.photo, opened.face,
                                   editor.stats.direction("neutral", "smile"), [value])
    assert shown.shape == reference.photo.shape
    assert np.abs(shown.astype(int) - reference.photo.astype(int)).max() <= 1


def test_the_fitted_direction_can_be_chosen(browser, server, lively_run, package_photos):
    page = Page(browser, server)
    path = package_photos[1]
    page.upload(path, "face found")
    assert "direction (fitted: neutral->smile)" in page.driver.find_element(
        page.by.CSS_SELECTOR, "#direction").text
    chosen = page.driver.find_element(page.by.CSS_SELECTOR, "#direction input")
    assert chosen.get_attribute("value") == "Algorithm 1 (the paper)"
    reconstruction = _wait(page.shown_photo, "the reconstruction")
    page.choose_direction("fitted to the landmarks (not in the paper)")
    untouched = _settled(page.shown_photo, reconstruction)
    value = page.move_slider("smile", 8)
    shown = _fetch_png(_settled(page.shown_photo, untouched))
    assert page.errors() == []

    editor = session.Editor.load(lively_run)
    opened = editor.open_photo(path)
    # Factor 0 under the fitted rule is the photo itself; the move is the library's edit.
    assert np.abs(_fetch_png(untouched).astype(int) - opened.photo.astype(int)).max() <= 1
    reference = photo.edit_aligned(editor.fvae, opened.photo, opened.face,
                                   editor.fitted["neutral", "smile"], [value],
                                   direction_fit.FITTED_RULE)
    assert np.abs(shown.astype(int) - reference.photo.astype(int)).max() <= 1


def test_bad_uploads_show_their_message_and_the_next_photo_works(browser, server,
                                                                 package_photos,
                                                                 tmp_path):
    page = Page(browser, server)
    text = tmp_path / "holiday.jpg"
    text.write_text("this is not a photo")
    page.upload(text, "holiday.jpg: not a recognised image format")
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((240, 320, 3), 200, np.uint8)).save(blank)
    page.upload(blank, "wall.png: no face found")
    assert page.shown_photo() is None
    page.upload(package_photos[1], "face found")
    before = _wait(page.shown_photo, "the reconstruction")
    page.move_slider("smile", 20)
    _settled(page.shown_photo, before)
    assert page.errors() == []


def test_a_photo_with_two_faces_asks_which_one(browser, server, tmp_path):
    page = Page(browser, server)
    head = skimage.data.astronaut()[:300, 80:380]
    two = tmp_path / "two.png"
    Image.fromarray(np.concatenate([head, head[:, ::-1]], axis=1)).save(two)
    page.upload(two, "two.png: 2 faces found, choose the one to edit")
    boxes = _wait(page.shown_photo, "the photo with its faces numbered")
    assert _fetch_png(boxes).shape == (300, 600, 3)
    page.choose_face(2)
    page.status_becomes("two.png: face found")
    edited = _fetch_png(_settled(page.shown_photo, boxes))
    changed = np.nonzero(np.any(edited != np.asarray(Image.open(two)), axis=-1).any(axis=0))[0]
    assert changed.size and changed.min() > 300  # the second face, on the right, was edited
    assert page.errors() == []
