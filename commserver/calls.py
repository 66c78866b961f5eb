"""The call controller: each call from arrival through IVR, the ACD and an agent to its record.

It is the server's `TelephonyHandler` and the only driver of the ACD (`acd.Dispatcher`):
every ACD input goes through `_input`, which carries out the decisions that come back
(ring these agents, stop ringing that one, overflow to voicemail, wrap-up over) and refreshes
the agents' mirrors. Per-call state lives in a `LiveCall` keyed by the backend's call id; each
call is served by one task owned by the controller. Every step is published on the bus, and
each finished contact's record goes to the record sink (durable before the task moves on).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar, cast

from acd import (
    AcdConfig,
    AcdError,
    ActionKind,
    AgentState,
    AgentView,
    Assign,
    AutoPause,
    CancelOffer,
    ContactRequest,
    Decision,
    Dispatcher,
    Moved,
    Overflow,
    QueueConfig,
    Repair,
    RingAll,
    RuleApplied,
    WrapUpEnded,
)
from commserver.agents import Agent, AgentStateChanged
from commserver.clock import utcnow
from commserver.config import AgentSettings
from commserver.contacts import CallRecord, Channel, Contact, ContactState, Direction, Outcome
from commserver.contacts.events import CallRecordStored, ContactStateChanged
from commserver.dialling import (
    AGENT_RING_SECONDS,
    CUSTOMER_RING_SECONDS,
    DEFAULT_NUMBER_PATTERN,
    OUTBOUND_PAUSE,
    NumberPolicy,
    OutboundCall,
    OutboundPhase,
    mask,
)
from commserver.errors import (
    AgentNotOnCall,
    InvalidTransition,
    NoSuchAgent,
    NoSuchContact,
    NoSupervisorPhone,
    NotSupportedByBackend,
    UnknownExtension,
)
from commserver.events import EventBus
from commserver.supervision import SpySession, SpySessions, phone_of
from commserver.tasks import TaskSet
from commserver.telephony.base import (
    AgentEndpoint,
    BackendCapability,
    CallAdopted,
    CallEnded,
    CallOffered,
    CallTransferred,
    DialOutBackend,
    EndpointRegistration,
    EndpointState,
    EndpointStateChanged,
    HangupCause,
    Prompt,
    RingOutcome,
    SpyMode,
    TelephonyBackend,
    TelephonyError,
    TelephonyEvent,
)
from ivr import GiveUp, Menu, MenuRun, PlayAndCollect, Route
from ivr.hours import OpeningHours
from ivr.script_channel import PhoneCall, PhoneScriptChannel

log = logging.getLogger(__name__)
T = TypeVar("T")

AUDIT_INTERVAL = 60.0
VOICEMAIL_PROMPT = "Please leave a message after the tone, and press the hash key when done."
GOODBYE_PROMPT = "We are sorry, nobody can take your call right now. Goodbye."
CUSTOMER_NUMBER_PROMPT = "Please key your customer number, then the hash key."
UNKNOWN_NUMBER_PROMPT = "Sorry, we could not find that customer number."
ADOPTED_PAUSE = "adopted-call"
# A recording's file name comes from the contact id, which carries the SIP Call-ID: '/' and
# the like must not reach the file system.
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._@+-]")
PHONE_BUSY_PAUSE = "phone-busy"

Offer = Assign | RingAll | Overflow


class RecordSink(Protocol):
    """Where finished contacts' records go; `write` returns once the record is durable."""

    async def write(self, record: CallRecord) -> None:
        """Store one record durably."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a caller is, as the customer directory says: their id, priority and name."""

    customer_id: str
    priority: int = 0
    name: str = ""


class CallerIdentification(Protocol):
    """Looks a caller up (by number, or by a customer number they key); None when unknown."""

    async def by_phone(self, phone: str) -> Identity | None:
        """The customer whose phone number this is."""

    async def by_customer_number(self, number: str) -> Identity | None:
        """The customer with this customer number."""


class VoicemailBoxes(Protocol):
    """Where a recorded message goes: stored with its metadata (and e-mailed)."""

    async def deposit(self, box: str, contact: Contact, recording: Path, seconds: float) -> None:
        """Keep a message durably; returns once it is stored."""


class CallerGone(Exception):
    """The caller hung up while we were doing something for them."""


@dataclass(eq=False)
class LiveCall:
    """Everything the controller tracks for one call in progress."""

    call_id: str
    contact: Contact
    caller_gone: asyncio.Event = field(default_factory=asyncio.Event)
    hangup_cause: HangupCause = HangupCause.NORMAL
    offers: asyncio.Queue[Offer] = field(default_factory=lambda: asyncio.Queue(maxsize=64))
    rings: dict[str, asyncio.Task[tuple[RingOutcome, str | None]]] = field(default_factory=dict)
    agent_leg: str | None = None
    agent_gone: asyncio.Event = field(default_factory=asyncio.Event)
    in_acd: bool = False
    transferred_to: str | None = None


