"""RFC 3261 §17 behaviour over real UDP, driven by a scripted raw peer with short timers."""

from __future__ import annotations

import asyncio
import itertools

from commserver.sip import CallState, EndReason, SipCall
from commserver.sip.events import CallOffered
from commserver.sip.message import SipRequest, SipResponse
from tests.sip.sip_harness import EndpointFactory, RecordingHandler, UdpPeer, in_dialog, invite


async def test_invite_gets_100_trying_before_the_handler_decides(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    handler = RecordingHandler(on_offer=lambda call, event: None)  # leave it ringing
    endpoint, _ = await make_endpoint(handler)
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    trying = await peer.recv_response()
    assert trying.status == 100
    assert trying.to_addr.tag is None
    await handler.wait_for(lambda: len(handler.offered) == 1)
    assert handler.offered[0].caller == "5551234"
    assert handler.offered[0].dialed == "100"
    assert handler.offered[0].caller_name == "Caller"


async def test_retransmitted_invite_is_absorbed_and_offered_once(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    handler = RecordingHandler(on_offer=lambda call, event: call.ring())
    endpoint, _ = await make_endpoint(handler)
    message = invite(endpoint.address, peer.port)
    peer.send(message, endpoint.address)
    assert (await peer.recv_response(100)).status == 100
    ringing = await peer.recv_response(180)
    for _ in range(3):
        peer.send(message, endpoint.address)
        # Each retransmission is answered with the latest provisional response, no new call.
        again = await peer.recv_response()
        assert again.status == 180
        assert again.to_addr.tag == ringing.to_addr.tag
    assert len(handler.offered) == 1
    assert len(endpoint.calls) == 1


async def test_2xx_is_retransmitted_with_doubling_intervals_until_ack(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()  # T1=50 ms, T2=400 ms
    loop = asyncio.get_running_loop()
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    await peer.recv_response(100)
    arrivals: list[float] = []
    first = await peer.recv_response(200)
    arrivals.append(loop.time())
    for _ in range(4):
        again = await peer.recv_response(200)
        arrivals.append(loop.time())
        assert again.to_addr.tag == first.to_addr.tag
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # 50, 100, 200, 400 ms: each gap about double the previous (loose bounds for CI jitter).
    assert 0.03 < gaps[0] < 0.12
    assert gaps[1] > gaps[0] * 1.5
    assert gaps[2] > gaps[1] * 1.5
    assert 0.3 < gaps[3] < 0.6
    to_tag = first.to_addr.tag
    assert to_tag is not None
    peer.send(
        in_dialog("ACK", endpoint.address, peer.port, to_tag=to_tag, cseq=1), endpoint.address
    )
    await handler.wait_for(lambda: handler.calls[0].state is CallState.CONNECTED)
    assert not [d for d in await peer.silence(0.9) if d.startswith(b"SIP/2.0 200")]


async def test_unacknowledged_2xx_ends_the_call_with_bye(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()  # 64*T1 = 3.2 s
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    bye = await peer.recv_request("BYE", timeout=5.0)
    assert bye.call_id == "call-1@test"
    await handler.wait_for(lambda: bool(handler.ended))
    assert handler.ended[0].reason is EndReason.UNACKNOWLEDGED


async def test_cancel_gets_200_and_the_invite_487(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    handler = RecordingHandler(on_offer=lambda call, event: call.ring())
    endpoint, _ = await make_endpoint(handler)
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    await peer.recv_response(180)
    host, port = endpoint.address
    cancel = (
        f"CANCEL sip:100@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-test-1;rport\r\n"
        f'From: "Caller" <sip:5551234@127.0.0.1:{peer.port}>;tag=caller-tag\r\n'
        f"To: <sip:100@{host}:{port}>\r\n"
        "Call-ID: call-1@test\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    peer.send(cancel, endpoint.address)
    statuses = {(await peer.recv_response()).status for _ in range(2)}
    assert statuses == {200, 487}
    await handler.wait_for(lambda: bool(handler.ended))
    assert handler.ended[0].reason is EndReason.CANCELLED
    assert not endpoint.calls


async def test_cancel_for_unknown_invite_gets_481(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, _ = await make_endpoint()
    host, port = endpoint.address
    peer.send(
        f"CANCEL sip:100@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-nothing\r\n"
        f"From: <sip:a@127.0.0.1>;tag=x\r\nTo: <sip:100@{host}>\r\n"
        "Call-ID: nothing@test\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        endpoint.address,
    )
    assert (await peer.recv_response()).status == 481


async def test_error_final_is_retransmitted_until_its_ack_then_absorbed(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    handler = RecordingHandler(on_offer=lambda call, event: call.reject(486))
    endpoint, _ = await make_endpoint(handler)
    message = invite(endpoint.address, peer.port)
    peer.send(message, endpoint.address)
    busy = await peer.recv_response(486)
    assert (await peer.recv_response(486, timeout=0.5)).status == 486  # Timer G
    host, port = endpoint.address
    to_tag = busy.to_addr.tag
    peer.send(
        f"ACK sip:100@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-test-1;rport\r\n"
        f'From: "Caller" <sip:5551234@127.0.0.1:{peer.port}>;tag=caller-tag\r\n'
        f"To: <sip:100@{host}:{port}>;tag={to_tag}\r\n"
        "Call-ID: call-1@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        endpoint.address,
    )
    await asyncio.sleep(0.1)
    assert not await peer.silence(0.5)
    assert handler.ended[0].reason is EndReason.REJECTED
    assert handler.ended[0].status == 486


async def test_pyvoip_ack_with_wrong_to_tag_is_matched_by_call_id_and_cseq(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    await peer.recv_response(200)
    # pyVoIP 1.6.8 puts a fresh random To-tag on its 2xx ACK.
    peer.send(
        in_dialog("ACK", endpoint.address, peer.port, to_tag="pyvoip-random", cseq=1),
        endpoint.address,
    )
    await handler.wait_for(lambda: handler.calls[0].state is CallState.CONNECTED)


async def test_ack_with_wrong_to_tag_and_wrong_cseq_is_not_matched(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    await peer.recv_response(200)
    peer.send(
        in_dialog("ACK", endpoint.address, peer.port, to_tag="pyvoip-random", cseq=7),
        endpoint.address,
    )
    peer.send(
        in_dialog("ACK", endpoint.address, peer.port, to_tag="x", from_tag="someone-else", cseq=1),
        endpoint.address,
    )
    await asyncio.sleep(0.3)
    assert handler.calls[0].state is CallState.ANSWERED
    # ...and the 200 OK keeps being retransmitted because no real ACK came.
    assert (await peer.recv_response(200, timeout=1.0)).status == 200


async def test_bye_ends_the_call_and_a_repeated_bye_gets_the_same_200(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    ok = await peer.recv_response(200)
    to_tag = ok.to_addr.tag
    assert to_tag is not None
    peer.send(
        in_dialog("ACK", endpoint.address, peer.port, to_tag=to_tag, cseq=1), endpoint.address
    )
    bye = in_dialog("BYE", endpoint.address, peer.port, to_tag=to_tag, branch="z9hG4bK-bye")
    peer.send(bye, endpoint.address)
    assert (await peer.recv_response(200)).cseq.method == "BYE"
    await handler.wait_for(lambda: bool(handler.ended))
    assert handler.ended[0].reason is EndReason.REMOTE_BYE
    peer.send(bye, endpoint.address)  # retransmission: absorbed by the completed transaction
    again = await peer.recv_response(200)
    assert again.cseq.method == "BYE"
    other = in_dialog(
        "BYE", endpoint.address, peer.port, to_tag=to_tag, branch="z9hG4bK-new", cseq=3
    )
    peer.send(other, endpoint.address)
    assert (await peer.recv_response()).status == 481  # the dialog is gone
    assert len(handler.ended) == 1


async def test_options_is_answered_with_allow(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, _ = await make_endpoint()
    host, port = endpoint.address
    peer.send(
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"v: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-opt\r\n"
        f"f: <sip:a@127.0.0.1>;tag=x\r\nt: <sip:{host}>\r\n"
        "i: opt@test\r\nCSeq: 5 OPTIONS\r\nl: 0\r\n\r\n",
        endpoint.address,
    )
    ok = await peer.recv_response()
    assert ok.status == 200
    assert "INVITE" in (ok.headers.get("Allow") or "")


async def test_unknown_method_gets_501(make_endpoint: EndpointFactory, peer: UdpPeer) -> None:
    endpoint, _ = await make_endpoint()
    host, port = endpoint.address
    peer.send(
        f"PUBLISH sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-pub\r\n"
        f"From: <sip:a@127.0.0.1>;tag=x\r\nTo: <sip:{host}>\r\n"
        "Call-ID: pub@test\r\nCSeq: 1 PUBLISH\r\nContent-Length: 0\r\n\r\n",
        endpoint.address,
    )
    assert (await peer.recv_response()).status == 501


async def test_offer_without_common_codec_gets_488(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    peer.send(invite(endpoint.address, peer.port, codecs="9 18"), endpoint.address)
    assert (await peer.recv_response(488)).status == 488
    assert not handler.offered


async def test_call_cap_refuses_with_503(make_endpoint: EndpointFactory, peer: UdpPeer) -> None:
    handler = RecordingHandler(on_offer=lambda call, event: call.ring())
    endpoint, _ = await make_endpoint(handler, max_calls=1)
    peer.send(invite(endpoint.address, peer.port), endpoint.address)
    await peer.recv_response(180)
    peer.send(
        invite(endpoint.address, peer.port, call_id="call-2@test", branch="z9hG4bK-2"),
        endpoint.address,
    )
    assert (await peer.recv_response(503)).call_id == "call-2@test"


async def test_client_transaction_retransmits_with_timer_e_and_times_out_with_timer_f(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    from commserver.sip.errors import TransactionTimeout
    from commserver.sip.message import Headers, SipUri

    endpoint, _ = await make_endpoint()  # T1 = 50 ms, T2 = 400 ms, F = 3.2 s
    headers = Headers()
    headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{endpoint.address[1]};branch=z9hG4bK-client-e")
    headers.add("From", "<sip:caruso@127.0.0.1>;tag=t")
    headers.add("To", "<sip:peer@127.0.0.1>")
    headers.add("Call-ID", "client@test")
    headers.add("CSeq", "1 OPTIONS")
    request = SipRequest(headers=headers, method="OPTIONS", uri=SipUri("127.0.0.1", port=peer.port))
    tx = endpoint.layer.request(request, ("127.0.0.1", peer.port))
    copies = await peer.silence(1.2)
    # Sent at 0, 50, 150, 350, 750 ms (doubling), then every 400 ms (T2): 5 in 1.2 s.
    assert 4 <= len(copies) <= 6
    assert all(copy == copies[0] for copy in copies)
    try:
        async with asyncio.timeout(3.0):
            await tx.result
    except TransactionTimeout:
        pass
    else:
        raise AssertionError("Timer F did not fire")


async def test_client_transaction_completes_on_final_response(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    from commserver.sip.message import Headers, SipUri, make_response

    endpoint, _ = await make_endpoint()
    headers = Headers()
    headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{endpoint.address[1]};branch=z9hG4bK-client-k")
    headers.add("From", "<sip:caruso@127.0.0.1>;tag=t")
    headers.add("To", "<sip:peer@127.0.0.1>")
    headers.add("Call-ID", "client-k@test")
    headers.add("CSeq", "1 OPTIONS")
    request = SipRequest(headers=headers, method="OPTIONS", uri=SipUri("127.0.0.1", port=peer.port))
    tx = endpoint.layer.request(request, ("127.0.0.1", peer.port))
    received = await peer.recv()
    assert isinstance(received, SipRequest)
    peer.send(make_response(received, 200).to_bytes(), endpoint.address)
    response = await asyncio.wait_for(tx.result, 1.0)
    assert isinstance(response, SipResponse)
    assert response.status == 200
    assert not await peer.silence(0.3)  # no more retransmissions once completed


def _answer_late(call: SipCall, event: CallOffered) -> None:
    asyncio.get_running_loop().call_later(0.2, call.answer)


async def test_invite_retransmissions_before_answer_get_100_and_one_call(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    handler = RecordingHandler(on_offer=_answer_late)
    endpoint, _ = await make_endpoint(handler)
    message = invite(endpoint.address, peer.port)
    peer.send(message, endpoint.address)
    assert (await peer.recv_response()).status == 100
    peer.send(message, endpoint.address)
    assert (await peer.recv_response()).status == 100
    assert (await peer.recv_response(200)).status == 200
    assert len(handler.offered) == 1
