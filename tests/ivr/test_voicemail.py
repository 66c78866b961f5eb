"""The voicemail service on real storage with a real SMTP server (aiosmtpd on 127.0.0.1:0).

Deposits are durable before `deposit` returns (read back through a second connection); the
e-mail carries the WAV as an attachment, is retried while the mail server is down, gives up
after the configured attempts without losing the message, and no caller id can add a header
or a recipient. The web front's API pages, marks heard and hands out the file.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import logging
import math
import socket
import struct
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from ivr.voicemail import (
    MODEL_FILE,
    Box,
    InvalidVoicemailRequest,
    NoSuchMessage,
    VoicemailMessage,
    VoicemailPolicy,
    VoicemailService,
)
from scripts_engine import SmtpMailer, SmtpSettings
from storage import StorageManager, load_model

SENDER = "caruso@example.test"


@dataclass
class Inbox:
    """What a real aiosmtpd server accepted; `refuse` names recipients it turns away (550)."""

    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.arrived.set()
        return "250 OK"

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.envelopes) < count:
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def smtp_server(inbox: Inbox, port: int = 0) -> AsyncIterator[Inbox]:
    """Serve `inbox` with aiosmtpd on 127.0.0.1 (`port` 0: any free port)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="mx.test"), "127.0.0.1", port, reuse_address=True
    )
    inbox.port = server.sockets[0].getsockname()[1]
    try:
        yield inbox
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    """A running mail server and what it received."""
    async with smtp_server(Inbox()) as box:
        yield box


def free_tcp_port() -> int:
    """A TCP port nobody listens on right now (for a mail server that is 'down')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_tone(path: Path, seconds: float, frequency: float = 440.0) -> None:
    """An 8 kHz mono 16-bit WAV of a tone, as the backends record them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * n / 8000)))
        for n in range(int(seconds * 8000))
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(frames)


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


@dataclass
class Caller:
    """The parts of a contact that `deposit` reads."""

    id: str
    caller: str = "+4930123456"
    customer_id: str | None = "K-1001"
    queue: str | None = "support"


ServiceFactory = Callable[..., Awaitable[VoicemailService]]


@pytest.fixture
async def make_service(
    tmp_path: Path, sqlite_url: str
) -> AsyncIterator[Callable[..., Awaitable[VoicemailService]]]:
    """Start voicemail services on this test's SQLite file; all are closed at the end."""
    storage = await StorageManager.open(sqlite_url, models=[load_model(MODEL_FILE)])
    started: list[VoicemailService] = []

    async def factory(
        *,
        port: int | None = None,
        boxes: tuple[Box, ...] = (Box("support", emails=("team@example.test",)),),
        **policy: Any,
    ) -> VoicemailService:
        mailer = (
            SmtpMailer(SmtpSettings("127.0.0.1", port, SENDER, timeout=5.0))
            if port is not None
            else None
        )
        service = VoicemailService(
            storage,
            root=tmp_path / "voicemail",
            boxes=boxes,
            queues=["support", "billing"],
            mailer=mailer,
            sender=SENDER,
            policy=VoicemailPolicy(**policy),
        )
        await service.start()
        started.append(service)
        return service

    try:
        yield factory
    finally:
        for service in started:
            await service.aclose()
        await storage.close()


