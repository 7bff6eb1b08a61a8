"""Real headless Chromium (Debian's, driven by Playwright) for the web console's tests.

``browser`` is one Chromium for the session; ``console`` is a factory of logged-out browser
tabs on a running gateway's console, each with its own console user. Screenshots go to
``tests/artifacts/``. Without Chromium the tests fail under CI (``CI=true``) and skip on a
developer's machine, saying how to install it. Never ``playwright install``: the browser is
the distribution's (``apt-get install chromium fonts-wqy-microhei``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admin.app import CONSOLE
from gateway.console_users import ConsoleUserIn
from tests.gateway_fixtures import RunningGateway

CHROMIUM = os.environ.get("MSGGATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "控制台-correct-horse"
VIEWPORT = {"width": 1360, "height": 860}


def _missing(reason: str) -> None:
    message = f"{reason}: apt-get install chromium fonts-wqy-microhei (see .ci/run)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for the whole run."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _missing(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install -e '.[test]')")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class ConsoleTab:
    """A browser tab on one gateway's console, with a console user to log in as."""

    gateway: RunningGateway
    page: Any  # playwright.async_api.Page
    user: str
    password: str
    role: str
    dialogs: list[str]

    @property
    def base(self) -> str:
        return self.gateway.url + "/admin"

    def url(self, path: str = "/") -> str:
        return self.base + path

    async def goto(self, path: str = "/") -> Any:
        return await self.page.goto(self.url(path))

    async def login(self, user: str | None = None, password: str | None = None) -> None:
        """Log in through the login form; afterwards the page is the overview."""
        await self.goto("/login")
        await self.page.fill("#f-name", user or self.user)
        await self.page.fill("#f-password", password or self.password)
        await self.click("form.stack button[type=submit]")

    async def shot(self, name: str) -> Path:
        """Save a full-page screenshot as tests/artifacts/<name>.png."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def text(self, selector: str = "main") -> str:
        return await self.page.inner_text(selector)

    async def csrf(self) -> str:
        """The session's CSRF token, as the page's forms carry it."""
        return await self.page.get_attribute("input[name=_csrf]", "value")

    async def menu(self, *labels: str) -> None:
        """Follow the sidebar: the last label is the entry to click."""
        nav = self.page.locator("nav.nav")
        await self.click(nav.get_by_role("link", name=labels[-1], exact=True))

    async def click(self, target: Any) -> None:
        """Click what loads a page (a link, a submit button) and wait until it has loaded."""
        locator = self.page.locator(target) if isinstance(target, str) else target
        async with self.page.expect_navigation():
            await locator.click()


MakeConsole = Callable[..., Awaitable[ConsoleTab]]


async def add_console_user(
    gateway: RunningGateway, role: str = "operator", password: str = PASSWORD, **fields: Any
) -> str:
    """A new console user on ``gateway``'s database; returns its name."""
    name = fields.pop("name", None) or f"{role}-{secrets.token_hex(3)}"
    users = gateway.runner.app[CONSOLE].users
    await users.create(ConsoleUserIn(name=name, password=password, role=role, **fields))
    return name


@pytest.fixture
async def console(browser: Any) -> AsyncIterator[MakeConsole]:
    """Factory: ``await console(gateway, role="operator")`` opens a tab with a new user."""
    contexts = []

    async def make(gateway: RunningGateway, role: str = "operator", **fields: Any) -> ConsoleTab:
        user = await add_console_user(gateway, role, **fields)
        context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        dialogs: list[str] = []
        tab = ConsoleTab(gateway, page, user, PASSWORD, role, dialogs)

        async def on_dialog(dialog: Any) -> None:  # confirm() of destructive forms: accept
            dialogs.append(dialog.message)
            await dialog.accept()

        page.on("dialog", on_dialog)
        return tab

    yield make
    for context in contexts:
        await context.close()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
