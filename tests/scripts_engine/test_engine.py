"""The pure engine core: transitions, conditions, variables, actions, step back, answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dialog_scripts import PACKAGE_DIR
from scripts_engine import (
    ActionResult,
    CannotGoBack,
    Channel,
    ChannelNotSupported,
    InvalidAnswer,
    NotCurrentStep,
    RunNotActive,
    RunStatus,
    ScriptEngine,
    load_script,
)
from scripts_engine.effects import (
    CallbackEffect,
    EmailEffect,
    FieldUpdateEffect,
    ServiceCallEffect,
    TransferEffect,
)
from scripts_engine.engine import (
    MAX_AUTOMATIC_STEPS,
    ActionDone,
    RunEnded,
    RunNote,
    RunState,
    StepAnswered,
    StepEntered,
    SteppedBack,
)
from scripts_engine.values import answer_from_keys, parse_answer
from tests.scripts_engine.helpers import NOW, load_text, script_xml

CUSTOMER = {"name": "Ann Example", "account": "4711", "email": "ann@example.com"}


@pytest.fixture
def meter() -> ScriptEngine:
    return ScriptEngine(load_script(PACKAGE_DIR / "meter-reading.xml", today=NOW.date()))


def settle(engine: ScriptEngine, state: RunState, results: dict[str, ActionResult]) -> RunState:
    """Feed results for every pending effect (by label) until the run waits or ends."""
    while state.status is RunStatus.ACTING:
        assert state.effect is not None
        state = engine.action_done(state, results[state.effect.label], NOW).state
    return state


def test_start_takes_the_branch_for_a_known_customer(meter: ScriptEngine) -> None:
    progress = meter.start(channel=Channel.AGENT, now=NOW, customer_id="7", customer=CUSTOMER)
    state = progress.state
    assert state.status is RunStatus.WAITING
    assert state.step_id == "greet_known"
    assert state.path == ("welcome", "greet_known")
    assert state.variables["account"] == "4711"
    assert [type(e) for e in progress.events] == [StepEntered, StepEntered]
    assert (
        meter.view(state, NOW).text
        == "Hello Ann Example, thank you for reporting your meter reading."
    )


def test_start_without_customer_asks_for_the_account(meter: ScriptEngine) -> None:
    state = meter.start(channel=Channel.WEB, now=NOW).state
    assert state.step_id == "ask_account"
    view = meter.view(state, NOW)
    assert view.answer_type is not None
    assert view.answer_type.value == "number"
    assert (view.minimum, view.maximum, view.integer) == (100000, 99999999, True)


def test_a_whole_run_with_service_results_variables_and_email(meter: ScriptEngine) -> None:
    results = {
        "call-service metering.last_reading": ActionResult.ok({"value": 1000}),
        "call-service metering.submit_reading": ActionResult.ok({"reference": "R-1"}),
        "send-email reading_receipt": ActionResult.ok({"to": "ann@example.com"}),
    }
    state = meter.start(channel=Channel.AGENT, now=NOW, customer_id="7", customer=CUSTOMER).state
    state = meter.answer(state, "greet_known", None, NOW).state
    progress = meter.answer(state, "meter_kind", "gas", NOW)
    effect = progress.state.effect
    assert isinstance(effect, ServiceCallEffect)
    assert (effect.service, effect.method, effect.args, effect.timeout) == (
        "metering",
        "last_reading",
        {"account": "4711", "meter": "gas"},
        3.0,
    )
    state = settle(meter, progress.state, results)
    assert state.step_id == "reading"
    assert state.variables["previous_value"] == 1000
    assert meter.view(state, NOW).hint == "The last reading was 1000."
    state = meter.answer(state, "reading", 1500, NOW).state
    assert state.variables["consumption"] == 500
    state = meter.answer(state, "reading_date", NOW.date().isoformat(), NOW).state
    progress = meter.answer(state, "confirm", "yes", NOW)
    submitted = progress.state.effect
    assert isinstance(submitted, ServiceCallEffect)
    assert submitted.args == {
        "account": "4711",
        "meter": "gas",
        "reading": 1500,
        "date": "2024-05-01",
    }
    state = meter.action_done(
        progress.state, results["call-service metering.submit_reading"], NOW
    ).state
    email = state.effect
    assert isinstance(email, EmailEffect)
    assert email.to == "ann@example.com"
    assert email.subject == "Your gas meter reading has been recorded"
    assert "taken on 2024-05-01. Since the last reading you used 500 units." in email.body
    assert "Your reference is R-1." in email.body
    state = meter.action_done(state, results["send-email reading_receipt"], NOW).state
    assert state.status is RunStatus.COMPLETED
    assert state.disposition == "reading-recorded"
    assert state.path[-3:] == ("confirm", "send_receipt", "recorded")
    assert meter.assigned_fields(state)["vars.receipt"] == {"reference": "R-1"}


def test_lower_reading_loops_back_and_the_second_time_hands_over(meter: ScriptEngine) -> None:
    ok = {"call-service metering.last_reading": ActionResult.ok({"value": 1000})}
    state = meter.start(channel=Channel.PHONE, now=NOW, customer_id="7", customer=CUSTOMER).state
    state = meter.answer(state, "greet_known", None, NOW).state
    state = settle(meter, meter.answer(state, "meter_kind", "water", NOW).state, ok)
    state = meter.answer(state, "reading", 10, NOW).state
    assert state.step_id == "lower_than_before"
    assert "The reading 10 is lower than the last one (1000)." in meter.view(state, NOW).text
    state = meter.answer(state, "lower_than_before", False, NOW).state
    assert state.step_id == "reading"
    state = meter.answer(state, "reading", 20, NOW).state
    state = meter.answer(state, "lower_than_before", False, NOW).state
    assert state.step_id == "needs_person"
    assert state.variables["attempts"] == 2
    progress = meter.answer(state, "needs_person", None, NOW)
    transfer = progress.state.effect
    assert isinstance(transfer, TransferEffect)
    assert transfer.queue == "metering"
    assert transfer.note == "Meter reading 20 is lower than 1000"
    state = meter.action_done(progress.state, ActionResult.ok(), NOW).state
    assert (state.status, state.disposition) == (RunStatus.COMPLETED, "reading-disputed")


def test_failing_service_takes_the_scripts_error_branch(meter: ScriptEngine) -> None:
    state = meter.start(channel=Channel.AGENT, now=NOW, customer_id="7", customer=CUSTOMER).state
    state = meter.answer(state, "greet_known", None, NOW).state
    state = meter.answer(state, "meter_kind", "gas", NOW).state
    failure = ActionResult.failed("service-timeout", "metering did not answer within 3 s")
    progress = meter.action_done(state, failure, NOW)
    state = progress.state
    assert state.step_id == "metering_down"
    assert state.error == {
        "code": "service-timeout",
        "message": "metering did not answer within 3 s",
        "action": "call-service",
    }
    assert (
        meter.view(state, NOW).hint
        == "The metering service failed: service-timeout metering did not answer within 3 s"
    )
    done = [e for e in progress.events if isinstance(e, ActionDone)]
    assert done[0].result.code == "service-timeout"
    # The variable the call would have set was not set, and the remaining action was skipped.
    assert state.variables["previous_value"] == 0
    progress = meter.answer(state, "metering_down", None, NOW)
    callback = progress.state.effect
    assert isinstance(callback, CallbackEffect)
    assert callback.at == NOW + timedelta(hours=2)
    assert callback.queue == "metering"
    assert callback.note == "Meter reading not taken: metering system failed (service-timeout)"


def test_action_on_error_wins_and_failure_without_one_goes_on(tmp_path: Path) -> None:
    body = """
