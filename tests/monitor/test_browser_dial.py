"""Click-to-dial in a real browser (Debian's chromium via Playwright) on the sim backend: the
agent makes an external number their phone, dials a customer from the dial box, sees the
outbound call with the screen pop found by the dialled number, and wraps it up."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from commserver.agents import AgentState
from commserver.contacts import CallRecord
from commserver.telephony.sim import SimCustomer
from monitor.accounts import Role
from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY,
    Customer,
    InMemoryCustomerDirectory,
)
from tests.monitor.conftest import ServerFactory, add_user
from tests.monitor.test_browser import (
    MARKUP_NAME,
    TIMEOUT,
    browser,
    eventually_async,
    open_page,
    shoot,
    sign_in,
    sim,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
__all__ = ["browser"]  # the module's shared chromium, as a fixture here too


async def test_an_agent_picks_an_external_phone_and_dials_a_customer_from_the_desktop(
    make_server: ServerFactory, browser: Browser
) -> None:
    site = {"queues": [{"name": "support", "skills": {"support": 1}, "wrap_up": 60.0},
                       {"name": "billing", "skills": {"billing": 1}}]}
    async with make_server(**site) as server:
        server.services.register(CUSTOMER_DIRECTORY, InMemoryCustomerDirectory(
            [Customer(4711, MARKUP_NAME, "+49 30 9876543", "eve@example.org", 2, "EW-4711")]
        ))
        sim(server).default_customer = SimCustomer(ring_seconds=0.3, talk_time=1.0)
        await add_user(server, "sam", Role.AGENT, "s1")
        page, problems = await open_page(browser)
        await sign_in(page, server, "/desktop", "sam")
        await expect(page.locator("#phone-now")).to_have_text("extension 2001", timeout=TIMEOUT)

        await page.select_option("#phone-kind", "external")
        await page.fill("#phone-value", "+49 170 5550001")
        await page.click("#phone-save")
        await expect(page.locator("#phone-now")).to_have_text(
            "external number +491705550001", timeout=TIMEOUT)
        assert server.calls.agents["s1"].endpoint.external_number == "+491705550001"

        await page.fill("#dial-number", "+49 30 9876543")
        await page.click("#dial-go")
        await expect(page.locator("#pop-caller-label")).to_have_text("Dialled", timeout=TIMEOUT)
        await expect(page.locator("#pop-state")).to_have_text(
            "On call (outbound)", timeout=TIMEOUT)
        await expect(page.locator("#my-state")).to_have_text("busy")
        await expect(page.locator("#dial-hangup")).to_be_enabled()
        # The screen pop found the customer by the number dialled; their markup stays text.
        await expect(page.locator("#customer-name")).to_have_text(MARKUP_NAME, timeout=TIMEOUT)
        await shoot(page, "desktop-outbound.png")

        await expect(page.locator("#my-state")).to_have_text("wrap-up", timeout=TIMEOUT)
        await page.select_option("#disposition", "Information given")
        await page.click("#wrap-done")
        await expect(page.locator("#my-state")).to_have_text("ready", timeout=TIMEOUT)
        assert server.calls.agents["s1"].state is AgentState.READY
        await eventually_async(
            lambda: server.storage.query(CallRecord, where={"direction": "outbound"}),
            lambda rows: bool(rows) and rows[0].disposition == "Information given",
        )
        (record,) = await server.storage.query(CallRecord, where={"direction": "outbound"})
        pwned = await page.evaluate("window.__pwned === undefined")
    assert record.caller == "+49309876543"
    assert record.agent_id == "s1"
    assert record.customer_id == "4711"
    assert list(sim(server).dialled) == ["+49309876543"]
    assert pwned
    assert problems == []
