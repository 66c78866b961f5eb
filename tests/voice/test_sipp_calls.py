"""Whole calls through a running Caruso on the sip backend, with SIPp callers and agent phones.

Everything is real: the server from `build_server(config)`, SIP and RTP over loopback, SIPp
(Debian's sip-tester) as caller and as the agent's phone, the RFC 4733 key press and the G.711
audio from sip-tester's sample captures, and the call record read back from SQLite.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from commserver.agents import AgentState, AgentStateChanged
from commserver.contacts import CallRecord, ContactState
from commserver.contacts.events import CallRecordStored, ContactStateChanged
from commserver.events import Subscription
from commserver.telephony.sip import LegRole
from tests.sip.sip_harness import SCENARIOS, SippResult, UdpPeer, free_udp_port, run_sipp
from tests.voice.baresip_phone import baresip_phone
from tests.voice.conftest import ServerFactory, sip_backend, target
from tests.voice.pyvoip_phone import PyVoipAgent

RUN_LOAD = SCENARIOS.parent / "run-load"


def agent_phone(sipp_cwd: Path, port: int, calls: int = 1) -> asyncio.Task[SippResult]:
    """A SIPp agent phone on `port` that answers, talks and waits for the server's BYE."""
    return asyncio.ensure_future(
        run_sipp(
            "-sf",
            str(SCENARIOS / "agent_answer.xml"),
            "-m",
            str(calls),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_udp_port()),
            cwd=sipp_cwd,
            timeout=40,
        )
    )


async def register(
    server_target: str, sipp_cwd: Path, extension: str, password: str, port: int
) -> SippResult:
    """REGISTER `extension` (digest auth) with its contact at 127.0.0.1:`port`."""
    return await run_sipp(
        "-sf", str(SCENARIOS / "register.xml"), "-s", extension, "-au", extension,
        "-ap", password, "-key", "contact_port", str(port), "-m", "1",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), server_target, cwd=sipp_cwd, timeout=10,
    )  # fmt: skip


def caller_scenario(sipp_cwd: Path, digit: str) -> Path:
    """The IVR caller scenario keying `digit` (SIPp loads pcaps when it reads the scenario)."""
    scenario = sipp_cwd / f"caller_ivr_{digit}.xml"
    text = (SCENARIOS / "caller_ivr.xml").read_text()
    scenario.write_text(text.replace("dtmf_2833_1.pcap", f"dtmf_2833_{digit}.pcap"))
    return scenario


async def _connected(states: Subscription[ContactStateChanged]) -> None:
    while (await states.get()).new is not ContactState.CONNECTED:
        pass


async def call_ivr(
    server_target: str, sipp_cwd: Path, *, talk_ms: int = 3500, calls: int = 1, digit: str = "1"
) -> SippResult:
    """A SIPp caller who dials 100, keys `digit`, talks and hangs up after `talk_ms`."""
    return await run_sipp(
        "-sf", str(caller_scenario(sipp_cwd, digit)), "-s", "100", "-m", str(calls),
        "-d", str(talk_ms), "-i", "127.0.0.1", "-mi", "127.0.0.1",
        "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
        server_target, cwd=sipp_cwd, timeout=40,
    )  # fmt: skip


