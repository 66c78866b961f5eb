"""The script engine's pure core: a run's state in, the next state and what to do out.

No I/O and no clock of its own: callers pass `now`. Given a script, a `RunState` and an
answer, `ScriptEngine` picks the transition, sets variables, and stops at each action the
outside world must carry out (an `Effect`); the edge runs it and feeds the `ActionResult`
back with `action_done`. Every change is also described by typed `RunEvent`s, which the
edge stores (answers with timestamps, actions and their results) and analytics read.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from enum import Enum
from typing import Any

from scripts_engine.effects import (
    ActionResult,
    CallbackEffect,
    Effect,
    EmailEffect,
    FieldUpdateEffect,
    ResultStatus,
    ServiceCallEffect,
    TransferEffect,
)
from scripts_engine.errors import (
    CannotGoBack,
    ChannelNotSupported,
    NotCurrentStep,
    RunNotActive,
)
from scripts_engine.expressions import Expression, ExpressionFailed, Template, format_value
from scripts_engine.script import (
    Action,
    AnswerType,
    CallService,
    Channel,
    DialogScript,
    ScheduleCallback,
    SendEmail,
    SetField,
    SetVariable,
    Step,
    StepKind,
    Transfer,
    ValueType,
    parse_date_limit,
)
from scripts_engine.validation import CALL_FIELDS
from scripts_engine.values import (
    answer_to_cel,
    coerce_to_type,
    from_cel,
    json_value,
    parse_answer,
    plain,
    to_cel,
)

#: Steps a run may pass through without a reader's input before it is stopped as looping.
MAX_AUTOMATIC_STEPS = 1000
#: Notes (condition failures and the like) kept per run; older ones are dropped.
MAX_NOTES = 50
_NO_ERROR: Mapping[str, object] = {"code": "", "message": "", "action": ""}


class RunStatus(Enum):
    """Where a run stands."""

    #: Waiting at a question or information step for the reader.
    WAITING = "waiting"
    #: An action is being carried out at the edge; its result decides what comes next.
    ACTING = "acting"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    #: The script could not go on (no transition held, or branches looped).
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """Whether the run still takes input."""
        return self in (RunStatus.WAITING, RunStatus.ACTING)


@dataclass(frozen=True, slots=True)
class Frame:
    """A snapshot taken on entering an interactive step, so that `back` can restore it."""

    step_id: str
    visit: int
    answers: Mapping[str, object]
    variables: Mapping[str, object]
    fields: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Cursor:
    """The action being carried out: step, index of the transition, index of the action."""

    step_id: str
    transition: int
    action: int


@dataclass(frozen=True, slots=True)
class RunState:
    """Everything about one run, as plain immutable data (stored as JSON to resume)."""

    script_id: str
    script_version: str
    channel: Channel
    agent: str | None
    customer_id: str | None
    status: RunStatus
    #: The step the run is at (or whose transition is running while ACTING).
    step_id: str
    #: Visit number of the step the run is at; each entry into a step is a new visit.
    visit: int
    answers: Mapping[str, object]
    variables: Mapping[str, object]
    #: Customer fields set by this run (on top of `customer`).
    fields: Mapping[str, object]
    #: The customer's declared fields as loaded when the run started.
    customer: Mapping[str, object]
    call: Mapping[str, object]
    history: tuple[Frame, ...]
    #: Every step entered, in order (branches and ends included).
    path: tuple[str, ...]
    started_at: datetime
    entered_at: datetime
    cursor: Cursor | None = None
    effect: Effect | None = None
    error: Mapping[str, object] = field(default_factory=lambda: dict(_NO_ERROR))
    disposition: str | None = None
    #: The answer given before stepping back to this step (offered again to the reader).
    prefill: object = None
    notes: tuple[str, ...] = ()
    #: Actions carried out so far (numbers the stored action records).
    actions_done: int = 0


@dataclass(frozen=True, slots=True)
class StepEntered:
    """The run entered a step (a new visit)."""

    visit: int
    step_id: str
    kind: StepKind
    at: datetime


@dataclass(frozen=True, slots=True)
class StepAnswered:
    """The reader answered the step of `visit` (information steps: continued)."""

    visit: int
    step_id: str
    value: object
    at: datetime
    seconds: float


@dataclass(frozen=True, slots=True)
class SteppedBack:
    """The reader went back from `step_id` (its visit undone) to `to_step`."""

    visit: int
    step_id: str
    to_step: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ActionDone:
    """An action ran at the edge (or could not be prepared) with this result."""

    #: The action's number within the run (1, 2, ...).
    seq: int
    visit: int
    step_id: str
    action: str
    request: Effect | None
    result: ActionResult
    at: datetime


@dataclass(frozen=True, slots=True)
class RunEnded:
    """The run ended: completed at an end step, abandoned, or failed."""

    status: RunStatus
    step_id: str
    disposition: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class RunNote:
    """Something the script's author should know: a condition that could not be evaluated."""

    step_id: str
    message: str
    at: datetime


