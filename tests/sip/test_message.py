"""The SIP message model: parsing, typed views, serialization, limits."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commserver.sip.errors import MalformedMessage
from commserver.sip.message import (
    CSeq,
    NameAddress,
    ParseLimits,
    SipRequest,
    SipResponse,
    SipUri,
    UnparseableMessage,
    Via,
    canonical_header_name,
    make_response,
    parse_message,
    split_outside_quotes,
)

INVITE = (
    "INVITE sip:100@192.0.2.1:5060;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK776asdhds;rport\r\n"
    "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnashds8, SIP/2.0/UDP 10.0.0.1:5070\r\n"
    "  ;branch=z9hG4bKfolded\r\n"
    "Max-Forwards: 70\r\n"
    'f: "Bob, the \\"caller\\"" <sip:bob@example.com>;tag=1928301774\r\n'
    "t: <sip:100@192.0.2.1>\r\n"
    "i: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "m: <sip:bob@198.51.100.7:5062>\r\n"
    "c: application/sdp\r\n"
    "l: 4\r\n"
    "\r\n"
    "v=0\r\nEXTRA"
)


def test_request_parses_with_compact_forms_folding_and_multiple_vias() -> None:
    message = parse_message(INVITE.encode())
    assert isinstance(message, SipRequest)
    assert message.method == "INVITE"
    assert message.uri == SipUri("192.0.2.1", "100", 5060, params=(("transport", "udp"),))
    assert message.call_id == "a84b4c76e66710@pc33.example.com"
    assert message.cseq == CSeq(314159, "INVITE")
    vias = message.vias
    assert [v.branch for v in vias] == ["z9hG4bK776asdhds", "z9hG4bKnashds8", "z9hG4bKfolded"]
    assert vias[2].sent_by == ("10.0.0.1", 5070)
    assert message.from_addr.display_name == 'Bob, the "caller"'
    assert message.from_addr.tag == "1928301774"
    assert message.to_addr.tag is None
    assert message.contacts[0].uri.port == 5062
    assert message.content_type == "application/sdp"
    assert message.body == b"v=0\r"  # bytes past Content-Length are discarded over UDP


def test_serialization_round_trips_and_computes_content_length() -> None:
    message = parse_message(INVITE.encode())
    assert isinstance(message, SipRequest)
    message.body = b"v=0\r\n"
    again = parse_message(message.to_bytes())
    assert isinstance(again, SipRequest)
    assert again.headers.get("Content-Length") == "5"
    assert again.body == b"v=0\r\n"
    assert [str(v) for v in again.vias] == [str(v) for v in message.vias]
    assert again.from_addr == message.from_addr


def test_response_copies_vias_and_tags_the_to_header() -> None:
    request = parse_message(INVITE.encode())
    assert isinstance(request, SipRequest)
    response = make_response(request, 180, to_tag="abc")
    parsed = parse_message(response.to_bytes())
    assert isinstance(parsed, SipResponse)
    assert parsed.status == 180
    assert parsed.reason == "Ringing"
    assert len(parsed.vias) == 3
    assert parsed.to_addr.tag == "abc"
    assert parsed.cseq == request.cseq
    trying = make_response(request, 100, to_tag="abc")
    assert trying.to_addr.tag is None  # 100 Trying never creates a dialog


@pytest.mark.parametrize(
    ("data", "status", "addressable"),
    [
        (b"garbage\r\n\r\n", 400, False),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n", 400, False),
        (INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE").encode(), 400, True),
        (INVITE.replace("l: 4", "l: 400").encode(), 400, True),
        (INVITE.replace("l: 4", "l: -1").encode(), 400, True),
        (INVITE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia", 1).encode(), 505, True),
        (INVITE.replace("t: <sip:100@192.0.2.1>", "t: <sip:100@192.0.2.1").encode(), 400, True),
        (INVITE.replace("i: a84b4c76e66710@pc33.example.com\r\n", "").encode(), 400, True),
        (INVITE.replace("INVITE sip:100@", "INVITE tel:100@", 1).encode(), 400, True),
    ],
)
def test_malformed_messages_raise_with_what_is_needed_to_answer(
    data: bytes, status: int, addressable: bool
) -> None:
    with pytest.raises(UnparseableMessage) as info:
        parse_message(data)
    assert info.value.status == status
    assert (info.value.partial is not None) is addressable


def test_size_limits_are_enforced() -> None:
    with pytest.raises(UnparseableMessage) as info:
        parse_message(INVITE.encode(), ParseLimits(max_message_bytes=200))
    assert info.value.status == 513
    with pytest.raises(UnparseableMessage):
        parse_message(INVITE.encode(), ParseLimits(max_headers=5))
    with pytest.raises(UnparseableMessage):
        parse_message(INVITE.encode(), ParseLimits(max_vias=2))


def test_header_names_are_canonical() -> None:
    assert canonical_header_name("i") == "Call-ID"
    assert canonical_header_name("cseq") == "CSeq"
    assert canonical_header_name("WWW-AUTHENTICATE") == "WWW-Authenticate"
    assert canonical_header_name("x-custom-thing") == "X-Custom-Thing"


def test_typed_values_parse_and_print() -> None:
    address = NameAddress.parse("sip:alice@example.com;tag=88")
    assert address.tag == "88"
    assert address.uri.params == ()  # addr-spec parameters belong to the header
    assert (
        str(NameAddress.parse('"A" <sip:a@[::1]:5070;lr>;tag=1'))
        == '"A" <sip:a@[::1]:5070;lr>;tag=1'
    )
    via = Via.parse("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;received=192.0.2.9;rport=4000")
    assert via.response_address(("203.0.113.1", 9)) == ("192.0.2.9", 4000)
    assert Via.parse("SIP/2.0/UDP h:5070;rport").response_address(("203.0.113.1", 9)) == (
        "203.0.113.1",
        9,
    )
    with pytest.raises(MalformedMessage):
        SipUri.parse("sip:alice@host:99999")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_escape_the_parser_as_anything_but_malformed(data: bytes) -> None:
    with contextlib.suppress(UnparseableMessage):
        parse_message(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(INVITE.encode().split(b"\r\n")),
        min_size=1,
        max_size=14,
    )
)
def test_shuffled_header_lines_parse_or_fail_cleanly(lines: list[bytes]) -> None:
    try:
        message = parse_message(b"\r\n".join(lines) + b"\r\n\r\n")
    except UnparseableMessage:
        return
    # Whatever parses must serialize and parse again to the same headers.
    again = parse_message(message.to_bytes())
    assert [(k, v) for k, v in again.headers if k != "Content-Length"] == [
        (k, v) for k, v in message.headers if k != "Content-Length"
    ]


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("sip:127.0.0.1;transport=UDP", "sip:127.0.0.1", True),  # pyVoIP's digest uri
        ("sip:alice@EXAMPLE.com", "sip:alice@example.com", True),
        ("sip:alice@example.com;transport=udp", "sip:alice@example.com;transport=UDP", True),
        ("sip:alice@example.com", "sip:Alice@example.com", False),  # users are case-sensitive
        ("sip:alice@example.com:5060", "sip:alice@example.com", False),  # explicit port counts
        ("sip:alice@example.com;transport=tcp", "sip:alice@example.com;transport=udp", False),
        ("sip:alice@example.com;user=phone", "sip:alice@example.com", False),
        ("sip:alice@example.com;maddr=10.0.0.1", "sip:alice@example.com", False),
        ("sips:alice@example.com", "sip:alice@example.com", False),
        ("sip:a@h?subject=x&priority=y", "sip:a@h?priority=y&subject=x", True),
    ],
)
def test_uri_equivalence_follows_rfc3261_19_1_4(first: str, second: str, same: bool) -> None:
    a, b = SipUri.parse(first), SipUri.parse(second)
    assert a.equivalent(b) is same
    assert b.equivalent(a) is same


def test_a_header_value_read_again_is_not_parsed_again_and_equals_a_fresh_parse() -> None:
    message = parse_message(INVITE.encode())
    assert message.from_addr is message.from_addr
    assert message.top_via is message.top_via
    assert message.cseq is message.cseq
    text = message.headers.get("From")
    assert text is not None
    assert message.from_addr == NameAddress._parse_text(text)


@pytest.mark.parametrize(
    ("parse", "junk"),
    [
        (NameAddress.parse, '"unterminated <sip:a@b>'),
        (Via.parse, "SIP/2.0 no-transport"),
        (CSeq.parse, "one INVITE"),
        (SipUri.parse, "mailto:someone@example.com"),
    ],
)
def test_a_bad_header_value_is_refused_every_time_it_comes(parse: object, junk: str) -> None:
    assert callable(parse)
    for _ in range(2):
        with pytest.raises(MalformedMessage):
            parse(junk)


@given(st.text(alphabet="ab;,=\\ >", max_size=40))
@settings(max_examples=300)
def test_splitting_without_quotes_or_brackets_agrees_with_the_quote_aware_scanner(
    text: str,
) -> None:
    fast = split_outside_quotes(text, ";")
    # A trailing "<>" sends the same text through the character scanner.
    scanned = split_outside_quotes(text + "<>", ";")
    assert scanned[:-1] == fast[:-1]
    assert scanned[-1] == fast[-1] + "<>"