class CallController:
    """Serves every call the backend offers and drives the ACD for every agent and contact."""

    def __init__(
        self,
        *,
        backend: TelephonyBackend,
        bus: EventBus,
        acd_config: AcdConfig,
        agents: Sequence[AgentSettings],
        menu: Menu,
        ivr_numbers: tuple[str, ...],
        records: RecordSink,
        max_calls: int,
        data_dir: Path,
        ready_on_register: bool = False,
        phone_scripts: PhoneScriptChannel[Prompt] | None = None,
        identification: CallerIdentification | None = None,
        ask_customer_number: bool = False,
        announce_every: float = 0.0,
        voicemail: VoicemailBoxes | None = None,
        voicemail_max_seconds: float = 120.0,
        hours: OpeningHours | None = None,
        closed_prompt: str = "",
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] | None = None,
        outbound_number_pattern: str = DEFAULT_NUMBER_PATTERN,
    ) -> None:
        self.backend = backend
        self.bus = bus
        self.menu = menu
        self.ivr_numbers = ivr_numbers
        self.records = records
        self.max_calls = max_calls
        self.data_dir = data_dir
        self.ready_on_register = ready_on_register
        self.phone_scripts = phone_scripts
        self.identification = identification
        self.ask_customer_number = ask_customer_number
        self.announce_every = announce_every
        self.voicemail = voicemail
        self.voicemail_max_seconds = voicemail_max_seconds
        self.hours = hours
        self.closed_prompt = closed_prompt
        self.now = now
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.acd = Dispatcher(acd_config, now=self.clock())
        self.queues: dict[str, QueueConfig] = {q.name: q for q in acd_config.queues}
        acd_agents = {a.id: a for a in acd_config.agents}
        started = now()
        self.agents = {a.id: Agent.from_settings(a, acd_agents[a.id], started) for a in agents}
        self._logged_in_at_start = [a.id for a in agents if a.logged_in]
        self._by_extension = {
            a.endpoint.extension: a.id for a in self.agents.values() if a.endpoint.extension
        }
        # Agents' phones as configured; an agent may choose another one at login.
        self._configured_phones = {a.id: a.endpoint for a in self.agents.values()}
        self._registered: set[str] = set()
        self.numbers = NumberPolicy(outbound_number_pattern)
        # Agents' click-to-dial calls (at most one each), through their wrap-up.
        self._outbound: dict[str, OutboundCall] = {}
        self.accepting = True
        self._calls: dict[str, LiveCall] = {}
        self._by_contact: dict[str, LiveCall] = {}
        self._agent_legs: dict[str, LiveCall] = {}
        # Supervisors listening, whispering or barging: see `spy_on_agent`.
        self.supervision = SpySessions(backend, bus, now=now)
        self._contact_ids = itertools.count(1)
        # Contact ids must not repeat across restarts: an adopted call gets a new contact.
        self._run = secrets.token_hex(3)
        self._phone_busy: set[str] = set()
        # Agents whose phone unregistered while on a contact: logged out once they are free.
        self._logout_when_free: set[str] = set()
        # Callback contacts (no call of their own) by contact id: see `request_callback`.
        self._callbacks: dict[str, LiveCall] = {}
        self._tasks = TaskSet("calls")
        self._timer_wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._hours_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Log in the agents configured as logged in and start the ACD's timers."""
        for agent_id in self._logged_in_at_start:
            self._input(self.acd.login(agent_id, self.clock()), agent_id)
        self._timer = self._tasks.spawn(self._run_timers(), name="acd-timers")
        if self.hours is not None:
            self._apply_hours()
            self._hours_task = self._tasks.spawn(self._follow_hours(), name="business-hours")

    def _apply_hours(self) -> None:
        """Open or close every queue in the ACD as the calendar says now."""
        assert self.hours is not None
        is_open = self.hours.is_open(self.now())
        for name in self.queues:
            self._input(self.acd.set_queue_open(name, is_open, self.clock()))

    async def _follow_hours(self) -> None:
        """Sleep until the next opening or closing, then apply it."""
        assert self.hours is not None
        while (change := self.hours.next_change(self.now())) is not None:
            await asyncio.sleep(max((change - self.now()).total_seconds(), 0.0) + 0.001)
            self._apply_hours()
            log.info(
                "business hours: queues are now %s",
                "open" if self.hours.is_open(self.now()) else "closed",
            )

    async def _run_timers(self) -> None:
        """Call the ACD's `tick` at its next deadline; new inputs wake this to re-plan."""
        last_audit = self.clock()
        while True:
            deadline = self.acd.next_deadline()
            now = self.clock()
            if now - last_audit >= AUDIT_INTERVAL:
                last_audit = now
                in_acd = [c for c, call in self._by_contact.items() if call.in_acd]
                self._input(self.acd.audit(now, in_acd))
                continue
            wait = AUDIT_INTERVAL - (now - last_audit)
            if deadline is not None:
                wait = min(wait, max(deadline - now, 0.0))
            self._timer_wake.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._timer_wake.wait()
            except TimeoutError:
                try:
                    self._input(self.acd.tick(self.clock()))
                except Exception:  # one bad decision must not stop every later timer
                    log.exception("carrying out the ACD's timed decisions failed")

    async def drain(self, timeout: float) -> bool:
        """Stop taking calls and let live ones finish for up to `timeout` seconds."""
        self.accepting = False
        # Routing timers and the calendar run for ever; only calls are waited for.
        for background in (self._timer, self._hours_task):
            if background is not None:
                background.cancel()
        for callback in self._callbacks.values():
            # They would wait for an agent for ever; their owner routes them again after a restart.
            callback.hangup_cause = HangupCause.SHUTDOWN
            callback.caller_gone.set()
        return await self._tasks.drain(timeout)

    async def close(self) -> None:
        """Cancel whatever is still running (after a drain that ran out of time)."""
        self.accepting = False
        for out in self._outbound.values():
            if out.wrap_up_timer is not None:
                out.wrap_up_timer.cancel()
        await self._tasks.cancel_all()

    # -- events from the backend -------------------------------------------------------------

    def on_telephony_event(self, event: TelephonyEvent) -> None:
        """Route a backend event to the call or agent it concerns."""
        if isinstance(event, CallOffered):
            self._offered(event.call_id, event.caller, event.dialed, event.at)
        elif isinstance(event, CallAdopted):
            self._adopted(event)
        elif isinstance(event, CallEnded):
            live = self._calls.get(event.call_id)
            if live is not None:
                live.hangup_cause = event.cause
                live.caller_gone.set()
                self.supervision.call_over(live.call_id)
            elif (live := self._agent_legs.get(event.call_id)) is not None:
                live.agent_gone.set()
                self.supervision.call_over(live.call_id)
            else:
                self.supervision.leg_ended(event.call_id)
        elif isinstance(event, CallTransferred):
            if (live := self._calls.get(event.call_id)) is not None:
                live.transferred_to = event.destination
        elif isinstance(event, EndpointRegistration):
            self._registration(event)
        elif isinstance(event, EndpointStateChanged):
            self._phone_state(event)

    def _offered(self, call_id: str, caller: str, dialed: str, at: datetime) -> LiveCall | None:
        if not self.accepting or len(self._calls) >= self.max_calls:
            reason = "draining" if not self.accepting else "at max_calls"
            log.warning("refusing call %s from %s: %s", call_id, caller, reason)
            self._tasks.spawn(self._refuse(call_id), name=f"refuse-{call_id}")
            return None
        contact = Contact(
            id=self._new_contact_id(call_id),
            channel=Channel.VOICE,
            arrived_at=at,
            caller=caller,
            dialed=dialed,
        )
        live = LiveCall(call_id, contact)
        self._calls[call_id] = live
        self._by_contact[contact.id] = live
        self.bus.publish(
            ContactStateChanged(at=at, contact_id=contact.id, old=contact.state, new=contact.state)
        )
        self._tasks.spawn(self._serve(live), name=f"call-{call_id}")
        return live

    def _adopted(self, event: CallAdopted) -> None:
        """A call that was up before a restart: serve it again from where it can be."""
        if event.call_id in self._calls:
            return
        if event.agent_leg_id is None or event.agent_id not in self.agents:
            log.info("adopting call %s from %s: back through the menu", event.call_id, event.caller)
            self._offered(event.call_id, event.caller, event.dialed, event.up_since or event.at)
            return
        contact = Contact(
            id=self._new_contact_id(event.call_id),
            channel=Channel.VOICE,
            arrived_at=event.up_since or event.at,
            caller=event.caller,
            dialed=event.dialed,
            agent_id=event.agent_id,
        )
        live = LiveCall(event.call_id, contact, agent_leg=event.agent_leg_id)
        self._calls[event.call_id] = live
        self._by_contact[contact.id] = live
        self._agent_legs[event.agent_leg_id] = live
        log.info("adopting call %s connected to agent %s", event.call_id, event.agent_id)
        self._tasks.spawn(self._serve_adopted(live, event.agent_id), name=f"call-{event.call_id}")

    def _registration(self, event: EndpointRegistration) -> None:
        if event.registered:
            self._registered.add(event.extension)
        else:
            self._registered.discard(event.extension)
        agent_id = self._by_extension.get(event.extension)
        log.info(
            "extension %s registered=%s (agent %s)", event.extension, event.registered, agent_id
        )
        if agent_id is None or not self.ready_on_register:
            return
        agent = self.agents[agent_id]
        try:
            if event.registered:
                self._logout_when_free.discard(agent_id)
                if agent.state is AgentState.LOGGED_OUT:
                    self._input(self.acd.login(agent_id, self.clock()), agent_id)
            elif agent.state in (AgentState.READY, AgentState.PAUSED):
                self._input(self.acd.logout(agent_id, self.clock()), agent_id)
            elif agent.state is not AgentState.LOGGED_OUT:
                self._logout_when_free.add(agent_id)
        except AcdError as exc:
            log.warning("extension %s: %s", event.extension, exc)

    def _phone_state(self, event: EndpointStateChanged) -> None:
        """A phone busy with a call Caruso did not make keeps its agent out of routing."""
        agent_id = self._by_extension.get(event.extension)
        if agent_id is None:
            return
        agent = self.agents[agent_id]
        engaged = event.state in (EndpointState.IN_USE, EndpointState.BUSY, EndpointState.RINGING)
        try:
            if engaged and agent.state is AgentState.READY and agent.contact_id is None:
                self._phone_busy.add(agent_id)
                self._input(self.acd.pause(agent_id, self.clock(), PHONE_BUSY_PAUSE), agent_id)
            elif event.state is EndpointState.AVAILABLE and agent_id in self._phone_busy:
                self._phone_busy.discard(agent_id)
                if agent.state is AgentState.PAUSED and agent.pause_reason == PHONE_BUSY_PAUSE:
                    self._input(self.acd.ready(agent_id, self.clock()), agent_id)
        except AcdError as exc:
            log.warning("extension %s %s: %s", event.extension, event.state.value, exc)

    def _new_contact_id(self, call_id: str) -> str:
        """Unique across restarts; carries (a bounded piece of) the call id for tracing."""
        return f"c{self._run}-{next(self._contact_ids)}-{call_id[:64]}"

    async def _refuse(self, call_id: str) -> None:
        await self.backend.hangup(call_id, HangupCause.REJECTED)

    # -- one call, start to end -----------------------------------------------------------------

    async def _serve(self, live: LiveCall) -> None:
        contact = live.contact
        try:
            await self.backend.answer(live.call_id)
            self._move(contact, ContactState.IVR)
            await self._until_gone(live, self._identify(live))
            # A number placed on a dialog script runs the script instead of the menu.
            scripted = self.phone_scripts is not None and self.phone_scripts.serves(contact.dialed)
            work = (
                self.phone_scripts.route(
                    PhoneCall(
                        live.call_id, contact.caller, contact.dialed, contact.id,
                        contact.customer_id,
                    )
                )
                if self.phone_scripts is not None and scripted
                else self._run_menu(live)
            )
            queue = await self._until_gone(live, work)
            if queue is None:
                # A script that ends without a transfer served the caller; a menu that ends
                # without a choice did not.
                contact.outcome = Outcome.SELF_SERVED if scripted else Outcome.REJECTED
                await self.backend.hangup(live.call_id, HangupCause.NORMAL)
                self._move(contact, ContactState.ENDED)
            else:
                await self._queue_and_connect(live, queue)
        except (CallerGone, TelephonyError):
            self._abandon(live)
        finally:
            await self._finish(live)

    async def _serve_adopted(self, live: LiveCall, agent_id: str) -> None:
        """An adopted, connected call: keep the agent off routing until it ends, then record."""
        contact = live.contact
        agent = self.agents[agent_id]
        try:
            if agent.state is AgentState.LOGGED_OUT:
                self._input(self.acd.login(agent_id, self.clock(), pause_reason=ADOPTED_PAUSE))
            else:
                self._input(self.acd.pause(agent_id, self.clock(), ADOPTED_PAUSE), agent_id)
        except AcdError as exc:
            log.warning("adopted call %s: agent %s: %s", live.call_id, agent_id, exc)
        contact.outcome = Outcome.ANSWERED
        for state in (ContactState.QUEUED, ContactState.OFFERED, ContactState.CONNECTED):
            self._move(contact, state)
        try:
            await _first_of(live.caller_gone, live.agent_gone)
            await self._hang_up_other_leg(live)
            self._move(contact, ContactState.ENDED)
        finally:
            try:
                self._input(self.acd.ready(agent_id, self.clock()), agent_id)
            except AcdError as exc:
                log.warning("adopted call %s: agent %s: %s", live.call_id, agent_id, exc)
            await self._finish(live)

    async def _finish(self, live: LiveCall) -> None:
        """Record the contact; forget the call (the contact stays visible through wrap-up)."""
        contact = live.contact
        self._calls.pop(live.call_id, None)
        if live.agent_leg is not None:
            self._agent_legs.pop(live.agent_leg, None)
        await self.supervision.call_ended(live.call_id)
        if not contact.is_final and contact.state is not ContactState.WRAP_UP:
            contact.outcome = contact.outcome or Outcome.FAILED
            self._move(contact, ContactState.ENDED)
        await self._store(live)
        if contact.state is not ContactState.WRAP_UP:
            self._by_contact.pop(contact.id, None)

    async def _identify(self, live: LiveCall) -> None:
        """Caller number first; then, if the site asks for it, a keyed customer number."""
        if self.identification is None:
            return
        contact = live.contact
        identity = await self.identification.by_phone(contact.caller) if contact.caller else None
        if identity is None and self.ask_customer_number:
            for _ in range(2):
                await self.backend.play(live.call_id, Prompt(text=CUSTOMER_NUMBER_PROMPT))
                keyed = await self.backend.collect_digits(
                    live.call_id, max_digits=12, timeout=self.menu.timeout * 2
                )
                if not keyed:
                    break
                identity = await self.identification.by_customer_number(keyed)
                if identity is not None:
                    break
                await self.backend.play(live.call_id, Prompt(text=UNKNOWN_NUMBER_PROMPT))
        if identity is not None:
            contact.customer_id = identity.customer_id
            contact.priority = identity.priority
            log.info(
                "call %s: customer %s (priority %d)",
                live.call_id,
                identity.customer_id,
                identity.priority,
            )

    async def _run_menu(self, live: LiveCall) -> str | None:
        run = MenuRun(self.menu)
        step: PlayAndCollect | Route | GiveUp = run.start()
        while isinstance(step, PlayAndCollect):
            for text in step.prompts:
                await self.backend.play(live.call_id, Prompt(text=text))
            digits = await self.backend.collect_digits(
                live.call_id, max_digits=step.max_digits, timeout=step.timeout
            )
            step = run.on_input(digits)
        if isinstance(step, GiveUp):
            log.info("call %s: %s", live.call_id, step.reason)
            return None
        return step.queue

    async def _queue_and_connect(self, live: LiveCall, queue_name: str) -> None:
        contact = live.contact
        contact.queue = queue_name
        self._move(contact, ContactState.QUEUED)
        await self.backend.start_music(live.call_id)
        request = ContactRequest(
            contact.id,
            queue_name,
            priority=contact.priority,
            customer={"caller": contact.caller, "customer_id": contact.customer_id},
        )
        closed = self.hours is not None and not self.hours.is_open(self.now())
        if closed and self.queues[queue_name].on_closed is None:
            # Nobody is there and the queue says nothing else: tell the caller, don't queue them.
            await self.backend.stop_music(live.call_id)
            await self.backend.play(live.call_id, Prompt(text=self.closed_prompt or GOODBYE_PROMPT))
            contact.outcome = Outcome.OVERFLOWED
            await self.backend.hangup(live.call_id, HangupCause.NORMAL)
            self._move(contact, ContactState.ENDED)
            return
        live.in_acd = True
        self._input(self.acd.contact_arrived(request, self.clock()))
        while True:
            offer = await self._until_gone(live, self._next_offer(live))
            if isinstance(offer, Overflow):
                if await self._overflow(live, offer):
                    return
                continue
            agent_ids = (offer.agent_id,) if isinstance(offer, Assign) else offer.agent_ids
            answered = await self._offer(live, agent_ids)
            if answered is not None:
                break
        agent_id, leg = answered
        agent = self.agents[agent_id]
        live.agent_leg = leg
        self._agent_legs[leg] = live
        await self.backend.stop_music(live.call_id)
        await self.backend.bridge(live.call_id, leg)
        contact.agent_id = agent_id
        contact.outcome = Outcome.ANSWERED
        self._move(contact, ContactState.CONNECTED)
        await _first_of(live.caller_gone, live.agent_gone)
        live.in_acd = False
        if live.transferred_to is not None:
            # The PBX took the caller elsewhere; the agent's leg is the PBX's to end.
            contact.outcome = Outcome.TRANSFERRED
            self._move(contact, ContactState.TRANSFERRED)
            self._input(self.acd.contact_ended(contact.id, self.clock()), agent.id)
            self._move(contact, ContactState.ENDED)
            return
        await self._hang_up_other_leg(live)
        self._move(contact, ContactState.WRAP_UP)
        self._input(self.acd.contact_ended(contact.id, self.clock()), agent.id)
        if contact.id not in self.acd.agent(agent.id).contacts:
            self._move(contact, ContactState.ENDED)  # the queue has no wrap-up time

    async def _next_offer(self, live: LiveCall) -> Offer:
        """Wait for the ACD's next word on this contact, announcing position and wait meanwhile."""
        if live.offers.qsize() or self.announce_every <= 0:
            return await live.offers.get()
        announcer = self._tasks.spawn(self._announce(live), name=f"announce-{live.call_id}")
        try:
            return await live.offers.get()
        finally:
            announcer.cancel()
            await asyncio.gather(announcer, return_exceptions=True)

    async def _announce(self, live: LiveCall) -> None:
        """Every `announce_every` seconds: your position, and an honest estimate of the wait."""
        contact_id = live.contact.id
        while True:
            await asyncio.sleep(self.announce_every)
            position = self.acd.position(contact_id)
            if position is None:
                return
            wait = self.acd.estimated_wait(contact_id)
            text = f"You are number {position} in the queue."
            if wait is not None:
                minutes = max(1, round(wait / 60))
                text += (
                    f" Your estimated wait is about {minutes} minute{'s' if minutes > 1 else ''}."
                )
            await self.backend.stop_music(live.call_id)
            try:
                await self.backend.play(live.call_id, Prompt(text=text))
            finally:
                await self.backend.start_music(live.call_id)

    async def _hang_up_other_leg(self, live: LiveCall) -> None:
        if live.caller_gone.is_set():
            if live.agent_leg is not None:
                await self.backend.hangup(live.agent_leg, HangupCause.CALLER_HANGUP)
        else:
            live.hangup_cause = HangupCause.AGENT_HANGUP
            await self.backend.hangup(live.call_id, HangupCause.AGENT_HANGUP)

    async def _offer(self, live: LiveCall, agent_ids: Iterable[str]) -> tuple[str, str] | None:
        """Ring the agents the ACD chose; the first to answer gets the call (or nobody does)."""
        contact = live.contact
        agent_ids = tuple(agent_ids)
        contact.agent_id = agent_ids[0] if len(agent_ids) == 1 else None
        self._move(contact, ContactState.OFFERED)
        timeout = self.queues[contact.queue or ""].ring_timeout if contact.queue else 15.0
        for agent_id in agent_ids:
            # The ACD times the ring and sends CancelOffer; the backend's own limit is a backstop.
            ring = self._ring(live.call_id, agent_id, timeout + 5.0)
            live.rings[agent_id] = self._tasks.spawn(ring, name=f"ring-{agent_id}-{live.call_id}")
        winner: tuple[str, str] | None = None
        try:
            while live.rings and winner is None:
                pending = set(live.rings.values())
                gone = asyncio.ensure_future(live.caller_gone.wait())
                try:
                    await asyncio.wait({*pending, gone}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    gone.cancel()
                if live.caller_gone.is_set():
                    raise CallerGone
                for agent_id, task in list(live.rings.items()):
                    if task.done():
                        del live.rings[agent_id]
                        answered = await self._ring_finished(live, agent_id, task, winner)
                        winner = winner or answered
        finally:
            for task in live.rings.values():
                task.cancel()
            if live.rings:
                await asyncio.gather(*live.rings.values(), return_exceptions=True)
            live.rings.clear()
        if winner is None and not contact.is_final:
            contact.agent_id = None
            self._move(contact, ContactState.QUEUED)
        return winner

    async def _ring(
        self, call_id: str, agent_id: str, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Ring one agent; a device that cannot be rung is a failed ring, not an error."""
        try:
            return await self.backend.ring_agent(
                call_id, self.agents[agent_id].endpoint, timeout=timeout
            )
        except TelephonyError as exc:
            log.warning("ringing agent %s failed: %s", agent_id, exc)
            return RingOutcome.FAILED, None

    async def _ring_finished(
        self,
        live: LiveCall,
        agent_id: str,
        task: asyncio.Task[tuple[RingOutcome, str | None]],
        winner: tuple[str, str] | None,
    ) -> tuple[str, str] | None:
        """Tell the ACD how one agent's ring ended; returns the winner if this one answered."""
        if task.cancelled():
            return None  # the ACD withdrew this offer (ring timeout, answered elsewhere...)
        outcome, leg = task.result()
        contact_id = live.contact.id
        if outcome is RingOutcome.ANSWERED and leg is not None:
            if winner is None:
                try:
                    self._input(
                        self.acd.offer_answered(contact_id, agent_id, self.clock()), agent_id
                    )
                    return agent_id, leg
                except AcdError as exc:
                    log.info("agent %s answered too late for %s: %s", agent_id, contact_id, exc)
            await self.backend.hangup(leg, HangupCause.NORMAL)
            return None
        if outcome is RingOutcome.CALLER_GONE:
            return None
        try:
            self._input(self.acd.offer_missed(contact_id, agent_id, self.clock()), agent_id)
        except AcdError as exc:
            log.debug("offer of %s to %s already withdrawn: %s", contact_id, agent_id, exc)
        return None

    async def _overflow(self, live: LiveCall, overflow: Overflow) -> bool:
        """Carry out a limit's action; True when the call has left the queue for good."""
        contact = live.contact
        log.info(
            "contact %s: %s in %s -> %s %s",
            contact.id,
            overflow.reason.value,
            overflow.queue,
            overflow.action.value,
            overflow.target or "",
        )
        if overflow.action is ActionKind.QUEUE:
            contact.queue = overflow.target
            self._publish_contact(contact, contact.state)
            return False
        live.in_acd = False
        await self.backend.stop_music(live.call_id)
        if overflow.action is ActionKind.VOICEMAIL:
            await self._voicemail(live, overflow.target or overflow.queue)
        else:
            # Callback actions are refused by the configuration until outbound dialling exists.
            prompt = overflow.target if overflow.action is ActionKind.ANNOUNCEMENT else None
            await self.backend.play(live.call_id, Prompt(text=prompt or GOODBYE_PROMPT))
            contact.outcome = Outcome.OVERFLOWED
            await self.backend.hangup(live.call_id, HangupCause.NORMAL)
            self._move(contact, ContactState.ENDED)
        return True

    async def _voicemail(self, live: LiveCall, box: str) -> None:
        contact = live.contact
        contact.outcome = Outcome.VOICEMAIL
        self._move(contact, ContactState.VOICEMAIL)
        folder = self.data_dir / "voicemail" / box
        folder.mkdir(parents=True, exist_ok=True)
        await self.backend.play(live.call_id, Prompt(text=VOICEMAIL_PROMPT))
        recording = folder / f"{_UNSAFE_FILE_CHARS.sub('_', contact.id)[:120]}.wav"
        seconds = await self.backend.record(
            live.call_id, recording, max_seconds=self.voicemail_max_seconds
        )
        log.info("contact %s left %.1f s of voicemail in box %s", contact.id, seconds, box)
        if self.voicemail is not None:
            await self.voicemail.deposit(box, contact, recording, seconds)
        await self.backend.hangup(live.call_id, HangupCause.NORMAL)
        self._move(contact, ContactState.ENDED)

    def _abandon(self, live: LiveCall) -> None:
        contact = live.contact
        if live.in_acd:
            live.in_acd = False
            try:
                self._input(self.acd.contact_abandoned(contact.id, self.clock()))
            except AcdError as exc:
                log.debug("contact %s already out of the ACD: %s", contact.id, exc)
        if contact.can_move_to(ContactState.ABANDONED):
            contact.outcome = Outcome.ABANDONED
            self._move(contact, ContactState.ABANDONED)

    async def _store(self, live: LiveCall) -> None:
        contact = live.contact
        record = CallRecord.from_contact(
            contact,
            hangup_cause=live.hangup_cause.value,
            ended_at=contact.ended_at or self.now(),
        )
        await self.records.write(record)
        self.bus.publish(
            CallRecordStored(
                at=self.now(), contact_id=contact.id, queue=record.queue, outcome=record.outcome
            )
        )

    async def _until_gone(self, live: LiveCall, work: Awaitable[T]) -> T:
        """Await `work`, or raise `CallerGone` (cancelling it) if the caller hangs up first."""
        if live.caller_gone.is_set():
            _close(work)
            raise CallerGone
        work_task = asyncio.ensure_future(work)
        gone_task = asyncio.ensure_future(live.caller_gone.wait())
        try:
            await asyncio.wait({work_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone_task.cancel()
            if not work_task.done():
                work_task.cancel()
                await asyncio.gather(work_task, return_exceptions=True)
        if work_task.cancelled():
            raise CallerGone
        return work_task.result()

    # -- the ACD: inputs in, decisions carried out -------------------------------------------

    def _input(self, decisions: list[Decision], *agent_ids: str) -> None:
        """Carry out what the ACD decided and refresh the agents it concerns."""
        touched = set(agent_ids)
        for decision in decisions:
            touched.update(self._carry_out(decision))
        for agent_id in touched:
            self._refresh_agent(agent_id)
        self._timer_wake.set()

    def _carry_out(self, decision: Decision) -> tuple[str, ...]:
        """One decision; returns the agents whose state it may have changed."""
        live = self._by_contact.get(getattr(decision, "contact_id", ""))
        if isinstance(decision, Assign | RingAll | Overflow):
            if isinstance(decision, Assign | RingAll):
                log.info(
                    "%s -> %s: %s",
                    decision.contact_id,
                    _agents_of(decision),
                    decision.why.describe(),
                )
            if live is None or (
                getattr(decision, "callback", False) and decision.contact_id not in self._callbacks
            ):
                log.warning("no live call for %s: %s", decision.contact_id, decision)
            else:
                live.offers.put_nowait(decision)
            return _agents_of(decision)
        if isinstance(decision, CancelOffer):
            if live is not None and (ring := live.rings.get(decision.agent_id)) is not None:
                ring.cancel()
            return (decision.agent_id,)
        if isinstance(decision, AutoPause):
            log.warning(
                "agent %s paused after %d missed offers", decision.agent_id, decision.misses
            )
            return (decision.agent_id,)
        if isinstance(decision, Moved):
            if live is not None:
                live.contact.queue = decision.to_queue
                self._publish_contact(live.contact, live.contact.state)
            return ()
        if isinstance(decision, RuleApplied):
            if live is not None:
                live.contact.priority = decision.priority
            return ()
        if isinstance(decision, WrapUpEnded):
            if live is not None and live.contact.state is ContactState.WRAP_UP:
                self._move(live.contact, ContactState.ENDED)
                if live.call_id not in self._calls:
                    self._by_contact.pop(live.contact.id, None)
            return (decision.agent_id,)
        assert isinstance(decision, Repair)
        log.warning("ACD repaired %s", decision)
        return tuple(a for a in (decision.agent_id,) if a)

    def _refresh_agent(self, agent_id: str) -> None:
        """Copy the ACD's view of one agent into its mirror; publish a change of state."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        view = self.acd.agent(agent_id)
        if (out := self._outbound.get(agent_id)) is not None:
            # The ACD holds them paused (no inbound offers); they are busy with their own call.
            busy = out.phase is OutboundPhase.CALLING
            agent.contact_id = out.contact_id
            self._mirror(agent, AgentState.BUSY if busy else AgentState.WRAP_UP, "", view)
            return
        if agent_id in self._logout_when_free and view.state is AgentState.READY:
            # Their phone went away during the last contact: no more calls for them.
            self._logout_when_free.discard(agent_id)
            for decision in self.acd.logout(agent_id, self.clock()):
                self._carry_out(decision)
            view = self.acd.agent(agent_id)
        agent.contact_id = view.contacts[0] if view.contacts else None
        self._mirror(agent, view.state, view.pause_reason or "", view)

    def _mirror(self, agent: Agent, state: AgentState, reason: str, view: AgentView) -> None:
        """Set an agent's shown state; publish it when it changed."""
        agent.skills = dict(view.skills)
        agent.calls_taken = view.answered
        if state is agent.state and reason == agent.pause_reason:
            return
        old = agent.state
        agent.state = state
        agent.pause_reason = reason
        now = self.now()
        # A state the controller shows over the ACD's (outbound calls) starts now.
        since = view.state_since if state is view.state else self.clock()
        agent.state_since = now - timedelta(seconds=max(self.clock() - since, 0.0))
        self.bus.publish(
            AgentStateChanged(at=now, agent_id=agent.id, old=old, new=state, reason=reason)
        )

    # -- state changes, always published -----------------------------------------------------

    def _move(self, contact: Contact, new: ContactState) -> None:
        at = self.now()
        old = contact.move_to(new, at)
        self._publish_contact(contact, old, at)

    def _publish_contact(
        self, contact: Contact, old: ContactState, at: datetime | None = None
    ) -> None:
        self.bus.publish(
            ContactStateChanged(
                at=at or self.now(),
                contact_id=contact.id,
                old=old,
                new=contact.state,
                queue=contact.queue,
                agent_id=contact.agent_id,
                outcome=contact.outcome,
            )
        )

    # -- commands from agents, supervisors and the API -----------------------------------------

    def set_agent_state(self, agent_id: str, new: AgentState, reason: str = "") -> None:
        """Log in, go ready, pause (with a reason) or log out an agent."""
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        if (out := self._outbound.get(agent_id)) is not None:
            self._outbound_state_request(out, new, reason)
            return
        now = self.clock()
        try:
            if new is AgentState.READY:
                if agent.state is AgentState.LOGGED_OUT:
                    decisions = self.acd.login(agent_id, now)
                else:
                    decisions = self.acd.ready(agent_id, now)
            elif new is AgentState.PAUSED:
                reason = reason or "paused"
                if agent.state is AgentState.LOGGED_OUT:
                    decisions = self.acd.login(agent_id, now, pause_reason=reason)
                else:
                    decisions = self.acd.pause(agent_id, now, reason)
            elif new is AgentState.LOGGED_OUT:
                decisions = self.acd.logout(agent_id, now)
            else:
                raise InvalidTransition(
                    f"agent {agent_id}: {new.value} is set by calls, not by a command",
                    agent_id=agent_id,
                    new=new.value,
                )
        except AcdError as exc:
            raise InvalidTransition(str(exc), agent_id=agent_id, new=new.value) from exc
        self._input(decisions, agent_id)

    def end_wrap_up(self, agent_id: str) -> None:
        """The agent is done wrapping up before the queue's wrap-up time ran out."""
        if (out := self._outbound.get(agent_id)) is not None:
            if out.phase is not OutboundPhase.WRAP_UP:
                raise InvalidTransition(f"agent {agent_id}: not in wrap-up", agent_id=agent_id)
            self._end_outbound(out)
            return
        try:
            self._input(self.acd.wrapup_done(agent_id, self.clock()), agent_id)
        except AcdError as exc:
            raise InvalidTransition(str(exc), agent_id=agent_id) from exc

    def set_agent_skills(self, agent_id: str, skills: Mapping[str, int]) -> None:
        """Change an agent's skills live; the ACD may offer them a waiting contact at once."""
        if agent_id not in self.agents:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        try:
            decisions = self.acd.set_skills(agent_id, skills, self.clock())
        except AcdError as exc:
            raise InvalidTransition(str(exc), agent_id=agent_id) from exc
        self._input(decisions, agent_id)

    async def spy_on_agent(
        self, agent_id: str, mode: SpyMode, *, supervisor: str, phone: AgentEndpoint
    ) -> SpySession:
        """Ring a supervisor's phone into the call `agent_id` is talking on (listen, whisper,
        barge); returns once the supervisor answered. `supervisor` names them in the audit."""
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        self.supervision.check_supported(mode)
        if not phone_of(phone):
            raise NoSupervisorPhone(
                "no phone to ring for you: give an extension or a number, or ask an admin to"
                " link your account to an agent with a phone",
                supervisor=supervisor,
            )
        if phone.external_number and not phone.extension:
            # Rung through the trunk: only numbers the site may call (toll fraud).
            number = self.numbers.check(phone.external_number, "external_number")
            phone = AgentEndpoint(phone.agent_id, external_number=number)
        live = self._talking(agent_id)
        if phone.agent_id == agent_id:
            raise InvalidTransition(f"{agent_id} cannot listen to their own call")
        session = await self.supervision.start(
            call_id=live.call_id,
            agent_id=agent_id,
            contact_id=live.contact.id,
            supervisor=supervisor,
            phone=phone,
            mode=mode,
        )
        ended = live.caller_gone.is_set() or live.agent_gone.is_set()
        if ended or self._calls.get(live.call_id) is not live:
            await self.supervision.call_ended(live.call_id)  # it ended while the phone rang
            raise AgentNotOnCall(f"agent {agent_id}'s call has ended", agent_id=agent_id)
        return session

    def _talking(self, agent_id: str) -> LiveCall:
        """The call an agent is connected to; `AgentNotOnCall` if none."""
        live = self._by_contact.get(self.agents[agent_id].contact_id or "")
        if (
            live is None
            or live.agent_leg is None
            or self._calls.get(live.call_id) is not live
            or live.contact.state is not ContactState.CONNECTED
            or live.contact.agent_id != agent_id
        ):
            raise AgentNotOnCall(
                f"agent {agent_id} is not talking on a call", agent_id=agent_id
            )
        return live

    async def stop_spy(self, session_id: str, *, by: str) -> SpySession:
        """Hang up a supervisor's spy leg; the call goes on."""
        return await self.supervision.stop(session_id, by=by)

    # -- agents' phones and their own calls (click-to-dial) -------------------------------------

    def set_agent_phone(
        self, agent_id: str, *, extension: str | None = None, external_number: str | None = None
    ) -> AgentEndpoint:
        """Where the agent's calls ring from now on: an extension, an external number (through
        the trunk), or with neither the phone configured for them. Refused during a call.

        Kept in memory: agents' states are not restored after a restart, and neither is this.
        """
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        if agent.state in (AgentState.RESERVED, AgentState.BUSY):
            raise InvalidTransition(
                f"agent {agent_id} is on a call: change the phone after it",
                agent_id=agent_id,
                state=agent.state.value,
            )
        if extension is not None and external_number is not None:
            raise InvalidTransition("choose an extension or an external number, not both")
        if extension is not None:
            known = {e.extension for e in self._configured_phones.values()} | self._registered
            if extension not in known:
                raise UnknownExtension(
                    f"extension {extension[:32]!r} is neither an agent's nor a registered phone",
                    field="extension",
                )
            for other in self.agents.values():
                if (
                    other.id != agent_id
                    and other.endpoint.extension == extension
                    and other.state is not AgentState.LOGGED_OUT
                ):
                    raise InvalidTransition(
                        f"extension {extension} is agent {other.id}'s phone now",
                        agent_id=agent_id,
                        extension=extension,
                    )
            endpoint = AgentEndpoint(agent_id, extension=extension)
        elif external_number is not None:
            if BackendCapability.EXTERNAL_PHONES not in self.backend.capabilities:
                raise NotSupportedByBackend(
                    f"the {self.backend.name} backend cannot ring external numbers"
                    " (no trunk / external channel configured)",
                    backend=self.backend.name,
                )
            number = self.numbers.check(external_number, "external_number")
            endpoint = AgentEndpoint(agent_id, external_number=number)
        else:
            endpoint = self._configured_phones[agent_id]
        agent.endpoint = endpoint
        self._by_extension = {
            a.endpoint.extension: a.id for a in self.agents.values() if a.endpoint.extension
        }
        where = endpoint.extension or mask(endpoint.external_number or "") or "no phone"
        log.info("agent %s's calls now ring at %s", agent_id, where)
        return endpoint

    def configured_phone(self, agent_id: str) -> AgentEndpoint:
        """The phone the configuration gives an agent (what `set_agent_phone()` goes back to)."""
        if agent_id not in self._configured_phones:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        return self._configured_phones[agent_id]

    def dial(self, agent_id: str, number: str) -> Contact:
        """Click-to-dial: ring the agent's phone, then call `number` and connect the two.

        Returns the outbound contact at once; the call runs in its own task. The agent must be
        ready or paused and is busy (no inbound offers) until the call and its wrap-up end.
        """
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        if BackendCapability.DIAL_OUT not in self.backend.capabilities:
            raise NotSupportedByBackend(
                f"the {self.backend.name} backend cannot dial out", backend=self.backend.name
            )
        number = self.numbers.check(number)
        if not self.accepting:
            raise InvalidTransition("the server is shutting down: no new calls")
        if agent_id in self._outbound:
            raise InvalidTransition(
                f"agent {agent_id} already has an outbound call", agent_id=agent_id
            )
        if agent.state not in (AgentState.READY, AgentState.PAUSED):
            raise InvalidTransition(
                f"agent {agent_id} is {agent.state.value}: dial when ready or paused",
                agent_id=agent_id,
                state=agent.state.value,
            )
        if not (agent.endpoint.extension or agent.endpoint.external_number):
            raise InvalidTransition(f"agent {agent_id} has no phone to ring", agent_id=agent_id)
        resume = agent.pause_reason if agent.state is AgentState.PAUSED else None
        try:
            decisions = self.acd.pause(agent_id, self.clock(), OUTBOUND_PAUSE)
        except AcdError as exc:
            raise InvalidTransition(str(exc), agent_id=agent_id) from exc
        contact = Contact(
            id=self._new_contact_id("outbound"),
            channel=Channel.VOICE,
            arrived_at=self.now(),
            caller=number,
            dialed=number,
            agent_id=agent_id,
            direction=Direction.OUTBOUND,
        )
        live = LiveCall(f"outbound-{contact.id}", contact)
        out = OutboundCall(agent_id, number, contact.id, resume)
        self._outbound[agent_id] = out
        self._by_contact[contact.id] = live
        self._input(decisions, agent_id)
        self._publish_contact(contact, contact.state)
        log.info("agent %s dials %s (contact %s)", agent_id, mask(number), contact.id)
        self._tasks.spawn(self._serve_outbound(out, live), name=f"outbound-{contact.id}")
        return contact

    def hang_up_outbound(self, agent_id: str) -> None:
        """The agent ends their outbound call from the desktop (ringing or connected)."""
        out = self._outbound.get(agent_id)
        live = self._by_contact.get(out.contact_id) if out is not None else None
        if out is None or live is None or out.phase is not OutboundPhase.CALLING:
            raise InvalidTransition(
                f"agent {agent_id} has no outbound call to hang up", agent_id=agent_id
            )
        if live.contact.state is ContactState.CONNECTED:
            live.agent_gone.set()  # as if the agent's phone hung up
        else:
            live.caller_gone.set()  # stops ringing whichever phone rings

    async def _serve_outbound(self, out: OutboundCall, live: LiveCall) -> None:
        contact = live.contact
        agent = self.agents[out.agent_id]
        # Checked by `dial`: the backend lists DIAL_OUT.
        backend = cast(DialOutBackend, self.backend)
        caller_id = self.ivr_numbers[0] if self.ivr_numbers else agent.endpoint.extension or ""
        customer_leg: str | None = None
        try:
            self._move(contact, ContactState.OFFERED)
            await self._identify_outbound(contact)
            outcome, agent_leg = await self._until_gone(
                live, backend.call_agent(agent.endpoint, out.number, timeout=AGENT_RING_SECONDS)
            )
            if outcome is not RingOutcome.ANSWERED or agent_leg is None:
                log.info("agent %s's phone did not take the outbound call: %s",
                         out.agent_id, outcome.value)
                contact.outcome = Outcome.FAILED
                live.hangup_cause = _HANGUP_CAUSE.get(outcome, HangupCause.FAILED)
                return
            live.agent_leg = agent_leg
            self._agent_legs[agent_leg] = live
            outcome, customer_leg = await self._until_gone(
                live,
                backend.dial_customer(
                    agent_leg, out.number, caller_id=caller_id, timeout=CUSTOMER_RING_SECONDS
                ),
            )
            if outcome is not RingOutcome.ANSWERED or customer_leg is None:
                contact.outcome = _DIAL_OUTCOME.get(outcome, Outcome.FAILED)
                live.hangup_cause = _HANGUP_CAUSE.get(outcome, HangupCause.FAILED)
                return
            live.call_id = customer_leg
            self._calls[customer_leg] = live
            await self.backend.bridge(customer_leg, agent_leg)
            contact.outcome = Outcome.ANSWERED
            self._move(contact, ContactState.CONNECTED)
            await _first_of(live.caller_gone, live.agent_gone)
            if not live.caller_gone.is_set():
                live.hangup_cause = HangupCause.AGENT_HANGUP
        except CallerGone:
            contact.outcome = contact.outcome or Outcome.NO_ANSWER
            live.hangup_cause = HangupCause.AGENT_HANGUP
        except TelephonyError as exc:
            log.warning("outbound call %s failed: %s", contact.id, exc)
            contact.outcome = contact.outcome or Outcome.FAILED
            live.hangup_cause = HangupCause.FAILED
        finally:
            await self._end_outbound_call(out, live, customer_leg)

    async def _identify_outbound(self, contact: Contact) -> None:
        """The customer behind the dialled number, for the record (the screen pop looks too)."""
        if self.identification is None:
            return
        try:
            async with asyncio.timeout(2.0):
                identity = await self.identification.by_phone(contact.caller)
        except Exception as exc:  # a legacy directory failing must not stop the call
            log.warning("outbound %s: customer lookup failed: %s", contact.id, exc)
            return
        if identity is not None:
            contact.customer_id = identity.customer_id

    async def _end_outbound_call(
        self, out: OutboundCall, live: LiveCall, customer_leg: str | None
    ) -> None:
        """Hang up what is left, record the contact; wrap-up if the customer was reached."""
        contact = live.contact
        # Forgotten first: the ends of the legs we hang up now change nothing.
        self._calls.pop(live.call_id, None)
        if live.agent_leg is not None:
            self._agent_legs.pop(live.agent_leg, None)
        await self.supervision.call_ended(live.call_id)
        for leg in (customer_leg, live.agent_leg):
            if leg is not None:
                try:
                    await self.backend.hangup(leg, HangupCause.NORMAL)
                except TelephonyError as exc:
                    log.warning("hanging up outbound leg %s failed: %s", leg, exc)
        if contact.state is ContactState.CONNECTED:
            self._move(contact, ContactState.WRAP_UP)
            out.phase = OutboundPhase.WRAP_UP
            self._refresh_agent(out.agent_id)
            wrap_up = self._outbound_wrap_up(out.agent_id)
            if wrap_up > 0:
                out.wrap_up_timer = asyncio.get_running_loop().call_later(
                    wrap_up, self._end_outbound, out
                )
            else:
                self._end_outbound(out)
        else:
            if not contact.is_final:
                contact.outcome = contact.outcome or Outcome.FAILED
                self._move(contact, ContactState.ENDED)
            self._end_outbound(out)
        log.info("outbound contact %s: %s", contact.id, contact.outcome and contact.outcome.value)
        await self._store(live)
        if contact.state is not ContactState.WRAP_UP:
            self._by_contact.pop(contact.id, None)

    def _outbound_wrap_up(self, agent_id: str) -> float:
        """Wrap-up after an outbound call: the longest of the queues the agent serves."""
        agent = self.agents[agent_id]
        return max(
            (q.wrap_up for q in self.queues.values() if agent.has_skills(dict(q.skills))),
            default=0.0,
        )

    def _end_outbound(self, out: OutboundCall) -> None:
        """The outbound call and its wrap-up are over: the agent goes back to where they were."""
        if self._outbound.get(out.agent_id) is not out:
            return
        if out.wrap_up_timer is not None:
            out.wrap_up_timer.cancel()
        del self._outbound[out.agent_id]
        live = self._by_contact.get(out.contact_id)
        if live is not None and live.contact.state is ContactState.WRAP_UP:
            self._move(live.contact, ContactState.ENDED)
            self._by_contact.pop(out.contact_id, None)
        agent_id, now = out.agent_id, self.clock()
        try:
            if out.log_out_after:
                decisions = self.acd.logout(agent_id, now)
            elif out.resume_paused:
                decisions = self.acd.pause(agent_id, now, out.resume_paused)
            else:
                decisions = self.acd.ready(agent_id, now)
        except AcdError as exc:
            log.warning("agent %s after an outbound call: %s", agent_id, exc)
            decisions = []
        self._input(decisions, agent_id)

    def _outbound_state_request(self, out: OutboundCall, new: AgentState, reason: str) -> None:
        """Ready / pause / logout during an outbound call: applies after it (logout: refused)."""
        if new not in (AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT):
            raise InvalidTransition(
                f"agent {out.agent_id}: {new.value} is set by calls, not by a command",
                agent_id=out.agent_id,
                new=new.value,
            )
        if out.phase is OutboundPhase.CALLING and new is AgentState.LOGGED_OUT:
            raise InvalidTransition(
                f"agent {out.agent_id} is on an outbound call; hang up first",
                agent_id=out.agent_id,
            )
        out.resume_paused = (reason or "paused") if new is AgentState.PAUSED else None
        out.log_out_after = new is AgentState.LOGGED_OUT
        if out.phase is OutboundPhase.WRAP_UP:
            self._end_outbound(out)

    def contact(self, contact_id: str) -> Contact:
        """A live contact by id."""
        live = self._by_contact.get(contact_id)
        if live is None:
            raise NoSuchContact(f"no live contact {contact_id}", contact_id=contact_id)
        return live.contact

    # -- callbacks: customers to call back (an unheard voicemail), routed like calls ----------

    def request_callback(
        self,
        *,
        queue: str,
        number: str,
        customer_id: str | None,
        reference: str,
        work_limit: float,
        on_end: Callable[[str, str | None], Awaitable[None]],
    ) -> str:
        """Queue a callback to `number` in `queue` (keeping its place); returns its contact id.

        No backend dials out yet: the agent the ACD picks takes it at once (busy with it; the
        contact's `dialed` is `reference`, e.g. ``voicemail:42``) and calls the customer from
        their own phone. It ends with `end_callback` or after `work_limit` seconds, then
        `on_end(contact_id, agent_id)` runs (agent None: nobody took it, e.g. withdrawn).
        """
        if not self.accepting:
            raise InvalidTransition("the server is shutting down: no new callbacks")
        if queue not in self.queues:
            raise InvalidTransition(f"no queue {queue!r} for a callback", queue=queue)
        if self.queues[queue].on_closed is not None and not self.acd.queue_figures(queue).open:
            # It would overflow at once; the owner asks again later.
            raise InvalidTransition(f"queue {queue} is closed", queue=queue)
        contact = Contact(
            id=self._new_contact_id("callback"),
            channel=Channel.VOICE,
            arrived_at=self.now(),
            caller=number,
            dialed=reference,
            customer_id=customer_id,
            queue=queue,
        )
        live = LiveCall(f"callback-{contact.id}", contact, in_acd=True)
        self._by_contact[contact.id] = live
        self._callbacks[contact.id] = live
        self._move(contact, ContactState.QUEUED)
        customer = {"caller": number, "customer_id": customer_id}
        request = ContactRequest(contact.id, queue, customer=customer, callback=True)
        self._input(self.acd.contact_arrived(request, self.clock()))
        self._tasks.spawn(
            self._serve_callback(live, work_limit, on_end), name=f"callback-{contact.id}"
        )
        return contact.id

    def end_callback(self, contact_id: str, *, unless_taken: bool = False) -> bool:
        """The agent has called the customer back, or the callback is not wanted any more.

        With `unless_taken` only a callback no agent has yet is withdrawn. True if it ends.
        """
        live = self._callbacks.get(contact_id)
        if live is None or (unless_taken and live.contact.state is not ContactState.QUEUED):
            return False
        live.caller_gone.set()
        return True

    async def _serve_callback(
        self,
        live: LiveCall,
        work_limit: float,
        on_end: Callable[[str, str | None], Awaitable[None]],
    ) -> None:
        contact = live.contact
        agent_id: str | None = None
        try:
            while agent_id is None:
                offer = await self._until_gone(live, live.offers.get())
                if isinstance(offer, Overflow):
                    if offer.action in (ActionKind.QUEUE, ActionKind.CALLBACK):
                        continue  # the ACD moved it, or kept its place
                    live.in_acd = False  # a limit (a closed queue...) that ends the contact
                    raise CallerGone
                agent_id = offer.agent_id if isinstance(offer, Assign) else offer.agent_ids[0]
                try:
                    # Nobody to ring: the agent gets it at once (ring-all: the first of them).
                    decisions = self.acd.offer_answered(contact.id, agent_id, self.clock())
                    self._input(decisions, agent_id)
                except AcdError as exc:
                    log.info("callback %s to %s withdrawn: %s", contact.id, agent_id, exc)
                    agent_id = None
            contact.agent_id = agent_id
            contact.outcome = Outcome.ANSWERED
            self._move(contact, ContactState.OFFERED)
            self._move(contact, ContactState.CONNECTED)
            try:
                async with asyncio.timeout(work_limit):
                    await live.caller_gone.wait()
            except TimeoutError:
                log.info("callback %s: agent %s's time is up", contact.id, agent_id)
            live.in_acd = False
            self._move(contact, ContactState.WRAP_UP)
            self._input(self.acd.contact_ended(contact.id, self.clock()), agent_id)
            if contact.id not in self.acd.agent(agent_id).contacts:
                self._move(contact, ContactState.ENDED)
        except CallerGone:
            # Withdrawn before any agent had it: it left the queue, like an overflow.
            if live.in_acd:
                live.in_acd = False
                try:
                    self._input(self.acd.contact_abandoned(contact.id, self.clock()))
                except AcdError as exc:
                    log.debug("callback %s already out of the ACD: %s", contact.id, exc)
            contact.outcome = Outcome.OVERFLOWED
            self._move(contact, ContactState.ENDED)
        finally:
            self._callbacks.pop(contact.id, None)
        # Stored like every contact that entered a queue, so reports agree with the live figures.
        await self._store(live)
        if contact.state is not ContactState.WRAP_UP:
            self._by_contact.pop(contact.id, None)
        # A callback cut short by a shutdown is not done: its owner routes it again.
        done_by = agent_id if live.hangup_cause is not HangupCause.SHUTDOWN else None
        try:
            await on_end(contact.id, done_by)
        except Exception:
            log.exception("callback %s: its owner failed to take the outcome", contact.id)

    @property
    def live_contacts(self) -> list[Contact]:
        """Contacts not yet ended, oldest first."""
        return sorted((c.contact for c in self._by_contact.values()), key=lambda c: c.arrived_at)


#: An outbound call's record: what the customer's phone did.
_DIAL_OUTCOME = {
    RingOutcome.NO_ANSWER: Outcome.NO_ANSWER,
    RingOutcome.BUSY: Outcome.BUSY,
    RingOutcome.CALLER_GONE: Outcome.NO_ANSWER,  # the agent gave up before an answer
}
_HANGUP_CAUSE = {
    RingOutcome.NO_ANSWER: HangupCause.NO_ANSWER,
    RingOutcome.BUSY: HangupCause.BUSY,
    RingOutcome.CALLER_GONE: HangupCause.AGENT_HANGUP,
}


def _agents_of(decision: Assign | RingAll | Overflow) -> tuple[str, ...]:
    if isinstance(decision, Assign):
        return (decision.agent_id,)
    if isinstance(decision, RingAll):
        return decision.agent_ids
    return ()


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _close(work: Awaitable[object]) -> None:
    close = getattr(work, "close", None)
    if close is not None:
        close()
