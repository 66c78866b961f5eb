"""The web front in a real browser (Debian's chromium driven by Playwright): sign-in, the
monitor following the floor, supervisor actions (states, skills), the agent's screen pop,
wrap-up, voicemail and a voicemail callback's "Done", customer markup rendered as text, the
report page with its chart and CSV download. With CARUSO_SCREENSHOTS=1 the run also refreshes
docs/screenshots/."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from commserver.agents import AgentState
from commserver.app import Server
from commserver.contacts import CallRecord
from commserver.keys import VOICEMAIL
from commserver.telephony.sim import SimBackend, SimCaller
from ivr.voicemail import VoicemailMessage
from monitor.accounts import Role
from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY,
    Customer,
    InMemoryCustomerDirectory,
)
from tests.monitor import busy_day
from tests.monitor.conftest import PASSWORD, ServerFactory, add_user, eventually

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MARKUP_NAME = '<img src=x onerror="window.__pwned = 1">Eve <b>Evil</b> & Co'
TIMEOUT = 5000  # ms, for every expectation
T = TypeVar("T")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
#: Screenshots are written only when asked for, so a plain test run leaves the tree clean.
TAKE_SCREENSHOTS = os.environ.get("CARUSO_SCREENSHOTS") == "1"


# One browser for the whole module (each test opens its own page): launching takes a second.
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


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


@dataclass(frozen=True, slots=True)
class Caller:
    """What `VoicemailService.deposit` reads of the contact that left a message."""

    id: str
    caller: str
    customer_id: str | None = None
    queue: str | None = None


async def deposit_message(
    server: Server, box: str, contact_id: str, caller: str
) -> VoicemailMessage:
    """A one-second message in `box`, stored by the voicemail service."""
    service = server.services.get(VOICEMAIL)
    folder = service.root / box
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{contact_id}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 8000)
    await service.deposit(box, Caller(contact_id, caller), path, 1.0)
    (message,) = [m for m in await service.list(box) if m.contact_id == contact_id]
    return message


async def eventually_async(
    read: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 5.0
) -> None:
    """Wait until `check(await read())` holds (polled every 10 ms)."""
    for _ in range(int(timeout / 0.01)):
        if check(await read()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


async def open_page(browser: Browser) -> tuple[Page, list[str]]:
    """A page that records script errors and dialogs (neither may ever happen)."""
    page = await browser.new_page(viewport={"width": 1280, "height": 820})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    return page, problems


async def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Refresh a screenshot in docs/screenshots/ (only with CARUSO_SCREENSHOTS=1)."""
    if TAKE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


async def sign_in(page: Page, server: Server, path: str, name: str) -> None:
    """Open a page, get sent to sign-in, sign in, land back on the page."""
    await page.goto(f"{server.web.url}{path}")
    await expect(page).to_have_url(f"{server.web.url}/login?next={path}", timeout=TIMEOUT)
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in")
    await expect(page).to_have_url(f"{server.web.url}{path}", timeout=TIMEOUT)