RunEvent = StepEntered | StepAnswered | SteppedBack | ActionDone | RunEnded | RunNote


@dataclass(frozen=True, slots=True)
class Progress:
    """The result of one call into the core: the new state and what happened on the way."""

    state: RunState
    events: tuple[RunEvent, ...]


@dataclass(frozen=True, slots=True)
class ChoiceView:
    """A choice as a channel shows it: value to submit, label, phone key."""

    value: str
    label: str
    key: str


@dataclass(frozen=True, slots=True)
class StepView:
    """What a channel needs to render the run's current step; it submits answers back."""

    status: RunStatus
    step_id: str
    kind: StepKind
    title: str | None
    text: str
    phone_text: str
    hint: str
    answer_type: AnswerType | None
    choices: tuple[ChoiceView, ...]
    required: bool
    minimum: float | None
    maximum: float | None
    integer: bool
    min_length: int | None
    max_length: int | None
    pattern: str | None
    min_date: str | None
    max_date: str | None
    prefill: object
    can_go_back: bool
    disposition: str | None
    pending_action: str | None

    def to_json(self) -> dict[str, object]:
        """The view as JSON for a web page or the API."""
        return {
            "status": self.status.value,
            "step": self.step_id,
            "kind": self.kind.value,
            "title": self.title,
            "text": self.text,
            "phone_text": self.phone_text,
            "hint": self.hint,
            "answer_type": self.answer_type.value if self.answer_type else None,
            "choices": [{"value": c.value, "label": c.label, "key": c.key} for c in self.choices],
            "required": self.required,
            "min": self.minimum,
            "max": self.maximum,
            "integer": self.integer,
            "min_length": self.min_length,
            "max_length": self.max_length,
            "pattern": self.pattern,
            "min_date": self.min_date,
            "max_date": self.max_date,
            "prefill": self.prefill,
            "can_go_back": self.can_go_back,
            "disposition": self.disposition,
            "pending_action": self.pending_action,
        }


