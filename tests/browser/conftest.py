"""Real headless Chromium (Debian chromium + chromium-driver, Selenium from PyPI) against a real `avatar serve`
with its engines on. The server runs in a temporary AVATAR_HOME with the shared models and venv."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parents[2]
AVATAR_BIN = os.environ.get("AVATAR_BIN", str(REPO / ".build/debug/avatar"))
REAL_HOME = Path(os.environ.get("AVATAR_REAL_HOME", Path.home() / ".avatar"))
LIBRIVOX = Path(os.environ.get("AVATAR_TEST_LIBRIVOX", "/usr/share/pocketsphinx/test/data/librivox"))
# Screenshots go to a temp folder unless AVATAR_SCREENS_DIR names one (docs/screens to refresh the README's).
SCREENS = Path(os.environ.get("AVATAR_SCREENS_DIR") or Path(tempfile.gettempdir()) / "avatar-browser-screens").resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def astronaut() -> Path:
    venv = Path(os.environ.get("AVATAR_VENV_DIR", REAL_HOME / "venv"))
    found = sorted(venv.glob("lib/python*/site-packages/skimage/data/astronaut.png"))
    if not found:
        pytest.fail(f"astronaut.png (scikit-image) not found under {venv}: run `avatar setup`")
    return found[0]


class Server:
    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="avatar-browser-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.token: str | None = None
        self.env = dict(os.environ,
                        AVATAR_HOME=str(self.home),
                        AVATAR_MODELS_DIR=os.environ.get("AVATAR_MODELS_DIR", str(REAL_HOME / "models")),
                        AVATAR_VENV_DIR=os.environ.get("AVATAR_VENV_DIR", str(REAL_HOME / "venv")),
                        AVATAR_PORT=str(self.port), AVATAR_REDIS="off", AVATAR_ENGINES_ENABLED="true",
                        AVATAR_WEB_ROOT=str(REPO / "Public"), AVATAR_LOG_LEVEL="info")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 240) -> None:
        out = open(self.home / "stdout.txt", "ab")
        err = open(self.home / "stderr.txt", "ab")
        self.process = subprocess.Popen([AVATAR_BIN, "serve"], env=self.env, cwd=REPO, stdout=out, stderr=err)
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"avatar serve exited ({self.process.returncode}): {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as r:
                    if json.load(r).get("status") == "ready":
                        break
            except Exception:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"avatar serve was not ready in {ready_timeout} s: {self.log()[-2000:]}")
        if self.token is None:
            match = re.search(r"avt_[0-9a-f]{8}_[0-9a-f]{64}", (self.home / "stdout.txt").read_text())
            if not match:
                pytest.fail("no first-start token printed: " + (self.home / "stdout.txt").read_text())
            self.token = match.group(0)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return (self.home / "stderr.txt").read_text(errors="replace")

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def upload_photo(self, avatar_id: str, path: Path) -> dict:
        request = urllib.request.Request(f"{self.base}/api/v1/avatars/{avatar_id}/photo", data=path.read_bytes(), method="PUT",
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=120) as r:
            return json.load(r)


@pytest.fixture(scope="session")
def server():
    if not Path(AVATAR_BIN).exists():
        pytest.fail(f"{AVATAR_BIN} not found: build it (swift build) or set AVATAR_BIN")
    s = Server()
    s.start()
    yield s
    s.stop()
    if os.environ.get("AVATAR_KEEP_TEST_HOME") != "1":
        shutil.rmtree(s.home, ignore_errors=True)


def make_driver(width: int = 1280, height: int = 900, fake_audio: Path | None = None, fake_ui: bool = True,
                extra_args: tuple[str, ...] = ()) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                "--autoplay-policy=no-user-gesture-required", "--use-fake-device-for-media-stream", "--mute-audio"):
        options.add_argument(arg)
    if fake_ui:
        options.add_argument("--use-fake-ui-for-media-stream")
    if fake_audio:
        options.add_argument(f"--use-file-for-fake-audio-capture={fake_audio}%noloop")
    for arg in extra_args:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    return driver


def sign_in(driver, server: Server, hash_: str = "#/") -> None:
    """The token link sets the cookie and leads to `/`; then a fresh load of the wanted view."""
    driver.get(f"{server.base}/login?token={server.token}")
    driver.get("about:blank")
    driver.get(f"{server.base}/{hash_}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        driver = item.funcargs.get("browser")
        if driver is not None:
            path = Path(tempfile.gettempdir()) / f"avatar-browser-failure-{item.name}.png"
            driver.save_screenshot(str(path))
            logs = "\n".join(str(e) for e in driver.get_log("browser"))
            report.sections.append(("browser", f"screenshot: {path}\nconsole:\n{logs}"))


@pytest.fixture
def browser(server):
    driver = make_driver()
    yield driver
    driver.quit()


def color_scheme(driver, scheme: str) -> None:
    """Emulates the system's light or dark preference (prefers-color-scheme)."""
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


def save_screen(driver, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
