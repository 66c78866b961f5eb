"""A scripted SIP phone on raw UDP, for what SIPp cannot script: two dialogs at once.

An attended transfer needs the agent's phone to hold its caller's dialog and a consultation
call at the same time, then name the second in the first's REFER (Replaces). This phone does
exactly the steps a test asks for, with real SIP over loopback: answer an INVITE, place a call
that is challenged for credentials, REFER, answer NOTIFY and BYE. Messages it is not waiting
for are kept for later, never dropped.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from commserver.sip.auth import digest_response, parse_digest
from commserver.sip.message import SipMessage, SipRequest, SipResponse, make_response
from tests.sip.sip_harness import UdpPeer

_TIMEOUT = 15.0


@dataclass
class RawDialog:
    """One dialog of the phone: what it needs to send requests inside it."""

    call_id: str
    local: str  # our From/To value without tag
    local_tag: str
    remote: str  # the other side's name-addr without tag
    remote_tag: str
    target: str  # the Request-URI for requests inside it
    cseq: int = 0


def _sdp(port: int) -> str:
    return (
        f"v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )


def _strip_tag(value: str) -> str:
    head, _, _ = value.partition(";tag=")
    return head


class RawPhone:
    """An agent's phone whose every message the test scripts."""

    def __init__(
        self, server: tuple[str, int], extension: str, password: str, sip: UdpPeer, rtp: UdpPeer
    ) -> None:
        self.server = server
        self.extension = extension
        self.password = password
        self.sip = sip
        self.rtp = rtp
        self._backlog: list[SipMessage] = []

    @property
    def contact(self) -> str:
        """Our Contact."""
        return f"<sip:{self.extension}@127.0.0.1:{self.sip.port}>"

    async def _take(self, wanted: Callable[[SipMessage], bool]) -> SipMessage:
        for message in self._backlog:
            if wanted(message):
                self._backlog.remove(message)
                return message
        async with asyncio.timeout(_TIMEOUT):
            while True:
                message = await self.sip.recv(_TIMEOUT)
                if wanted(message):
                    return message
                self._backlog.append(message)

    async def request(self, method: str, call_id: str | None = None) -> SipRequest:
        """The next request of `method` (in `call_id`, if given)."""
        message = await self._take(
            lambda m: (
                isinstance(m, SipRequest)
                and m.method == method
                and (call_id is None or m.call_id == call_id)
            )
        )
        assert isinstance(message, SipRequest)
        return message

    async def response(self, call_id: str, method: str, *, final: bool = True) -> SipResponse:
        """The next response to `method` in `call_id` (the next final one by default)."""
        message = await self._take(
            lambda m: (
                isinstance(m, SipResponse)
                and m.call_id == call_id
                and m.cseq.method == method
                and (m.status >= 200 or not final)
            )
        )
        assert isinstance(message, SipResponse)
        return message

    def reply(
        self, request: SipRequest, status: int, *, to_tag: str | None = None, body: str = ""
    ) -> None:
        """Answer a request the server sent us."""
        headers = [("Contact", self.contact)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        response = make_response(
            request, status, to_tag=to_tag, headers=headers, body=body.encode()
        )
        self.sip.send(response.to_bytes(), self.server)

    async def answer(self) -> RawDialog:
        """Take the next INVITE: ring, answer with our SDP, wait for the ACK."""
        invite = await self.request("INVITE")
        tag = secrets.token_hex(4)
        self.reply(invite, 180, to_tag=tag)
        self.reply(invite, 200, to_tag=tag, body=_sdp(self.rtp.port))
        await self.request("ACK", invite.call_id)
        contacts = invite.contacts
        return RawDialog(
            call_id=invite.call_id,
            local=_strip_tag(invite.headers.get("To") or ""),
            local_tag=tag,
            remote=_strip_tag(invite.headers.get("From") or ""),
            remote_tag=invite.from_addr.tag or "",
            target=str(contacts[0].uri) if contacts else str(invite.from_addr.uri),
        )

    def _send(
        self,
        dialog: RawDialog,
        method: str,
        *,
        headers: str = "",
        body: str = "",
        cseq: int | None = None,
        to_tag: bool = True,
    ) -> str:
        if cseq is None:
            dialog.cseq += 1
            cseq = dialog.cseq
        branch = f"z9hG4bK-raw-{secrets.token_hex(6)}"
        remote = (
            f"{dialog.remote};tag={dialog.remote_tag}"
            if to_tag and dialog.remote_tag
            else dialog.remote
        )
        typed = "Content-Type: application/sdp\r\n" if body else ""
        text = (
            f"{method} {dialog.target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch={branch};rport\r\n"
            f"From: {dialog.local};tag={dialog.local_tag}\r\nTo: {remote}\r\n"
            f"Call-ID: {dialog.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: {self.contact}\r\nMax-Forwards: 70\r\n{headers}{typed}"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        self.sip.send(text, self.server)
        return branch

    async def call(self, number: str) -> RawDialog:
        """Call `number` through the server, answering its 407 with our credentials."""
        host, port = self.server
        uri = f"sip:{number}@{host}:{port}"
        dialog = RawDialog(
            call_id=f"consult-{secrets.token_hex(6)}@raw",
            local=f"<sip:{self.extension}@{host}>",
            local_tag=secrets.token_hex(4),
            remote=f"<{uri}>",
            remote_tag="",
            target=uri,
        )
        body = _sdp(self.rtp.port)
        self._send(dialog, "INVITE", body=body)
        challenge = await self.response(dialog.call_id, "INVITE")
        assert challenge.status == 407, challenge.status
        ack_to = challenge.headers.get("To") or ""
        self.sip.send(
            f"ACK {uri} SIP/2.0\r\n"
            f"Via: {challenge.headers.get_all('Via')[0]}\r\n"
            f"From: {dialog.local};tag={dialog.local_tag}\r\nTo: {ack_to}\r\n"
            f"Call-ID: {dialog.call_id}\r\nCSeq: {dialog.cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            self.server,
        )
        fields = parse_digest(challenge.headers.get("Proxy-Authenticate") or "")
        response = digest_response(
            username=self.extension,
            realm=fields["realm"],
            password=self.password,
            method="INVITE",
            uri=uri,
            nonce=fields["nonce"],
            qop="auth",
            nc="00000001",
            cnonce="raw",
        )
        credentials = (
            f'Proxy-Authorization: Digest username="{self.extension}", realm="{fields["realm"]}", '
            f'nonce="{fields["nonce"]}", uri="{uri}", response="{response}", qop=auth, '
            'nc=00000001, cnonce="raw"\r\n'
        )
        self._send(dialog, "INVITE", headers=credentials, body=body)
        ok = await self.response(dialog.call_id, "INVITE")
        assert ok.status == 200, ok.status
        dialog.remote_tag = ok.to_addr.tag or ""
        contacts = ok.contacts
        if contacts:
            dialog.target = str(contacts[0].uri)
        self._send(dialog, "ACK", cseq=dialog.cseq)
        return dialog

    async def refer_replacing(
        self, dialog: RawDialog, consultation: RawDialog, number: str
    ) -> SipResponse:
        """REFER in `dialog` to `number`, replacing `consultation` (an attended transfer)."""
        host, port = self.server
        # Replaces names the consultation as the server sees it: its tag is to-tag (RFC 3891).
        replaces = quote(
            f"{consultation.call_id};to-tag={consultation.remote_tag};"
            f"from-tag={consultation.local_tag}",
            safe="",
        )
        refer_to = f"Refer-To: <sip:{number}@{host}:{port}?Replaces={replaces}>\r\n"
        self._send(dialog, "REFER", headers=refer_to)
        return await self.response(dialog.call_id, "REFER")

    async def notify(self, dialog: RawDialog) -> SipRequest:
        """The next NOTIFY in `dialog`, answered 200."""
        request = await self.request("NOTIFY", dialog.call_id)
        self.reply(request, 200)
        return request

    async def bye(self, dialog: RawDialog) -> SipResponse:
        """Hang up `dialog`."""
        self._send(dialog, "BYE")
        return await self.response(dialog.call_id, "BYE")

    async def hung_up(self, dialog: RawDialog) -> SipRequest:
        """The server's BYE in `dialog`, answered 200."""
        request = await self.request("BYE", dialog.call_id)
        self.reply(request, 200)
        return request
