"""Click-to-dial on the sip backend with real peers: a pyVoIP agent phone answers first, then
the customer (a SIPp UAS standing in for the trunk, echoing RTP) answers; audio flows both
ways through the relay; the hang-up BYEs both; the record is outbound with the agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from commserver.app import Server
from commserver.contacts import CallRecord, ContactState
from commserver.contacts.events import CallRecordStored
from commserver.telephony.base import BackendCapability
from commserver.telephony.sip import LegRole, SipBackend
from tests.monitor.conftest import eventually
from tests.sip.sip_harness import SCENARIOS, SippResult, free_udp_port, run_sipp, udp_port_bound
from tests.voice.conftest import ServerFactory
from tests.voice.pyvoip_phone import PyVoipAgent


@dataclass
class Outbound:
    """A server with a trunk, agent s1's pyVoIP phone registered, and the customer's SIPp."""

    server: Server
    backend: SipBackend
    agent: PyVoipAgent
    customer: asyncio.Task[SippResult]


@asynccontextmanager
async def outbound_site(
    make_voice_server: ServerFactory, sipp_cwd: Path, scenario: str, *sipp: str
) -> AsyncIterator[Outbound]:
    trunk_port = free_udp_port()
    async with make_voice_server(
        telephony={"sip": {"trunk": f"127.0.0.1:{trunk_port}"}}
    ) as server:
        backend = server.backend
        assert isinstance(backend, SipBackend)
        customer = asyncio.ensure_future(
            run_sipp(
                "-sf", str(SCENARIOS / scenario), "-m", "1", "-i", "127.0.0.1",
                "-p", str(trunk_port), *sipp, cwd=sipp_cwd, timeout=30,
            )
        )
        agent = PyVoipAgent(
            backend.address, "2001", "pw2001", sip_port=free_udp_port(), rtp_port=free_udp_port()
        )
        await asyncio.to_thread(agent.start)
        try:
            await udp_port_bound(trunk_port)
            yield Outbound(server, backend, agent, customer)
        finally:
            customer.cancel()
            await asyncio.to_thread(agent.stop)


async def test_an_agent_dials_a_customer_through_the_trunk_and_they_talk(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    echo = ("-mi", "127.0.0.1", "-mp", str(free_udp_port()), "-rtp_echo")
    async with outbound_site(make_voice_server, sipp_cwd, "uas_answer.xml", *echo) as site:
        server, agent = site.server, site.agent
        assert BackendCapability.DIAL_OUT in site.backend.capabilities
        stored = server.bus.subscribe(CallRecordStored)
        contact = server.calls.dial("s1", "+4930123456")
        await eventually(lambda: contact.state is ContactState.CONNECTED, 15)
        # pyVoIP's tone goes out to the customer, whose echo comes back to pyVoIP.
        await eventually(lambda: agent.heard_frames > 30, 15)
        server.calls.hang_up_outbound("s1")
        result = await asyncio.wait_for(site.customer, 20)
        await agent.wait_finished(10)
        event = await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
        media = site.backend.recent_media
    assert result.returncode == 0, result.errors or result.stderr  # INVITE, ACK, our BYE
    assert not agent.errors, agent.errors
    assert event.contact_id == contact.id
    assert record.direction == "outbound"
    assert record.agent_id == "s1"
    assert record.outcome == "answered"
    assert record.caller == "+4930123456"
    assert record.hangup_cause == "agent-hangup"
    [agent_leg] = [m for m in media.values() if m.role is LegRole.AGENT]
    [customer_leg] = [m for m in media.values() if m.role is LegRole.CUSTOMER]
    assert customer_leg.packets_relayed > 20, customer_leg  # the agent reached the customer
    assert agent_leg.packets_relayed > 20, agent_leg  # and the customer reached the agent


async def test_a_busy_customer_is_recorded_as_busy_and_the_agent_phone_is_hung_up(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with outbound_site(make_voice_server, sipp_cwd, "uas_busy.xml") as site:
        stored = site.server.bus.subscribe(CallRecordStored)
        site.server.calls.dial("s1", "+4930123456")
        await asyncio.wait_for(stored.get(), 20)
        await site.agent.wait_finished(10)
        result = await asyncio.wait_for(site.customer, 20)
        [record] = await site.server.storage.query(CallRecord)
    assert result.returncode == 0, result.errors or result.stderr
    assert site.agent.answered.is_set()
    assert (record.direction, record.outcome, record.hangup_cause) == ("outbound", "busy", "busy")
    assert record.answered_at is None
