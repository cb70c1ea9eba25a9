"""The real app on a loopback port, and Debian's Chromium driven by Playwright.

The browser tests run on the SQLite backend only: see docs/decisions.md ("Browser tests on
one backend"). Chromium is the system's (`/usr/bin/chromium`, BROWSER_PATH to override); it
is never downloaded by Playwright."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, async_playwright
from playwright.async_api import Page as BrowserPage

from botplatform.config import Settings
from botplatform.dashboard import assets
from tests.conftest import Account, Api
from tests.serving import serving

BROWSER_PATH = os.environ.get("BROWSER_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def sqlite_only(settings: Settings) -> None:
    if not settings.is_sqlite:
        pytest.skip("browser tests run on the SQLite backend only (docs/decisions.md)")


@pytest.fixture(scope="session")
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The app under test (already started) served over real HTTP for the browser."""
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(BROWSER_PATH).exists() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium is missing at {BROWSER_PATH} (apt-get install chromium)")
    if assets.missing():
        pytest.fail("browser assets (htmx, Swagger UI) not installed: run `botplatform assets`")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=BROWSER_PATH, headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


class Tab:
    """One browser tab on the live app, failing the test on any CSP violation or page error."""

    def __init__(self, page: BrowserPage, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(f"{self.page.url}: {message.text} at {message.location}")

    async def open(self, path: str) -> None:
        await self.page.goto(f"{self.base}{path}")

    async def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    async def login(self, account: Account, code_for: pyotp.TOTP | None = None) -> None:
        await self.open("/app/login")
        await self.page.get_by_label("Email").fill(account.email)
        await self.page.get_by_label("Password").fill(account.password)
        await self.page.get_by_role("button", name="Log in").click()
        if code_for is not None:
            await self.page.wait_for_url("**/app/login/2fa**")
            await self.page.get_by_label("6-digit code").fill(next_code(code_for))
            await self.page.get_by_role("button", name="Verify").click()
        await self.page.wait_for_url("**/app/w/**")


async def login_by_keyboard(tab: Tab, account: Account) -> None:
    """Keyboard only: the email field has focus on arrival, Tab moves on, Enter submits."""
    await tab.open("/app/login")
    await tab.page.keyboard.type(account.email)
    await tab.page.keyboard.press("Tab")
    await tab.page.keyboard.type(account.password)
    await tab.page.keyboard.press("Enter")
    await tab.page.wait_for_url("**/app/w/**")


def next_code(totp: pyotp.TOTP) -> str:
    # The current step's code may already be spent (codes work once); the next step's code is
    # accepted too (clock drift), and is unused.
    import time

    return totp.at(time.time() + 30)


@pytest.fixture
async def tab(browser: Browser, live_url: str, settings: Settings) -> AsyncIterator[Tab]:
    sqlite_only(settings)
    context: BrowserContext = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    opened = Tab(page, live_url)
    yield opened
    await context.close()
    assert not opened.problems, opened.problems


async def enable_two_factor(api: Api, account: Account) -> pyotp.TOTP:
    setup = await api.http.post("/api/v1/auth/2fa/setup", headers=account.headers)
    totp = pyotp.TOTP(setup.json()["data"]["secret"])
    enabled = await api.http.post(
        "/api/v1/auth/2fa/enable", json={"code": totp.now()}, headers=account.headers
    )
    assert enabled.status_code == 200, enabled.text
    return totp


def unique_phone() -> str:
    return "1555" + str(uuid.uuid4().int)[:7]
