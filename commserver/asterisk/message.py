"""The AMI wire format: messages, actions, and an incremental framer with limits.

AMI is line based: `Key: Value` lines ended by CRLF, a message ended by an empty line. The
first line a manager sends is the banner (`Asterisk Call Manager/9.0.0`) with no empty line
after it. Old `Response: Follows` answers (the `Command` action before Asterisk 14) carry raw
output, which may contain empty lines, up to a `--END COMMAND--` line.

The framer never trusts the peer: a frame larger than `ParseLimits.max_frame_bytes` is
discarded up to the next empty line, headers past `max_headers` are dropped, undecodable bytes
are replaced, and every problem is reported as a `FrameProblem` value so the connection can log
it and spend its junk budget, instead of raising in the middle of a read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .errors import AmiProtocolError

BANNER_PREFIX = "Asterisk Call Manager/"
_END_OF_MESSAGE = re.compile(rb"\r?\n\r?\n")
_END_COMMAND = "--END COMMAND--"
_FOLLOWS = re.compile(rb"^Response:[ \t]*Follows\r?$", re.IGNORECASE | re.MULTILINE)
_HEADER = re.compile(r"^([^\s:]+):[ ]?([^\r\n]*)\r?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """How much the framer accepts from a peer before it calls a frame junk."""

    max_frame_bytes: int = 256 * 1024
    max_headers: int = 512
    max_banner_bytes: int = 256


DEFAULT_LIMITS = ParseLimits()


class AmiMessage:
    """One message from Asterisk: an event or a response, with its headers in wire order.

    Lookups are case-insensitive and return the first value; `get_all` returns every value of
    a repeated header (`ChanVariable`, `Variable`, `Output`). `body` holds the raw lines of an
    old-style `Response: Follows` answer.
    """

    __slots__ = ("_first", "body", "headers")

    def __init__(self, headers: Iterable[tuple[str, str]], body: Sequence[str] = ()) -> None:
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)
        self.body: tuple[str, ...] = tuple(body)
        # Walked backwards so the first of repeated headers is the one kept.
        self._first = {key.lower(): value for key, value in reversed(self.headers)}

    def get(self, name: str, default: str = "") -> str:
        """The first value of a header (any case), or `default`."""
        return self._first.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, in wire order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def index(self) -> Mapping[str, str]:
        """First value of each header by lower-cased name (the fast path for decoders)."""
        return self._first

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    @property
    def is_event(self) -> bool:
        """True for `Event:` messages (an `OriginateResponse` event also carries `Response`)."""
        return "event" in self._first

    @property
    def is_response(self) -> bool:
        """True for the answer to an action."""
        return "event" not in self._first and "response" in self._first

    @property
    def event(self) -> str:
        """The event name ('' for a response)."""
        return self._first.get("event", "")

    @property
    def response(self) -> str:
        """`Success`, `Error`, `Follows`, `Goodbye`... ('' for most events)."""
        return self._first.get("response", "")

    @property
    def action_ids(self) -> list[str]:
        """Every `ActionID` the message carries (some recorded answers repeat it)."""
        return self.get_all("ActionID")

    @property
    def is_list_end(self) -> bool:
        """The `...Complete` event that closes an EventList (`EventList: Complete`)."""
        return self.get("EventList").lower() == "complete" or (
            self.event.endswith("Complete") and "actionid" in self._first
        )

    def as_dict(self) -> dict[str, str]:
        """First value of each header, keys as sent (for logs and tests)."""
        out: dict[str, str] = {}
        for key, value in self.headers:
            out.setdefault(key, value)
        return out

    def __repr__(self) -> str:
        kind = f"Event={self.event!r}" if self.is_event else f"Response={self.response!r}"
        return f"<AmiMessage {kind} {len(self.headers)} headers>"


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line: the manager protocol version Asterisk speaks."""

    version: str


@dataclass(frozen=True, slots=True)
class FrameProblem:
    """Something the framer refused or repaired; `fatal` means the peer is not AMI at all."""

    reason: str
    excerpt: str = ""
    fatal: bool = False


Parsed = AmiMessage | Banner | FrameProblem


@dataclass(frozen=True, slots=True)
class AmiAction:
    """An action to send. Fields keep their order; a repeated key sends several lines."""

    name: str
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, **fields: str | int | float | Sequence[str] | None) -> AmiAction:
        """Build an action from keyword fields; lists repeat the key, `None` leaves it out."""
        pairs: list[tuple[str, str]] = []
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, str | int | float):
                pairs.append((key, _text(value)))
            else:
                pairs.extend((key, str(item)) for item in value)
        return cls(name, tuple(pairs))

    def get(self, key: str, default: str = "") -> str:
        """The first value of a field (any case)."""
        wanted = key.lower()
        return next((v for k, v in self.fields if k.lower() == wanted), default)

    def encode(self, action_id: str) -> bytes:
        """The action on the wire, with its ActionID; refuses CR/LF inside keys and values."""
        lines = [f"Action: {_clean(self.name)}", f"ActionID: {_clean(action_id)}"]
        lines.extend(f"{_clean(key)}: {_clean(value)}" for key, value in self.fields)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def redacted(self) -> dict[str, str]:
        """The fields for a log line, secrets blanked."""
        return {k: ("********" if k.lower() == "secret" else v) for k, v in self.fields}


