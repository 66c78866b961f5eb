"""Property tests: random answers, steps back and action outcomes through every shipped script.

Whatever the reader and the services do, the engine either moves on or refuses with a
script error that leaves the run unchanged; the state always round-trips through the JSON
it is stored as, and every step can be rendered.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialog_scripts import shipped_scripts
from scripts_engine import (
    ActionResult,
    AnswerType,
    DialogScript,
    RunStatus,
    ScriptEngine,
    ScriptError,
    Step,
    StepKind,
    load_script,
)
from scripts_engine.engine import RunState
from scripts_engine.script import parse_date_limit
from scripts_engine.store import state_from_json, state_to_json
from tests.scripts_engine.helpers import NOW

SCRIPTS = {path.stem: load_script(path, today=NOW.date()) for path in shipped_scripts()}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["value", "reference", "id", "monthly", "restore_at", "x"]),
            children,
            max_size=3,
        )
    ),
    max_leaves=6,
)
customers = st.fixed_dictionaries(
    {},
    optional={
        "name": st.none() | st.text(max_size=20),
        "account": st.none() | st.sampled_from(["4711", "DE-10002", ""]),
        "email": st.none() | st.sampled_from(["ann@example.com", "", "not-an-address"]),
        "phone": st.none() | st.just("+4930123451"),
        "vip": st.none() | st.booleans(),
        "priority": st.none() | st.integers(0, 10),
    },
)


def valid_answer(step: Step) -> st.SearchStrategy[object]:
    """Answers the question accepts (most of the time: patterns may still refuse some)."""
    rules = step.rules
    kind = step.answer_type
    if kind is AnswerType.CHOICE:
        return st.sampled_from([c.value for c in step.choices])
    if kind is AnswerType.YESNO:
        return st.booleans()
    if kind is AnswerType.NUMBER:
        low = int(rules.minimum) if rules.minimum is not None else -1000
        high = int(rules.maximum) if rules.maximum is not None else 10**6
        if rules.integer:
            return st.integers(low, high)
        return st.floats(low, high, allow_nan=False)
    if kind is AnswerType.DATE:
        today = NOW.date()
        first = (
            parse_date_limit(rules.min_date, today)
            if rules.min_date
            else today - timedelta(days=365)
        )
        last = (
            parse_date_limit(rules.max_date, today)
            if rules.max_date
            else today + timedelta(days=365)
        )
        return st.dates(first, last).map(date.isoformat)
    if rules.pattern:
        return st.from_regex(rf"\A(?:{rules.pattern})\Z")
    return st.text(min_size=rules.min_length or 0, max_size=rules.max_length or 50)


junk = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.lists(st.integers(), max_size=2)
)


def check_invariants(engine: ScriptEngine, state: RunState) -> None:
    script = engine.script
    step = script.steps[state.step_id]
    assert state.path[-1] == state.step_id
    if state.status is RunStatus.WAITING:
        assert step.kind.interactive
        assert state.history[-1].step_id == state.step_id
    elif state.status is RunStatus.ACTING:
        assert state.effect is not None
        assert state.cursor is not None
    elif state.status is RunStatus.COMPLETED:
        assert step.kind is StepKind.END
        assert state.disposition == step.disposition
    engine.view(state, NOW)  # every state can be rendered
    stored = json.loads(json.dumps(state_to_json(state)))
    assert state_from_json(stored) == state


def drive(script: DialogScript, data: st.DataObject) -> RunState:
    engine = ScriptEngine(script)
    channel = data.draw(
        st.sampled_from(sorted(script.channels, key=lambda c: c.value)), label="channel"
    )
    customer = data.draw(customers, label="customer")
    customer_id = data.draw(st.none() | st.just("10002"), label="customer_id")
    state = engine.start(channel=channel, now=NOW, customer_id=customer_id, customer=customer).state
    check_invariants(engine, state)
    for _ in range(40):
        if not state.status.active:
            break
        if state.status is RunStatus.ACTING:
            outcome = data.draw(st.sampled_from(["ok", "ok", "failed", "skipped"]), label="outcome")
            if outcome == "ok":
                result = ActionResult.ok(data.draw(json_values, label="value"))
            elif outcome == "failed":
                result = ActionResult.failed(
                    data.draw(st.sampled_from(["service-timeout", "no-such-service"])), "failed"
                )
            else:
                result = ActionResult.skipped("not configured")
            state = engine.action_done(state, result, NOW).state
            check_invariants(engine, state)
            continue
        step = script.steps[state.step_id]
        move = data.draw(
            st.sampled_from(
                ["answer", "answer", "answer", "junk", "back", "wrong-step", "abandon"]
            ),
            label="move",
        )
        before = json.dumps(state_to_json(state), sort_keys=True)
        try:
            if move == "back":
                state = engine.back(state, NOW).state
            elif move == "abandon" and data.draw(st.booleans(), label="really"):
                state = engine.abandon(state, NOW).state
            elif move == "wrong-step":
                other = data.draw(st.sampled_from(sorted(script.steps)), label="other")
                state = engine.answer(state, other, None, NOW).state
            elif move == "junk":
                state = engine.answer(state, step.id, data.draw(junk, label="junk"), NOW).state
            elif step.kind is StepKind.INFORMATION:
                state = engine.answer(state, step.id, None, NOW).state
            else:
                state = engine.answer(
                    state, step.id, data.draw(valid_answer(step), label=step.id), NOW
                ).state
        except ScriptError:
            # A refusal changes nothing, not even inside the state's mappings.
            assert json.dumps(state_to_json(state), sort_keys=True) == before
        check_invariants(engine, state)
    return state


@pytest.mark.parametrize("name", sorted(SCRIPTS))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_random_answers_never_crash_a_shipped_script(name: str, data: st.DataObject) -> None:
    drive(SCRIPTS[name], data)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_first_choices_with_failing_services_complete_on_every_channel(name: str) -> None:
    """Not random: always the first valid answer, every service down: the run still ends."""
    script = SCRIPTS[name]
    ends = {s.id for s in script.steps.values() if s.kind is StepKind.END}
    for channel in script.channels:
        engine = ScriptEngine(script)
        state = engine.start(
            channel=channel,
            now=NOW,
            customer_id="1",
            customer={"name": "A", "email": "a@example.com"},
        ).state
        for _ in range(100):
            if not state.status.active:
                break
            if state.status is RunStatus.ACTING:
                state = engine.action_done(
                    state, ActionResult.failed("service-unavailable", "down"), NOW
                ).state
                continue
            step = script.steps[state.step_id]
            state = engine.answer(state, step.id, _first_valid(step), NOW).state
        assert state.status is RunStatus.COMPLETED, (name, channel, state.step_id)
        assert state.step_id in ends


def _first_valid(step: Step) -> object:
    rules = step.rules
    if step.kind is StepKind.INFORMATION:
        return None
    if step.answer_type is AnswerType.CHOICE:
        return step.choices[0].value
    if step.answer_type is AnswerType.YESNO:
        return True
    if step.answer_type is AnswerType.NUMBER:
        return rules.minimum if rules.minimum is not None else 1
    if step.answer_type is AnswerType.DATE:
        return NOW.date().isoformat()
    return {"invoice": "RE-2024001234", "new_email": "new@example.com"}.get(
        step.id, "a sufficiently long answer"
    )


def test_shipped_scripts_directory_is_what_the_tests_cover() -> None:
    assert set(SCRIPTS) == {Path(p).stem for p in shipped_scripts()}
