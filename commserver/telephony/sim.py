"""The simulated backend: callers and agents' phones in-process, on real or virtual time.

A `SimCaller` says what the caller will do (the digits they key, how long they are willing to
wait, how long they talk); agents' phones answer after `answer_delay` unless marked as not
answering. Everything waits with `asyncio.sleep`, so on a `VirtualTimeLoop` a day of traffic
runs in moments.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from commserver.clock import utcnow
from commserver.tasks import TaskSet
from commserver.telephony.base import (
    AgentEndpoint,
    BackendCapability,
    CallEnded,
    CallGone,
    CallOffered,
    HangupCause,
    Prompt,
    RingOutcome,
    SpyMode,
    TelephonyError,
    TelephonyHandler,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimCaller:
    """A simulated caller's behaviour."""

    caller: str = "+10000000000"
    dialed: str = "100"
    digits: str = ""
    patience: float | None = None
    talk_time: float = 1.0


@dataclass(frozen=True, slots=True)
class SimSpy:
    """A `spy` command the simulator carried out: whose phone joined which call, how."""

    call_id: str
    leg_id: str
    supervisor: AgentEndpoint
    mode: SpyMode


@dataclass(frozen=True, slots=True)
class SimCustomer:
    """How a simulated customer's phone takes an agent's outbound call.

    It rings for `ring_seconds` (or until the dial's timeout), then answers, or with
    `answers=False` reports no answer; `busy=True` is refused at once. Once connected the
    customer talks for `talk_time` seconds, then hangs up.
    """

    answers: bool = True
    busy: bool = False
    ring_seconds: float = 0.2
    talk_time: float = 30.0


@dataclass(eq=False)
class _SimLeg:
    call_id: str
    caller: SimCaller | None
    digits: list[str] = field(default_factory=list)
    answered: bool = False
    bridged_to: str | None = None
    spying_on: str | None = None  # a supervisor's leg: the agent leg it listens to
    gone: asyncio.Event = field(default_factory=asyncio.Event)


