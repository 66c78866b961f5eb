"""The dialog state of one call leg (RFC 3261 §12) and the requests sent inside it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .message import Headers, NameAddress, SipRequest, SipUri, Via, new_branch
from .transport import Address


@dataclass(eq=False, slots=True)
class Dialog:
    """Identifiers, sequence numbers and routing of one dialog.

    `remote_address` is where in-dialog requests really go: the source of the peer's INVITE or
    REGISTER, which works for phones behind NAT whose Contact names a private address.
    """

    call_id: str
    local_tag: str
    remote_tag: str | None
    local: NameAddress
    remote: NameAddress
    remote_target: SipUri
    remote_address: Address
    local_seq: int = 1
    remote_seq: int | None = None
    route_set: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag): how in-dialog requests find this dialog."""
        return self.call_id, self.local_tag, self.remote_tag or ""

    def new_request(
        self,
        method: str,
        via: Via,
        contact: NameAddress,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """A request inside this dialog (§12.2.1.1); the CSeq advances unless one is given."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        headers = Headers()
        headers.add(
            "Via",
            str(
                Via(via.transport, via.host, via.port, (("branch", new_branch()), ("rport", None)))
            ),
        )
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local.with_tag(self.local_tag)))
        remote = self.remote.with_tag(self.remote_tag) if self.remote_tag else self.remote
        headers.add("To", str(remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Contact", str(contact))
        if content_type is not None:
            headers.add("Content-Type", content_type)
        return SipRequest(headers=headers, body=body, method=method, uri=self.remote_target)
