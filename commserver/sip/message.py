"""The SIP message model (RFC 3261 §7, §20, §25): typed values, a strict parser, a serializer.

Messages are parsed once into `SipRequest`/`SipResponse` with an ordered, case-insensitive header
list; typed views (`Via`, `NameAddress`, `SipUri`, `CSeq`) are parsed from it on demand. Nothing
edits a message as text: responses and new requests are built from typed values.
"""

from __future__ import annotations

import enum
import functools
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from .errors import MalformedMessage

SIP_VERSION = "SIP/2.0"
BRANCH_COOKIE = "z9hG4bK"


class SipMethod(enum.StrEnum):
    """The methods this stack knows; other methods parse and are answered 501."""

    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    OPTIONS = "OPTIONS"
    REGISTER = "REGISTER"
    INFO = "INFO"
    REFER = "REFER"
    NOTIFY = "NOTIFY"
    SUBSCRIBE = "SUBSCRIBE"
    MESSAGE = "MESSAGE"
    UPDATE = "UPDATE"
    PRACK = "PRACK"


REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}

# RFC 3261 §7.3.3 and later RFCs: the one-letter forms a phone may send.
_COMPACT: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
}

_SPECIAL_CASE: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}

# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1). Authorization
# and friends are deliberately absent: their commas separate parameters, not values.
_LIST_HEADERS = frozenset({"via", "contact", "route", "record-route"})

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_STATUS_LINE_RE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) ?(.*)$")
_VIA_RE = re.compile(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+(.*)$")
_QUOTED_PAIR_RE = re.compile(r"\\(.)")

# Parsed header values are immutable, and one message's values are read many times (parser
# checks, transaction matching, dialog, endpoint): each parser keeps its recent results.
# Bounded, so junk cannot grow it; failures are never cached, so junk costs what it did.
_PARSE_CACHE_SIZE = 4096


# Every header of every message passes here, and a server meets a few dozen names.
@functools.lru_cache(maxsize=1024)
def canonical_header_name(name: str) -> str:
    """The canonical spelling of a header name, expanding compact forms ('i' -> 'Call-ID')."""
    lowered = name.strip().lower()
    lowered = _COMPACT.get(lowered, lowered)
    special = _SPECIAL_CASE.get(lowered)
    if special is not None:
        return special
    return "-".join(part.capitalize() for part in lowered.split("-"))


def new_branch() -> str:
    """A fresh RFC 3261 branch parameter (magic cookie + 96 random bits)."""
    return BRANCH_COOKIE + secrets.token_hex(12)


def new_tag() -> str:
    """A fresh From/To tag."""
    return secrets.token_hex(8)


def new_call_id(host: str) -> str:
    """A fresh globally unique Call-ID."""
    return f"{secrets.token_hex(16)}@{host}"


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on what the parser accepts, so junk costs little and cannot exhaust memory."""

    max_message_bytes: int = 16 * 1024
    max_headers: int = 100
    max_header_line: int = 4096
    max_vias: int = 20


DEFAULT_LIMITS = ParseLimits()


# ---------------------------------------------------------------------------------------------
# Small grammar helpers


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on `separator` where it is not inside a quoted string or angle brackets."""
    if '"' not in text and "<" not in text:
        return text.split(separator)  # the usual case (Via, tag and branch parameters)
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    in_angle = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if in_quotes and char == "\\":
            current.append(char)
            escaped = True
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char == "<":
            in_angle = True
        elif not in_quotes and char == ">":
            in_angle = False
        if char == separator and not in_quotes and not in_angle:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if in_quotes:
        raise MalformedMessage("unterminated quoted string", text=text[:80])
    parts.append("".join(current))
    return parts


Params = tuple[tuple[str, str | None], ...]


def parse_params(text: str) -> Params:
    """Parse ';name=value;flag' parameters (leading ';' optional); names are lower-cased."""
    result: list[tuple[str, str | None]] = []
    for raw in split_outside_quotes(text, ";"):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not _TOKEN_RE.match(name):
            raise MalformedMessage("bad parameter name", parameter=name[:40])
        result.append((name, value.strip() if sep else None))
    return tuple(result)


def format_params(params: Params) -> str:
    """Serialize parameters as ';name=value;flag'."""
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def get_param(params: Params, name: str) -> str | None:
    """The value of a parameter ('' for a flag), or None when absent."""
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


def set_param(params: Params, name: str, value: str | None) -> Params:
    """A copy of `params` with `name` set (replacing an existing value, or appended)."""
    out = [(k, v) for k, v in params if k != name]
    out.append((name, value))
    return tuple(out)


def _split_host_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise MalformedMessage("bad IPv6 reference", host=text[:60])
        host, rest = text[: end + 1], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise MalformedMessage("bad host:port", host=text[:60])
        port_text = rest[1:]
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = ""
    if not host or any(c in host for c in " \t<>\"'"):
        raise MalformedMessage("bad host", host=text[:60])
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise MalformedMessage("bad port", port=port_text[:10])
    return host, int(port_text)


# ---------------------------------------------------------------------------------------------
# Typed header values


def _uri_headers(text: str) -> frozenset[str]:
    # URI headers compare as an unordered set (RFC 3261 §19.1.4).
    return frozenset(part for part in text.split("&") if part)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A sip: or sips: URI (RFC 3261 §19.1)."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: Params = ()
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a URI; raises `MalformedMessage`."""
        return _PARSED_SIPURI(text)

    @classmethod
    def _parse_text(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in ("sip", "sips"):
            raise MalformedMessage("not a sip URI", uri=text[:80])
        rest, _, uri_headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        user: str | None = None
        password: str | None = None
        if at:
            user, colon, pw = userinfo.partition(":")
            password = pw if colon else None
            if not user:
                raise MalformedMessage("empty user in URI", uri=text[:80])
        hostport, _, param_text = hostpart.partition(";")
        host, port = _split_host_port(hostport)
        return cls(
            host=host.lower(),
            user=user,
            port=port,
            scheme=scheme,
            password=password,
            params=parse_params(param_text),
            headers=uri_headers,
        )

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{headers}"

    def equivalent(self, other: SipUri) -> bool:
        """URI equality as RFC 3261 §19.1.4 defines it (not field-by-field identity).

        Scheme and host compare case-insensitively, the user part exactly; a port must be
        present in both or neither; a parameter present in both must match, `user`, `ttl`,
        `method` and `maddr` must not appear in only one, and other parameters present in
        only one are ignored (so `sip:h;transport=UDP` names the same resource as `sip:h`).
        """
        if (self.scheme, self.host.lower(), self.user, self.password, self.port) != (
            other.scheme,
            other.host.lower(),
            other.user,
            other.password,
            other.port,
        ):
            return False
        mine, theirs = dict(self.params), dict(other.params)
        for name in mine.keys() | theirs.keys():
            if name in mine and name in theirs:
                if (mine[name] or "").lower() != (theirs[name] or "").lower():
                    return False
            elif name in ("user", "ttl", "method", "maddr"):
                return False
        return _uri_headers(self.headers) == _uri_headers(other.headers)

    @property
    def host_port(self) -> tuple[str, int]:
        """Where to send to this URI over UDP (no DNS SRV: hosts are IP literals or names)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return host, self.port or (5061 if self.scheme == "sips" else 5060)


_PARSED_SIPURI = functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)(SipUri._parse_text)