<question id="q" type="yesno"><text>Go?</text>
  <next to="done">
    <send-email template="note" to="customer.email"/>
    <call-service service="erp" method="update" on-error="erp_failed" result="out"/>
    <set var="after" value="true"/>
  </next>
</question>
<information id="erp_failed"><text>ERP: {{ error.code }}</text><next to="done"/></information>
<end id="done" disposition="x"/>"""
    declarations = (
        '<services><service name="erp" methods="update"/></services>'
        '<variables><variable name="out" type="json"/><variable name="after" type="boolean"/>'
        "</variables>"
        '<templates><email-template id="note"><subject>s</subject><body>b</body></email-template>'
        "</templates>"
    )
    engine = ScriptEngine(load_text(tmp_path, script_xml(body, declarations=declarations)))
    state = engine.start(channel=Channel.AGENT, now=NOW, customer={"email": "a@example.com"}).state
    state = engine.answer(state, "q", True, NOW).state
    assert isinstance(state.effect, EmailEffect)
    # A failed e-mail without on-error is recorded and the transition goes on.
    state = engine.action_done(state, ActionResult.failed("email-not-sent", "refused"), NOW).state
    assert isinstance(state.effect, ServiceCallEffect)
    state = engine.action_done(state, ActionResult.failed("service-unavailable", "down"), NOW).state
    assert state.step_id == "erp_failed"
    assert state.variables["after"] is False
    assert engine.view(state, NOW).text == "ERP: service-unavailable"
    assert state.actions_done == 2


def test_invalid_answers_are_refused_and_leave_the_state_alone(meter: ScriptEngine) -> None:
    state = meter.start(channel=Channel.WEB, now=NOW).state
    for bad, reason in [
        ("12", "at least 100000"),
        ("abc", "is not a number"),
        (123456.5, "whole number"),
        (None, "an answer is required"),
        (True, "a number is required"),
    ]:
        with pytest.raises(InvalidAnswer, match=reason) as caught:
            meter.answer(state, "ask_account", bad, NOW)
        assert caught.value.code == "invalid-answer"
        assert caught.value.details == {"step": "ask_account"}
    assert state.step_id == "ask_account"
    assert state.answers == {}


def test_answers_for_another_step_or_an_ended_run_are_refused(meter: ScriptEngine) -> None:
    state = meter.start(channel=Channel.WEB, now=NOW).state
    with pytest.raises(NotCurrentStep, match="the run is at step 'ask_account', not 'reading'"):
        meter.answer(state, "reading", 5, NOW)
    ended = meter.abandon(state, NOW)
    assert ended.events == (RunEnded(RunStatus.ABANDONED, "ask_account", None, NOW),)
    with pytest.raises(RunNotActive):
        meter.answer(ended.state, "ask_account", 123456, NOW)
    with pytest.raises(RunNotActive):
        meter.abandon(ended.state, NOW)


def test_acting_run_takes_no_answer_until_the_action_is_done(meter: ScriptEngine) -> None:
    state = meter.start(channel=Channel.AGENT, now=NOW, customer_id="7", customer=CUSTOMER).state
    state = meter.answer(state, "greet_known", None, NOW).state
    state = meter.answer(state, "meter_kind", "gas", NOW).state
    assert state.status is RunStatus.ACTING
    with pytest.raises(NotCurrentStep, match="still being carried out"):
        meter.answer(state, "reading", 5, NOW)
    assert meter.view(state, NOW).pending_action == "call-service metering.last_reading"


def test_step_back_restores_answers_and_variables_and_offers_the_old_answer(
    meter: ScriptEngine,
) -> None:
    ok = {"call-service metering.last_reading": ActionResult.ok({"value": 100})}
    state = meter.start(channel=Channel.AGENT, now=NOW, customer_id="7", customer=CUSTOMER).state
    with pytest.raises(CannotGoBack, match="first step"):
        meter.back(state, NOW)
    state = meter.answer(state, "greet_known", None, NOW).state
    state = settle(meter, meter.answer(state, "meter_kind", "gas", NOW).state, ok)
    state = meter.answer(state, "reading", 150, NOW + timedelta(seconds=20)).state
    assert state.step_id == "reading_date"
    assert state.variables["consumption"] == 50
    progress = meter.back(state, NOW + timedelta(seconds=30))
    back = progress.state
    assert back.step_id == "reading"
    assert "reading" not in back.answers
    assert back.variables["consumption"] == 0
    assert back.prefill == 150
    assert meter.view(back, NOW).prefill == 150
    assert isinstance(progress.events[0], SteppedBack)
    assert progress.events[0].step_id == "reading_date"
    assert progress.events[0].to_step == "reading"
    assert isinstance(progress.events[1], StepEntered)
    assert progress.events[1].visit == back.visit
    state = meter.answer(back, "reading", 160, NOW).state
    assert state.variables["consumption"] == 60
    # Back twice, to the very first interactive step, and then no further.
    state = meter.back(meter.back(state, NOW).state, NOW).state
    state = meter.back(state, NOW).state
    assert state.step_id == "greet_known"
    with pytest.raises(CannotGoBack):
        meter.back(state, NOW)


def test_answer_events_carry_the_time_spent_on_the_step(meter: ScriptEngine) -> None:
    state = meter.start(channel=Channel.WEB, now=NOW).state
    progress = meter.answer(state, "ask_account", "123456", NOW + timedelta(seconds=42))
    answered = progress.events[0]
    assert isinstance(answered, StepAnswered)
    assert (answered.step_id, answered.value, answered.seconds) == ("ask_account", 123456, 42.0)


def test_channel_must_be_declared_by_the_script(tmp_path: Path) -> None:
    engine = ScriptEngine(
        load_text(tmp_path, script_xml('<end id="e" disposition="x"/>', attrs='channels="agent"'))
    )
    with pytest.raises(ChannelNotSupported, match="does not run on the phone channel"):
        engine.start(channel=Channel.PHONE, now=NOW)


def test_condition_failing_at_run_time_counts_as_false_and_is_noted(tmp_path: Path) -> None:
    body = """