async def deposit(
    service: VoicemailService, contact_id: str, seconds: float = 2.5, **caller: Any
) -> Path:
    recording = service.root / "support" / f"{contact_id}.wav"
    write_tone(recording, seconds)
    await service.deposit("support", Caller(contact_id, **caller), recording, seconds)
    return recording


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` (a storage read) every 20 ms until it holds; fail after `timeout`."""
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{check.__name__} did not hold within {timeout} s")


async def only_message(service: VoicemailService) -> VoicemailMessage:
    [message] = await service.list("support")
    return message


async def test_a_deposit_is_durable_when_it_returns_and_the_mail_carries_the_wav(
    make_service: ServiceFactory, inbox: Inbox, sqlite_url: str
) -> None:
    service = await make_service(port=inbox.port)
    recording = await deposit(service, "c1-1-abc", seconds=2.5)
    # A second connection sees the committed row the moment deposit has returned.
    async with StorageManager.open(sqlite_url, models=[load_model(MODEL_FILE)]) as other:
        other.bind(VoicemailMessage, "VoicemailMessage")
        [row] = await other.query(VoicemailMessage)
    assert row.contact_id == "c1-1-abc"
    assert row.box == "support"
    assert row.caller == "+4930123456"
    assert row.customer_id == "K-1001"
    assert row.queue == "support"
    assert row.seconds == 2.5
    assert row.file == "support/c1-1-abc.wav"
    assert not row.heard
    await inbox.wait_for(1)
    mail = inbox.message()
    assert inbox.envelopes[0].rcpt_tos == ["team@example.test"]
    assert mail["To"] == "team@example.test"
    assert mail["From"] == SENDER
    assert "+4930123456" in mail["Subject"]
    body = mail.get_body(("plain",))
    assert body is not None
    assert "K-1001" in body.get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_filename() == f"voicemail-support-{row.id}.wav"
    wav = attachment.get_content()
    assert wav == recording.read_bytes()
    assert wav_seconds(wav) == pytest.approx(2.5, abs=0.01)
    await until(lambda: _emailed(service))
    sent = await only_message(service)
    assert sent.email_attempts == 1
    assert sent.mailed_to == ["team@example.test"]
    assert sent.email_next_at is None
    assert sent.email_error is None


async def _emailed(service: VoicemailService) -> bool:
    return (await only_message(service)).emailed_at is not None


async def test_a_mail_server_that_was_down_gets_the_mail_on_a_later_attempt(
    make_service: ServiceFactory,
) -> None:
    port = free_tcp_port()
    service = await make_service(port=port, email_retry=0.2)
    await deposit(service, "c1-2-abc")

    async def failed_once() -> bool:
        return (await only_message(service)).email_attempts >= 1

    await until(failed_once)
    failed = await only_message(service)
    assert failed.emailed_at is None
    assert failed.email_error is not None
    assert failed.email_error.startswith("team@example.test: ")
    assert failed.email_next_at is not None
    async with smtp_server(Inbox(), port) as inbox:
        await inbox.wait_for(1)
        await until(lambda: _emailed(service))
    sent = await only_message(service)
    assert sent.email_attempts >= 2
    assert sent.email_error is None
    [attachment] = list(inbox.message().iter_attachments())
    assert wav_seconds(attachment.get_content()) == pytest.approx(2.5, abs=0.01)


async def test_after_the_last_attempt_the_message_is_kept_and_the_failure_logged(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ivr.voicemail")
    service = await make_service(port=free_tcp_port(), email_retry=0.05, email_attempts=3)
    await deposit(service, "c1-3-abc")

    async def given_up() -> bool:
        message = await only_message(service)
        return message.email_attempts == 3 and message.email_next_at is None

    await until(given_up)
    await asyncio.sleep(0.3)  # no fourth attempt comes
    message = await only_message(service)
    assert message.email_attempts == 3
    assert message.emailed_at is None
    assert message.email_error
    assert service.wav_path(message).is_file()
    assert any("giving up e-mailing after 3 attempts" in r.getMessage() for r in caplog.records)
    assert sum("retrying in" in r.getMessage() for r in caplog.records) == 2


async def test_each_recipient_gets_the_mail_once_when_another_is_refused_at_first(
    make_service: ServiceFactory, inbox: Inbox
) -> None:
    inbox.refuse.add("night@example.test")
    box = Box("support", emails=("team@example.test", "night@example.test"))
    service = await make_service(port=inbox.port, boxes=(box,), email_retry=0.2)
    await deposit(service, "c1-4-abc")
    await inbox.wait_for(1)

    async def failed_once() -> bool:
        return (await only_message(service)).email_attempts >= 1

    await until(failed_once)
    half = await only_message(service)
    assert half.mailed_to == ["team@example.test"]
    assert half.emailed_at is None
    assert half.email_error is not None
    assert "night@example.test" in half.email_error
    inbox.refuse.clear()
    await until(lambda: _emailed(service))
    assert [e.rcpt_tos for e in inbox.envelopes] == [
        ["team@example.test"],
        ["night@example.test"],
    ]


async def test_a_caller_id_cannot_add_headers_or_recipients(
    make_service: ServiceFactory, inbox: Inbox
) -> None:
    service = await make_service(port=inbox.port)
    evil = "+1555\r\nBcc: victim@evil.example\r\nX-Injected: yes\nTo: other@evil.example"
    await deposit(service, "c1-5-abc", caller=evil, customer_id="K\r\nCc: cc@evil.example")
    await inbox.wait_for(1)
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["team@example.test"]
    mail = inbox.message()
    assert mail["Bcc"] is None
    assert mail["Cc"] is None
    assert mail["X-Injected"] is None
    assert mail.get_all("To") == ["team@example.test"]
    assert "Bcc: victim@evil.example" in mail["Subject"]  # still shown, as text on one line
    content = envelope.content
    assert isinstance(content, bytes)
    header_block = content.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block
    assert b"\r\nX-Injected:" not in header_block
    stored = await only_message(service)
    assert "\r" not in stored.caller
    assert "\n" not in stored.caller


async def test_list_pages_newest_first_and_mark_heard_keeps_the_first_listener(
    make_service: ServiceFactory,
) -> None:
    service = await make_service()
    for n in range(5):
        await deposit(service, f"c1-{n}-x", seconds=0.2)
    newest = await service.list("support", limit=2)
    assert [m.contact_id for m in newest] == ["c1-4-x", "c1-3-x"]
    older = await service.list("support", limit=2, offset=2)
    assert [m.contact_id for m in older] == ["c1-2-x", "c1-1-x"]
    assert await service.list("billing") == []
    heard = await service.mark_heard(newest[0].id or 0, "s1")
    again = await service.mark_heard(newest[0].id or 0, "b1")
    assert heard.heard
    assert heard.heard_by == again.heard_by == "s1"
    assert again.heard_at == heard.heard_at
    unheard = await service.list("support", unheard_only=True, limit=50)
    assert [m.contact_id for m in unheard] == ["c1-3-x", "c1-2-x", "c1-1-x", "c1-0-x"]
    assert await service.count("support", unheard_only=True) == 4
    assert len(await service.list(None)) == 5
    got = await service.get(newest[1].id or 0)
    assert got.contact_id == "c1-3-x"
    assert service.wav_path(got) == (service.root / "support" / "c1-3-x.wav").resolve()
    with pytest.raises(NoSuchMessage) as missing:
        await service.get(999)
    assert missing.value.code == "no-such-voicemail-message"
    with pytest.raises(NoSuchMessage):
        await service.mark_heard(999, "s1")
    for limit, offset in ((0, 0), (501, 0), (10, -1)):
        with pytest.raises(InvalidVoicemailRequest):
            await service.list("support", limit=limit, offset=offset)
    with pytest.raises(InvalidVoicemailRequest):
        await service.list("../support")


async def test_no_mail_is_scheduled_for_a_box_without_recipients_or_without_a_server(
    make_service: ServiceFactory, inbox: Inbox
) -> None:
    quiet = await make_service(port=inbox.port, boxes=(Box("support"),))
    await deposit(quiet, "c1-6-abc")
    message = await only_message(quiet)
    assert message.email_next_at is None
    offline = await make_service(port=None)
    await deposit(offline, "c1-7-abc")
    assert all(m.email_next_at is None for m in await offline.list("support"))
    await asyncio.sleep(0.2)
    assert inbox.envelopes == []


async def test_the_wav_path_never_leaves_the_voicemail_folder(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    service = await make_service()
    recording = await deposit(service, "c1-8-abc")
    message = await only_message(service)
    outside = tmp_path / "secret.wav"
    write_tone(outside, 0.1)
    for file in ("../secret.wav", str(outside), "support/missing.wav"):
        with pytest.raises(NoSuchMessage):
            service.wav_path(_with_file(message, file))
    link = service.root / "support" / "link.wav"
    link.symlink_to(outside)
    with pytest.raises(NoSuchMessage):
        service.wav_path(_with_file(message, "support/link.wav"))
    assert service.wav_path(message) == recording.resolve()


def _with_file(message: VoicemailMessage, file: str) -> VoicemailMessage:
    return replace(message, file=file)


async def test_a_recording_left_without_a_row_is_adopted_and_mailed_at_start(
    make_service: ServiceFactory, inbox: Inbox, tmp_path: Path
) -> None:
    write_tone(tmp_path / "voicemail" / "support" / "c9-1-lost.wav", 1.5)
    (tmp_path / "voicemail" / "support" / "c9-2-half.wav.part").write_bytes(b"RIFF")
    service = await make_service(port=inbox.port)
    [message] = await service.list("support")
    assert message.contact_id == "c9-1-lost"
    assert message.seconds == pytest.approx(1.5)
    await inbox.wait_for(1)
    # A stored message whose file name is its contact id made safe (a Call-ID with '/').
    safe = service.root / "support" / "c9-3-a_b.wav"
    write_tone(safe, 0.5)
    await service.deposit("support", Caller("c9-3-a/b"), safe, 0.5)
    again = await make_service(port=inbox.port)  # a second start adopts nothing twice
    assert sorted(m.contact_id for m in await again.list("support")) == ["c9-1-lost", "c9-3-a/b"]



async def test_messages_round_trip_on_every_database(
    db_url: str, tmp_path: Path, inbox: Inbox
) -> None:
    async with StorageManager.open(db_url, models=[load_model(MODEL_FILE)]) as storage:
        service = VoicemailService(
            storage,
            root=tmp_path / "voicemail",
            boxes=[Box("support", emails=("team@example.test",))],
            mailer=SmtpMailer(SmtpSettings("127.0.0.1", inbox.port, SENDER, timeout=5.0)),
            sender=SENDER,
        )
        await service.start()
        try:
            await deposit(service, "c1-1-db", seconds=1.0)
            await deposit(service, "c1-2-db", seconds=2.0, customer_id=None, queue=None)
            await inbox.wait_for(2)
            await until(lambda: _all_emailed(service))
            first, second = await service.list("support")
            await service.mark_heard(second.id or 0, "s1")
            unheard = await service.list("support", unheard_only=True)
        finally:
            await service.aclose()
    assert first.contact_id == "c1-2-db"
    assert first.customer_id is None
    assert first.mailed_to == ["team@example.test"]
    assert first.recorded_at.tzinfo is not None
    assert [m.contact_id for m in unheard] == ["c1-2-db"]


async def _all_emailed(service: VoicemailService) -> bool:
    return all(m.emailed_at is not None for m in await service.list(None))
