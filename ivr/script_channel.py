"""The phone channel of dialog scripts: each step read out, each answer keyed on the phone.

`PhoneScriptChannel` serves one call of a number that is placed on a script: it starts a run
on the `phone` channel, reads every step's phone text through the telephony backend's
`play` (text-to-speech is the backend's job), collects the answer as DTMF through
`collect_digits` and hands it to the run. What to collect for each kind of question is the
pure function `key_request`; turning keys into an answer is `scripts_engine.answer_from_keys`.

* choice: one key (the choice's key); yes/no: 1 = yes, 2 = no;
* number: digits ended by `#`; date: eight digits, DDMMYYYY;
* information steps are read out and the run goes on;
* an invalid or missing answer is apologised for and asked again, `retries` times.

At the end the call goes where the run says: a `<transfer>` sends the contact to that queue
through the server's normal queueing path; any other end is read out, followed by goodbye,
and the server hangs up. If the caller hangs up (the task is cancelled, or the backend
reports the call gone), the run is stored as abandoned.

This module depends on the script engine only: the backend is anything with `play` and
`collect_digits` (the server's `TelephonyBackend` is one) and `prompt` builds what `play`
takes from text (the server passes its `Prompt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from scripts_engine import (
    AnswerType,
    Channel,
    InvalidAnswer,
    ResultStatus,
    Run,
    RunStatus,
    ScriptRunner,
    Step,
    StepKind,
    StepView,
    answer_from_keys,
)

log = logging.getLogger(__name__)

P = TypeVar("P")
P_contra = TypeVar("P_contra", contravariant=True)

#: Keys a number answer may have (a keypad has no decimal point; CEL ints are 64-bit).
MAX_NUMBER_DIGITS = 15
#: Keys of a date answer: DDMMYYYY.
DATE_DIGITS = 8


class VoiceLine(Protocol[P_contra]):
    """What the phone channel needs of a telephony backend (`TelephonyBackend` has both)."""

    async def play(self, call_id: str, prompt: P_contra) -> None:
        """Play a prompt to the caller; returns when it has been played."""
        ...

    async def collect_digits(
        self, call_id: str, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        """Keys pressed, up to `max_digits` or the terminator ('' on timeout)."""
        ...


@dataclass(frozen=True, slots=True)
class PhoneCall:
    """The call a phone script serves (`customer_id`: whom the IVR identified, if anyone)."""

    call_id: str
    caller: str
    dialed: str
    contact_id: str
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class PhoneScriptSettings:
    """How patient the phone channel is, and what it says around the script's own texts."""

    #: Seconds to wait for the caller's keys at each question.
    key_timeout: float = 8.0
    #: How many times a question is asked again after an invalid or missing answer.
    retries: int = 2
    invalid_prompt: str = "Sorry, that is not a valid answer."
    no_input_prompt: str = "Sorry, I did not get your answer."
    transfer_prompt: str = "Please hold the line, you are being put through."
    goodbye_prompt: str = "Thank you for calling. Goodbye."
    failed_prompt: str = "Sorry, we cannot go on with your request on the phone right now."


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """What to collect for a question: how many keys, and the key that ends the entry."""

    max_digits: int
    terminator: str


@dataclass(frozen=True, slots=True)
class PhoneScriptResult:
    """How a phone script ended: the run, its status, and the queue to route the call to."""

    run_id: str | None
    status: RunStatus
    queue: str | None


def key_request(step: Step) -> KeyRequest:
    """The keys a question takes on the phone (pure: the step in, the request out)."""
    kind = step.answer_type
    if kind is AnswerType.NUMBER:
        return KeyRequest(MAX_NUMBER_DIGITS + 1, "#")
    if kind is AnswerType.DATE:
        return KeyRequest(DATE_DIGITS, "#")
    # Choices and yes/no: one key. No terminator, since '#' may itself be a choice's key.
    return KeyRequest(1, "")


def transfer_queue(run: Run) -> str | None:
    """The queue of the last transfer the run carried out, if any."""
    for name, result in reversed(run.actions):
        if not name.startswith("transfer ") or result.status is not ResultStatus.OK:
            continue
        value = result.value
        if isinstance(value, Mapping) and isinstance(value.get("queue"), str):
            return str(value["queue"])
    return None


