"""Dialog scripts in a real browser (Debian's chromium driven by Playwright): the public
self-service page run from start to end, and the agent desktop's script pane on a call. Both
must store the run the API tests store; neither page may raise a script error."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from commserver.telephony.sim import SimBackend, SimCaller
from monitor.accounts import Role
from tests.channels.conftest import READING_DAY, SCRIPT, ChannelServer, eventually
from tests.channels.test_three_channels import PATH
from tests.monitor.conftest import PASSWORD, add_user

Factory = Callable[..., AbstractAsyncContextManager[ChannelServer]]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TAKE_SCREENSHOTS = os.environ.get("CARUSO_SCREENSHOTS") == "1"


async def refresh_screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Refresh a picture in docs/screenshots/ (only with CARUSO_SCREENSHOTS=1)."""
    if TAKE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)
TIMEOUT = 5000  # ms, for every expectation
HAVE_CHROMIUM = Path(CHROMIUM).exists()

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Chromium from Debian (a downloaded browser build cannot run here)."""
    if not HAVE_CHROMIUM:
        if os.environ.get("CARUSO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Browser) -> tuple[Page, list[str]]:
    """A page that records script errors and dialogs (neither may ever happen)."""
    page = await browser.new_page(viewport={"width": 1100, "height": 760})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    return page, problems


async def answer_the_meter_reading(page: Page, end: str) -> None:
    """Answer the meter-reading script the way a person does, step by step."""
    step = page.locator("#script-step-title")
    await expect(step).to_have_attribute("data-step", "ask_account", timeout=TIMEOUT)
    await page.fill("#script-answer", "12")  # below the minimum: refused, the step stays
    await page.click("#script-next")
    await expect(page.locator("#script-error")).to_have_text(
        "the number must be at least 100000", timeout=TIMEOUT
    )
    await page.fill("#script-answer", "4711001")
    await page.click("#script-next")
    await expect(step).to_have_attribute("data-step", "meter_kind", timeout=TIMEOUT)
    await page.click("button.choice[data-value='gas']")
    await expect(step).to_have_attribute("data-step", "reading", timeout=TIMEOUT)
    await page.fill("#script-answer", "1500")
    await page.click("#script-next")
    await expect(step).to_have_attribute("data-step", "reading_date", timeout=TIMEOUT)
    await page.fill("#script-answer", READING_DAY.isoformat())
    await page.click("#script-next")
    await expect(step).to_have_attribute("data-step", "confirm", timeout=TIMEOUT)
    await expect(page.locator("#script-text")).to_contain_text("The gas meter showed 1500")
    await page.click("#script-yes")
    await expect(page.locator("#script-end")).to_have_text(end, timeout=TIMEOUT)


async def test_a_customer_reports_a_meter_reading_on_the_self_service_page(
    channel_server: Factory, browser: Browser
) -> None:
    async with channel_server() as server:
        page, problems = await open_page(browser)
        await page.goto(f"{server.url}/self-service/{SCRIPT}")
        await expect(page.locator("#ss-title")).to_have_text("Meter reading", timeout=TIMEOUT)
        await page.click("#ss-start")
        await answer_the_meter_reading(page, "Done. Thank you!")
        # Hints, dispositions and actions are for agents: the public page never shows them.
        assert await page.locator("#script-hint, #script-actions").count() == 0
        await expect(page.locator("#ss-restart")).to_be_visible()
        await refresh_screenshot(page, "self-service.png")

        (run,) = await server.runs(channel="web")
        stored = await server.stored(run.id)
        assert stored["status"] == "completed"
        assert stored["path"] == PATH
        assert stored["answers"]["reading_date"] == READING_DAY.isoformat()
        # A reload shows the finished run again (the cookie names it).
        await page.reload()
        await expect(page.locator("#script-end")).to_have_text("Done. Thank you!", timeout=TIMEOUT)
        await page.goto(f"{server.url}/self-service/billing-complaint")
        assert "404" in (await page.content())
    assert problems == []


async def test_an_agent_follows_the_script_in_the_desktop_pane(
    channel_server: Factory, browser: Browser
) -> None:
    async with channel_server() as server:
        await add_user(server.server, "mia", Role.AGENT, "m1")
        page, problems = await open_page(browser)
        await page.goto(f"{server.url}/desktop")
        await page.fill("#name", "mia")
        await page.fill("#password", PASSWORD)
        await page.click("#sign-in")
        await expect(page.locator("#my-state")).to_have_text("ready", timeout=TIMEOUT)
        backend = server.server.backend
        assert isinstance(backend, SimBackend)
        backend.place_call(SimCaller(caller="+4930246810", digits="1", talk_time=20.0))
        await expect(page.locator("#script-title")).to_have_text("Meter reading", timeout=TIMEOUT)
        await page.fill("#script-answer", "4711001")
        await page.click("#script-next")
        await page.click("button.choice[data-value='gas']")
        # The agent sees the hint with what the metering system said.
        await expect(page.locator("#script-hint")).to_have_text(
            "The last reading was 1000.", timeout=TIMEOUT
        )
        await page.click("#script-back")
        await expect(page.locator("#script-step-title")).to_have_attribute(
            "data-step", "meter_kind", timeout=TIMEOUT
        )
        step = page.locator("#script-step-title")
        await page.click("button.choice[data-value='gas']")
        await expect(step).to_have_attribute("data-step", "reading", timeout=TIMEOUT)
        await page.fill("#script-answer", "1500")
        await page.click("#script-next")
        await expect(step).to_have_attribute("data-step", "reading_date", timeout=TIMEOUT)
        await page.fill("#script-answer", READING_DAY.isoformat())
        await page.click("#script-next")
        await expect(step).to_have_attribute("data-step", "confirm", timeout=TIMEOUT)
        await refresh_screenshot(page, "script-pane.png", full_page=True)
        await page.click("#script-yes")
        await expect(page.locator("#script-end")).to_have_text(
            "Finished: reading-recorded.", timeout=TIMEOUT
        )
        await expect(page.locator("#script-actions")).to_contain_text(
            "call-service metering.submit_reading"
        )

        async def completed() -> bool:
            return bool(await server.runs(channel="agent", status="completed"))

        await eventually(completed)
        (run,) = await server.runs(channel="agent")
        stored = await server.stored(run.id)
        assert run.agent == "m1"
        # Every step entered is in the path, the step back included.
        assert stored["path"] == [*PATH[:4], "meter_kind", "reading", *PATH[4:]]
        assert stored["answers"]["reading"] == 1500
    assert problems == []
