"""Transfers and hold through a running Caruso on the sip backend, with real phones.

SIPp callers dial 100 and key 1; the agent's phone is SIPp (a REFER scenario), baresip (driven
over its control socket: hold, resume, transfer) or a scripted raw SIP phone (attended
transfer, which needs two dialogs SIPp cannot hold in one scenario). The target is a SIPp
phone registered as 2002, or a SIPp trunk. Each test reads the stored call record back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from commserver.contacts import CallRecord, ContactState
from commserver.contacts.events import CallRecordStored, ContactStateChanged
from commserver.events import Subscription
from commserver.sip import RtpRelay, SipCall
from commserver.sip.sdp import Direction
from commserver.telephony.base import BackendCapability, TelephonyError
from commserver.telephony.sip import LegRole
from tests.sip.sip_harness import SCENARIOS, SippResult, UdpPeer, free_udp_port, run_sipp
from tests.voice.conftest import ServerFactory, sip_backend, target
from tests.voice.raw_phone import RawPhone
from tests.voice.test_sipp_calls import agent_phone, call_ivr, register

OUTSIDE = "00441632960123"


def refer_phone(sipp_cwd: Path, port: int, refer_to: str, *extra: str) -> asyncio.Task[SippResult]:
    """A SIPp agent phone on `port` that answers, talks, then REFERs its caller to `refer_to`."""
    sipp = run_sipp(
        "-sf", str(SCENARIOS / "agent_refer.xml"), "-key", "refer_to", refer_to,
        "-m", "1", "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
        "-mp", str(free_udp_port()), *extra, cwd=sipp_cwd, timeout=40,
    )  # fmt: skip
    return asyncio.ensure_future(sipp)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded, polling) until `predicate()` holds."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def until_state(states: Subscription[ContactStateChanged], state: ContactState) -> None:
    """Wait (bounded) for a contact to reach `state`."""
    async with asyncio.timeout(30):
        while (await states.get()).new is not state:
            pass


def relay_of(call: SipCall) -> RtpRelay | None:
    """The relay a leg is in now (a function, so each look is a fresh one)."""
    return call.relay


async def test_refer_to_an_outside_number_needs_the_phones_credentials(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    trunk_port = free_udp_port()
    sip = {"trunk": f"127.0.0.1:{trunk_port}"}
    async with make_voice_server(telephony={"sip": sip}) as server:
        stored = server.bus.subscribe(CallRecordStored)
        host, port = sip_backend(server).address
        phone_port = free_udp_port()
        # The agent phone answers the 407 with its own extension's credentials.
        phone = refer_phone(
            sipp_cwd, phone_port, OUTSIDE,
            "-au", "2001", "-ap", "pw2001", "-auth_uri", f"caruso@{host}:{port}",
        )  # fmt: skip
        answering = run_sipp(
            "-sf", str(SCENARIOS / "uas_answer.xml"), "-m", "1", "-i", "127.0.0.1",
            "-p", str(trunk_port), "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
            cwd=sipp_cwd, timeout=40,
        )  # fmt: skip
        trunk = asyncio.ensure_future(answering)
        try:
            done = await register(target(server), sipp_cwd, "2001", "pw2001", phone_port)
            assert done.returncode == 0, done.errors or done.stderr
            caller = await call_ivr(target(server), sipp_cwd, talk_ms=5000)
            assert caller.returncode == 0, caller.errors or caller.stderr
            transferor = await asyncio.wait_for(phone, 30)
            assert transferor.returncode == 0, transferor.errors or transferor.stderr
            outside = await asyncio.wait_for(trunk, 30)
            assert outside.returncode == 0, outside.errors or outside.stderr
        finally:
            phone.cancel()
            trunk.cancel()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
    assert record.outcome == "transferred"


async def test_refer_to_an_outside_number_without_credentials_never_reaches_the_trunk(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    trunk = await UdpPeer.open()
    try:
        sip = {"trunk": f"127.0.0.1:{trunk.port}"}
        async with make_voice_server(telephony={"sip": sip}) as server:
            stored = server.bus.subscribe(CallRecordStored)
            phone_port = free_udp_port()
            # Wrong password: the REFER is challenged, then refused; the call goes on.
            phone = refer_phone(sipp_cwd, phone_port, OUTSIDE, "-au", "2001", "-ap", "guess")
            try:
                done = await register(target(server), sipp_cwd, "2001", "pw2001", phone_port)
                assert done.returncode == 0, done.errors or done.stderr
                caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=4000))
                refused = await asyncio.wait_for(phone, 30)
                await asyncio.wait_for(caller, 40)
            finally:
                phone.cancel()
            await asyncio.wait_for(stored.get(), 10)
            [record] = await server.storage.query(CallRecord)
            reached_trunk = await trunk.silence(0.3)
    finally:
        trunk.close()
    assert refused.returncode != 0  # the scenario expected a 202 after its credentials
    assert "403" in refused.errors or "403" in refused.stdout + refused.stderr
    assert reached_trunk == []
    assert record.outcome == "answered"  # the caller stayed with the agent


async def test_caruso_moves_a_caller_to_another_extension_and_records_the_whole_call(
    make_voice_server: ServerFactory, sipp_cwd: Path, tmp_path: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        first_port, second_port = free_udp_port(), free_udp_port()
        first, second = agent_phone(sipp_cwd, first_port), agent_phone(sipp_cwd, second_port)
        recording = tmp_path / "recordings" / "call.wav"
        try:
            for extension, port in (("2001", first_port), ("2002", second_port)):
                done = await register(target(server), sipp_cwd, extension, f"pw{extension}", port)
                assert done.returncode == 0, done.errors or done.stderr
            caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=5000))
            await until_state(states, ContactState.CONNECTED)
            [call_id] = [c.id for c in backend.endpoint.calls.values() if c.dialed == "100"]
            await backend.start_recording(call_id, recording)
            await asyncio.sleep(1.0)  # the caller and agent 2001 talk a little
            await backend.blind_transfer(call_id, "2002")
            await backend.stop_recording(call_id)  # the contact ended: already stopping
            result = await asyncio.wait_for(caller, 40)
            assert result.returncode == 0, result.errors or result.stderr
            for phone in (first, second):
                answered = await asyncio.wait_for(phone, 30)
                assert answered.returncode == 0, answered.errors or answered.stderr
        finally:
            first.cancel()
            second.cancel()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
    assert record.outcome == "transferred"
    assert record.agent_id == "s1"
    assert recording.exists()
    assert recording.stat().st_size > 8000 * 2 * 1  # more than a second of 8 kHz 16-bit audio


async def test_caruso_attended_transfer_moves_the_caller_once_the_agent_leaves(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        first_port, second_port = free_udp_port(), free_udp_port()
        first, second = agent_phone(sipp_cwd, first_port), agent_phone(sipp_cwd, second_port)
        try:
            for extension, port in (("2001", first_port), ("2002", second_port)):
                done = await register(target(server), sipp_cwd, extension, f"pw{extension}", port)
                assert done.returncode == 0, done.errors or done.stderr
            caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=4500))
            await until_state(states, ContactState.CONNECTED)
            [call_id] = [c.id for c in backend.endpoint.calls.values() if c.dialed == "100"]
            caller_leg = backend.endpoint.get_call(call_id)
            [agent_leg] = [c for c in backend.endpoint.calls.values() if c.dialed == "2001"]
            await backend.attended_transfer(call_id, "2002")
            [consulted] = [c for c in backend.endpoint.calls.values() if c.dialed == "2002"]
            # The agent talks to 2002 while the caller waits on music.
            assert consulted.relay is not None
            assert agent_leg.relay is consulted.relay
            assert caller_leg is not None
            assert relay_of(caller_leg) is None
            await agent_leg.hangup()  # the agent leaves: the caller moves to 2002
            await until_state(states, ContactState.TRANSFERRED)
            assert relay_of(caller_leg) is not None
            assert relay_of(caller_leg) is consulted.relay
            result = await asyncio.wait_for(caller, 40)
            assert result.returncode == 0, result.errors or result.stderr
            for phone in (first, second):
                answered = await asyncio.wait_for(phone, 30)
                assert answered.returncode == 0, answered.errors or answered.stderr
        finally:
            first.cancel()
            second.cancel()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
    assert record.outcome == "transferred"


async def test_a_transfer_to_a_busy_phone_puts_the_caller_back_with_the_agent(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        port, busy_port = free_udp_port(), free_udp_port()
        phone = agent_phone(sipp_cwd, port)
        busy_sipp = run_sipp(
            "-sf", str(SCENARIOS / "uas_busy.xml"), "-m", "1", "-i", "127.0.0.1",
            "-p", str(busy_port), cwd=sipp_cwd, timeout=30,
        )  # fmt: skip
        busy = asyncio.ensure_future(busy_sipp)
        try:
            for extension, at in (("2001", port), ("2002", busy_port)):
                done = await register(target(server), sipp_cwd, extension, f"pw{extension}", at)
                assert done.returncode == 0, done.errors or done.stderr
            caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=4000))
            await until_state(states, ContactState.CONNECTED)
            [call_id] = [c.id for c in backend.endpoint.calls.values() if c.dialed == "100"]
            [agent_leg] = [c for c in backend.endpoint.calls.values() if c.dialed == "2001"]
            with pytest.raises(TelephonyError, match="cannot transfer"):
                await backend.blind_transfer(call_id, "2099")  # nobody: refused before ringing
            with pytest.raises(TelephonyError, match="busy"):
                await backend.blind_transfer(call_id, "2002")
            caller_leg = backend.endpoint.get_call(call_id)
            assert caller_leg is not None
            assert caller_leg.relay is not None
            assert caller_leg.relay is agent_leg.relay  # back with the agent
            refused = await asyncio.wait_for(busy, 30)
            assert refused.returncode == 0, refused.errors or refused.stderr
            result = await asyncio.wait_for(caller, 40)
            assert result.returncode == 0, result.errors or result.stderr
            await asyncio.wait_for(phone, 30)
        finally:
            phone.cancel()
            busy.cancel()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
    assert record.outcome == "answered"
    assert record.agent_id == "s1"


async def test_baresip_agent_holds_and_resumes_and_the_caller_is_held_and_resumed_too(
    make_voice_server: ServerFactory, sipp_cwd: Path, tmp_path: Path
) -> None:
    from tests.voice.baresip_phone import baresip_phone

    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        async with baresip_phone(
            tmp_path / "baresip", backend.address, "2001", "pw2001", control=True
        ) as phone:
            await eventually(lambda: bool(backend.endpoint.registrar.lookup("2001")))
            held = run_sipp(
                "-sf", str(SCENARIOS / "caller_held.xml"), "-s", "100", "-m", "1",
                "-d", "2500", "-i", "127.0.0.1", "-mi", "127.0.0.1",
                "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                target(server), cwd=sipp_cwd, timeout=40,
            )  # fmt: skip
            caller = asyncio.ensure_future(held)
            await until_state(states, ContactState.CONNECTED)
            [agent_leg] = [
                c for c in backend.endpoint.calls.values() if c.direction.value == "outbound"
            ]
            [caller_leg] = [c for c in backend.endpoint.calls.values() if c.dialed == "100"]
            await asyncio.sleep(0.5)
            await phone.command("hold")
            await eventually(lambda: caller_leg.media.direction is Direction.SENDONLY)
            assert agent_leg.held
            dropped_before = agent_leg.media.stats.held
            await asyncio.sleep(1.0)  # the caller's audio is not sent to the holding phone
            dropped = agent_leg.media.stats.held - dropped_before
            await phone.command("resume")
            await eventually(lambda: caller_leg.media.direction is Direction.SENDRECV)
            relayed_before = agent_leg.media.stats.packets_relayed
            await asyncio.sleep(1.0)
            relayed_after_resume = agent_leg.media.stats.packets_relayed - relayed_before
            result = await asyncio.wait_for(caller, 40)
            assert result.returncode == 0, result.errors or result.stderr
            await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
    assert dropped > 10
    assert relayed_after_resume > 10
    assert record.outcome == "answered"


async def test_baresip_agent_transfers_its_caller_blind_to_a_sipp_phone(
    make_voice_server: ServerFactory, sipp_cwd: Path, tmp_path: Path
) -> None:
    from tests.voice.baresip_phone import baresip_phone

    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        journal = server.bus.subscribe(ContactStateChanged)
        second_port = free_udp_port()
        second = agent_phone(sipp_cwd, second_port)
        host, port = backend.address
        try:
            done = await register(target(server), sipp_cwd, "2002", "pw2002", second_port)
            assert done.returncode == 0, done.errors or done.stderr
            async with baresip_phone(
                tmp_path / "baresip", backend.address, "2001", "pw2001", control=True
            ) as phone:
                await eventually(lambda: bool(backend.endpoint.registrar.lookup("2001")))
                caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=5000))
                await until_state(states, ContactState.CONNECTED)
                await asyncio.sleep(0.5)
                await phone.command("transfer", f"sip:2002@{host}:{port}")
                await until_state(states, ContactState.TRANSFERRED)
                result = await asyncio.wait_for(caller, 40)
                assert result.returncode == 0, result.errors or result.stderr
            reached = await asyncio.wait_for(second, 30)
            assert reached.returncode == 0, reached.errors or reached.stderr
        finally:
            second.cancel()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
        path = []
        while (event := journal.get_nowait()) is not None:
            path.append(event.new)
        media = backend.recent_media
        agents = server.calls.agents
    assert BackendCapability.TRANSFER in backend.capabilities
    assert record.queue == "support"
    assert record.agent_id == "s1"
    assert record.outcome == "transferred"
    assert path[-2:] == [ContactState.TRANSFERRED, ContactState.ENDED]
    [caller_leg] = [m for m in media.values() if m.role is LegRole.CALLER]
    [target_leg] = [m for m in media.values() if m.role is LegRole.TRANSFERRED]
    # After the transfer the caller and agent 2002's phone heard each other through the relay.
    assert target_leg.packets_relayed > 20, target_leg
    assert target_leg.packets_received > 20, target_leg
    assert caller_leg.packets_relayed > target_leg.packets_received // 2, caller_leg
    assert agents["b1"].contact_id is None  # 2002 took the caller outside the contact flow


async def test_agent_phone_consults_another_agent_then_refers_with_replaces(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        backend = sip_backend(server)
        stored = server.bus.subscribe(CallRecordStored)
        states = server.bus.subscribe(ContactStateChanged)
        sip, rtp = await UdpPeer.open(), await UdpPeer.open()
        phone = RawPhone(backend.address, "2001", "pw2001", sip, rtp)
        second_port = free_udp_port()
        second = agent_phone(sipp_cwd, second_port)
        try:
            for extension, port in (("2001", sip.port), ("2002", second_port)):
                done = await register(target(server), sipp_cwd, extension, f"pw{extension}", port)
                assert done.returncode == 0, done.errors or done.stderr
            caller = asyncio.ensure_future(call_ivr(target(server), sipp_cwd, talk_ms=5000))
            with_caller = await phone.answer()
            await until_state(states, ContactState.CONNECTED)
            consultation = await phone.call("2002")  # SIPp answers as agent 2002
            accepted = await phone.refer_replacing(with_caller, consultation, "2002")
            trying = await phone.notify(with_caller)
            done_notify = await phone.notify(with_caller)
            await phone.hung_up(consultation)  # the server ends the phone's consultation leg
            assert (await phone.bye(with_caller)).status == 200
            await until_state(states, ContactState.TRANSFERRED)
            result = await asyncio.wait_for(caller, 40)
            assert result.returncode == 0, result.errors or result.stderr
            reached = await asyncio.wait_for(second, 30)
            assert reached.returncode == 0, reached.errors or reached.stderr
        finally:
            second.cancel()
            sip.close()
            rtp.close()
        await asyncio.wait_for(stored.get(), 10)
        [record] = await server.storage.query(CallRecord)
        media = backend.recent_media
    assert accepted.status == 202
    assert trying.body == b"SIP/2.0 100 Trying\r\n"
    assert done_notify.body == b"SIP/2.0 200 OK\r\n"
    assert (done_notify.headers.get("Subscription-State") or "").startswith("terminated")
    assert record.outcome == "transferred"
    assert record.agent_id == "s1"
    # Agent 2002's leg, made for the consultation, now carries the caller.
    [target_leg] = [m for m in media.values() if m.role is LegRole.TRANSFERRED]
    assert target_leg.packets_relayed > 20, target_leg
