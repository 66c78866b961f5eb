"""Just enough SDP (RFC 4566) and offer/answer (RFC 3264) for one G.711 audio stream with DTMF."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field

from .errors import MalformedSdp, NoCommonCodec


class Codec(enum.Enum):
    """The audio codecs this stack speaks, with their static RTP payload types."""

    PCMU = 0
    PCMA = 8

    @property
    def payload_type(self) -> int:
        """The static payload type (RFC 3551)."""
        return self.value


class Direction(enum.Enum):
    """Media direction attribute; a re-INVITE with sendonly/inactive puts the call on hold."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def reversed(self) -> Direction:
        """The direction the answerer uses for this offered direction (RFC 3264 §6.1)."""
        return {
            Direction.SENDONLY: Direction.RECVONLY,
            Direction.RECVONLY: Direction.SENDONLY,
        }.get(self, self)

    @property
    def sends(self) -> bool:
        """Whether the side that wrote this attribute sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """Whether the side that wrote this attribute receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, sends: bool, receives: bool) -> Direction:
        """The attribute for a side that sends and/or receives."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE


def answer_direction(offered: Direction, wanted: Direction) -> Direction:
    """Our answer to an offered direction when we ourselves want `wanted` (RFC 3264 §6.1).

    We send only if the offerer receives and we want to send; we receive only if the offerer
    sends and we want to receive. So a held peer stays held and a hold we keep stays kept.
    """
    return Direction.of(
        sends=offered.receives and wanted.sends, receives=offered.sends and wanted.receives
    )


def negotiated(local: Direction, remote: Direction) -> Direction:
    """What flows from our side's point of view once our SDP said `local` and theirs `remote`."""
    return Direction.of(
        sends=local.sends and remote.receives, receives=local.receives and remote.sends
    )


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section with its payload formats and the attributes we care about."""

    media: str
    port: int
    proto: str
    formats: tuple[int, ...]
    rtpmap: dict[int, str] = field(default_factory=dict)
    connection: str | None = None
    direction: Direction = Direction.SENDRECV
    ptime: int | None = None


@dataclass(slots=True)
class _MediaDraft:
    """A media section while it is being parsed."""

    media: str
    port: int
    proto: str
    formats: tuple[int, ...]
    rtpmap: dict[int, str] = field(default_factory=dict)
    connection: str | None = None
    direction: Direction | None = None
    ptime: int | None = None


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed session description."""

    origin_address: str
    connection: str | None
    media: tuple[MediaDescription, ...]
    session_id: int = 0
    session_version: int = 0

    @classmethod
    def parse(cls, body: bytes) -> SessionDescription:
        """Parse an SDP body; raises `MalformedSdp`."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedSdp("SDP is not UTF-8") from exc
        origin_address = ""
        session_conn: str | None = None
        session_id = version = 0
        session_direction = Direction.SENDRECV
        media: list[_MediaDraft] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise MalformedSdp("bad SDP line", line=line[:60])
            kind, value = line[0], line[2:]
            current = media[-1] if media else None
            if kind == "o":
                parts = value.split()
                if len(parts) != 6:
                    raise MalformedSdp("bad o= line", line=line[:60])
                origin_address = parts[5]
                if parts[1].isdigit() and parts[2].isdigit():
                    session_id, version = int(parts[1]), int(parts[2])
            elif kind == "c":
                parts = value.split()
                if len(parts) != 3 or parts[0] != "IN":
                    raise MalformedSdp("bad c= line", line=line[:60])
                address = parts[2].split("/")[0]
                if current is None:
                    session_conn = address
                else:
                    current.connection = address
            elif kind == "m":
                parts = value.split()
                if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                    raise MalformedSdp("bad m= line", line=line[:60])
                formats: list[int] = []
                for fmt in parts[3:]:
                    if fmt.isdigit():
                        formats.append(int(fmt))
                media.append(
                    _MediaDraft(parts[0], int(parts[1].split("/")[0]), parts[2], tuple(formats))
                )
            elif kind == "a":
                name, _, attr = value.partition(":")
                if name in {d.value for d in Direction}:
                    if current is None:
                        session_direction = Direction(name)
                    else:
                        current.direction = Direction(name)
                elif name == "rtpmap" and current is not None:
                    pt_text, _, encoding = attr.partition(" ")
                    if pt_text.isdigit():
                        current.rtpmap[int(pt_text)] = encoding.strip()
                elif name == "ptime" and current is not None and attr.strip().isdigit():
                    current.ptime = int(attr.strip())
        if not origin_address:
            raise MalformedSdp("SDP without o= line")
        descriptions = tuple(
            MediaDescription(
                media=m.media,
                port=m.port,
                proto=m.proto,
                formats=m.formats,
                rtpmap=m.rtpmap,
                connection=m.connection,
                direction=m.direction or session_direction,
                ptime=m.ptime,
            )
            for m in media
        )
        return cls(origin_address, session_conn, descriptions, session_id, version)

    def audio(self) -> MediaDescription | None:
        """The first audio stream, if any."""
        for description in self.media:
            if description.media == "audio":
                return description
        return None


@dataclass(frozen=True, slots=True)
class MediaOffer:
    """What we need from an offer or answer to send RTP: address, codec, DTMF payload type."""

    address: str
    port: int
    codec: Codec
    dtmf_payload_type: int | None
    direction: Direction

    @property
    def is_hold(self) -> bool:
        """True when the peer stops receiving from us (sendonly, inactive or 0.0.0.0)."""
        return not self.effective_direction.receives

    @property
    def effective_direction(self) -> Direction:
        """The peer's direction, with RFC 2543's hold (connection address 0.0.0.0) folded in."""
        if self.address in ("0.0.0.0", "::"):
            return Direction.of(sends=self.direction.sends, receives=False)
        return self.direction


def negotiate(sdp: SessionDescription, preferred: tuple[Codec, ...]) -> MediaOffer:
    """Pick a codec we share with the peer's audio stream; raises `NoCommonCodec`."""
    audio = sdp.audio()
    if audio is None or audio.port == 0:
        raise NoCommonCodec("no active audio stream in the offer")
    address = audio.connection or sdp.connection
    if address is None:
        raise NoCommonCodec("no connection address for the audio stream")
    by_name = {name.split("/")[0].upper(): pt for pt, name in audio.rtpmap.items()}
    chosen: Codec | None = None
    # The offerer's order expresses its preference (RFC 3264 §6.1); we honour it among ours.
    for pt in audio.formats:
        for codec in preferred:
            if pt == codec.payload_type or by_name.get(codec.name) == pt:
                chosen = codec
                break
        if chosen is not None:
            break
    if chosen is None:
        raise NoCommonCodec("no common codec", offered=list(audio.formats))
    dtmf_pt = by_name.get("TELEPHONE-EVENT")
    if dtmf_pt is not None and dtmf_pt not in audio.formats:
        dtmf_pt = None
    return MediaOffer(address, audio.port, chosen, dtmf_pt, audio.direction)


def build_sdp(
    address: str,
    port: int,
    codecs: tuple[Codec, ...],
    dtmf_payload_type: int | None,
    *,
    session_id: int | None = None,
    version: int = 1,
    direction: Direction = Direction.SENDRECV,
) -> bytes:
    """An SDP body offering (or answering with) these codecs and telephone-event."""
    sid = session_id if session_id is not None else secrets.randbelow(2**31)
    ip = "IP6" if ":" in address else "IP4"
    formats = [str(c.payload_type) for c in codecs]
    if dtmf_payload_type is not None:
        formats.append(str(dtmf_payload_type))
    lines = [
        "v=0",
        f"o=caruso {sid} {version} IN {ip} {address}",
        "s=caruso",
        f"c=IN {ip} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(formats)}",
    ]
    lines.extend(f"a=rtpmap:{c.payload_type} {c.name}/8000" for c in codecs)
    if dtmf_payload_type is not None:
        lines.append(f"a=rtpmap:{dtmf_payload_type} telephone-event/8000")
        lines.append(f"a=fmtp:{dtmf_payload_type} 0-16")
    lines.append("a=ptime:20")
    lines.append(f"a={direction.value}")
    return ("\r\n".join(lines) + "\r\n").encode()