@dataclass(frozen=True, slots=True)
class NameAddress:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    uri: SipUri
    display_name: str = ""
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> NameAddress:
        """Parse name-addr or addr-spec form; raises `MalformedMessage`."""
        return _PARSED_NAMEADDRESS(text)

    @classmethod
    def _parse_text(cls, text: str) -> NameAddress:
        text = text.strip()
        display = ""
        if text.startswith('"'):
            end = 1
            while end < len(text):
                if text[end] == "\\":
                    end += 2
                    continue
                if text[end] == '"':
                    break
                end += 1
            else:
                raise MalformedMessage("unterminated display name", value=text[:80])
            display = text[1:end]
            if "\\" in display:
                display = _QUOTED_PAIR_RE.sub(r"\1", display)
            text = text[end + 1 :].strip()
            if not text.startswith("<"):
                raise MalformedMessage("display name without <uri>", value=text[:80])
        if "<" in text:
            start = text.index("<")
            end_idx = text.find(">", start)
            if end_idx < 0:
                raise MalformedMessage("unterminated <uri>", value=text[:80])
            if not display:
                display = text[:start].strip()
            uri = SipUri.parse(text[start + 1 : end_idx])
            params = parse_params(text[end_idx + 1 :])
        else:
            # addr-spec: parameters after the URI belong to the header, not the URI (§20).
            uri_text, _, param_text = text.partition(";")
            uri = SipUri.parse(uri_text)
            params = parse_params(param_text)
        return cls(uri=uri, display_name=display, params=params)

    def __str__(self) -> str:
        name = ""
        if self.display_name:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}" '
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        """The tag parameter, or None."""
        return get_param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddress:
        """A copy carrying this tag."""
        return replace(self, params=set_param(self.params, "tag", tag))