<question id="q" type="yesno"><text>?</text>
  <next to="rich" when="customer.balance &gt; 100.0"/>
  <next to="other"/>
</question>
<end id="rich" disposition="rich"/><end id="other" disposition="other"/>"""
    engine = ScriptEngine(load_text(tmp_path, script_xml(body)))
    state = engine.start(channel=Channel.AGENT, now=NOW, customer={"balance": None}).state
    progress = engine.answer(state, "q", True, NOW)
    assert progress.state.disposition == "other"
    notes = [e for e in progress.events if isinstance(e, RunNote)]
    assert len(notes) == 1
    assert "customer.balance > 100.0" in notes[0].message
    rich = engine.start(channel=Channel.AGENT, now=NOW, customer={"balance": 150}).state
    assert engine.answer(rich, "q", True, NOW).state.disposition == "rich"


def test_set_field_effect_updates_what_later_conditions_see(tmp_path: Path) -> None:
    body = """
<question id="mail" type="text"><text>New address?</text>
  <next to="check"><set-field field="email" value="answers.mail"/></next>
</question>
<branch id="check">
  <next to="changed" when="customer.email == answers.mail"/>
  <next to="same"/>
</branch>
<end id="changed" disposition="changed"/><end id="same" disposition="same"/>"""
    engine = ScriptEngine(load_text(tmp_path, script_xml(body)))
    state = engine.start(
        channel=Channel.AGENT, now=NOW, customer_id="9", customer={"email": "old@x.org"}
    ).state
    state = engine.answer(state, "mail", "  new@x.org ", NOW).state
    assert state.effect == FieldUpdateEffect("Customer", "9", "email", "new@x.org")
    state = engine.action_done(state, ActionResult.ok(), NOW).state
    assert state.disposition == "changed"
    assert engine.assigned_fields(state) == {"customer.email": "new@x.org"}


def test_long_chains_of_branches_are_stopped_not_recursed(tmp_path: Path) -> None:
    count = MAX_AUTOMATIC_STEPS + 50
    chain = "".join(f'<branch id="b{i}"><next to="b{i + 1}"/></branch>' for i in range(count))
    body = (
        '<question id="q" type="yesno"><text>?</text><next to="b0"/></question>'
        f'{chain}<end id="b{count}" disposition="x"/>'
    )
    engine = ScriptEngine(load_text(tmp_path, script_xml(body)))
    state = engine.start(channel=Channel.AGENT, now=NOW).state
    progress = engine.answer(state, "q", True, NOW)
    assert progress.state.status is RunStatus.FAILED
    assert progress.state.notes == (
        f"stopped after {MAX_AUTOMATIC_STEPS} steps without input: the script loops",
    )


def test_templates_escape_values_in_html_mail_only(tmp_path: Path) -> None:
    body = """
