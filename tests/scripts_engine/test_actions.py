"""The actions edge: e-mail through a real aiosmtpd server, service failures and timeouts,
callbacks and transfers handed to the server, all driven through the session API."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from dialog_scripts import PACKAGE_DIR
from scripts_engine import (
    ActionExecutor,
    CallbackRequested,
    Channel,
    DialogScript,
    NotCurrentStep,
    ResultStatus,
    RunStatus,
    ScriptCatalog,
    ScriptOutcome,
    ScriptRunner,
    SmtpMailer,
    SmtpSettings,
    TransferRequested,
    load_script,
)
from scripts_engine.actions import InvalidEmail, build_email
from scripts_engine.effects import EmailEffect
from tests.scripts_engine.helpers import NOW, FakeServices, ServiceFailure, load_text, script_xml


@dataclass
class Inbox:
    """What the real SMTP server received."""

    port: int
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    box = Inbox(port=0)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(box, hostname="mx.test"), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


MAIL_SCRIPT = """
<information id="i"><text>Mail?</text>
  <next to="e"><send-email template="hello" to="customer.email"/></next>
</information>
<end id="e" disposition="mailed"/>"""
MAIL_TEMPLATE = (
    '<templates><email-template id="hello"><subject>Hello {{ customer.name }}</subject>'
    "<body>Dear {{ customer.name }},\n\nyour balance is {{ customer.balance }}.</body>"
    "</email-template></templates>"
)


def runner_for(script: DialogScript, executor: ActionExecutor) -> ScriptRunner:
    catalog = ScriptCatalog()
    catalog.add(script)
    return ScriptRunner(catalog, executor=executor, clock=lambda: NOW)


def mailer(inbox: Inbox) -> SmtpMailer:
    return SmtpMailer(SmtpSettings("127.0.0.1", inbox.port, "service@utility.example", timeout=5))


async def test_email_action_reaches_a_real_smtp_server(tmp_path: Path, inbox: Inbox) -> None:
    script = load_text(tmp_path, script_xml(MAIL_SCRIPT, declarations=MAIL_TEMPLATE))
    executor = ActionExecutor(mailer=mailer(inbox), sender="service@utility.example")
    customer = {"name": "Jürgen Groß", "email": "juergen@example.org", "balance": 12.5}
    run = await runner_for(script, executor).start(
        script, Channel.WEB, customer="1", customer_data=customer
    )
    view = await run.answer("i", None)
    assert view.status is RunStatus.COMPLETED
    assert [(name, result.status) for name, result in run.actions] == [
        ("send-email hello", ResultStatus.OK)
    ]
    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "service@utility.example"
    assert envelope.rcpt_tos == ["juergen@example.org"]
    raw = envelope.content
    assert isinstance(raw, bytes)
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: Hello =?utf-8?q?J=C3=BCrgen_Gro=C3=9F?=" in headers  # RFC 2047
    message = inbox.message()
    assert message["Subject"] == "Hello Jürgen Groß"
    assert message["To"] == "juergen@example.org"
    body = message.get_content().replace("\r\n", "\n")
    assert "Dear Jürgen Groß,\n\nyour balance is 12.5." in body
    assert run.actions[0][1].value == {
        "to": "juergen@example.org",
        "message_id": message["Message-ID"],
    }


async def test_customer_data_cannot_inject_mail_headers(tmp_path: Path, inbox: Inbox) -> None:
    script = load_text(tmp_path, script_xml(MAIL_SCRIPT, declarations=MAIL_TEMPLATE))
    executor = ActionExecutor(mailer=mailer(inbox), sender="service@utility.example")
    customer = {"name": "Eve\r\nBcc: victim@example.net\r\n\r\nspam", "email": "eve@example.org"}
    run = await runner_for(script, executor).start(script, Channel.WEB, customer_data=customer)
    await run.answer("i", None)
    assert inbox.envelopes[0].rcpt_tos == ["eve@example.org"]
    message = inbox.message()
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Eve Bcc: victim@example.net spam"
    raw = inbox.envelopes[0].content
    assert isinstance(raw, bytes)
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in headers.replace(b"Subject: Hello Eve Bcc:", b"")


@pytest.mark.parametrize(
    "address",
    [
        "victim@example.net\r\nBcc: other@example.net",
        "one@example.net, two@example.net",
        "Display Name <x@example.net>",
        "no-at-sign",
        "",
    ],
)
async def test_recipient_must_be_one_plain_address(
    tmp_path: Path, inbox: Inbox, address: str
) -> None:
    script = load_text(tmp_path, script_xml(MAIL_SCRIPT, declarations=MAIL_TEMPLATE))
    executor = ActionExecutor(mailer=mailer(inbox), sender="service@utility.example")
    run = await runner_for(script, executor).start(
        script, Channel.WEB, customer_data={"email": address}
    )
    view = await run.answer("i", None)
    assert view.status is RunStatus.COMPLETED  # no on-error: recorded, and the run goes on
    _name, result = run.actions[0]
    assert (result.status, result.code) == (ResultStatus.FAILED, "invalid-email-address")
    assert inbox.envelopes == []


def test_build_email_refuses_a_bad_sender() -> None:
    effect = EmailEffect("t", "a@example.org", "s", "b", False)
    with pytest.raises(InvalidEmail, match="sender"):
        build_email(effect, "not a sender")


async def test_unreachable_mail_server_is_a_failed_action(tmp_path: Path, inbox: Inbox) -> None:
    script = load_text(tmp_path, script_xml(MAIL_SCRIPT, declarations=MAIL_TEMPLATE))
    closed = SmtpMailer(
        SmtpSettings("127.0.0.1", _closed_port(), "service@utility.example", timeout=2)
    )
    executor = ActionExecutor(mailer=closed, sender="service@utility.example")
    run = await runner_for(script, executor).start(
        script, Channel.WEB, customer_data={"email": "a@example.org"}
    )
    await run.answer("i", None)
    _, result = run.actions[0]
    assert (result.status, result.code) == (ResultStatus.FAILED, "email-not-sent")
    assert run.state.error["code"] == "email-not-sent"


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def meter() -> DialogScript:
    return load_script(PACKAGE_DIR / "meter-reading.xml", today=NOW.date())


CUSTOMER = {"name": "Ann Example", "account": "4711", "email": "ann@example.com"}


async def test_failing_service_takes_the_error_branch_and_schedules_a_callback(
    meter: DialogScript,
) -> None:
    outcomes: list[ScriptOutcome] = []

    async def collect(outcome: ScriptOutcome) -> None:
        outcomes.append(outcome)

    services = FakeServices(
        {"metering.last_reading": ServiceFailure("service-unavailable", "ERP is down")}
    )
    executor = ActionExecutor(services=services, on_outcome=collect)
    runner = runner_for(meter, executor)
    run = await runner.start("meter-reading", Channel.AGENT, "agent-7", "7", customer_data=CUSTOMER)
    await run.answer("greet_known", None)
    view = await run.answer("meter_kind", "electricity")
    assert view.step_id == "metering_down"
    assert view.hint == "The metering service failed: service-unavailable ERP is down"
    assert services.calls == [
        ("metering", "last_reading", {"account": "4711", "meter": "electricity"}, 3.0)
    ]
    view = await run.answer("metering_down", None)
    assert (view.status, view.disposition) == (RunStatus.COMPLETED, "callback-scheduled")
    assert outcomes == [
        CallbackRequested(
            run_id=run.id,
            customer_id="7",
            number=None,
            at=NOW + timedelta(hours=2),
            queue="metering",
            note="Meter reading not taken: metering system failed (service-unavailable)",
        )
    ]
    assert runner.live_runs == 0


async def test_service_that_hangs_past_its_timeout_takes_the_error_branch(tmp_path: Path) -> None:
    body = """
