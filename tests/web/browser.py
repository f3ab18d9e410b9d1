"""Real-browser tests' machinery: `iot-hub web` as a subprocess, exactly as an operator starts it,
and headless Chromium from Debian's packages driven by Selenium (no browser is downloaded:
scripts/browser installs `chromium` and `chromium-driver` with apt when they are missing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.gateway import ROOT, free_port
from tests.support.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1440, 900)  # a laptop
T = TypeVar("T")


def install_browser() -> None:
    """scripts/browser: idempotent; apt-installs Chromium and its driver when missing."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "browser")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/browser failed:\n{result.stdout}\n{result.stderr}")


def chromium(user_data_dir: Path) -> webdriver.Chrome:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # we run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",  # no network beyond loopback here
        "--disable-quic",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={user_data_dir}",
    ):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager (which could download a driver) never runs.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    set_viewport(driver, *WINDOW)
    return driver


def set_viewport(driver: webdriver.Chrome, width: int, height: int) -> None:
    """The page's own viewport at exactly this size (a window size would include the browser's
    chrome), so screenshots are this many pixels."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


class WebServer:
    """`python -m hub.cli web` on a free port, with its log in ``workdir``."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "web.log"
        self.env = {
            **os.environ,
            **env,
            "HUB_HTTP_PORT": str(self.port),
            "HUB_WEB_HOST": "127.0.0.1",
            "NICEGUI_STORAGE_PATH": tempfile.mkdtemp(prefix="nicegui-storage-", dir=workdir),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> WebServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "web"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout, f"iot-hub web ready (log {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"iot-hub web exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/login", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise
        return self.proc.returncode


class Page:
    """A thin layer over the driver: waits with timeouts (WebDriverWait), never bare sleeps."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def resize(self, width: int, height: int) -> None:
        set_viewport(self.driver, width, height)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def wait(self, condition: Callable[[webdriver.Chrome], T], timeout: float = 10) -> T:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition)

    def find(self, testid: str, timeout: float = 10) -> WebElement:
        return self.wait(
            lambda d: d.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]'), timeout
        )

    def click(self, testid: str, timeout: float = 10) -> None:
        """Click, finding the element afresh if a live update replaced it meanwhile."""

        def clicked(driver: webdriver.Chrome) -> bool:
            driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').click()
            return True

        WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(clicked)

    def field(self, testid: str, tag: str = "input") -> WebElement:
        """The native input of a Quasar field (the attribute may land on it or around it)."""
        found = self.find(testid)
        return found if found.tag_name == tag else found.find_element(By.TAG_NAME, tag)

    def text_shown(self, text: str, timeout: float = 10) -> None:
        self.wait(lambda d: text in d.find_element(By.TAG_NAME, "body").text, timeout)

    def script(self, code: str, *args: Any) -> Any:
        return self.driver.execute_script(code, *args)

    def login(self, name: str, password: str) -> None:
        self.driver.delete_all_cookies()
        self.open("/login")
        self.field("username").send_keys(name)
        self.field("password").send_keys(password)
        self.click("login-submit")
        self.wait(lambda d: "/login" not in d.current_url, 15)

    def chart_points(self, metric: str) -> int:
        """How many points the browser's Plotly chart of ``metric`` holds in its line trace."""
        count = self.script(
            "const gd = document.querySelector(arguments[0]);"
            "return gd && gd.data ? gd.data[0].x.length : -1;",
            f'[data-testid="chart-{metric}"]',
        )
        return int(count)