async def test_caller_keys_1_is_queued_and_bridged_to_a_registered_sipp_agent(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        phone_port = free_udp_port()
        phone = agent_phone(sipp_cwd, phone_port)
        try:
            registered = await register(target(server), sipp_cwd, "2001", "pw2001", phone_port)
            assert registered.returncode == 0, registered.errors or registered.stderr
            caller = await call_ivr(target(server), sipp_cwd)
            assert caller.returncode == 0, caller.errors or caller.stderr
            answered = await asyncio.wait_for(phone, 30)
            assert answered.returncode == 0, answered.errors or answered.stderr
        finally:
            phone.cancel()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
        path = []
        while (event := states.get_nowait()) is not None:
            path.append(event.new)
        media = backend.recent_media
    assert record.queue == "support"
    assert record.agent_id == "s1"
    assert record.outcome == "answered"
    assert record.hangup_cause == "caller-hangup"
    assert record.caller.startswith("5550")
    assert record.talk_seconds > 0.5
    assert path[1:5] == [
        ContactState.IVR,
        ContactState.QUEUED,
        ContactState.OFFERED,
        ContactState.CONNECTED,
    ]
    [caller_leg] = [m for m in media.values() if m.role is LegRole.CALLER]
    [agent_leg] = [m for m in media.values() if m.role is LegRole.AGENT]
    # Both sides negotiated PCMA; each leg sent out what the other side's phone said.
    assert caller_leg.codec == agent_leg.codec == "PCMA"
    assert caller_leg.packets_relayed > 20, caller_leg
    assert agent_leg.packets_relayed > 20, agent_leg
    # The caller also heard the menu prompt, played by the server itself.
    assert caller_leg.packets_sent > caller_leg.packets_relayed


async def test_pyvoip_agent_phone_registers_answers_and_both_sides_hear_each_other(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        agent = PyVoipAgent(
            backend.address, "2002", "pw2002", sip_port=free_udp_port(), rtp_port=free_udp_port()
        )
        await asyncio.to_thread(agent.start)
        try:
            assert backend.endpoint.registrar.lookup("2002")
            caller = await call_ivr(target(server), sipp_cwd, talk_ms=5000, digit="2")
            assert caller.returncode == 0, caller.errors or caller.stderr
            await agent.wait_finished(10)
        finally:
            await asyncio.to_thread(agent.stop)
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
        media = backend.recent_media
    assert not agent.errors, agent.errors
    assert agent.answered.is_set()
    assert record.queue == "billing"
    assert record.agent_id == "b1"
    assert record.outcome == "answered"
    [caller_leg] = [m for m in media.values() if m.role is LegRole.CALLER]
    [agent_leg] = [m for m in media.values() if m.role is LegRole.AGENT]
    assert caller_leg.packets_relayed > 20, caller_leg  # pyVoIP's tone reached the caller
    assert agent_leg.packets_relayed > 20, agent_leg  # the caller's audio reached pyVoIP
    assert agent.heard_frames > 10  # ...and pyVoIP decoded it as sound


async def test_malformed_datagrams_during_a_call_do_not_disturb_it(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        phone_port = free_udp_port()
        phone = agent_phone(sipp_cwd, phone_port)
        junk = await UdpPeer.open()
        try:
            registered = await register(target(server), sipp_cwd, "2001", "pw2001", phone_port)
            assert registered.returncode == 0, registered.errors or registered.stderr
            caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=4500))
            async with asyncio.timeout(20):
                while (await states.get()).new is not ContactState.CONNECTED:
                    pass
            host, port = backend.address
            media_ports = [c.media.local_address for c in backend.endpoint.calls.values()]
            assert len(media_ports) == 2
            sip_junk = [
                b"\x00\x01 not sip",
                b"INVITE sip:100@x SIP/2.0\r\n\r\n",
                b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
                (
                    f"BYE sip:100@{host}:{port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{junk.port};branch=z9hG4bK-junk\r\n"
                    "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>;tag=2\r\n"
                    "Call-ID: junk@test\r\nCSeq: x BYE\r\nContent-Length: 0\r\n\r\n"
                ).encode(),
                b"\xff" * 20000,
            ]
            # Valid-looking RTP from a stranger, and bytes that are not RTP at all.
            rtp_junk = [bytes([0x80, 8, 0, 1]) + bytes(8) + bytes(160), b"\x00" * 50, b"x"]
            for _ in range(10):
                for data in sip_junk:
                    junk.send(data, backend.address)
                for address in media_ports:
                    for data in rtp_junk:
                        junk.send(data, address)
                await asyncio.sleep(0.02)
            result = await caller
            assert result.returncode == 0, result.errors or result.stderr
            answered = await asyncio.wait_for(phone, 30)
            assert answered.returncode == 0, answered.errors or answered.stderr
        finally:
            phone.cancel()
            junk.close()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
        media = backend.recent_media
        malformed = backend.endpoint.transport.malformed_count
    assert record.outcome == "answered"
    assert record.hangup_cause == "caller-hangup"
    assert malformed >= 40  # the four unparseable kinds, ten times each (junk BYE gets a 400)
    legs = list(media.values())
    assert {m.role for m in legs} == {LegRole.CALLER, LegRole.AGENT}
    assert all(m.rejected >= 20 for m in legs), legs  # the stranger's packets never relayed
    assert all(m.packets_relayed > 20 for m in legs), legs


async def test_an_agent_logs_in_by_registering_a_baresip_phone_and_takes_the_call(
    make_voice_server: ServerFactory, sipp_cwd: Path, tmp_path: Path
) -> None:
    agents = [
        {"id": "s1", "extension": "2001", "sip_password": "pw2001", "skills": {"support": 50}}
    ]
    sip = {"ready_on_register": True}
    async with make_voice_server(agents=agents, telephony={"sip": sip}) as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        changes = server.bus.subscribe(AgentStateChanged)
        assert server.calls.agents["s1"].state is AgentState.LOGGED_OUT
        async with baresip_phone(tmp_path / "baresip", backend.address, "2001", "pw2001"):
            await agent_becomes(changes, "s1", AgentState.READY)  # registered: logged in
            caller = await call_ivr(target(server), sipp_cwd, talk_ms=4000)
            assert caller.returncode == 0, caller.errors or caller.stderr
            await asyncio.wait_for(stored.get(), 10)
            await agent_becomes(changes, "s1", AgentState.READY)  # after wrap-up
        # baresip unregistered on its way out: the agent is logged out again.
        await agent_becomes(changes, "s1", AgentState.LOGGED_OUT)
        [record] = await server.storage.query(CallRecord)
        media = backend.recent_media
    assert record.queue == "support"
    assert record.agent_id == "s1"
    assert record.outcome == "answered"
    [caller_leg] = [m for m in media.values() if m.role is LegRole.CALLER]
    [agent_leg] = [m for m in media.values() if m.role is LegRole.AGENT]
    assert agent_leg.codec == "PCMU"  # baresip took our first offer; the caller spoke PCMA
    assert caller_leg.packets_relayed > 20, caller_leg  # baresip's tone, transcoded to PCMA
    assert agent_leg.packets_relayed > 20, agent_leg


async def agent_becomes(
    changes: Subscription[AgentStateChanged], agent_id: str, state: AgentState
) -> None:
    """Wait (bounded) for the agent's next move into `state`."""
    async with asyncio.timeout(10):
        while True:
            event = await changes.get()
            if event.agent_id == agent_id and event.new is state:
                return


async def test_run_load_registers_agents_who_log_in_and_serves_its_callers(
    make_voice_server: ServerFactory,
) -> None:
    agents = [
        {
            "id": f"a{ext}",
            "extension": str(ext),
            "sip_password": f"pw{ext}",
            "skills": {"support": 10, "billing": 10},
        }
        for ext in range(2001, 2004)
    ]
    sip = {"ready_on_register": True}
    async with make_voice_server(agents=agents, telephony={"sip": sip}) as server:
        stored = server.bus.subscribe(CallRecordStored)
        load = await asyncio.create_subprocess_exec(
            sys.executable, str(RUN_LOAD), "--server", target(server), "--agents", "3",
            "--callers", "4", "--cps", "2", "--hold", "4", "--settle", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(load.communicate(), 50)
        assert load.returncode == 0, err.decode()
        for _ in range(4):
            await asyncio.wait_for(stored.get(), 10)
        records = await server.storage.query(CallRecord)
        states = {agent.state for agent in server.calls.agents.values()}
    summary = json.loads(out)
    assert summary["ok"] is True
    assert sum(d["successful"] for d in summary["calls"].values()) == 4
    assert sorted(r.queue or "" for r in records) == ["billing", "billing", "support", "support"]
    assert {r.outcome for r in records} == {"answered"}
    assert states == {AgentState.LOGGED_OUT}  # run-load unregistered its phones at the end


async def test_a_baresip_agent_registered_over_tcp_takes_the_call_on_its_connection(
    make_voice_server: ServerFactory, sipp_cwd: Path, tmp_path: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        async with baresip_phone(tmp_path / "baresip", backend.address, "2001", "pw2001", tcp=True):
            tcp = backend.endpoint.transport.tcp
            assert tcp is not None
            for _ in range(200):  # registered, over a connection it keeps open
                if backend.endpoint.registrar.lookup("2001") and tcp.connections:
                    break
                await asyncio.sleep(0.05)
            [binding] = backend.endpoint.registrar.lookup("2001")
            assert binding.source in tcp.connections
            caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=3000))
            connected = asyncio.ensure_future(_connected(states))
            await asyncio.wait({caller, connected}, timeout=40, return_when=asyncio.FIRST_COMPLETED)
            if not connected.done():  # the caller gave up first, or the machine is very slow
                connected.cancel()
                pytest.fail(f"the call never connected; caller: {await caller}")
            [agent_leg] = [
                c
                for c in backend.endpoint.calls.values()
                if c.dialog.remote_address in tcp.connections
            ]
            result = await caller
            assert result.returncode == 0, result.errors or result.stderr
            await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
        media = backend.recent_media
    assert agent_leg.dialed == "2001"
    assert record.outcome == "answered"
    assert record.agent_id == "s1"
    [agent_media] = [m for m in media.values() if m.role is LegRole.AGENT]
    assert agent_media.packets_relayed > 20, agent_media  # the caller reached baresip
    assert agent_media.packets_received > 20, agent_media  # and baresip's tone came back