<information id="i"><text>Call</text>
  <next to="ok">
    <call-service service="erp" method="slow" timeout="0.1" on-error="timed_out"/>
  </next>
</information>
<end id="ok" disposition="ok"/><end id="timed_out" disposition="timed-out"/>"""
    script = load_text(
        tmp_path,
        script_xml(body, declarations='<services><service name="erp" methods="slow"/></services>'),
    )
    services = FakeServices({"erp.slow": "late"}, delay=30.0)  # ignores its timeout
    run = await runner_for(script, ActionExecutor(services=services)).start(script, Channel.AGENT)
    started = asyncio.get_running_loop().time()
    view = await run.answer("i", None)
    assert asyncio.get_running_loop().time() - started < 5
    assert view.disposition == "timed-out"
    assert run.actions[0][1].code == "service-timeout"


async def test_transfer_outcome_reaches_the_server(meter: DialogScript) -> None:
    outcomes: list[ScriptOutcome] = []

    async def collect(outcome: ScriptOutcome) -> None:
        outcomes.append(outcome)

    services = FakeServices({"metering.last_reading": {"value": 500}})
    run = await runner_for(meter, ActionExecutor(services=services, on_outcome=collect)).start(
        meter, Channel.PHONE, customer="7", customer_data=CUSTOMER
    )
    await run.answer("greet_known", None)
    await run.answer("meter_kind", "gas")
    for _ in range(2):
        await run.answer("reading", 1)
        await run.answer("lower_than_before", "2")
    view = await run.answer("needs_person", None)
    assert view.disposition == "reading-disputed"
    assert outcomes == [TransferRequested(run.id, "metering", "Meter reading 1 is lower than 500")]


async def test_session_refuses_a_stale_answer_and_steps_back(meter: DialogScript) -> None:
    services = FakeServices({"metering.last_reading": {"value": 500}})
    run = await runner_for(meter, ActionExecutor(services=services)).start(
        meter, Channel.AGENT, customer_data=CUSTOMER
    )
    await run.answer("ask_account", 123456)
    with pytest.raises(NotCurrentStep):
        await run.answer("ask_account", 654321)  # double submit of the previous page
    view = await run.back()
    assert (view.step_id, view.prefill, view.can_go_back) == ("ask_account", 123456, False)
    view = await run.answer("ask_account", 654321)
    assert view.step_id == "meter_kind"
    assert run.state.variables["account"] == "654321"


async def test_missing_parts_skip_their_actions_instead_of_failing(tmp_path: Path) -> None:
    script = load_text(tmp_path, script_xml(MAIL_SCRIPT, declarations=MAIL_TEMPLATE))
    run = await runner_for(script, ActionExecutor()).start(
        script, Channel.WEB, customer_data={"email": "a@example.org"}
    )
    await run.answer("i", None)
    _, result = run.actions[0]
    assert result.status is ResultStatus.SKIPPED
    assert result.to_json() == {
        "status": "skipped",
        "code": "not-configured",
        "message": "no SMTP server is configured",
    }


async def test_a_broken_adapter_is_a_failed_action_not_a_crash(tmp_path: Path) -> None:
    class Exploding:
        async def send(self, message: Any) -> None:
            raise RuntimeError("bug in the adapter")

    script = load_text(tmp_path, script_xml(MAIL_SCRIPT, declarations=MAIL_TEMPLATE))
    executor = ActionExecutor(mailer=Exploding(), sender="service@utility.example")
    run = await runner_for(script, executor).start(
        script, Channel.WEB, customer_data={"email": "a@example.org"}
    )
    view = await run.answer("i", None)
    assert view.status is RunStatus.COMPLETED
    assert run.actions[0][1].code == "action-failed"
