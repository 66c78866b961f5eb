"""Listen / whisper / barge from the live monitor in a real browser (Debian's chromium driven by
Playwright), on the simulated backend: the buttons appear only while an agent talks, Listen
rings the supervisor's phone into the call, the row says who listens, Stop ends it."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from commserver.telephony.base import BackendCapability, SpyMode
from commserver.telephony.sim import SimCaller
from monitor.accounts import Role
from tests.monitor.conftest import ServerFactory, add_user, eventually
from tests.monitor.test_browser import TIMEOUT, browser, open_page, shoot, sign_in, sim

__all__ = ["browser"]  # the module's shared chromium, as a fixture here too

pytestmark = pytest.mark.asyncio(loop_scope="module")
#: The call talks for long: at the end the drain need not wait for it.
QUICK = {"server": {"drain_timeout": 0.05}}


async def test_a_supervisor_listens_to_a_talking_agent_from_the_monitor_and_stops(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server(**QUICK) as server:
        await add_user(server, "sue", Role.SUPERVISOR, agent_id="sb")
        page, problems = await open_page(browser)
        await sign_in(page, server, "/monitor", "sue")
        row = page.locator("#agents tr[data-agent='b1']")
        await expect(row.locator(".badge")).to_have_text("ready", timeout=TIMEOUT)
        await expect(page.locator("#spy-phone")).to_have_value("2003")
        listen = row.locator("button.spy-listen")
        await expect(listen).to_be_hidden()  # nobody to listen to yet

        sim(server).place_call(SimCaller(caller="+4930555", digits="2", talk_time=30.0))
        await expect(row.locator(".badge")).to_have_text("busy", timeout=TIMEOUT)
        await expect(listen).to_be_visible(timeout=TIMEOUT)
        await expect(row.locator("button.spy-whisper")).to_be_visible()
        await expect(row.locator("button.spy-barge")).to_be_visible()
        await expect(page.locator("#agents tr[data-agent='s1'] button.spy-listen")).to_be_hidden()

        await listen.click()
        await expect(row.locator(".spy-note")).to_have_text(
            "listened to by sue (listen)", timeout=TIMEOUT
        )
        [command] = sim(server).spies
        assert (command.supervisor.extension, command.mode) == ("2003", SpyMode.LISTEN)
        await expect(listen).to_be_hidden()
        await shoot(page, "monitor-listening.png")

        await row.locator("button.spy-stop").click()
        await expect(row.locator(".spy-note")).to_have_text("", timeout=TIMEOUT)
        await eventually(lambda: server.calls.supervision.sessions == [])
        await expect(listen).to_be_visible(timeout=TIMEOUT)
        assert server.calls.agents["b1"].contact_id is not None  # the call goes on
    assert problems == []


async def test_the_monitor_offers_no_spy_buttons_when_the_backend_cannot(
    make_server: ServerFactory, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_server(**QUICK) as server:
        monkeypatch.setattr(sim(server), "capabilities", frozenset({BackendCapability.RECORD}))
        await add_user(server, "sue", Role.SUPERVISOR, agent_id="sb")
        page, problems = await open_page(browser)
        await sign_in(page, server, "/monitor", "sue")
        row = page.locator("#agents tr[data-agent='b1']")
        sim(server).place_call(SimCaller(caller="+4930555", digits="2", talk_time=30.0))
        await expect(row.locator(".badge")).to_have_text("busy", timeout=TIMEOUT)
        await expect(row.locator("button.spy")).to_have_count(0)
        await expect(page.locator("#spy-phone-field")).to_be_hidden()
    assert problems == []
