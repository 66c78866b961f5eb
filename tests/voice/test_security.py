"""Toll fraud and phone authentication against a running server on the sip backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

from commserver.contacts import CallRecord
from tests.sip.sip_harness import SCENARIOS, UdpPeer, free_udp_port, run_sipp, udp_port_bound
from tests.voice.conftest import ServerFactory, sip_backend, target

OUTSIDE = "00441632960123"


async def test_unauthenticated_call_to_an_outside_number_is_challenged_then_refused(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    trunk = await UdpPeer.open()
    try:
        sip = {"trunk": f"127.0.0.1:{trunk.port}"}
        async with make_voice_server(telephony={"sip": sip}) as server:
            # No credentials: 407 with a challenge; a guessed password: 403.
            result = await run_sipp(
                "-sf", str(SCENARIOS / "uac_outside_refused.xml"), "-s", OUTSIDE,
                "-au", "2001", "-ap", "guess", "-key", "from_user", "2001", "-m", "1",
                "-auth_uri", f"{OUTSIDE}@{target(server)}",
                "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                target(server), cwd=sipp_cwd, timeout=15,
            )  # fmt: skip
            assert result.returncode == 0, result.errors or result.stderr
            reached_trunk = await trunk.silence(0.5)
            assert server.calls.live_contacts == []
            assert await server.storage.query(CallRecord) == []
            assert sip_backend(server).live_calls == 0
    finally:
        trunk.close()
    assert reached_trunk == []


async def test_an_agent_phone_with_the_right_password_reaches_the_trunk(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    trunk_port = free_udp_port()
    trunk = asyncio.ensure_future(
        run_sipp(
            "-sf",
            str(SCENARIOS / "uas_answer.xml"),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(trunk_port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_udp_port()),
            cwd=sipp_cwd,
            timeout=20,
        )
    )
    try:
        sip = {"trunk": f"127.0.0.1:{trunk_port}"}
        async with make_voice_server(telephony={"sip": sip}) as server:
            await udp_port_bound(trunk_port)
            result = await run_sipp(
                "-sf", str(SCENARIOS / "uac_outside_call.xml"), "-s", OUTSIDE,
                "-au", "2001", "-ap", "pw2001", "-key", "from_user", "2001", "-m", "1",
                # SIPp digests sip:host:port unless told the Request-URI (it adds "sip:").
                "-auth_uri", f"{OUTSIDE}@{target(server)}", "-d", "500",
                "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                target(server), cwd=sipp_cwd, timeout=15,
            )  # fmt: skip
            assert result.returncode == 0, result.errors or result.stderr
            # The trunk saw INVITE, ACK and the BYE the B2BUA passed on when the agent hung up.
            answered = await asyncio.wait_for(trunk, 20)
            assert answered.returncode == 0, answered.errors or answered.stderr
            # An agent's own call is not a customer contact.
            assert await server.storage.query(CallRecord) == []
    finally:
        trunk.cancel()


async def test_register_with_a_wrong_password_is_refused_and_the_right_one_accepted(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        registrar = sip_backend(server).endpoint.registrar
        refused = await run_sipp(
            "-sf", str(SCENARIOS / "register_refused.xml"), "-s", "2001", "-au", "2001",
            "-ap", "pw2002", "-key", "contact_port", "5099", "-m", "1",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), target(server), cwd=sipp_cwd,
        )  # fmt: skip
        assert refused.returncode == 0, refused.errors or refused.stderr
        assert registrar.lookup("2001") == []
        accepted = await run_sipp(
            "-sf", str(SCENARIOS / "register.xml"), "-s", "2001", "-au", "2001",
            "-ap", "pw2001", "-key", "contact_port", "5099", "-m", "1",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), target(server), cwd=sipp_cwd,
        )  # fmt: skip
        assert accepted.returncode == 0, accepted.errors or accepted.stderr
        assert [b.contact.port for b in registrar.lookup("2001")] == [5099]


async def test_repeated_wrong_passwords_block_the_source_even_for_the_right_one(
    make_voice_server: ServerFactory, sipp_cwd: Path
) -> None:
    async with make_voice_server() as server:
        guesses = await run_sipp(
            "-sf", str(SCENARIOS / "register_refused.xml"), "-s", "2001", "-au", "2001",
            "-ap", "guess", "-key", "contact_port", "5099", "-m", "5", "-l", "1",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), target(server), cwd=sipp_cwd,
        )  # fmt: skip
        assert guesses.returncode == 0, guesses.errors or guesses.stderr
        late = await run_sipp(
            "-sf", str(SCENARIOS / "register.xml"), "-s", "2001", "-au", "2001",
            "-ap", "pw2001", "-key", "contact_port", "5099", "-m", "1",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), target(server), cwd=sipp_cwd,
            timeout=5,
        )  # fmt: skip
        assert late.returncode != 0
        assert "403" in late.errors
        assert sip_backend(server).endpoint.registrar.lookup("2001") == []