def _text(value: str | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _clean(text: str) -> str:
    # A CR or LF inside a value would end the line and let caller-supplied text (a caller's
    # name, a number) inject headers or whole actions into the manager session.
    if "\r" in text or "\n" in text:
        raise AmiProtocolError("an AMI field may not contain CR or LF", field=text[:40])
    return text


def sanitize(text: str) -> str:
    """Network-supplied text made safe for an AMI field (control characters become spaces)."""
    return "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text)


def encode_message(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> bytes:
    """A message (as Asterisk would send it) on the wire; used by tests and the benchmark."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode("utf-8")


class FrameParser:
    """Turns a byte stream from Asterisk into banner, messages and problems, in order."""

    def __init__(self, limits: ParseLimits = DEFAULT_LIMITS, *, expect_banner: bool = True):
        self.limits = limits
        self._buffer = bytearray()
        self._want_banner = expect_banner
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the end of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Parsed]:
        """Add bytes; return whatever became complete."""
        self._buffer += data
        return list(self._drain())

    def _drain(self) -> Iterator[Parsed]:
        buffer = self._buffer
        start = 0
        if self._want_banner:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > self.limits.max_banner_bytes:
                    self._want_banner = False
                    yield FrameProblem("no AMI banner", _excerpt(buffer), fatal=True)
                return
            self._want_banner = False
            line = bytes(buffer[:end]).rstrip(b"\r").decode("utf-8", "replace")
            start = end + 1
            if line.startswith(BANNER_PREFIX):
                yield Banner(line[len(BANNER_PREFIX) :].strip())
            else:
                yield FrameProblem("not an Asterisk manager", line[:80], fatal=True)
        limit = self.limits.max_frame_bytes
        while True:
            match = _END_OF_MESSAGE.search(buffer, start)
            if match is None:
                break
            frame_end, next_start = match.start(), match.end()
            if self._discarding:
                # The rest of an oversized frame: drop it, resume at the next message.
                self._discarding = False
                start = next_start
                continue
            if _FOLLOWS.match(buffer, start) and not _ends_command(buffer, start, frame_end):
                # Raw command output may hold empty lines: wait for --END COMMAND--.
                end_command = buffer.find(_END_COMMAND.encode(), start)
                if end_command < 0:
                    break
                match = _END_OF_MESSAGE.search(buffer, end_command)
                if match is None:
                    break
                frame_end, next_start = match.start(), match.end()
            if frame_end - start > limit:
                yield FrameProblem("frame too large", _excerpt(buffer[start : start + 80]))
                start = next_start
                continue
            frame = bytes(buffer[start:frame_end])
            start = next_start
            if frame.strip():
                yield self._message(frame)
        del buffer[:start]
        if len(buffer) > limit:
            # No end of message in sight: keep memory bounded and skip to the next one.
            yield FrameProblem("frame too large", _excerpt(buffer[:80]))
            buffer.clear()
            self._discarding = True

    def _message(self, frame: bytes) -> Parsed:
        text = frame.decode("utf-8", "replace")
        if not _FOLLOWS.match(frame):
            # The common case, done by the regex engine: every `Key: value` line, in order;
            # a line that is no header (junk inside a message) simply does not match.
            headers = _HEADER.findall(text)
            if len(headers) > self.limits.max_headers:
                del headers[self.limits.max_headers :]
            return self._checked(headers, (), frame)
        return self._follows(text, frame)

    def _follows(self, text: str, frame: bytes) -> Parsed:
        """An old `Response: Follows` answer: headers, then raw output lines."""
        headers: list[tuple[str, str]] = []
        body: list[str] = []
        in_body = False
        for raw in text.split("\n"):
            line = raw.rstrip("\r")
            if not line:
                if in_body:
                    body.append(line)
                continue
            key, sep, value = line.partition(":")
            if in_body or not sep or not key or key != key.strip() or " " in key:
                if headers and _is_follows(headers):
                    in_body = True
                    body.append(line)
                continue  # a line that is no header (junk inside a message) is skipped
            if len(headers) >= self.limits.max_headers:
                continue
            headers.append((key, value[1:] if value.startswith(" ") else value))
        return self._checked(headers, body, frame)

    def _checked(self, headers: list[tuple[str, str]], body: Sequence[str], frame: bytes) -> Parsed:
        if not headers:
            return FrameProblem("not an AMI message", _excerpt(frame[:80]))
        message = AmiMessage(headers, body)
        if not (message.is_event or message.is_response):
            return FrameProblem("message without Event or Response", _excerpt(frame[:80]))
        return message


def _is_follows(headers: list[tuple[str, str]]) -> bool:
    return headers[0][0].lower() == "response" and headers[0][1].strip().lower() == "follows"


def _ends_command(buffer: bytearray, start: int, end: int) -> bool:
    return buffer.find(_END_COMMAND.encode(), start, end) >= 0


def _excerpt(data: bytes | bytearray) -> str:
    return bytes(data[:80]).decode("utf-8", "replace").replace("\r", "\\r").replace("\n", "\\n")