<information id="i"><text>Hello {{ customer.name }}</text>
  <next to="e">
    <send-email template="html" to="customer.email"/>
    <send-email template="plain" to="customer.email"/>
  </next>
</information>
<end id="e" disposition="x"/>"""
    declarations = (
        '<templates><email-template id="html" format="html"><subject>Hi {{ customer.name '
        "}}</subject>"
        "<body>&lt;p&gt;{{ customer.name }}&lt;/p&gt;</body></email-template>"
        '<email-template id="plain"><subject>Hi</subject><body>{{ customer.name }}</body>'
        "</email-template></templates>"
    )
    engine = ScriptEngine(load_text(tmp_path, script_xml(body, declarations=declarations)))
    customer = {"name": "<b>Bob & Co</b>", "email": "bob@example.com"}
    state = engine.start(channel=Channel.WEB, now=NOW, customer=customer).state
    assert engine.view(state, NOW).text == "Hello <b>Bob & Co</b>"  # channels escape on display
    state = engine.answer(state, "i", None, NOW).state
    html = state.effect
    assert isinstance(html, EmailEffect)
    assert html.html
    assert html.body == "<p>&lt;b&gt;Bob &amp; Co&lt;/b&gt;</p>"
    state = engine.action_done(state, ActionResult.ok(), NOW).state
    plain = state.effect
    assert isinstance(plain, EmailEffect)
    assert not plain.html
    assert plain.body == "<b>Bob & Co</b>"


@pytest.mark.parametrize(
    ("step_id", "raw", "expected"),
    [
        ("yn", "Yes", True),
        ("yn", "nein", False),
        ("yn", False, False),
        ("num", "12,5", 12.5),
        ("num", 3, 3.0),
        ("int", "42", 42),
        ("day", "2024-04-30", "2024-04-30"),
        ("day", "30042024", "2024-04-30"),
        ("pick", "b", "b"),
        ("free", "  ok\x07 text  ", "ok text"),
    ],
)
def test_answers_are_parsed_to_their_canonical_value(
    tmp_path: Path, step_id: str, raw: object, expected: object
) -> None:
    script = load_text(tmp_path, script_xml(_ANSWER_STEPS))
    assert parse_answer(script.steps[step_id], raw, NOW.date()) == expected


@pytest.mark.parametrize(
    ("step_id", "raw", "reason"),
    [
        ("yn", "perhaps", "answer yes or no"),
        ("int", "4.5", "a whole number is required"),
        ("num", "1e300", "out of range"),
        ("day", "2024-05-02", "on or before 2024-05-01"),
        ("day", "2023-12-31", "on or after 2024-04-01"),
        ("day", "31022024", "is not a date"),
        ("pick", "z", r"'z' is not one of the choices \(a, b\)"),
        ("free", "no", "at least 3 characters"),
        ("code", "AB12", "does not have the expected form"),
        ("free", "x" * 21, "longer than 20 characters"),
    ],
)
def test_answers_outside_the_rules_are_refused(
    tmp_path: Path, step_id: str, raw: object, reason: str
) -> None:
    script = load_text(tmp_path, script_xml(_ANSWER_STEPS))
    with pytest.raises(InvalidAnswer, match=reason):
        parse_answer(script.steps[step_id], raw, NOW.date())


_ANSWER_STEPS = """
<question id="yn" type="yesno"><text>?</text><next to="num"/></question>
<question id="num" type="number" min="-5" max="100"><text>?</text><next to="int"/></question>
<question id="int" type="number" integer="yes"><text>?</text><next to="day"/></question>
<question id="day" type="date" min="today-30" max="today"><text>?</text><next to="pick"/></question>
<question id="pick" type="choice"><text>?</text>
  <choice value="a">A</choice><choice value="b">B</choice><next to="free"/>
</question>
<question id="free" type="text" min-length="3" max-length="20"><text>?</text>
  <next to="code"/>
</question>
<question id="code" type="text" pattern="[A-Z]{2}[0-9]{4}"><text>?</text><next to="e"/></question>
<end id="e" disposition="x"/>"""


def test_phone_keys_map_onto_answers(tmp_path: Path) -> None:
    script = load_text(tmp_path, script_xml(_ANSWER_STEPS))
    assert answer_from_keys(script.steps["pick"], "2#") == "b"
    assert answer_from_keys(script.steps["yn"], "1") is True
    assert answer_from_keys(script.steps["yn"], "2") is False
    assert answer_from_keys(script.steps["int"], "42#") == "42"
    assert (
        parse_answer(
            script.steps["day"], answer_from_keys(script.steps["day"], "15042024"), NOW.date()
        )
        == "2024-04-15"
    )
    assert answer_from_keys(script.steps["int"], "#") is None
    with pytest.raises(InvalidAnswer, match="key '7' is not one of the choices"):
        answer_from_keys(script.steps["pick"], "7")
    with pytest.raises(InvalidAnswer, match="cannot be answered with the phone keys"):
        answer_from_keys(script.steps["free"], "123")