class _Trace:
    """Events of one call into the core, and its budget of automatic steps."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.automatic = 0


class ScriptEngine:
    """Runs one loaded script; every method is pure (state in, `Progress` out)."""

    def __init__(self, script: DialogScript) -> None:
        self.script = script

    # ---- entry points ------------------------------------------------------------------

    def start(
        self,
        *,
        channel: Channel,
        now: datetime,
        agent: str | None = None,
        customer_id: str | None = None,
        customer: Mapping[str, object] | None = None,
        call: Mapping[str, object] | None = None,
    ) -> Progress:
        """A new run at the script's start step (branches and actions on the way are taken)."""
        script = self.script
        if channel not in script.channels:
            offered = ", ".join(sorted(c.value for c in script.channels))
            raise ChannelNotSupported(
                f"script {script.id!r} does not run on the {channel.value} channel (it runs on "
                f"{offered})",
                script=script.id,
                channel=channel.value,
            )
        loaded = customer or {}
        snapshot = {name: plain(loaded.get(name)) for name in script.customer_fields}
        call_data: dict[str, object] = {
            name: (0 if type_ is ValueType.INTEGER else "") for name, type_ in CALL_FIELDS.items()
        }
        for key, value in (call or {}).items():
            if key in CALL_FIELDS and value is not None:
                call_data[key] = plain(value)
        call_data["channel"] = channel.value
        call_data["agent"] = agent or ""
        call_data["customer_id"] = customer_id or ""
        state = RunState(
            script_id=script.id,
            script_version=script.version,
            channel=channel,
            agent=agent,
            customer_id=customer_id,
            status=RunStatus.WAITING,
            step_id=script.start,
            visit=0,
            answers={},
            variables={name: v.initial for name, v in script.variables.items()},
            fields={},
            customer=snapshot,
            call=call_data,
            history=(),
            path=(),
            started_at=now,
            entered_at=now,
        )
        trace = _Trace()
        state = self._advance(state, now, trace, enter=script.start)
        return Progress(state, tuple(trace.events))

    def answer(self, state: RunState, step_id: str, raw: object, now: datetime) -> Progress:
        """Take the reader's answer to `step_id` (InvalidAnswer if it does not fit the question)."""
        self._require_waiting(state, step_id)
        step = self.script.step(state.step_id)
        value = parse_answer(step, raw, now.date()) if step.kind is StepKind.QUESTION else None
        answers = state.answers
        if step.kind is StepKind.QUESTION:
            answers = {**state.answers, step.id: value}
        trace = _Trace()
        seconds = max((now - state.entered_at).total_seconds(), 0.0)
        trace.events.append(StepAnswered(state.visit, step.id, value, now, seconds))
        index = self._choose(state, step, now, trace, answers=answers)
        if index is None:
            state = _evolve(state, answers=answers, prefill=None)
            state = self._fail(
                state, f"step {step.id!r}: no transition's condition holds", now, trace
            )
        else:
            cursor = Cursor(step.id, index, 0)
            state = self._advance(
                _evolve(state, answers=answers, prefill=None, cursor=cursor), now, trace
            )
        return Progress(state, tuple(trace.events))

    def action_done(self, state: RunState, result: ActionResult, now: datetime) -> Progress:
        """Feed back the result of the effect the state asked for; the run goes on."""
        if state.status is not RunStatus.ACTING or state.cursor is None or state.effect is None:
            raise RunNotActive(
                "the run is not waiting for an action result", run_status=state.status.value
            )
        cursor = state.cursor
        action = self._action_at(cursor)
        effect = state.effect
        trace = _Trace()
        seq = state.actions_done + 1
        trace.events.append(
            ActionDone(seq, state.visit, cursor.step_id, effect.label, effect, result, now)
        )
        state = _evolve(state, effect=None, actions_done=seq)
        if result.status is ResultStatus.FAILED:
            state, target = self._after_failure(state, action, result)
            return Progress(self._advance(state, now, trace, enter=target), tuple(trace.events))
        state = self._apply(state, action, effect, result)
        state = _evolve(state, cursor=replace(cursor, action=cursor.action + 1))
        return Progress(self._advance(state, now, trace), tuple(trace.events))

    def back(self, state: RunState, now: datetime) -> Progress:
        """Return to the previous question or information step, as it was when first entered.

        Answers and variables go back to what they were then; actions already carried out
        (an e-mail sent, a service called) are not undone, and run again if taken again.
        """
        if state.status is not RunStatus.WAITING:
            raise CannotGoBack("the run is not waiting at a step", run_status=state.status.value)
        if len(state.history) < 2:
            raise CannotGoBack("the run is at its first step", step=state.step_id)
        previous = state.history[-2]
        trace = _Trace()
        trace.events.append(SteppedBack(state.visit, state.step_id, previous.step_id, now))
        visit = state.visit + 1
        trace.events.append(
            StepEntered(visit, previous.step_id, self.script.step(previous.step_id).kind, now)
        )
        frame = replace(previous, visit=visit)
        state = _evolve(
            state,
            step_id=previous.step_id,
            visit=visit,
            answers=previous.answers,
            variables=previous.variables,
            fields=previous.fields,
            history=(*state.history[:-2], frame),
            path=(*state.path, previous.step_id),
            entered_at=now,
            prefill=state.answers.get(previous.step_id),
        )
        return Progress(state, tuple(trace.events))

    def abandon(self, state: RunState, now: datetime) -> Progress:
        """End a run that will not be finished (the caller hung up, the agent closed it)."""
        if not state.status.active:
            raise RunNotActive("the run has already ended", run_status=state.status.value)
        state = _evolve(state, status=RunStatus.ABANDONED, cursor=None, effect=None)
        return Progress(state, (RunEnded(RunStatus.ABANDONED, state.step_id, None, now),))

    # ---- views -------------------------------------------------------------------------

    def context(
        self, state: RunState, now: datetime, *, answers: Mapping[str, object] | None = None
    ) -> dict[str, object]:
        """What expressions see: answers, customer, vars, call, now, error.

        Values are converted for CEL only when an expression reads them.
        """
        script = self.script
        given = state.answers if answers is None else answers
        steps = script.steps
        customer_fields = script.customer_fields
        variables_declared = script.variables

        def answer(step_id: str) -> object:
            return answer_to_cel(steps[step_id], given[step_id])

        def customer_field(name: str) -> object:
            value = state.fields[name] if name in state.fields else state.customer.get(name)
            return to_cel(value, customer_fields[name].type)

        def variable(name: str) -> object:
            return to_cel(state.variables.get(name), variables_declared[name].type)

        customer = _LazyMap(customer_fields, customer_field)
        variables = _LazyMap(variables_declared, variable)
        return {
            "answers": _LazyMap(given, answer),
            "customer": customer,
            "vars": variables,
            "call": dict(state.call),
            "now": now,
            "error": dict(state.error),
        }

    def view(self, state: RunState, now: datetime) -> StepView:
        """The current step as a channel renders it (texts with placeholders filled in)."""
        step = self.script.step(state.step_id)
        context = self.context(state, now)
        text = _render(step.text, context)
        rules = step.rules
        today = now.date()
        return StepView(
            status=state.status,
            step_id=step.id,
            kind=step.kind,
            title=step.title,
            text=text,
            phone_text=_render(step.phone_text, context) if step.phone_text else text,
            hint=_render(step.hint, context),
            answer_type=step.answer_type,
            choices=tuple(ChoiceView(c.value, c.label, c.key) for c in step.choices),
            required=rules.required,
            minimum=rules.minimum,
            maximum=rules.maximum,
            integer=rules.integer,
            min_length=rules.min_length,
            max_length=rules.max_length,
            pattern=rules.pattern,
            min_date=_limit(rules.min_date, today),
            max_date=_limit(rules.max_date, today),
            prefill=state.prefill,
            can_go_back=state.status is RunStatus.WAITING and len(state.history) >= 2,
            disposition=state.disposition,
            pending_action=state.effect.label if state.effect is not None else None,
        )

    def assigned_fields(self, state: RunState) -> dict[str, object]:
        """Variables and customer fields as the run leaves them (``vars.x``, ``customer.y``)."""
        out: dict[str, object] = {f"vars.{k}": v for k, v in state.variables.items()}
        out.update({f"customer.{k}": v for k, v in state.fields.items()})
        return out

    # ---- moving --------------------------------------------------------------------------

    def _require_waiting(self, state: RunState, step_id: str) -> None:
        if state.status is RunStatus.ACTING:
            raise NotCurrentStep(
                "an action of the previous step is still being carried out",
                step=step_id,
                current=state.step_id,
            )
        if not state.status.active:
            raise RunNotActive(
                f"the run has ended ({state.status.value})", run_status=state.status.value
            )
        if step_id != state.step_id:
            raise NotCurrentStep(
                f"the run is at step {state.step_id!r}, not {step_id!r}",
                step=step_id,
                current=state.step_id,
            )

    def _advance(
        self, state: RunState, now: datetime, trace: _Trace, *, enter: str | None = None
    ) -> RunState:
        """Go on until the run waits for the reader, needs the edge, or ends.

        `enter` is a step to enter first; otherwise the state's cursor points at the
        transition being taken. A loop, not recursion: long chains of branches are fine.
        """
        while True:
            if enter is not None:
                trace.automatic += 1
                if trace.automatic > MAX_AUTOMATIC_STEPS:
                    message = (
                        f"stopped after {MAX_AUTOMATIC_STEPS} steps without input: the script loops"
                    )
                    return self._fail(state, message, now, trace)
                step = self.script.step(enter)
                enter = None
                visit = state.visit + 1
                trace.events.append(StepEntered(visit, step.id, step.kind, now))
                entered: dict[str, Any] = {
                    "step_id": step.id,
                    "visit": visit,
                    "path": (*state.path, step.id),
                    "entered_at": now,
                    "cursor": None,
                    "effect": None,
                    "prefill": None,
                }
                if step.kind is StepKind.END:
                    trace.events.append(
                        RunEnded(RunStatus.COMPLETED, step.id, step.disposition, now)
                    )
                    return _evolve(
                        state, status=RunStatus.COMPLETED, disposition=step.disposition, **entered
                    )
                if step.kind.interactive:
                    frame = Frame(step.id, visit, state.answers, state.variables, state.fields)
                    history = (*state.history, frame)
                    return _evolve(state, status=RunStatus.WAITING, history=history, **entered)
                state = _evolve(state, **entered)
                index = self._choose(state, step, now, trace)
                if index is None:
                    return self._fail(
                        state, f"step {step.id!r}: no transition's condition holds", now, trace
                    )
                state = _evolve(state, cursor=Cursor(step.id, index, 0))
            cursor = state.cursor
            if cursor is None:
                return state
            transition = self.script.step(cursor.step_id).transitions[cursor.transition]
            if cursor.action >= len(transition.actions):
                enter = transition.to
                continue
            action = transition.actions[cursor.action]
            if isinstance(action, SetVariable):
                variables = self._set_variable(state, action, now, trace)
                following = replace(cursor, action=cursor.action + 1)
                state = _evolve(state, variables=variables, cursor=following)
                continue
            try:
                effect = self._prepare(state, action, now)
            except ExpressionFailed as exc:
                result = ActionResult.failed("expression-failed", str(exc))
                seq = state.actions_done + 1
                trace.events.append(
                    ActionDone(seq, state.visit, cursor.step_id, action.name, None, result, now)
                )
                state = _evolve(state, actions_done=seq)
                state, enter = self._after_failure(state, action, result)
                continue
            return _evolve(state, status=RunStatus.ACTING, effect=effect)

    def _choose(
        self,
        state: RunState,
        step: Step,
        now: datetime,
        trace: _Trace,
        *,
        answers: Mapping[str, object] | None = None,
    ) -> int | None:
        """Index of the first transition of `step` whose condition holds (with `answers`)."""
        if step.transitions and step.transitions[0].when is None:
            return 0  # the common case: no condition to evaluate, no context to build
        context = self.context(state, now, answers=answers)
        for index, transition in enumerate(step.transitions):
            if transition.when is None:
                return index
            try:
                value = transition.when.evaluate(context)
            except ExpressionFailed as exc:
                # A live run must not die on one bad condition: it counts as false, and is noted.
                where = f"line {transition.when.line}: {transition.when.source!r}"
                trace.events.append(RunNote(step.id, f"{where}: {exc}", now))
                continue
            if value is True:
                return index
        return None

    def _set_variable(
        self, state: RunState, action: SetVariable, now: datetime, trace: _Trace
    ) -> Mapping[str, object]:
        """The run's variables after `action` (unchanged, and noted, if its value fails)."""
        declared = self.script.variables[action.var]
        try:
            value = from_cel(action.value.evaluate(self.context(state, now)))
        except ExpressionFailed as exc:
            trace.events.append(
                RunNote(state.step_id, f"line {action.line}: vars.{action.var} not set: {exc}", now)
            )
            return state.variables
        return {**state.variables, action.var: coerce_to_type(value, declared.type)}

    def _prepare(self, state: RunState, action: Action, now: datetime) -> Effect:
        """The effect of an edge action with every expression evaluated."""
        context = self.context(state, now)
        script = self.script
        if isinstance(action, SendEmail):
            template = script.templates[action.template]
            to = _text(action.to, context)
            return EmailEffect(
                template=template.id,
                to=to,
                subject=template.subject.render(context),
                body=template.body.render(context, escape=template.html),
                html=template.html,
            )
        if isinstance(action, CallService):
            # Arguments cross process boundaries (remote services speak JSON): plain JSON only.
            args = {
                name: json_value(from_cel(expr.evaluate(context))) for name, expr in action.args
            }
            return ServiceCallEffect(action.service, action.method, args, action.timeout)
        if isinstance(action, SetField):
            declared = script.customer_fields[action.field]
            value = coerce_to_type(from_cel(action.value.evaluate(context)), declared.type)
            return FieldUpdateEffect(
                script.customer_object or "", state.customer_id, action.field, value
            )
        if isinstance(action, ScheduleCallback):
            at = from_cel(action.at.evaluate(context))
            when = _timestamp(at)
            number = _text(action.number, context) if action.number is not None else None
            if not number:
                number = _fallback_number(state)
            return CallbackEffect(
                state.customer_id, number, when, action.queue, _render(action.note, context)
            )
        if isinstance(action, Transfer):
            return TransferEffect(action.queue, _render(action.note, context))
        raise AssertionError(f"not an edge action: {action!r}")

    def _apply(
        self, state: RunState, action: Action, effect: Effect, result: ActionResult
    ) -> RunState:
        if isinstance(action, CallService) and action.result is not None:
            declared = self.script.variables[action.result]
            value = (
                coerce_to_type(result.value, declared.type)
                if result.status is ResultStatus.OK
                else None
            )
            return _evolve(state, variables={**state.variables, action.result: value})
        if isinstance(effect, FieldUpdateEffect):
            # Skipped too: a run without storage still sees the value it set.
            return _evolve(state, fields={**state.fields, effect.field: effect.value})
        return state

    def _after_failure(
        self, state: RunState, action: Action, result: ActionResult
    ) -> tuple[RunState, str | None]:
        """An action failed: its error branch, else the script's (service calls), else go on.

        Returns the state and the step to enter (None: the transition's next action).
        """
        error = {
            "code": result.code or "failed",
            "message": result.message or "",
            "action": action.name,
        }
        state = _evolve(state, error=error, effect=None)
        target = action.on_error
        if target is None and isinstance(action, CallService):
            target = self.script.on_error
        if target is not None:
            return _evolve(state, cursor=None), target
        assert state.cursor is not None
        return _evolve(state, cursor=replace(state.cursor, action=state.cursor.action + 1)), None

    def _fail(self, state: RunState, message: str, now: datetime, trace: _Trace) -> RunState:
        trace.events.append(RunNote(state.step_id, message, now))
        trace.events.append(RunEnded(RunStatus.FAILED, state.step_id, None, now))
        notes = (*state.notes, message)[-MAX_NOTES:]
        return _evolve(state, status=RunStatus.FAILED, cursor=None, effect=None, notes=notes)

    def _action_at(self, cursor: Cursor) -> Action:
        return (
            self.script.step(cursor.step_id).transitions[cursor.transition].actions[cursor.action]
        )


