"""The reports over HTTP on a running server: the known morning's figures as JSON and CSV, the
drill-down behind every figure, the queue_log download; and today's live figures on the
monitor agreeing with today's report after real (simulated) calls."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from typing import Any

from commserver.agents import AgentState
from commserver.app import Server
from commserver.telephony.sim import SimBackend, SimCaller
from monitor.accounts import Role
from monitor.context import WEB
from monitor.figures import COUNTS
from tests.monitor import known_history as known
from tests.monitor.conftest import ServerFactory, WebClient, add_user, eventually

MakeClient = Callable[[Server], WebClient]
KNOWN_SITE: dict[str, Any] = {
    "queues": [
        {"name": "support", "skills": {"support": 1}, "service_level_seconds": 20},
        {"name": "sales", "skills": {"sales": 1}, "service_level_seconds": 60},
    ],
    "agents": [
        {"id": "a1", "skills": {"support": 50}},
        {"id": "a2", "skills": {"support": 50, "sales": 50}},
    ],
    "ivr": {"menu": {"choices": {"1": "support", "2": "sales"}, "timeout": 0.05, "retries": 1}},
}
PERIOD = "from=2024-05-06T09:00:00&to=2024-05-06T11:00:00&tz=UTC"


async def store_known_history(server: Server) -> None:
    await server.storage.insert_many(known.RECORDS)
    await server.storage.insert_many(known.EVENTS)
    await server.storage.insert_many(known.AGENT_STATES)


async def supervisor(server: Server, make: MakeClient) -> WebClient:
    await add_user(server, "sue", Role.SUPERVISOR)
    browser = make(server)
    await browser.login("sue")
    return browser


def by_key(rows: list[dict[str, Any]], key: str, name: str) -> dict[str, Any]:
    return next(row for row in rows if row[key] == name)


async def test_the_queue_report_answers_the_hand_worked_figures(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**KNOWN_SITE) as server, await supervisor(server, web_client) as sue:
        await store_known_history(server)
        status, body = await sue.call("GET", f"/api/reports/queues?{PERIOD}&interval=60")
    assert status == 200
    support = by_key(body["totals"], "queue", "support")
    assert {name: support[name] for name in COUNTS} == known.SUPPORT_TOTAL
    assert support["service_level"] == 2 / 6
    assert abs(support["asa"] - known.SUPPORT_ASA) < 1e-9
    assert abs(support["aht"] - known.SUPPORT_AHT) < 1e-9
    assert by_key(body["totals"], "queue", "sales")["answered_within"] == 1  # T = 60 s
    assert [(r["start"], r["queue"], r["offered"]) for r in body["rows"]] == [
        ("2024-05-06T09:00:00+00:00", "support", 5),
        ("2024-05-06T09:00:00+00:00", "sales", 0),
        ("2024-05-06T10:00:00+00:00", "support", 1),
        ("2024-05-06T10:00:00+00:00", "sales", 1),
    ]
    assert body["overall"]["offered"] == 7


async def test_the_agent_report_has_availability_and_occupancy_from_state_changes(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**KNOWN_SITE) as server, await supervisor(server, web_client) as sue:
        await store_known_history(server)
        status, body = await sue.call("GET", f"/api/reports/agents?{PERIOD}&interval=30")
    assert status == 200
    a1 = by_key(body["totals"], "agent", "a1")
    assert (a1["offered"], a1["answered"], a1["missed"]) == (3, 2, 1)
    assert a1["staffed_seconds"] == known.A1_STAFFED
    assert a1["availability"] == 2 / 3
    assert a1["occupancy"] == (known.A1_BUSY + known.A1_WRAP) / known.A1_STAFFED
    a2 = by_key(body["totals"], "agent", "a2")
    assert a2["staffed_seconds"] == known.A2_STAFFED  # logged in before 09:00, never out


async def test_the_csv_download_is_the_report(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**KNOWN_SITE) as server, await supervisor(server, web_client) as sue:
        await store_known_history(server)
        async with sue.http.get(
            f"{sue.base}/api/reports/queues?{PERIOD}&interval=30&format=csv"
        ) as response:
            status, kind = response.status, response.content_type
            disposition = response.headers["Content-Disposition"]
            text = await response.text()
    assert (status, kind) == (200, "text/csv")
    assert disposition == 'attachment; filename="caruso-queues-2024-05-06-2024-05-06.csv"'
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len([r for r in rows if r["row"] == "interval"]) == 4 * 2
    support = next(r for r in rows if r["row"] == "total" and r["queue"] == "support")
    assert {name: int(support[name]) for name in COUNTS} == known.SUPPORT_TOTAL


async def test_every_figure_drills_down_to_as_many_contacts(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**KNOWN_SITE) as server, await supervisor(server, web_client) as sue:
        await store_known_history(server)
        _, report = await sue.call("GET", f"/api/reports/queues?{PERIOD}&interval=60")
        checked = 0
        for row in [*report["rows"], *report["totals"]]:
            start = f"&start={row['start'].replace('+', '%2B')}" if row in report["rows"] else ""
            for name in COUNTS:
                status, body = await sue.call(
                    "GET",
                    f"/api/reports/contacts?{PERIOD}&interval=60&figure={name}"
                    f"&queue={row['queue']}{start}",
                )
                assert status == 200
                assert body["total"] == row[name], (row["queue"], row["start"], name)
                assert len(body["contacts"]) == row[name]
                checked += row[name]
        _, missed = await sue.call(
            "GET", f"/api/reports/contacts?{PERIOD}&figure=missed&by=agent&agent=a1"
        )
    assert checked > 0
    assert [c["contact_id"] for c in missed["contacts"]] == ["c2"]
    assert missed["contacts"][0]["caller"] == "+49302"


async def test_the_queue_log_download_is_asterisk_format(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**KNOWN_SITE) as server, await supervisor(server, web_client) as sue:
        await store_known_history(server)
        status, text = await sue.call("GET", f"/api/reports/queue_log?{PERIOD}")
    assert status == 200
    lines = text.splitlines()
    c2 = [line.split("|")[4] for line in lines if line.split("|")[1] == "c2"]
    assert c2 == ["ENTERQUEUE", "RINGNOANSWER", "CONNECT", "COMPLETEAGENT"]
    assert all(len(line.split("|")) >= 5 for line in lines)
    assert any(line.endswith("|AGENTLOGOFF|Agent/a1|5400") for line in lines)


async def test_bad_report_requests_get_a_clear_400_and_agents_are_refused(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**KNOWN_SITE) as server, await supervisor(server, web_client) as sue:
        await add_user(server, "ann", Role.AGENT, "a1")
        bad = [
            await sue.call("GET", f"/api/reports/queues?{query}")
            for query in ("from=tomorrow", "interval=7", "from=2020-01-01&to=2024-01-01",
                          "tz=Nowhere/City", "formula=fastest", "format=xls")
        ]
        no_figure = await sue.call("GET", "/api/reports/contacts?figure=everything")
        outside = await sue.call(
            "GET", f"/api/reports/contacts?{PERIOD}&figure=offered&start=2024-05-07T00:00:00Z"
        )
        async with web_client(server) as ann:
            await ann.login("ann")
            refused = await ann.call("GET", "/api/reports/queues")
    assert [status for status, _ in bad] == [400] * 6
    assert all(body["error"] == "invalid-request" for _, body in bad)
    assert bad[0][1]["details"]["field"] == "from"
    assert no_figure[0] == 400
    assert outside[0] == 400
    assert refused[0] == 403


# -- live and historical -----------------------------------------------------------------------

LIVE_SITE: dict[str, Any] = {
    "queues": [
        {"name": "support", "skills": {"support": 1}, "wrap_up": 0.05, "ring_timeout": 0.3,
         "service_level_seconds": 20},
        {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.05,
         "service_level_seconds": 0.05},
        {"name": "sales", "skills": {"sales": 1}, "on_no_agents": "voicemail"},
    ],
    "agents": [
        {"id": "s1", "skills": {"support": 50}, "logged_in": True},
        {"id": "s2", "skills": {"support": 40}, "logged_in": True},
        {"id": "b1", "skills": {"billing": 50}, "logged_in": True},
    ],
    "ivr": {"menu": {"choices": {"1": "support", "2": "billing", "3": "sales"},
                     "timeout": 0.05, "retries": 1}},
}


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


async def run_a_morning(server: Server) -> None:
    """Answered, missed-then-answered, abandoned and voicemail contacts, all finished."""
    backend = sim(server)
    backend.unanswering.add("s1")  # s1's phone rings out: a miss, then s2 answers
    for n in range(3):
        backend.place_call(SimCaller(caller=f"+4930100{n}", digits="1", talk_time=0.1))
    backend.place_call(SimCaller(caller="+4930200", digits="2", talk_time=0.1))  # b1 answers
    await eventually(lambda: server.calls.agents["b1"].state is not AgentState.READY)
    server.calls.set_agent_state("b1", AgentState.PAUSED, "Break")
    backend.place_call(SimCaller(caller="+4930201", digits="2", patience=0.2))  # abandons
    backend.place_call(SimCaller(caller="+4930300", digits="3", talk_time=0.1))  # voicemail
    await eventually(lambda: len(server.calls.live_contacts) == 0 and backend.live_calls == 0,
                     timeout=15)


async def test_live_and_historical_figures_agree_for_today(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**LIVE_SITE) as server, await supervisor(server, web_client) as sue:
        await run_a_morning(server)
        stats = server.web.app[WEB].floor.stats
        live: dict[str, Any] = {}
        historical: dict[str, Any] = {}
        for _ in range(100):  # the history recorder writes in batches: give it a moment
            _, monitor = await sue.call("GET", "/api/monitor")
            _, report = await sue.call("GET", "/api/reports/queues?interval=day")
            live = {
                q["name"]: (q["offered_today"], q["answered_today"], q["answered_within_today"],
                            q["abandoned_today"], q["service_level_today"],
                            stats.figures(q["name"]).missed,
                            stats.figures(q["name"]).overflowed)
                for q in monitor["queues"]
            }
            historical = {
                t["queue"]: (t["offered"], t["answered"], t["answered_within"], t["abandoned"],
                             t["service_level"], t["missed"], t["overflowed"])
                for t in report["totals"]
            }
            if live == historical:
                break
            await asyncio.sleep(0.05)
    assert live == historical
    assert live["support"][:4] == (3, 3, 3, 0)
    assert live["support"][5] >= 1  # s1 let at least one call ring out
    assert (live["billing"][0], live["billing"][1], live["billing"][3]) == (2, 1, 1)
    assert live["sales"] == (1, 0, 0, 0, 0.0, 0, 1)