async def test_the_monitor_follows_agent_states_and_queued_calls(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server:
        await add_user(server, "sue", Role.SUPERVISOR)
        page, problems = await open_page(browser)
        await sign_in(page, server, "/monitor", "sue")
        s1 = page.locator("#agents tr[data-agent='s1'] .badge")
        await expect(s1).to_have_text("ready", timeout=TIMEOUT)

        server.calls.set_agent_state("s1", AgentState.PAUSED, "Coaching")
        await expect(s1).to_have_text("paused: Coaching", timeout=TIMEOUT)

        server.calls.set_agent_state("b1", AgentState.PAUSED, "Break")
        sim(server).place_call(SimCaller(caller="+4930555", digits="2", patience=3.0))
        waiting = page.locator("#waiting tbody tr")
        await expect(waiting).to_have_count(1, timeout=TIMEOUT)
        await expect(waiting.locator(".caller")).to_have_text("+4930555")
        await expect(page.locator("#queues tr[data-queue='billing'] .waiting")).to_have_text("1")

        server.calls.set_agent_state("b1", AgentState.READY)
        await expect(waiting).to_have_count(0, timeout=TIMEOUT)
        await expect(page.locator("#agents tr[data-agent='b1'] .badge")).to_have_text(
            "busy", timeout=TIMEOUT
        )
    assert problems == []


async def test_a_supervisor_pauses_readies_and_logs_out_an_agent_from_the_monitor(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server:
        await add_user(server, "sue", Role.SUPERVISOR)
        page, problems = await open_page(browser)
        await sign_in(page, server, "/monitor", "sue")
        row = page.locator("#agents tr[data-agent='s1']")
        await expect(row.locator(".badge")).to_have_text("ready", timeout=TIMEOUT)

        await row.locator("select.reason").select_option("Lunch")
        await row.locator("button.pause").click()
        await expect(row.locator(".badge")).to_have_text("paused: Lunch", timeout=TIMEOUT)
        agent = server.calls.agents["s1"]
        assert (agent.state, agent.pause_reason) == (AgentState.PAUSED, "Lunch")

        await row.locator("button.logout").click()
        await expect(row.locator(".badge")).to_have_text("logged-out", timeout=TIMEOUT)
        await row.locator("button.ready").click()
        await expect(row.locator(".badge")).to_have_text("ready", timeout=TIMEOUT)
        assert server.calls.agents["s1"].state is AgentState.READY
    assert problems == []


async def test_an_agent_gets_the_screen_pop_and_customer_markup_stays_text(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server:
        server.services.register(CUSTOMER_DIRECTORY, InMemoryCustomerDirectory(
            [Customer(4711, MARKUP_NAME, "+49 30 9876543", "eve@example.org", 2, "EW-4711", True)]
        ))
        await add_user(server, "ann", Role.AGENT, "sb")
        server.calls.set_agent_state("s1", AgentState.PAUSED, "Break")
        page, problems = await open_page(browser)
        await sign_in(page, server, "/desktop", "ann")
        await expect(page.locator("#my-state")).to_have_text("logged-out", timeout=TIMEOUT)
        await page.click("#go-ready")
        await expect(page.locator("#my-state")).to_have_text("ready", timeout=TIMEOUT)
        assert server.calls.agents["sb"].state is AgentState.READY

        sim(server).place_call(SimCaller(caller="+49309876543", digits="1", talk_time=3.0))
        name = page.locator("#customer-name")
        await expect(name).to_have_text(MARKUP_NAME, timeout=TIMEOUT)
        await expect(page.locator("#pop-caller")).to_have_text("+49309876543")
        await expect(page.locator("#pop-queue")).to_have_text("support")
        await expect(page.locator("#pop-state")).to_have_text("On call", timeout=TIMEOUT)
        assert await page.locator("#customer img, #customer b").count() == 0
        assert await page.evaluate("window.__pwned") is None
        await shoot(page, "agent-desktop.png")
    assert problems == []


async def test_a_caller_not_in_the_directory_is_an_unknown_caller(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server:
        await add_user(server, "sam", Role.AGENT, "s1")
        page, problems = await open_page(browser)
        await sign_in(page, server, "/desktop", "sam")
        await expect(page.locator("#my-state")).to_have_text("ready", timeout=TIMEOUT)
        sim(server).place_call(SimCaller(caller="+4989000111", digits="1", talk_time=1.0))
        await expect(page.locator(".unknown-caller")).to_have_text("Unknown caller",
                                                                   timeout=TIMEOUT)
        await expect(page.locator("#pop-caller")).to_have_text("+4989000111")
    assert problems == []


async def test_a_wrong_password_shows_an_error_and_stays_on_sign_in(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server:
        await add_user(server, "sue", Role.SUPERVISOR)
        page, problems = await open_page(browser)
        await page.goto(f"{server.web.url}/")
        await expect(page).to_have_url(f"{server.web.url}/login", timeout=TIMEOUT)
        await page.fill("#name", "sue")
        await page.fill("#password", "not the password")
        await page.click("#sign-in")
        await expect(page.locator("#login-error")).to_have_text("wrong user name or password",
                                                                timeout=TIMEOUT)
        assert page.url == f"{server.web.url}/login"
        await shoot(page, "sign-in.png")
    assert problems == []


BUSY_FLOOR: dict[str, Any] = {
    "queues": [
        {"name": "support", "skills": {"support": 1}, "wrap_up": 5.0},
        {"name": "billing", "skills": {"billing": 1}, "wrap_up": 5.0, "priority": 2},
        {"name": "sales", "skills": {"sales": 1}, "wrap_up": 5.0},
    ],
    "agents": [
        {"id": "a01", "name": "Anna Becker", "skills": {"support": 80, "billing": 20},
         "logged_in": True},
        {"id": "a02", "name": "Jonas Wolf", "skills": {"support": 60}, "logged_in": True},
        {"id": "a03", "name": "Mia Richter", "skills": {"billing": 70}, "logged_in": True},
        {"id": "a04", "name": "Lukas Braun", "skills": {"billing": 40, "sales": 50},
         "logged_in": True},
        {"id": "a05", "name": "Lea Neumann", "skills": {"sales": 90}, "logged_in": True},
        {"id": "a06", "name": "Paul Schwarz", "skills": {"support": 30, "sales": 30}},
        {"id": "a07", "name": "Emma Zimmer", "skills": {"support": 50}, "logged_in": True},
    ],
    "ivr": {"menu": {"choices": {"1": "support", "2": "billing", "3": "sales"},
                     "timeout": 0.05, "retries": 1}},
}


async def test_a_busy_floor_on_the_monitor(make_server: ServerFactory, browser: Browser) -> None:
    async with make_server(**BUSY_FLOOR) as server:
        await add_user(server, "sue", Role.SUPERVISOR)
        calls = server.calls
        calls.set_agent_state("a05", AgentState.PAUSED, "Lunch")
        calls.set_agent_state("a07", AgentState.PAUSED, "Training")
        for number, digit in (("+49 30 1234567", "1"), ("+49 89 7654321", "2")):
            sim(server).place_call(SimCaller(caller=number, digits=digit, talk_time=30.0))
        await eventually(lambda: sum(a.state is AgentState.BUSY for a in calls.agents.values())
                         == 2)
        sim(server).place_call(SimCaller(caller="+49 40 5550123", digits="1", talk_time=0.2))
        await eventually(lambda: calls.agents["a02"].state is AgentState.WRAP_UP
                         or calls.agents["a01"].state is AgentState.WRAP_UP, timeout=8)
        calls.set_agent_state("a04", AgentState.PAUSED, "Meeting")
        for number, digit in (("+49 221 998877", "3"), ("+49 69 3141592", "3"),
                              ("+49 711 224466", "2")):
            sim(server).place_call(SimCaller(caller=number, digits=digit, patience=60.0))
        # Sales has nobody ready (a04, a05 paused, a06 logged out) and billing's agents are
        # busy or paused: all three wait.
        await eventually(lambda: sum(c.state.value == "queued" for c in calls.live_contacts)
                         == 3, timeout=8)

        page, problems = await open_page(browser)
        await sign_in(page, server, "/monitor", "sue")
        await expect(page.locator("#agents tbody tr")).to_have_count(7, timeout=TIMEOUT)
        await expect(page.locator("#waiting tbody tr")).to_have_count(3, timeout=TIMEOUT)
        await expect(page.locator("#queues tr[data-queue='sales'] .waiting")).to_have_text("2")
        await page.wait_for_timeout(1200)  # let the wait and state clocks tick a little
        await shoot(page, "live-monitor.png", full_page=True)
    assert problems == []


REPORT_SITE: dict[str, Any] = {
    "queues": [
        {"name": "support", "skills": {"support": 1}},
        {"name": "billing", "skills": {"billing": 1}},
        {"name": "sales", "skills": {"sales": 1}, "service_level_seconds": 60},
    ],
    "agents": [{"id": a, "skills": {"support": 50}} for a in busy_day.AGENTS],
    "ivr": {"menu": {"choices": {"1": "support", "2": "billing", "3": "sales"},
                     "timeout": 0.05, "retries": 1}},
}


async def test_the_report_page_shows_a_chart_drills_down_and_the_csv_downloads(
    make_server: ServerFactory, browser: Browser
) -> None:
    records, events, states = busy_day.busy_day(date(2024, 5, 6))
    async with make_server(**REPORT_SITE) as server:
        await server.storage.insert_many(records)
        await server.storage.insert_many(events)
        await server.storage.insert_many(states)
        await add_user(server, "sue", Role.SUPERVISOR)
        page, problems = await open_page(browser)
        await sign_in(page, server, "/reports", "sue")
        support = page.locator("#totals tr[data-key='support']")
        await expect(support).to_be_visible(timeout=TIMEOUT)  # today's report, shown on load
        await page.fill("#from", "2024-05-06")
        await page.fill("#to", "2024-05-06")
        await page.select_option("#interval", "60")
        await page.click("#show")
        offered = sum(r.queue == "support" for r in records)
        await expect(support.locator("button[data-figure='offered']")).to_have_text(
            str(offered), timeout=TIMEOUT
        )
        bars = page.locator("#chart svg.chart rect.bar")
        assert await bars.count() >= 10 * 2  # ten busy hours: answered and abandoned at least
        await expect(page.locator("#chart svg.chart polyline.s-level")).to_have_count(1)

        abandoned = sum(r.queue == "support" and r.outcome == "abandoned" for r in records)
        await support.locator("button[data-figure='abandoned']").click()
        await expect(page.locator("#drill-table tbody tr")).to_have_count(abandoned,
                                                                          timeout=TIMEOUT)
        await expect(page.locator("#drill-table tbody tr td:nth-child(5)").first).to_have_text(
            "abandoned"
        )

        async with page.expect_download(timeout=TIMEOUT) as waiting:
            await page.click("#csv")
        download = await waiting.value
        text = await asyncio.to_thread(Path(await download.path()).read_text)
        assert download.suggested_filename == "caruso-queues-2024-05-06-2024-05-06.csv"
        header, *rows = list(csv.reader(io.StringIO(text)))
        assert header[:4] == ["row", "start", "end", "queue"]
        total = next(r for r in rows if r[0] == "total" and r[3] == "support")
        assert int(total[header.index("offered")]) == offered
        await shoot(page, "reports.png", full_page=True)
    assert problems == []


async def test_a_supervisor_edits_an_agents_skills_from_the_monitor(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server:
        await add_user(server, "sue", Role.SUPERVISOR)
        page, problems = await open_page(browser)
        await sign_in(page, server, "/monitor", "sue")
        row = page.locator("#agents tr[data-agent='s1']")
        await expect(row.locator(".skill-list")).to_have_text("support 50", timeout=TIMEOUT)
        await row.locator("button.edit-skills").click()
        await row.locator("input.skills-input").fill("support 60, billing 15")
        await row.locator("button.save-skills").click()
        await expect(row.locator(".skill-list")).to_have_text("support 60, billing 15",
                                                              timeout=TIMEOUT)
        assert server.calls.agents["s1"].skills == {"support": 60, "billing": 15}
        await row.locator("button.edit-skills").click()
        await row.locator("input.skills-input").fill("support sixty")
        await row.locator("button.save-skills").click()
        await expect(page.locator("#notice")).to_contain_text("levels 1-100")
    assert problems == []


async def test_an_agent_wraps_up_with_a_disposition_and_plays_their_voicemail(
    make_server: ServerFactory, browser: Browser
) -> None:
    site = {"queues": [{"name": "support", "skills": {"support": 1}, "wrap_up": 60.0},
                       {"name": "billing", "skills": {"billing": 1}}],
            "voicemail": {"boxes": {"sam": {"agent": "s1"}}}}
    async with make_server(**site) as server:
        stored = await deposit_message(server, "sam", "c77-sim-9", "+4930555")
        await add_user(server, "sam", Role.AGENT, "s1")
        page, problems = await open_page(browser)
        await sign_in(page, server, "/desktop", "sam")
        message = page.locator(f"#vm-list tr[data-id='{stored.id}']")
        await expect(message.locator(".heard")).to_have_text("no", timeout=TIMEOUT)
        await message.locator("button.play").click()
        await expect(message.locator("audio")).to_have_count(1)
        await expect(message.locator(".heard")).to_have_text("yes", timeout=TIMEOUT)
        heard = await server.services.get(VOICEMAIL).get(stored.id or 0)

        sim(server).place_call(SimCaller(caller="+4930777", digits="1", talk_time=0.3))
        await expect(page.locator("#my-state")).to_have_text("wrap-up", timeout=TIMEOUT)
        await page.select_option("#disposition", "Callback scheduled")
        await page.click("#wrap-done")
        await expect(page.locator("#my-state")).to_have_text("ready", timeout=TIMEOUT)
        (record,) = await server.storage.query(CallRecord, where={"caller": "+4930777"})
    assert heard.heard_by == "sam"  # the voicemail service's own mark
    assert record.disposition == "Callback scheduled"
    assert problems == []


async def test_an_agent_calls_back_an_unheard_voicemail_and_presses_done(
    make_server: ServerFactory, browser: Browser
) -> None:
    site = {"queues": [{"name": "support", "skills": {"support": 1}, "wrap_up": 60.0},
                       {"name": "billing", "skills": {"billing": 1}}],
            "agents": [{"id": "s1", "skills": {"support": 50}}],
            "voicemail": {"callback_after": 0.2}}
    async with make_server(**site) as server:
        stored = await deposit_message(server, "support", "c78-sim-1", "+4930556")
        await add_user(server, "sam", Role.AGENT, "s1")
        page, problems = await open_page(browser)
        await sign_in(page, server, "/desktop", "sam")
        await expect(page.locator("#callback")).to_be_hidden()
        await page.click("#go-ready")
        await expect(page.locator("#callback")).to_be_visible(timeout=TIMEOUT)
        await expect(page.locator("#callback-number")).to_have_text("+4930556")
        await expect(page.locator("#callback-message audio")).to_have_count(1)
        await page.click("#callback-done")
        await expect(page.locator("#my-state")).to_have_text("wrap-up", timeout=TIMEOUT)
        await expect(page.locator("#callback")).to_be_hidden()
        service = server.services.get(VOICEMAIL)
        await eventually_async(
            lambda: service.get(stored.id or 0), lambda m: m.called_back_at is not None
        )
        done = await service.get(stored.id or 0)
    assert done.called_back_by == "s1"
    assert problems == []
