"""baresip (Debian's package) as a scripted, auto-answering agent phone in a subprocess.

It registers one account with digest auth, answers every call at once and talks: its audio
source is a WAV tone (aufile; `ausine` only runs at 48 kHz in baresip 1.0). `-n 127.0.0.1`
keeps eth0's address out of its SDP. With `control=True` its TCP control socket (ctrl_tcp:
netstring-framed JSON) takes commands such as `hold`, `resume` and `transfer <uri>`; with
`tcp=True` it registers (and keeps its connection) over TCP. It is ended by its own pid; on
SIGTERM it unregisters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commserver.bench.sip import stop_process
from ivr.prompts import tone, write_wav
from tests.sip.sip_harness import free_udp_port

BARESIP = shutil.which("baresip")


def free_tcp_port() -> int:
    """A TCP port free right now on 127.0.0.1 (baresip's control socket listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_sip_listen_port() -> int:
    """A port P with UDP and TCP P and P+1 free: baresip listens on P (UDP, TCP) and TLS P+1,
    and does not start at all when one of them is taken."""
    for _ in range(50):
        port = free_udp_port()
        try:
            with contextlib.ExitStack() as held:
                for offset in (0, 1):
                    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        sock = held.enter_context(socket.socket(socket.AF_INET, kind))
                        sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for baresip on 127.0.0.1")


def require_baresip() -> str:
    """The baresip binary; skip locally when it is missing, fail in CI (which installs it)."""
    if BARESIP is None:
        if os.environ.get("CI"):
            pytest.fail("baresip is not installed (apt-get install baresip)")
        pytest.skip("baresip is not installed (apt-get install baresip)")
    return BARESIP


@dataclass
class BaresipPhone:
    """A running baresip and, when asked for, its control connection."""

    process: asyncio.subprocess.Process
    control_port: int | None = None
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _tokens: int = 0
    responses: list[dict[str, object]] = field(default_factory=list)

    async def connect(self) -> None:
        """Open the control socket (baresip needs a moment to listen after it starts)."""
        assert self.control_port is not None, "started without control=True"
        async with asyncio.timeout(10):
            while True:
                try:
                    self._reader, self._writer = await asyncio.open_connection(
                        "127.0.0.1", self.control_port
                    )
                    return
                except OSError:
                    await asyncio.sleep(0.1)

    async def command(self, name: str, params: str = "") -> dict[str, object]:
        """Run a baresip command (e.g. 'hold', 'transfer sip:2002@...'); returns its response."""
        assert self._writer is not None, "not connected"
        self._tokens += 1
        token = f"t{self._tokens}"
        message = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._writer.write(str(len(message)).encode() + b":" + message + b",")
        await self._writer.drain()
        async with asyncio.timeout(10):
            while True:
                reply = await self._read()
                if reply.get("response") and reply.get("token") == token:
                    self.responses.append(reply)
                    if not reply.get("ok"):
                        raise AssertionError(f"baresip refused {name!r}: {reply}")
                    return reply

    async def _read(self) -> dict[str, object]:
        # Netstring: "<length>:<payload>," - events and responses share the stream.
        assert self._reader is not None
        length = int((await self._reader.readuntil(b":"))[:-1])
        payload = await self._reader.readexactly(length + 1)
        decoded: dict[str, object] = json.loads(payload[:-1])
        return decoded

    async def close(self) -> None:
        """Close the control connection."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


@contextlib.asynccontextmanager
async def baresip_phone(
    home: Path,
    server: tuple[str, int],
    extension: str,
    password: str,
    *,
    control: bool = False,
    tcp: bool = False,
) -> AsyncIterator[BaresipPhone]:
    """A baresip agent phone registered as `extension` at `server`, stopped on exit."""
    binary = require_baresip()
    source = home / "talk.wav"
    await asyncio.to_thread(write_wav, source, tone(400.0, 30.0))  # creates `home` too
    rtp_low = free_udp_port() & ~1
    control_port = free_tcp_port() if control else None
    modules = "module g711.so\nmodule aufile.so\nmodule account.so\n"
    if control:
        # menu registers the call commands (hold, resume, transfer) ctrl_tcp runs.
        modules += f"module menu.so\nmodule ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{control_port}\n"
    (home / "config").write_text(
        "module_path /usr/lib/baresip/modules\n"
        f"sip_listen 127.0.0.1:{free_sip_listen_port()}\n"
        f"audio_source aufile,{source}\n"
        f"{modules}"
        f"rtp_ports {rtp_low}-{rtp_low + 20}\n"
    )
    transport = ";transport=tcp" if tcp else ""
    (home / "accounts").write_text(
        f"<sip:{extension}@{server[0]}:{server[1]}{transport}>;auth_pass={password};"
        "answermode=auto;regint=600;audio_codecs=PCMU,PCMA\n"
    )
    process = await asyncio.create_subprocess_exec(
        binary,
        "-f",
        str(home),
        "-n",
        "127.0.0.1",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    phone = BaresipPhone(process, control_port)
    try:
        if control:
            await phone.connect()
        yield phone
    finally:
        await phone.close()
        await stop_process(process)