_PARSED_NAMEADDRESS = functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)(NameAddress._parse_text)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop (RFC 3261 §20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse 'SIP/2.0/UDP host:port;branch=...'; raises `MalformedMessage`."""
        return _PARSED_VIA(text)

    @classmethod
    def _parse_text(cls, text: str) -> Via:
        match = _VIA_RE.match(text)
        if match is None:
            raise MalformedMessage("bad Via", value=text[:80])
        sent_by, _, param_text = match.group(2).partition(";")
        host, port = _split_host_port(sent_by)
        return cls(match.group(1).upper(), host, port, parse_params(param_text))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The branch parameter, or None."""
        return get_param(self.params, "branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        """Host and port of the sender as it claims them."""
        return self.host, self.port or 5060

    def response_address(self, source: tuple[str, int]) -> tuple[str, int]:
        """Where responses go over UDP: received/rport when present (RFC 3261 §18.2.2, RFC 3581)."""
        host = get_param(self.params, "received") or self.host
        rport = get_param(self.params, "rport")
        if rport:
            return host, int(rport)
        if rport == "":
            return source
        return host.strip("[]"), self.port or 5060


_PARSED_VIA = functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)(Via._parse_text)


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header: sequence number and method."""

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse '314159 INVITE'; raises `MalformedMessage`."""
        return _PARSED_CSEQ(text)

    @classmethod
    def _parse_text(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not _TOKEN_RE.match(parts[1]):
            raise MalformedMessage("bad CSeq", value=text[:40])
        number = int(parts[0])
        if number >= 2**31:
            raise MalformedMessage("CSeq out of range", value=text[:40])
        return cls(number, parts[1].upper())

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


_PARSED_CSEQ = functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)(CSeq._parse_text)


# ---------------------------------------------------------------------------------------------
# Headers and messages


class Headers:
    """An ordered, case-insensitive multi-map of header fields with canonical names."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_header_name(k), v) for k, v in items]

    def get(self, name: str) -> str | None:
        """The first value of a header, or None."""
        wanted = canonical_header_name(name)
        for key, value in self._items:
            if key == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, in order."""
        wanted = canonical_header_name(name)
        return [value for key, value in self._items if key == wanted]

    def add(self, name: str, value: str) -> None:
        """Append a value."""
        self._items.append((canonical_header_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a value before all others (a new top Via)."""
        self._items.insert(0, (canonical_header_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of a header by one value, keeping the first one's position."""
        wanted = canonical_header_name(name)
        for index, (key, _) in enumerate(self._items):
            if key == wanted:
                self._items[index] = (wanted, value)
                self._items = [
                    item for i, item in enumerate(self._items) if i <= index or item[0] != wanted
                ]
                return
        self._items.append((wanted, value))

    def remove(self, name: str) -> None:
        """Drop every value of a header."""
        wanted = canonical_header_name(name)
        self._items = [item for item in self._items if item[0] != wanted]

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class _MessageBase:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        value = self.headers.get("Call-ID")
        if not value:
            raise MalformedMessage("missing Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq."""
        value = self.headers.get("CSeq")
        if value is None:
            raise MalformedMessage("missing CSeq")
        return CSeq.parse(value)

    @property
    def from_addr(self) -> NameAddress:
        """The parsed From header."""
        value = self.headers.get("From")
        if value is None:
            raise MalformedMessage("missing From")
        return NameAddress.parse(value)

    @property
    def to_addr(self) -> NameAddress:
        """The parsed To header."""
        value = self.headers.get("To")
        if value is None:
            raise MalformedMessage("missing To")
        return NameAddress.parse(value)

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first."""
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        """The topmost Via."""
        value = self.headers.get("Via")
        if value is None:
            raise MalformedMessage("missing Via")
        return Via.parse(value)

    @property
    def contacts(self) -> list[NameAddress]:
        """Every Contact except the '*' wildcard."""
        return [NameAddress.parse(v) for v in self.headers.get_all("Contact") if v.strip() != "*"]

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-cased, without parameters."""
        value = self.headers.get("Content-Type") or ""
        return value.split(";")[0].strip().lower()

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        lines.extend(f"{name}: {value}" for name, value in self.headers if name != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(slots=True)
class SipRequest(_MessageBase):
    """A SIP request; `method` is the upper-case method name (compare with `SipMethod`)."""

    method: str = "OPTIONS"
    uri: SipUri = field(default_factory=lambda: SipUri("invalid"))

    def to_bytes(self) -> bytes:
        """The wire form, with Content-Length computed from the body."""
        return self._serialize(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass(slots=True)
class SipResponse(_MessageBase):
    """A SIP response."""

    status: int = 200
    reason: str = "OK"

    def to_bytes(self) -> bytes:
        """The wire form, with Content-Length computed from the body."""
        return self._serialize(f"{SIP_VERSION} {self.status} {self.reason}")

    @property
    def is_provisional(self) -> bool:
        """1xx."""
        return self.status < 200

    @property
    def is_success(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300


SipMessage = SipRequest | SipResponse


@dataclass(frozen=True, slots=True)
class PartialMessage:
    """What the parser could recover from a malformed request, to address a 400."""

    method: str
    headers: Headers


class UnparseableMessage(MalformedMessage):
    """A malformed message, carrying what was recovered so the transport can answer 400."""

    code = "malformed-sip-message"

    def __init__(self, reason: str, partial: PartialMessage | None, status: int = 400) -> None:
        super().__init__(reason)
        self.partial = partial
        self.status = status


_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_RE = re.compile(r"\r?\n")


def parse_message(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> SipMessage:
    """Parse one datagram into a request or response.

    Raises `UnparseableMessage` carrying whatever headers were recovered, so that a request
    can still be answered with 400 (or 513 when too large, 505 for another SIP version).
    """
    try:
        return _parse(data, limits)
    except UnparseableMessage:
        raise
    except MalformedMessage as exc:
        raise UnparseableMessage(exc.message, None) from exc


def _parse(data: bytes, limits: ParseLimits) -> SipMessage:
    match = _HEAD_END_RE.search(data)
    if match is None:
        raise UnparseableMessage("no end of headers", None)
    head_bytes, body = data[: match.start()], data[match.end() :]
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnparseableMessage("headers are not UTF-8", None) from exc
    raw_lines = _LINE_RE.split(head)
    start_line = raw_lines[0].strip()
    if not start_line:
        raise UnparseableMessage("empty start line", None)

    is_response = start_line.startswith("SIP/")
    method = ""
    uri_text = ""
    if not is_response:
        parts = start_line.split(" ")
        if len(parts) == 3 and _TOKEN_RE.match(parts[0]):
            method, uri_text = parts[0].upper(), parts[1]
        else:
            raise UnparseableMessage("bad request line", None)

    headers = Headers()
    partial = PartialMessage(method, headers) if method else None

    # Unfold continuation lines (RFC 3261 §7.3.1) before splitting names from values.
    logical: list[str] = []
    for line in raw_lines[1:]:
        if len(line) > limits.max_header_line:
            raise UnparseableMessage("header line too long", partial)
        if line[:1] in (" ", "\t"):
            if not logical:
                raise UnparseableMessage("continuation before first header", partial)
            logical[-1] += " " + line.strip()
        else:
            logical.append(line)
    if len(logical) > limits.max_headers:
        raise UnparseableMessage("too many headers", partial)
    for line in logical:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN_RE.match(name):
            raise UnparseableMessage("bad header line", partial)
        canonical = canonical_header_name(name)
        value = value.strip()
        if canonical.lower() in _LIST_HEADERS and value != "*":
            try:
                items = split_outside_quotes(value, ",")
            except MalformedMessage as exc:
                raise UnparseableMessage(exc.message, partial) from exc
            for item in items:
                if item.strip():
                    headers.add(canonical, item.strip())
        else:
            headers.add(canonical, value)

    if len(data) > limits.max_message_bytes:
        raise UnparseableMessage("message too large", partial, status=513)
    if len(headers.get_all("Via")) > limits.max_vias:
        raise UnparseableMessage("too many Via headers", partial)

    length_text = headers.get("Content-Length")
    if length_text is not None:
        if not length_text.isdigit():
            raise UnparseableMessage("bad Content-Length", partial)
        length = int(length_text)
        if length > len(body):
            raise UnparseableMessage("body shorter than Content-Length", partial)
        # Over UDP, bytes past Content-Length are discarded (RFC 3261 §18.3).
        body = body[:length]

    message: SipMessage
    if is_response:
        status_match = _STATUS_LINE_RE.match(start_line)
        if status_match is None:
            raise UnparseableMessage("bad status line", None)
        message = SipResponse(
            headers=headers,
            body=body,
            status=int(status_match.group(1)),
            reason=status_match.group(2).strip(),
        )
    else:
        if start_line.split(" ")[2] != SIP_VERSION:
            raise UnparseableMessage("unsupported SIP version", partial, status=505)
        try:
            uri = SipUri.parse(uri_text)
        except MalformedMessage as exc:
            raise UnparseableMessage(f"bad Request-URI: {exc.message}", partial) from exc
        message = SipRequest(headers=headers, body=body, method=method, uri=uri)

    _validate(message, partial)
    return message


def _validate(message: SipMessage, partial: PartialMessage | None) -> None:
    """Check the headers every message must carry, parsing each once (§8.1.1)."""
    try:
        for name in ("Call-ID", "From", "To", "CSeq", "Via"):
            if message.headers.get(name) is None:
                raise MalformedMessage(f"missing {name}")
        message.from_addr  # noqa: B018 - parsing is the check
        message.to_addr  # noqa: B018
        cseq = message.cseq
        message.vias  # noqa: B018
        for contact in message.headers.get_all("Contact"):
            if contact.strip() != "*":
                NameAddress.parse(contact)
        max_forwards = message.headers.get("Max-Forwards")
        if max_forwards is not None and not max_forwards.strip().isdigit():
            raise MalformedMessage("bad Max-Forwards")
        if isinstance(message, SipRequest) and cseq.method != message.method:
            raise MalformedMessage("CSeq method differs from request method")
    except MalformedMessage as exc:
        raise UnparseableMessage(exc.message, partial) from exc


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """A response to `request` (RFC 3261 §8.2.6): Via, From, Call-ID, CSeq copied, To tagged."""
    out = Headers()
    for via in request.headers.get_all("Via"):
        out.add("Via", via)
    out.add("From", request.headers.get("From") or "")
    to_value = request.headers.get("To") or ""
    if to_tag is not None and status != 100:
        try:
            to = NameAddress.parse(to_value)
            if to.tag is None:
                to_value = str(to.with_tag(to_tag))
        except MalformedMessage:
            pass
    out.add("To", to_value)
    out.add("Call-ID", request.headers.get("Call-ID") or "")
    out.add("CSeq", request.headers.get("CSeq") or "")
    if status == 100 and (timestamp := request.headers.get("Timestamp")) is not None:
        out.add("Timestamp", timestamp)
    for name, value in headers:
        out.add(name, value)
    return SipResponse(
        headers=out, body=body, status=status, reason=reason or REASONS.get(status, "Unknown")
    )


def make_response_to_partial(partial: PartialMessage, status: int, reason: str) -> bytes | None:
    """The wire form of an error response to a malformed request, if it can be addressed."""
    headers = partial.headers
    needed = ("Via", "From", "To", "Call-ID", "CSeq")
    if partial.method == SipMethod.ACK or any(headers.get(n) is None for n in needed):
        return None
    try:
        Via.parse(headers.get_all("Via")[0])
    except MalformedMessage:
        return None
    out = Headers()
    for name in needed:
        for value in headers.get_all(name):
            out.add(name, value)
    return SipResponse(headers=out, status=status, reason=reason).to_bytes()