class PhoneScriptChannel(Generic[P]):
    """Runs dialog scripts over the phone for the dialled numbers placed on them."""

    def __init__(
        self,
        runner: ScriptRunner,
        line: VoiceLine[P],
        prompt: Callable[[str], P],
        *,
        numbers: Mapping[str, str],
        queues: Collection[str],
        settings: PhoneScriptSettings | None = None,
    ) -> None:
        self.runner = runner
        self.line = line
        self.prompt = prompt
        self.numbers = dict(numbers)
        self.queues = frozenset(queues)
        self.settings = settings or PhoneScriptSettings()

    def serves(self, dialed: str) -> bool:
        """Whether calls to this number run a script instead of the IVR menu."""
        return dialed in self.numbers

    async def route(self, call: PhoneCall) -> str | None:
        """Serve the call; the queue to put it in, or None when it is to be hung up."""
        return (await self.run(call)).queue

    async def run(self, call: PhoneCall) -> PhoneScriptResult:
        """Run the number's script on the call, from the first step to the outcome.

        The backend's own errors (the call is gone) and cancellation go on to the caller of
        this method once the run is stored as abandoned. Anything else (storage down, a bug)
        is logged, the caller hears an apology and the result says to hang up: nobody is
        left in silence on a line that has stopped listening.
        """
        script_id = self.numbers[call.dialed]
        try:
            run = await self.runner.start(
                script_id,
                Channel.PHONE,
                customer=call.customer_id,
                call={"caller": call.caller, "called": call.dialed, "contact_id": call.contact_id},
            )
        except Exception:
            log.exception("call %s: dialog script %s cannot start", call.call_id, script_id)
            return await self._give_up(call, None)
        log.info("call %s: dialog script %s, run %s", call.call_id, script_id, run.id)
        try:
            view = await self._converse(call, run)
            return await self._conclude(call, run, view)
        except _LineFailed as failed:
            if run.status.active:
                await _abandon_despite_cancel(run)
            raise failed.error from None
        except asyncio.CancelledError:
            if run.status.active:
                await _abandon_despite_cancel(run)
            raise
        except Exception:
            log.exception("call %s: dialog script run %s failed", call.call_id, run.id)
            if run.status.active:
                with contextlib.suppress(Exception):
                    await run.abandon()
            return await self._give_up(call, run)

    async def _give_up(self, call: PhoneCall, run: Run | None) -> PhoneScriptResult:
        """Apologise and let the server hang up (the line may be gone already)."""
        with contextlib.suppress(_LineFailed):
            settings = self.settings
            await self._say(call, f"{settings.failed_prompt} {settings.goodbye_prompt}")
        status = run.status if run is not None else RunStatus.FAILED
        return PhoneScriptResult(run.id if run is not None else None, status, None)

    async def _say(self, call: PhoneCall, text: str) -> None:
        if text.strip():
            try:
                await self.line.play(call.call_id, self.prompt(text))
            except Exception as exc:
                raise _LineFailed(exc) from exc

    async def _keys(self, call: PhoneCall, request: KeyRequest) -> str:
        try:
            return await self.line.collect_digits(
                call.call_id,
                max_digits=request.max_digits,
                timeout=self.settings.key_timeout,
                terminator=request.terminator,
            )
        except Exception as exc:
            raise _LineFailed(exc) from exc

    async def _converse(self, call: PhoneCall, run: Run) -> StepView:
        """Read steps and take answers until the run waits for nobody any more."""
        view = run.view()
        while view.status is RunStatus.WAITING:
            if view.kind is StepKind.INFORMATION:
                await self._say(call, view.phone_text)
                view = await run.answer(view.step_id, None)
                continue
            outcome = await self._ask(call, run, view)
            if outcome is None:
                await run.abandon()
                return run.view()
            view = outcome
        return view

    async def _ask(self, call: PhoneCall, run: Run, view: StepView) -> StepView | None:
        """One question: read, collect, answer; repeat on bad input. None: gave up."""
        step = run.script.step(view.step_id)
        request = key_request(step)
        settings = self.settings
        apology = ""
        for _attempt in range(settings.retries + 1):
            await self._say(call, f"{apology} {view.phone_text}".strip())
            keys = await self._keys(call, request)
            if not keys.strip("#") and view.required:
                apology = settings.no_input_prompt
                continue
            try:
                value = answer_from_keys(step, keys)
                return await run.answer(view.step_id, value)
            except InvalidAnswer as exc:
                log.info("call %s, step %s: %s", call.call_id, view.step_id, exc.message)
                apology = settings.invalid_prompt
        log.info("call %s: no valid answer to %s after every retry", call.call_id, view.step_id)
        return None

    async def _conclude(self, call: PhoneCall, run: Run, view: StepView) -> PhoneScriptResult:
        """Say the end and decide where the call goes."""
        settings = self.settings
        if run.status is RunStatus.COMPLETED:
            await self._say(call, view.phone_text)
            queue = transfer_queue(run)
            if queue is not None and queue in self.queues:
                await self._say(call, settings.transfer_prompt)
                return PhoneScriptResult(run.id, run.status, queue)
            if queue is not None:
                log.error("run %s transfers to unknown queue %r: hanging up", run.id, queue)
            await self._say(call, settings.goodbye_prompt)
            return PhoneScriptResult(run.id, run.status, None)
        await self._say(call, f"{settings.failed_prompt} {settings.goodbye_prompt}")
        return PhoneScriptResult(run.id, run.status, None)


class _LineFailed(Exception):
    """The backend failed a command (usually: the call is gone); `error` is its exception."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _abandon_despite_cancel(run: Run) -> None:
    """Store a run as abandoned even when the call's task is cancelled meanwhile.

    A hang-up both ends the backend's call (a `CallGone` here) and cancels this task; the
    cancellation must not cut the store of the abandonment short, so it waits for it.
    """
    storing = asyncio.ensure_future(run.abandon())
    try:
        await asyncio.shield(storing)
    except asyncio.CancelledError:
        await storing
        raise
