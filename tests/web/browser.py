"""Real-browser tests' machinery: headless Chromium from Debian's packages driven by Selenium
(no browser is downloaded: scripts/browser installs `chromium` and `chromium-driver` with apt
when they are missing). The app they open is `iot-hub web` as a subprocess
(`tests.support.web.WebProcess`), exactly as an operator starts it."""

from __future__ import annotations

import subprocess
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

from tests.support.process import ROOT

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