class SimBackend:
    """A `TelephonyBackend` whose calls and phones are simulated."""

    name = "sim"
    capabilities = frozenset(
        {
            BackendCapability.RECORD,
            BackendCapability.TRANSFER,
            BackendCapability.LISTEN,
            BackendCapability.WHISPER,
            BackendCapability.BARGE,
            BackendCapability.DIAL_OUT,
            BackendCapability.EXTERNAL_PHONES,
        }
    )

    def __init__(self, *, answer_delay: float = 0.5, prompt_seconds: float = 0.0) -> None:
        self.answer_delay = answer_delay
        self.prompt_seconds = prompt_seconds
        self.unanswering: set[str] = set()
        self._handler: TelephonyHandler | None = None
        self._legs: dict[str, _SimLeg] = {}
        self._ids = itertools.count(1)
        self._tasks = TaskSet("sim-backend")
        self._accepting = False
        # What was said to callers, newest last (bounded): lets tests and demos hear the IVR.
        self.prompts: deque[tuple[str, str]] = deque(maxlen=1000)
        # Supervisors' spy commands, newest last (bounded), for tests to assert on.
        self.spies: deque[SimSpy] = deque(maxlen=1000)
        # Outbound calls: how customers' phones behave (by number, else the default), and
        # the numbers dialled, newest last (bounded).
        self.customers: dict[str, SimCustomer] = {}
        self.default_customer = SimCustomer()
        self.dialled: deque[str] = deque(maxlen=1000)

    # -- driving the simulation ------------------------------------------------------------

    def place_call(self, caller: SimCaller) -> str:
        """A simulated caller dials in; returns the call id."""
        if self._handler is None:
            raise TelephonyError("the simulated backend is not started")
        call_id = f"sim-{next(self._ids)}"
        leg = _SimLeg(call_id, caller, digits=list(caller.digits))
        self._legs[call_id] = leg
        if not self._accepting:
            self._end(leg, HangupCause.REJECTED)
            return call_id
        self._handler.on_telephony_event(
            CallOffered(at=utcnow(), call_id=call_id, caller=caller.caller, dialed=caller.dialed)
        )
        if caller.patience is not None:
            self._tasks.spawn(self._give_up_after(leg, caller.patience), name=f"{call_id}-patience")
        return call_id

    async def _give_up_after(self, leg: _SimLeg, patience: float) -> None:
        await asyncio.sleep(patience)
        if leg.bridged_to is None and not leg.gone.is_set():
            self._end(leg, HangupCause.CALLER_HANGUP)

    def _end(self, leg: _SimLeg, cause: HangupCause) -> None:
        if leg.gone.is_set():
            return
        leg.gone.set()
        self._legs.pop(leg.call_id, None)
        # A supervisor's leg ends with the agent leg it listens to (ChanSpy's `E` option).
        for spy in [s for s in self._legs.values() if s.spying_on == leg.call_id]:
            self._end(spy, HangupCause.NORMAL)
        if self._handler is not None:
            self._handler.on_telephony_event(
                CallEnded(at=utcnow(), call_id=leg.call_id, cause=cause)
            )

    def _leg(self, call_id: str) -> _SimLeg:
        leg = self._legs.get(call_id)
        if leg is None or leg.gone.is_set():
            raise CallGone(f"call {call_id} has ended", call_id=call_id)
        return leg

    @property
    def live_calls(self) -> int:
        """Legs currently up."""
        return len(self._legs)

    # -- TelephonyBackend ------------------------------------------------------------------

    async def open(self, handler: TelephonyHandler) -> None:
        """Start taking simulated calls."""
        self._handler = handler
        self._accepting = True

    async def stop_accepting(self) -> None:
        """New simulated calls are rejected from now on."""
        self._accepting = False

    async def close(self) -> None:
        """Hang up every simulated leg."""
        self._accepting = False
        for leg in list(self._legs.values()):
            self._end(leg, HangupCause.SHUTDOWN)
        await self._tasks.cancel_all()

    async def answer(self, call_id: str) -> None:
        """Answer the caller."""
        self._leg(call_id).answered = True

    async def play(self, call_id: str, prompt: Prompt) -> None:
        """'Play' a prompt: takes `prompt_seconds` of (virtual) time."""
        leg = self._leg(call_id)
        self.prompts.append((call_id, prompt.text or str(prompt.wav)))
        if self.prompt_seconds:
            await _sleep_unless(leg.gone, self.prompt_seconds)

    async def collect_digits(
        self, call_id: str, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        """The caller keys what their script says, or nothing (then the timeout runs out)."""
        leg = self._leg(call_id)
        if not leg.digits:
            await _sleep_unless(leg.gone, timeout)
            return ""
        keyed: list[str] = []
        while leg.digits and len(keyed) < max_digits:
            digit = leg.digits.pop(0)
            if digit == terminator:
                break
            keyed.append(digit)
        return "".join(keyed)

    async def start_music(self, call_id: str) -> None:
        """Music on hold (nothing to simulate)."""
        self._leg(call_id)

    async def stop_music(self, call_id: str) -> None:
        """Stop music on hold."""

    async def ring_agent(
        self, call_id: str, agent: AgentEndpoint, *, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Ring a simulated phone: it answers after `answer_delay` unless told not to."""
        caller_leg = self._leg(call_id)
        if agent.agent_id in self.unanswering or self.answer_delay > timeout:
            await _sleep_unless(caller_leg.gone, timeout)
            return (
                RingOutcome.CALLER_GONE if caller_leg.gone.is_set() else RingOutcome.NO_ANSWER
            ), None
        await _sleep_unless(caller_leg.gone, self.answer_delay)
        if caller_leg.gone.is_set():
            return RingOutcome.CALLER_GONE, None
        agent_leg = _SimLeg(f"sim-{next(self._ids)}-agent-{agent.agent_id}", None, answered=True)
        self._legs[agent_leg.call_id] = agent_leg
        return RingOutcome.ANSWERED, agent_leg.call_id

    async def bridge(self, call_id: str, agent_leg_id: str) -> None:
        """Connect both legs; the caller hangs up after their talk time."""
        caller_leg = self._leg(call_id)
        agent_leg = self._leg(agent_leg_id)
        caller_leg.bridged_to = agent_leg_id
        agent_leg.bridged_to = call_id
        talk_time = caller_leg.caller.talk_time if caller_leg.caller else 0.0
        self._tasks.spawn(self._talk(caller_leg, talk_time), name=f"{call_id}-talk")

    async def _talk(self, leg: _SimLeg, talk_time: float) -> None:
        await _sleep_unless(leg.gone, talk_time)
        self._end(leg, HangupCause.CALLER_HANGUP)

    async def record(self, call_id: str, path: Path, *, max_seconds: float) -> float:
        """The caller speaks for their talk time (within the limit); a silent WAV is written."""
        leg = self._leg(call_id)
        seconds = min(leg.caller.talk_time if leg.caller else 0.0, max_seconds)
        await _sleep_unless(leg.gone, seconds)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(b"\x00\x00" * int(seconds * 8000))
        return seconds

    async def hangup(self, call_id: str, cause: HangupCause = HangupCause.NORMAL) -> None:
        """End a leg; ending one that is gone is fine."""
        leg = self._legs.get(call_id)
        if leg is not None:
            self._end(leg, cause)

    # -- DialOutBackend: click-to-dial -----------------------------------------------------

    async def call_agent(
        self, agent: AgentEndpoint, number: str, *, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Ring an agent's simulated phone for their own call; it answers as for an offer."""
        never = asyncio.Event()
        if agent.agent_id in self.unanswering or self.answer_delay > timeout:
            await _sleep_unless(never, timeout)
            return RingOutcome.NO_ANSWER, None
        await _sleep_unless(never, self.answer_delay)
        leg = _SimLeg(f"sim-{next(self._ids)}-agent-{agent.agent_id}", None, answered=True)
        self._legs[leg.call_id] = leg
        return RingOutcome.ANSWERED, leg.call_id

    async def dial_customer(
        self, agent_leg_id: str, number: str, *, caller_id: str, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Call a simulated customer; `customers` (or `default_customer`) says what they do."""
        agent_leg = self._legs.get(agent_leg_id)
        if agent_leg is None or agent_leg.gone.is_set():
            return RingOutcome.CALLER_GONE, None
        self.dialled.append(number)
        customer = self.customers.get(number, self.default_customer)
        if customer.busy:
            return RingOutcome.BUSY, None
        await _sleep_unless(agent_leg.gone, min(customer.ring_seconds, timeout))
        if agent_leg.gone.is_set():
            return RingOutcome.CALLER_GONE, None
        if not customer.answers or customer.ring_seconds > timeout:
            return RingOutcome.NO_ANSWER, None
        caller = SimCaller(caller=number, dialed=number, talk_time=customer.talk_time)
        leg = _SimLeg(f"sim-{next(self._ids)}-out", caller, answered=True)
        self._legs[leg.call_id] = leg
        return RingOutcome.ANSWERED, leg.call_id

    # -- SupervisionBackend: listen, whisper, barge ----------------------------------------

    async def spy(self, call_id: str, supervisor: AgentEndpoint, mode: SpyMode) -> str:
        """A simulated supervisor's phone joins the call's agent leg after `answer_delay`.

        The leg ends when it is hung up or when the agent's leg ends; `spies` logs the command.
        """
        caller_leg = self._leg(call_id)
        if caller_leg.bridged_to is None:
            raise TelephonyError(
                "only a call connected to an agent can be supervised", call_id=call_id
            )
        if not (supervisor.extension or supervisor.external_number):
            raise TelephonyError(f"supervisor {supervisor.agent_id} has no phone to ring")
        if supervisor.agent_id in self.unanswering:
            raise TelephonyError(f"supervisor {supervisor.agent_id} did not answer (no-answer)")
        await _sleep_unless(caller_leg.gone, self.answer_delay)
        agent_leg = self._leg(call_id).bridged_to
        if agent_leg is None or agent_leg not in self._legs:
            raise CallGone(f"call {call_id} has ended", call_id=call_id)
        leg = _SimLeg(
            f"sim-{next(self._ids)}-spy-{supervisor.agent_id}", None, answered=True,
            spying_on=agent_leg,
        )
        self._legs[leg.call_id] = leg
        self.spies.append(SimSpy(call_id, leg.call_id, supervisor, mode))
        return leg.call_id


async def _sleep_unless(gone: asyncio.Event, seconds: float) -> None:
    """Sleep, but stop early when the leg goes away."""
    try:
        async with asyncio.timeout(seconds):
            await gone.wait()
    except TimeoutError:
        pass
