"""SDP negotiation, G.711 conversions and RFC 4733 payloads."""

from __future__ import annotations

import math
import struct

import pytest

from commserver.sip import g711
from commserver.sip.dtmf import DtmfDetector, TelephoneEvent, event_payloads
from commserver.sip.errors import MalformedSdp, NoCommonCodec
from commserver.sip.sdp import Codec, Direction, SessionDescription, build_sdp, negotiate

OFFER = (
    b"v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 9 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\n"
    b"a=fmtp:96 0-16\r\na=sendonly\r\n"
)


def test_negotiation_follows_the_offerers_order_and_finds_telephone_event() -> None:
    chosen = negotiate(SessionDescription.parse(OFFER), (Codec.PCMU, Codec.PCMA))
    assert chosen.codec is Codec.PCMA  # G.722 (9) first, but we only speak G.711
    assert (chosen.address, chosen.port) == ("192.0.2.5", 4000)
    assert chosen.dtmf_payload_type == 96
    assert chosen.direction is Direction.SENDONLY
    assert chosen.is_hold


def test_offer_without_g711_is_refused() -> None:
    offer = OFFER.replace(b"9 8 0 96", b"9 96")
    with pytest.raises(NoCommonCodec):
        negotiate(SessionDescription.parse(offer), (Codec.PCMU, Codec.PCMA))
    with pytest.raises(MalformedSdp):
        SessionDescription.parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n")


def test_our_sdp_parses_back() -> None:
    body = build_sdp("127.0.0.1", 30000, (Codec.PCMU, Codec.PCMA), 101)
    chosen = negotiate(SessionDescription.parse(body), (Codec.PCMA,))
    assert chosen.codec is Codec.PCMA
    assert chosen.dtmf_payload_type == 101
    assert chosen.port == 30000


def test_tables_match_audioop_for_every_sample_and_code() -> None:
    pcm = struct.pack("<65536h", *range(-32768, 32768))
    codes = bytes(range(256))
    for codec in (Codec.PCMU, Codec.PCMA):
        assert g711.table_encode(pcm, codec) == g711.encode(pcm, codec)
        assert g711.table_decode(codes, codec) == g711.decode(codes, codec)
    assert g711.has_audioop()  # on 3.11 the fast path is the one in use


def test_transcoding_between_laws_keeps_the_signal() -> None:
    tone = struct.pack(
        "<160h", *(int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(160))
    )
    ulaw = g711.encode(tone, Codec.PCMU)
    alaw = g711.transcode(ulaw, Codec.PCMU, Codec.PCMA)
    back = struct.unpack("<160h", g711.decode(alaw, Codec.PCMA))
    original = struct.unpack("<160h", tone)
    assert max(abs(a - b) for a, b in zip(original, back, strict=True)) < 400


def test_one_press_is_one_digit_even_with_repeated_end_packets() -> None:
    detector = DtmfDetector()
    digits = [
        detector.feed(0x1234, 16000, payload) for payload, _marker in event_payloads("7", 120)
    ]
    assert [d for d in digits if d] == ["7"]
    assert detector.feed(0x1234, 17000, TelephoneEvent(11, True, 10, 800).to_bytes()) == "#"
    assert detector.feed(0x1234, 17000, b"\x0b") is None  # truncated payload


def test_event_payloads_mark_the_start_and_repeat_the_end_three_times() -> None:
    packets = event_payloads("*", 100)
    events = [TelephoneEvent.parse(p) for p, _ in packets]
    assert packets[0][1] is True
    assert all(e is not None and e.event == 10 for e in events)
    assert [e.end for e in events if e is not None][-3:] == [True, True, True]
    assert events[-1] is not None
    assert events[-1].duration == 800
    with pytest.raises(ValueError, match="DTMF"):
        event_payloads("x")