_STATE_FIELDS = tuple(f.name for f in fields(RunState))
_STATE_FIELD_SET = frozenset(_STATE_FIELDS)
_READ_ALL = operator.attrgetter(*_STATE_FIELDS)
_SLOTS = tuple(getattr(RunState, name) for name in _STATE_FIELDS)


def _evolve(state: RunState, **changes: Any) -> RunState:
    """`dataclasses.replace` for the hot path: a run's state changes several times per answer,
    and the generic version (which re-runs `__init__`) dominated the engine's time. Writes
    the slots directly, so the copy is as immutable as the original."""
    unknown = changes.keys() - _STATE_FIELD_SET
    if unknown:
        raise TypeError(f"RunState has no fields {sorted(unknown)}")
    new = object.__new__(RunState)
    for slot, value in zip(_SLOTS, _READ_ALL(state), strict=True):
        slot.__set__(new, value)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new


class _LazyMap(Mapping[str, object]):
    """A read-only mapping whose values are computed when read (CEL conversion on demand)."""

    __slots__ = ("_get", "_keys")

    def __init__(self, keys: Collection[str], get: Callable[[str], object]) -> None:
        self._keys = keys
        self._get = get

    def __getitem__(self, key: str) -> object:
        if key not in self._keys:
            raise KeyError(key)
        return self._get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _render(template: Template | None, context: Mapping[str, object]) -> str:
    return template.render(context) if template is not None else ""


def _text(expr: Expression, context: Mapping[str, object]) -> str:
    return format_value(from_cel(expr.evaluate(context))).strip()


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ExpressionFailed(f"{value!r} is not a date and time") from None
        return parsed
    return None


def _fallback_number(state: RunState) -> str | None:
    for candidate in (
        state.fields.get("phone"),
        state.customer.get("phone"),
        state.call.get("caller"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _limit(text: str | None, today: date) -> str | None:
    return parse_date_limit(text, today).isoformat() if text is not None else None
