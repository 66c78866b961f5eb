"""The SIP UDP socket asks the kernel for big buffers, so bursts are queued, not dropped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from commserver.sip.transport import SIP_SOCKET_BUFFER, SipTransport


def kernel_cap(name: str) -> int:
    """What Linux grants at most to setsockopt (it doubles the request for its bookkeeping)."""
    return int(Path(f"/proc/sys/net/core/{name}").read_text())


async def test_the_sip_socket_gets_the_largest_buffers_the_kernel_allows() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: SipTransport(lambda request, source: None, lambda response, source: None),
        local_addr=("127.0.0.1", 0),
    )
    try:
        sock = transport.get_extra_info("socket")
        received = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sent = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        transport.close()
    assert received >= 2 * min(SIP_SOCKET_BUFFER, kernel_cap("rmem_max"))
    assert sent >= 2 * min(SIP_SOCKET_BUFFER, kernel_cap("wmem_max"))
