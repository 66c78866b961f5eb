"""Voicemail over real SIP: a SIPp caller dials 100, keys 1, finds nobody in support, hears the
voicemail prompt, speaks (sip-tester's G.711 A-law capture), keys '#', and the server hangs up.

Everything is real: the server on the sip backend, SIP and RTP over loopback, the RFC 4733 key
presses from sip-tester's captures, the WAV on disk, the row in SQLite and the e-mail that a
real aiosmtpd server receives with the recording attached.
"""

from __future__ import annotations

import io
import wave
from array import array
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from commserver.calls import VOICEMAIL_PROMPT
from commserver.contacts import CallRecord
from commserver.contacts.events import CallRecordStored
from commserver.keys import VOICEMAIL
from ivr.prompts import PromptCache
from tests.ivr.test_voicemail import Inbox, smtp_server, until
from tests.sip.sip_harness import SCENARIOS, free_udp_port, run_sipp
from tests.voice.conftest import MENU_PROMPT, ServerFactory, target

#: How long sip-tester's g711a.pcap speaks (its RTP timestamps span about 7.05 s).
CAPTURE_SECONDS = 7.05
#: The caller starts speaking this long after the prompts should have ended.
MARGIN_MS = 1500
#: ...and keys '#' this long after the capture has started.
SPEECH_MS = int(CAPTURE_SECONDS * 1000) + 600

# After the key press the caller waits for the menu and voicemail prompts to finish, speaks,
# keys '#' once the capture has played, and then expects the server to hang up.
TAIL = """<pause milliseconds="300"/>
  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_1.pcap"/></action></nop>
  <pause milliseconds="{prompts_ms}"/>
  <nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>
  <pause milliseconds="{speech_ms}"/>
  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_pound.pcap"/></action></nop>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    """A running mail server and what it received."""
    async with smtp_server(Inbox()) as box:
        yield box


async def prompt_seconds(tmp_path: Path, *texts: str) -> float:
    """How long the server will speak these prompts (the same renderer, the same voice)."""
    cache = PromptCache(tmp_path / "prompt-lengths")
    total = 0.0
    for text in texts:
        with wave.open(str(await cache.render(text)), "rb") as wav:
            total += wav.getnframes() / wav.getframerate()
    return total


def voicemail_scenario(sipp_cwd: Path, prompts: float) -> Path:
    """sip-testbed's IVR caller (INVITE, ACK) with the voicemail tail above."""
    text = (SCENARIOS / "caller_ivr.xml").read_text()
    head, marker, _ = text.partition('<pause milliseconds="300"/>')
    assert marker, "caller_ivr.xml changed: the key press no longer follows a 300 ms pause"
    tail = TAIL.format(prompts_ms=int(prompts * 1000) + MARGIN_MS, speech_ms=SPEECH_MS)
    scenario = sipp_cwd / "caller_voicemail.xml"
    scenario.write_text(head + tail)
    return scenario


def mean_level(wav_bytes: bytes) -> tuple[float, float]:
    """Seconds and mean absolute sample value of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(wav_bytes), "rb") as wav:
        seconds = wav.getnframes() / wav.getframerate()
        samples = array("h", wav.readframes(wav.getnframes()))
    return seconds, sum(abs(s) for s in samples) / max(len(samples), 1)


async def test_a_sipp_caller_leaves_a_voicemail_ended_by_pound_that_is_stored_and_mailed(
    make_voice_server: ServerFactory, sipp_cwd: Path, inbox: Inbox, tmp_path: Path
) -> None:
    queues = [
        {
            "name": "support",
            "skills": {"support": 1},
            "on_no_agents": {"action": "voicemail", "target": "support"},
        },
        {"name": "billing", "skills": {"billing": 1}},
    ]
    agents = [
        {"id": "s1", "extension": "2001", "sip_password": "pw2001", "skills": {"support": 50}}
    ]
    prompts = await prompt_seconds(tmp_path, MENU_PROMPT, VOICEMAIL_PROMPT)
    scenario = voicemail_scenario(sipp_cwd, prompts)
    async with make_voice_server(
        queues=queues,
        agents=agents,
        smtp={"host": "127.0.0.1", "port": inbox.port, "mail_from": "pbx@example.test"},
        voicemail={"boxes": {"support": {"email": ["team@example.test"]}}},
    ) as server:
        stored = server.bus.subscribe(CallRecordStored)
        caller = await run_sipp(
            "-sf", str(scenario), "-s", "100", "-m", "1",
            "-i", "127.0.0.1", "-mi", "127.0.0.1",
            "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
            target(server), cwd=sipp_cwd, timeout=45,
        )  # fmt: skip
        # SIPp exits 0 only if the server hung up with a BYE after the '#'.
        assert caller.returncode == 0, caller.errors or caller.stderr
        event = await stored.get()
        [record] = await server.storage.query(CallRecord)
        voicemail = server.services.get(VOICEMAIL)
        [message] = await voicemail.list("support")
        wav = voicemail.wav_path(message).read_bytes()
        await inbox.wait_for(1)

        async def emailed() -> bool:
            return (await voicemail.get(message.id or 0)).emailed_at is not None

        await until(emailed)
    assert event is not None
    # The '#' ended the recording: a recording ended by 5 s of silence would take 4.4 s longer.
    scripted = 0.3 + prompts + (MARGIN_MS + SPEECH_MS) / 1000
    call_seconds = (record.ended_at - record.arrived_at).total_seconds()
    assert scripted - 0.5 < call_seconds < scripted + 2.0, (call_seconds, scripted)
    assert record.outcome == "voicemail"
    assert record.queue == "support"
    assert message.contact_id == record.contact_id
    assert message.caller.startswith("5550")
    seconds, level = mean_level(wav)
    # The whole capture was recorded (the prompts had ended), and nothing after the '#'.
    assert CAPTURE_SECONDS - 0.5 <= message.seconds <= CAPTURE_SECONDS + 0.5, message.seconds
    assert seconds == pytest.approx(message.seconds, abs=0.05)
    assert level > 200, level  # speech, not silence
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["team@example.test"]
    [attachment] = list(inbox.message().iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_content() == wav
