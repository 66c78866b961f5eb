"""Hold across a bridge (re-INVITEs relayed), REFER and its NOTIFYs, whole-call recording.

Raw UDP peers play both phones of a bridged call so every re-INVITE, ACK, NOTIFY and RTP packet
can be checked; the endpoint under test is real, on 127.0.0.1 port 0.
"""

from __future__ import annotations

import asyncio
import itertools
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from commserver.sip import SipCall, SipEndpoint, g711
from commserver.sip.auth import digest_response, parse_digest
from commserver.sip.events import HoldChanged, TransferRequested
from commserver.sip.media import CallRecorder, Track, mean_level
from commserver.sip.message import SipRequest, SipResponse, make_response
from commserver.sip.refer import Transfer, parse_refer_to
from commserver.sip.rtp import RtpPacket
from commserver.sip.sdp import Codec, Direction, answer_direction, negotiated
from tests.sip.sip_harness import EndpointFactory, RecordingHandler, UdpPeer
from tests.sip.test_media import answered_call, frequency_of, rtp_packets, tone


def sdp(port: int, direction: Direction, version: int = 2) -> str:
    """A PCMU + telephone-event body with a direction attribute."""
    return (
        f"v=0\r\no=peer 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a={direction.value}\r\n"
    )


def peer_request(
    method: str,
    endpoint: SipEndpoint,
    peer: UdpPeer,
    *,
    to_tag: str,
    cseq: int,
    call_id: str = "call-1@test",
    branch: str,
    headers: str = "",
    body: str = "",
    content_type: str = "application/sdp",
) -> str:
    """A request inside the dialog the harness's `invite` opened from `peer`."""
    host, port = endpoint.address
    typed = f"Content-Type: {content_type}\r\n" if body else ""
    return (
        f"{method} sip:caruso@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch={branch};rport\r\n"
        f'From: "Caller" <sip:5551234@127.0.0.1:{peer.port}>;tag=caller-tag\r\n'
        f"To: <sip:100@{host}:{port}>;tag={to_tag}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:caller@127.0.0.1:{peer.port}>\r\nMax-Forwards: 70\r\n"
        f"{headers}{typed}Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


def reply(request: SipRequest, status: int, body: str = "") -> bytes:
    """The peer's response to a request the endpoint sent it."""
    headers = [("Content-Type", "application/sdp")] if body else []
    return make_response(request, status, headers=headers, body=body.encode()).to_bytes()


def direction_of(body: bytes) -> Direction:
    """The a= direction line of an SDP body."""
    for line in body.decode().splitlines():
        if line.startswith("a=") and line[2:] in {d.value for d in Direction}:
            return Direction(line[2:])
    return Direction.SENDRECV


async def reinvite_from(
    endpoint: SipEndpoint,
    peer: UdpPeer,
    rtp: UdpPeer,
    *,
    to_tag: str,
    cseq: int,
    direction: Direction,
    call_id: str = "call-1@test",
) -> SipResponse:
    """The peer puts its call on hold (or resumes): re-INVITE, 200, ACK."""
    branch = f"z9hG4bK-re-{call_id}-{cseq}"
    peer.send(
        peer_request(
            "INVITE",
            endpoint,
            peer,
            to_tag=to_tag,
            cseq=cseq,
            call_id=call_id,
            branch=branch,
            body=sdp(rtp.port, direction, cseq),
        ),
        endpoint.address,
    )
    ok = await peer.recv_response(200)
    peer.send(
        peer_request(
            "ACK", endpoint, peer, to_tag=to_tag, cseq=cseq, call_id=call_id, branch=branch + "a"
        ),
        endpoint.address,
    )
    return ok


async def answer_reinvite(
    peer: UdpPeer, rtp: UdpPeer, *, as_held_by: Direction = Direction.SENDRECV
) -> SipRequest:
    """The peer takes the endpoint's re-INVITE and answers 200 as its own wish allows."""
    # Generous: a retry after 491 comes up to 2 s later, and the machine may be busy.
    request = await peer.recv_request("INVITE", timeout=6.0)
    mine = answer_direction(direction_of(request.body), as_held_by)
    peer.send(reply(request, 200, sdp(rtp.port, mine, 3)), request.top_via.sent_by)
    return request


async def bridged_pair(
    endpoint: SipEndpoint,
    handler: RecordingHandler,
    peer_a: UdpPeer,
    peer_b: UdpPeer,
    rtp_a: UdpPeer,
    rtp_b: UdpPeer,
) -> tuple[SipCall, tuple[str, int], str, SipCall, tuple[str, int], str]:
    """Two raw callers answered and bridged: (leg, media address, to-tag) for each."""
    leg_a, media_a, tag_a = await answered_call(endpoint, handler, peer_a, rtp_a)
    leg_b, media_b, tag_b = await answered_call(
        endpoint, handler, peer_b, rtp_b, call_id="call-2@test"
    )
    endpoint.bridge(leg_a, leg_b)
    return leg_a, media_a, tag_a, leg_b, media_b, tag_b


def audio(index: int, ssrc: int) -> bytes:
    """One 20 ms PCMU packet of a 1 kHz tone."""
    payload = g711.encode(tone(1000, 0.02), Codec.PCMU)
    return RtpPacket(0, index, 160 * index, ssrc, payload).to_bytes()


@pytest.fixture
async def peers() -> AsyncIterator[list[UdpPeer]]:
    """Signalling and media sockets for two raw phones, closed at the end."""
    opened = [await UdpPeer.open() for _ in range(4)]
    yield opened
    for udp in opened:
        udp.close()


def test_answer_direction_keeps_either_sides_hold() -> None:
    assert answer_direction(Direction.SENDONLY, Direction.SENDRECV) is Direction.RECVONLY
    assert answer_direction(Direction.INACTIVE, Direction.SENDRECV) is Direction.INACTIVE
    assert answer_direction(Direction.SENDRECV, Direction.SENDONLY) is Direction.SENDONLY
    assert answer_direction(Direction.SENDONLY, Direction.SENDONLY) is Direction.INACTIVE
    assert negotiated(Direction.RECVONLY, Direction.SENDONLY) is Direction.RECVONLY
    assert negotiated(Direction.SENDRECV, Direction.RECVONLY) is Direction.SENDONLY
    for local, remote in itertools.product(Direction, repeat=2):
        flow = negotiated(local, remote)
        assert flow.sends <= (local.sends and remote.receives)
        assert flow.receives <= (local.receives and remote.sends)


async def test_hold_from_one_leg_is_relayed_to_the_other_and_resume_restores_media(
    make_endpoint: EndpointFactory, peers: list[UdpPeer]
) -> None:
    peer_a, peer_b, rtp_a, rtp_b = peers
    endpoint, handler = await make_endpoint()
    leg_a, media_a, tag_a, leg_b, media_b, _ = await bridged_pair(
        endpoint, handler, peer_a, peer_b, rtp_a, rtp_b
    )
    # A holds: A is answered recvonly at once, B is offered sendonly and answers recvonly.
    held_answer, relayed = await asyncio.gather(
        reinvite_from(endpoint, peer_a, rtp_a, to_tag=tag_a, cseq=2, direction=Direction.SENDONLY),
        answer_reinvite(peer_b, rtp_b),
    )
    assert direction_of(held_answer.body) is Direction.RECVONLY
    assert direction_of(relayed.body) is Direction.SENDONLY
    ack = await peer_b.recv_request("ACK")
    assert ack.cseq.number == relayed.cseq.number
    await handler.wait_for(lambda: leg_b.media.direction is Direction.SENDONLY)
    assert leg_a.held
    assert not leg_b.held
    # While held, B's audio is not sent to A; A's (its music, say) still reaches B.
    for index in range(10):
        rtp_b.send(audio(index, 0xB), media_b)
        rtp_a.send(audio(index, 0xA), media_a)
    at_b = await rtp_packets(rtp_b, 0.3)
    at_a = await rtp_packets(rtp_a, 0.05)
    assert len(at_b) == 10
    assert at_a == []
    assert leg_a.media.stats.held == 10
    # A resumes: both legs are back to sendrecv and B's audio flows to A again.
    resumed, unheld = await asyncio.gather(
        reinvite_from(endpoint, peer_a, rtp_a, to_tag=tag_a, cseq=3, direction=Direction.SENDRECV),
        answer_reinvite(peer_b, rtp_b),
    )
    assert direction_of(resumed.body) is Direction.SENDRECV
    assert direction_of(unheld.body) is Direction.SENDRECV
    await peer_b.recv_request("ACK")
    await handler.wait_for(lambda: leg_b.media.direction is Direction.SENDRECV)
    for index in range(10, 15):
        rtp_b.send(audio(index, 0xB), media_b)
    assert len(await rtp_packets(rtp_a, 0.3)) == 5
    holds: list[HoldChanged] = handler.holds
    assert [h.direction for h in holds] == [Direction.SENDONLY, Direction.SENDRECV]
    assert [h.held for h in holds] == [True, False]


async def test_the_ack_of_a_reinvite_stops_its_200_retransmissions(
    make_endpoint: EndpointFactory, peers: list[UdpPeer]
) -> None:
    peer_a, _, rtp_a, _ = peers
    endpoint, handler = await make_endpoint()
    _, _, tag_a = await answered_call(endpoint, handler, peer_a, rtp_a)
    await reinvite_from(endpoint, peer_a, rtp_a, to_tag=tag_a, cseq=2, direction=Direction.INACTIVE)
    # T1 is 50 ms here: an unacknowledged 200 would come back several times in half a second.
    late = await peer_a.silence(0.5)
    assert late == []


async def test_a_reinvite_meeting_ours_gets_491_and_ours_is_retried(
    make_endpoint: EndpointFactory, peers: list[UdpPeer]
) -> None:
    peer_a, peer_b, rtp_a, rtp_b = peers
    endpoint, handler = await make_endpoint()
    leg_a, _, _, leg_b, _, tag_b = await bridged_pair(
        endpoint, handler, peer_a, peer_b, rtp_a, rtp_b
    )
    # B holds; the endpoint's re-INVITE to A is pending when A sends its own: glare.
    held = asyncio.ensure_future(
        reinvite_from(
            endpoint,
            peer_b,
            rtp_b,
            to_tag=tag_b,
            cseq=2,
            direction=Direction.INACTIVE,
            call_id="call-2@test",
        )
    )
    ours = await peer_a.recv_request("INVITE")
    assert direction_of(ours.body) is Direction.INACTIVE
    await held
    host, port = endpoint.address
    peer_a.send(
        peer_request(
            "INVITE",
            endpoint,
            peer_a,
            to_tag=leg_a.dialog.local_tag,
            cseq=2,
            branch="z9hG4bK-glare",
            body=sdp(rtp_a.port, Direction.SENDONLY),
        ),
        (host, port),
    )
    assert (await peer_a.recv_response(491)).cseq.method == "INVITE"
    # A refuses ours with 491 too; the endpoint tries again (A's leg is inbound: 0-2 s later).
    peer_a.send(reply(ours, 491), ours.top_via.sent_by)
    again = await answer_reinvite(peer_a, rtp_a, as_held_by=Direction.SENDRECV)
    assert again.cseq.number > ours.cseq.number
    assert direction_of(again.body) is Direction.INACTIVE
    await handler.wait_for(lambda: leg_a.media.direction is Direction.INACTIVE, timeout=5)
    assert leg_b.held


# -- REFER --------------------------------------------------------------------------------------


def refer(
    endpoint: SipEndpoint,
    peer: UdpPeer,
    to_tag: str,
    *,
    cseq: int,
    refer_to: str | None,
    headers: str = "",
) -> str:
    """A REFER from the raw caller inside its call."""
    extra = f"Refer-To: {refer_to}\r\n" if refer_to is not None else ""
    return peer_request(
        "REFER",
        endpoint,
        peer,
        to_tag=to_tag,
        cseq=cseq,
        branch=f"z9hG4bK-refer-{cseq}",
        headers=extra + headers,
    )


def desk(decide: Callable[[Transfer, TransferRequested], None]) -> RecordingHandler:
    """A handler that answers calls and hands each REFER to `decide`."""
    return RecordingHandler(on_transfer=decide)


async def test_refer_is_accepted_with_202_and_progress_goes_out_as_sipfrag_notifys(
    make_endpoint: EndpointFactory, peers: list[UdpPeer]
) -> None:
    peer_a, _, rtp_a, _ = peers
    handler = desk(lambda transfer, event: transfer.accept())
    endpoint, _ = await make_endpoint(handler)
    _, _, tag = await answered_call(endpoint, handler, peer_a, rtp_a)
    host, port = endpoint.address
    peer_a.send(
        refer(endpoint, peer_a, tag, cseq=7, refer_to=f"<sip:2002@{host}:{port}>"),
        endpoint.address,
    )
    accepted = await peer_a.recv_response(202)
    trying = await peer_a.recv_request("NOTIFY")
    peer_a.send(reply(trying, 200), trying.top_via.sent_by)
    [transfer] = handler.transfers
    assert transfer.event.target_user == "2002"
    assert transfer.event.replaces is None
    transfer.progress(180)
    transfer.progress(180)  # repeated ringing is reported once
    ringing = await peer_a.recv_request("NOTIFY")
    peer_a.send(reply(ringing, 200), ringing.top_via.sent_by)
    transfer.finish(200)
    done = await peer_a.recv_request("NOTIFY")
    peer_a.send(reply(done, 200), done.top_via.sent_by)
    assert await peer_a.silence(0.2) == []
    assert accepted.headers.get("Contact") is not None
    notifys = [trying, ringing, done]
    assert [n.body for n in notifys] == [
        b"SIP/2.0 100 Trying\r\n",
        b"SIP/2.0 180 Ringing\r\n",
        b"SIP/2.0 200 OK\r\n",
    ]
    assert {n.headers.get("Event") for n in notifys} == {"refer;id=7"}
    assert {n.content_type for n in notifys} == {"message/sipfrag"}
    states = [n.headers.get("Subscription-State") or "" for n in notifys]
    assert states[0].startswith("active")
    assert states[1].startswith("active")
    assert states[2].startswith("terminated")
    cseqs = [n.cseq.number for n in notifys]
    assert cseqs == sorted(set(cseqs))


async def test_refer_sub_false_gets_no_notify(
    make_endpoint: EndpointFactory, peers: list[UdpPeer]
) -> None:
    peer_a, _, rtp_a, _ = peers
    handler = desk(lambda transfer, event: transfer.accept())
    endpoint, _ = await make_endpoint(handler)
    _, _, tag = await answered_call(endpoint, handler, peer_a, rtp_a)
    peer_a.send(
        refer(
            endpoint, peer_a, tag, cseq=3, refer_to="<sip:2002@x>", headers="Refer-Sub: false\r\n"
        ),
        endpoint.address,
    )
    accepted = await peer_a.recv_response(202)
    handler.transfers[0].finish(200)
    assert accepted.headers.get("Refer-Sub") == "false"
    assert await peer_a.silence(0.3) == []


@pytest.mark.parametrize(
    ("refer_to", "status"),
    [(None, 400), ("<tel:+441632960123>", 416), ("<sip:>", 400)],
)
async def test_refer_without_a_usable_refer_to_is_refused(
    make_endpoint: EndpointFactory, peers: list[UdpPeer], refer_to: str | None, status: int
) -> None:
    peer_a, _, rtp_a, _ = peers
    handler = desk(lambda transfer, event: transfer.accept())
    endpoint, _ = await make_endpoint(handler)
    _, _, tag = await answered_call(endpoint, handler, peer_a, rtp_a)
    peer_a.send(refer(endpoint, peer_a, tag, cseq=3, refer_to=refer_to), endpoint.address)
    assert (await peer_a.recv_response()).status == status
    assert handler.transfers == []


async def test_a_refer_the_handler_leaves_undecided_is_declined(
    make_endpoint: EndpointFactory, peers: list[UdpPeer]
) -> None:
    peer_a, _, rtp_a, _ = peers
    handler = desk(lambda transfer, event: None)
    endpoint, _ = await make_endpoint(handler)
    _, _, tag = await answered_call(endpoint, handler, peer_a, rtp_a)
    peer_a.send(refer(endpoint, peer_a, tag, cseq=3, refer_to="<sip:2002@x>"), endpoint.address)
    assert (await peer_a.recv_response()).status == 603


async def test_refer_challenged_then_authenticated_names_the_user_and_wrong_answers_get_403(
    make_endpoint: EndpointFactory, peers: list[UdpPeer]
) -> None:
    peer_a, _, rtp_a, _ = peers

    def decide(transfer: Transfer, event: TransferRequested) -> None:
        if event.authenticated_user is None:
            transfer.challenge()
        else:
            transfer.accept()

    handler = desk(decide)
    endpoint, _ = await make_endpoint(handler)
    _, _, tag = await answered_call(endpoint, handler, peer_a, rtp_a)
    host, port = endpoint.address
    peer_a.send(refer(endpoint, peer_a, tag, cseq=3, refer_to="<sip:0044123@x>"), endpoint.address)
    challenge = await peer_a.recv_response(407)
    fields = parse_digest(challenge.headers.get("Proxy-Authenticate") or "")
    uri = f"sip:caruso@{host}:{port}"

    def credentials(password: str) -> str:
        response = digest_response(
            username="2001",
            realm=fields["realm"],
            password=password,
            method="REFER",
            uri=uri,
            nonce=fields["nonce"],
            qop="auth",
            nc="00000001",
            cnonce="abc",
        )
        return (
            f'Proxy-Authorization: Digest username="2001", realm="{fields["realm"]}", '
            f'nonce="{fields["nonce"]}", uri="{uri}", response="{response}", qop=auth, '
            'nc=00000001, cnonce="abc"\r\n'
        )

    peer_a.send(
        refer(endpoint, peer_a, tag, cseq=4, refer_to="<sip:0044123@x>", headers=credentials("no")),
        endpoint.address,
    )
    assert (await peer_a.recv_response()).status == 403
    peer_a.send(
        refer(
            endpoint, peer_a, tag, cseq=5, refer_to="<sip:0044123@x>", headers=credentials("pw2001")
        ),
        endpoint.address,
    )
    await peer_a.recv_response(202)
    assert [t.event.authenticated_user for t in handler.transfers] == [None, "2001"]


def test_refer_to_with_replaces_is_unescaped() -> None:
    target, replaces = parse_refer_to(
        "<sip:2002@10.0.0.1?Replaces=abc%40host%3Bto-tag%3D111%3Bfrom-tag%3D222>"
    )
    assert str(target) == "sip:2002@10.0.0.1"
    assert replaces is not None
    assert (replaces.call_id, replaces.to_tag, replaces.from_tag) == ("abc@host", "111", "222")
    assert not replaces.early_only
    plain, none = parse_refer_to("sip:%2B4412@trunk;user=phone")
    assert plain.user == "+4412"
    assert none is None


# -- recording a whole call -------------------------------------------------------------------


def test_call_recorder_places_each_direction_by_time_and_mixes_them(tmp_path: Path) -> None:
    now = [0.0]
    recorder = CallRecorder(tmp_path / "call.wav", max_seconds=60, clock=lambda: now[0])
    frame = tone(500, 0.02)
    for index in range(50):  # one second of the caller from t=0
        now[0] = index * 0.02
        recorder.add(Track.HEARD, 1, 1000 + 160 * index, frame)
    for index in range(25):  # half a second of the agent starting at t=2 s
        now[0] = 2.0 + index * 0.02
        recorder.add(Track.PLAYED, 2, 90000 + 160 * index, frame)
    heard, played = recorder._tracks
    assert heard.end == 8000
    assert played.end == 16000 + 4000  # placed at 2 s: silence before it
    recorder.add(Track.HEARD, 1, 1000, frame)  # a late duplicate is dropped, not appended
    assert heard.end == 8000


async def test_whole_call_recording_holds_both_parties_and_ends_with_the_call(
    make_endpoint: EndpointFactory, peers: list[UdpPeer], tmp_path: Path
) -> None:
    peer_a, peer_b, rtp_a, rtp_b = peers
    endpoint, handler = await make_endpoint()
    leg_a, media_a, _, _, media_b, _ = await bridged_pair(
        endpoint, handler, peer_a, peer_b, rtp_a, rtp_b
    )
    path = tmp_path / "rec" / "call.wav"
    path.parent.mkdir()
    task = leg_a.start_call_recording(path)
    low = g711.encode(tone(400, 1.0), Codec.PCMU)
    high = g711.encode(tone(2000, 1.0), Codec.PCMU)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index in range(50):  # a second of each party, sent in real time
        rtp_a.send(
            RtpPacket(0, index, 160 * index, 0xA, low[index * 160 : index * 160 + 160]).to_bytes(),
            media_a,
        )
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - loop.time()))
    for index in range(50):
        rtp_b.send(
            RtpPacket(0, index, 160 * index, 0xB, high[index * 160 : index * 160 + 160]).to_bytes(),
            media_b,
        )
        await asyncio.sleep(max(0.0, started + 1.0 + (index + 1) * 0.02 - loop.time()))
    await asyncio.gather(leg_a.hangup(), answer_bye(peer_a))
    seconds = await asyncio.wait_for(task, 10)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, 8000)
        pcm = wav.readframes(wav.getnframes())
    assert 1.8 <= seconds <= 3.0
    assert not path.with_name("call.wav.heard.raw").exists()
    first, second = pcm[2000:14000], pcm[18000:30000]  # 0.125-0.875 s and 1.125-1.875 s
    assert 380 < tone_in(first) < 420  # the caller
    assert 1900 < tone_in(second) < 2100  # the other party, as the caller heard it


async def answer_bye(peer: UdpPeer) -> None:
    """The raw phone confirms the endpoint's BYE."""
    bye = await peer.recv_request("BYE")
    peer.send(reply(bye, 200), bye.top_via.sent_by)


def tone_in(pcm: bytes) -> float:
    """The frequency of the tone in the frames that hold sound (a gap must not skew it)."""
    frames = [pcm[i : i + 320] for i in range(0, len(pcm) - 319, 320)]
    loud = [f for f in frames if mean_level(f) > 1000]
    assert len(loud) >= len(frames) // 2, "mostly silence where a party should speak"
    return frequency_of(b"".join(loud))
