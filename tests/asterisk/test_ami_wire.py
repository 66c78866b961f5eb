"""The AMI wire layer alone: framing, limits, junk, actions, AGI results, typed events."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commserver.asterisk import (
    AgiExecuted,
    AgiStarted,
    AmiAction,
    AmiMessage,
    AmiProtocolError,
    AsteriskState,
    Banner,
    BridgeEntered,
    ChannelHungUp,
    ChannelSnapshot,
    ChannelState,
    ContactStatus,
    ContactStatusChanged,
    DeviceState,
    DeviceStateChanged,
    FrameParser,
    FrameProblem,
    ParseLimits,
    agi,
    decode,
    encode_message,
    parse_env,
    parse_result,
)

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
HANGUP = encode_message(
    [
        ("Event", "Hangup"),
        ("Privilege", "call,all"),
        ("Channel", "PJSIP/trunk-00000001"),
        ("ChannelState", "6"),
        ("Uniqueid", "1700000000.1"),
        ("Cause", "16"),
        ("Cause-txt", "Normal Clearing"),
    ]
)


def messages(items: Sequence[object]) -> list[AmiMessage]:
    return [i for i in items if isinstance(i, AmiMessage)]


def test_banner_then_crlf_framed_messages_are_parsed_in_order() -> None:
    parser = FrameParser()
    ping = b"Response: Success\r\nActionID: a-1\r\nPing: Pong\r\n\r\n"
    items = parser.feed(BANNER + ping + HANGUP)
    assert items[0] == Banner("9.0.0")
    first, second = messages(items)
    assert first.is_response
    assert first.response == "Success"
    assert first.action_ids == ["a-1"]
    assert second.is_event
    assert second.event == "Hangup"
    assert second.get("cause") == "16"
    assert parser.buffered == 0


def test_a_peer_that_is_not_asterisk_is_refused_as_fatal() -> None:
    problem = FrameParser().feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")[0]
    assert isinstance(problem, FrameProblem)
    assert problem.fatal
    assert "not an Asterisk manager" in problem.reason


def test_a_banner_that_never_ends_is_fatal_instead_of_growing() -> None:
    problem = FrameParser(ParseLimits(max_banner_bytes=32)).feed(b"x" * 64)[0]
    assert isinstance(problem, FrameProblem)
    assert problem.fatal


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
def test_any_chunking_of_the_stream_yields_the_same_messages(cuts: list[int]) -> None:
    stream = BANNER + HANGUP * 3 + b"Response: Error\r\nMessage: Permission denied\r\n\r\n"
    whole = [m.headers for m in messages(FrameParser().feed(stream))]
    parser = FrameParser()
    pieces: list[object] = []
    position = 0
    for cut in cuts:
        pieces += parser.feed(stream[position : position + cut])
        position += cut
    pieces += parser.feed(stream[position:])
    assert [m.headers for m in messages(pieces)] == whole
    assert len(whole) == 4


def test_junk_frames_are_reported_and_the_stream_goes_on() -> None:
    parser = FrameParser(expect_banner=False)
    items = parser.feed(b"\x00\xff garbage without colon\r\n\r\nKey: but no Event\r\n\r\n" + HANGUP)
    problems = [i for i in items if isinstance(i, FrameProblem)]
    assert [p.reason for p in problems] == [
        "not an AMI message",
        "message without Event or Response",
    ]
    assert not any(p.fatal for p in problems)
    assert [m.event for m in messages(items)] == ["Hangup"]


def test_an_oversized_frame_is_dropped_up_to_the_next_message_with_bounded_memory() -> None:
    parser = FrameParser(ParseLimits(max_frame_bytes=1024), expect_banner=False)
    problems = parser.feed(b"Event: Flood\r\nData: " + b"x" * 5000)
    assert [p.reason for p in problems if isinstance(p, FrameProblem)] == ["frame too large"]
    assert parser.buffered == 0
    rest = parser.feed(b"still the flood\r\n\r\n" + HANGUP)
    assert [m.event for m in messages(rest)] == ["Hangup"]


def test_bare_lf_and_undecodable_bytes_are_tolerated() -> None:
    parser = FrameParser(expect_banner=False)
    [message] = messages(
        parser.feed(b"Event: Newchannel\nCallerIDName: Ren\xe9\nUniqueid: 1.2\n\n")
    )
    assert message.get("Uniqueid") == "1.2"
    assert message.get("CallerIDName") == "Ren\ufffd"


def test_headers_beyond_the_limit_are_dropped_not_fatal() -> None:
    parser = FrameParser(ParseLimits(max_headers=3), expect_banner=False)
    [message] = messages(parser.feed(HANGUP))
    assert len(message.headers) == 3


def test_old_command_output_with_empty_lines_stays_one_message() -> None:
    raw = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c-1\r\nHTTP Server Status:\r\n"
        b"Prefix: \r\n\r\nEnabled URI's:\r\n/ws => WebSocket\r\n--END COMMAND--\r\n\r\n"
    )
    [message] = messages(FrameParser(expect_banner=False).feed(raw))
    assert message.action_ids == ["c-1"]
    assert message.body[0] == "HTTP Server Status:"
    assert message.body[-1] == "--END COMMAND--"
    assert "" in message.body


def test_repeated_headers_are_all_kept() -> None:
    message = AmiMessage([("Event", "X"), ("ChanVariable", "A=1"), ("ChanVariable", "B=2")])
    assert message.get_all("chanvariable") == ["A=1", "B=2"]
    assert message.get("CHANVARIABLE") == "A=1"


def test_an_action_is_encoded_with_its_action_id_and_repeated_fields() -> None:
    action = AmiAction.of("Originate", Channel="PJSIP/2001", Variable=["A=1", "B=2"], Data=None)
    wire = action.encode("id-7").decode()
    assert wire == (
        "Action: Originate\r\nActionID: id-7\r\nChannel: PJSIP/2001\r\n"
        "Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )


def test_a_value_with_crlf_cannot_inject_headers() -> None:
    action = AmiAction.of("Originate", CallerID="Mallory\r\nAction: Hangup")
    with pytest.raises(AmiProtocolError):
        action.encode("id-1")


def test_the_secret_is_redacted_for_logs() -> None:
    login = AmiAction.of("Login", Username="caruso", Secret="s3cret")
    assert login.redacted() == {"Username": "caruso", "Secret": "********"}


@pytest.mark.parametrize(
    ("line", "code", "result", "data", "digit", "endpos"),
    [
        ("200 result=0", 200, "0", "", None, 0),
        ("200 result=49 endpos=8000", 200, "49", "", "1", 8000),
        ("200 result=35 (dtmf) endpos=16000", 200, "35", "dtmf", "#", 16000),
        ("200 result= (timeout)", 200, "", "timeout", None, 0),
        ("200 result=1 (SIP/000000)", 200, "1", "SIP/000000", None, 0),
        ("200 result=-1 (hangup) endpos=400", 200, "-1", "hangup", None, 400),
        ("510 Invalid or unknown command", 510, "", "Invalid or unknown command", None, 0),
    ],
)
def test_agi_result_lines_are_parsed(
    line: str, code: int, result: str, data: str, digit: str | None, endpos: int
) -> None:
    parsed = parse_result(line)
    assert (parsed.code, parsed.result, parsed.data, parsed.digit, parsed.endpos) == (
        code,
        result,
        data,
        digit,
        endpos,
    )
    assert parsed.ok == (code == 200 and result != "-1" and data != "hangup")


def test_agi_arguments_are_quoted_against_spaces_quotes_and_newlines() -> None:
    assert agi.stream_file('/var/x "y"', "#") == 'STREAM FILE "/var/x \\"y\\"" "#"'
    assert agi.set_variable("A", "line\nbreak") == 'SET VARIABLE "A" "line break"'


def test_the_async_agi_environment_is_url_decoded() -> None:
    env = parse_env("agi_request%3A%20async%0Aagi_channel%3A%20PJSIP%2Ftrunk-1%0A%0A")
    assert env == {"agi_request": "async", "agi_channel": "PJSIP/trunk-1"}


def test_events_decode_to_typed_values() -> None:
    start = decode(
        AmiMessage(
            [
                ("Event", "AsyncAGIStart"),
                ("Channel", "PJSIP/t-1"),
                ("ChannelState", "4"),
                ("CallerIDNum", "<unknown>"),
                ("Uniqueid", "1.1"),
                ("Env", "agi_extension%3A%20100%0A"),
            ]
        )
    )
    assert isinstance(start, AgiStarted)
    assert start.channel.state is ChannelState.RING
    assert start.channel.caller_number == ""  # Asterisk's "<unknown>"
    assert start.env == {"agi_extension": "100"}
    legacy = decode(
        AmiMessage(
            [
                ("Event", "AsyncAGI"),
                ("SubEvent", "Exec"),
                ("CommandID", "c-1"),
                ("Result", "200%20result%3D0%0A"),
            ]
        )
    )
    assert isinstance(legacy, AgiExecuted)
    assert legacy.result.code == 200
    device = decode(
        AmiMessage([("Event", "DeviceStateChange"), ("Device", "PJSIP/2001"), ("State", "INUSE")])
    )
    assert device == DeviceStateChanged(device="PJSIP/2001", state=DeviceState.INUSE)
    contact = decode(
        AmiMessage(
            [
                ("Event", "ContactStatus"),
                ("AOR", "2001"),
                ("ContactStatus", "Removed"),
                ("URI", "sip:2001@x"),
            ]
        )
    )
    assert isinstance(contact, ContactStatusChanged)
    assert contact.status is ContactStatus.REMOVED
    assert not contact.status.registered
    assert decode(AmiMessage([("Event", "VarSet"), ("Variable", "X")])) is None


def test_the_state_mirror_is_idempotent_and_never_resurrects_a_channel() -> None:
    state = AsteriskState()
    caller = ChannelSnapshot(uniqueid="1.1", name="PJSIP/t-1", state=ChannelState.UP)
    agent = ChannelSnapshot(uniqueid="a-1", name="PJSIP/2001-1", state=ChannelState.UP)
    state.rebuild([caller, agent], ["b-1"])
    for _ in range(2):
        state.apply(BridgeEntered(bridge_id="b-1", channel=caller))
        state.apply(BridgeEntered(bridge_id="b-1", channel=agent))
    assert state.bridged_with("1.1") == ["a-1"]
    state.apply(ChannelHungUp(channel=caller, cause=16))
    state.apply(ChannelHungUp(channel=caller, cause=16))
    state.apply(AgiExecuted(channel=caller, command_id="x", result=parse_result("200 result=0")))
    assert "1.1" not in state.channels
    assert state.bridged_with("a-1") == []
