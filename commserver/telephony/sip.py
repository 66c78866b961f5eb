"""The `sip` backend: Caruso's own SIP server (`commserver/sip`) behind the telephony interface.

Callers dial an IVR number and reach the server through `CallOffered`; every other number needs
a phone that authenticates (digest, `407` then `403` on a wrong answer), so nobody unknown
reaches the trunk. Authenticated phones that dial an extension or an outside number are
connected by the backend itself (B2BUA through the trunk), outside the contact flow. Agents'
phones are rung at their registered extension or, for remote agents, at their external number
through the trunk; caller and agent are joined by the RTP relay.

Transfers: an agent's phone may REFER its caller elsewhere (blind, or attended with Replaces
naming a consultation call it made); Caruso itself may too (`blind_transfer`,
`attended_transfer`). The caller's leg is re-bridged to the target and the handler hears
`CallTransferred`, then `CallEnded` for the caller's leg: from then on the backend alone keeps
the two legs paired, outside the contact flow. `start_recording` records a whole call.

Per-leg state lives in `_Leg` objects keyed by SIP Call-ID. The adapter's background work
(music on hold, ringing for a direct call, transfers, hanging up a partner leg) is owned by a
`TaskSet`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from commserver.config import Config
from commserver.sip import (
    BaseSipHandler,
    CallDirection,
    CallFailed,
    CallState,
    EndReason,
    MediaError,
    NotRegistered,
    SipCall,
    SipConfig,
    SipEndpoint,
    SipError,
)
from commserver.sip import CallEnded as SipCallEnded
from commserver.sip import CallGone as SipCallGone
from commserver.sip import CallOffered as SipCallOffered
from commserver.sip import DtmfReceived as SipDtmfReceived
from commserver.sip import RegistrationChanged as SipRegistrationChanged
from commserver.sip import RegistrationState as SipRegistrationState
from commserver.sip.events import HoldChanged, TransferRequested
from commserver.sip.media import load_wav
from commserver.sip.message import SipRequest, SipUri
from commserver.sip.refer import Transfer
from commserver.sip.transaction import ClientTransaction
from commserver.tasks import TaskSet
from commserver.telephony.base import (
    AgentEndpoint,
    BackendCapability,
    CallEnded,
    CallGone,
    CallOffered,
    CallTransferred,
    DigitReceived,
    EndpointRegistration,
    HangupCause,
    Prompt,
    RingOutcome,
    SpyMode,
    TelephonyError,
    TelephonyEvent,
    TelephonyHandler,
)
from ivr.prompts import PromptCache, music_on_hold

log = logging.getLogger(__name__)

_BUSY = frozenset({486, 600, 603})
_NO_ANSWER = frozenset({408, 480, 487})
_DIRECT_RING_TIMEOUT = 60.0
_RECORD_SILENCE_SECONDS = 5.0
_PCM_CACHE_SIZE = 64
_MEDIA_SUMMARIES = 1000
_TRANSFER_RING_TIMEOUT = 30.0
# After a REFER succeeded the transferor's phone hangs up itself (RFC 5589); if it does not
# within this time, we do.
_TRANSFEROR_GRACE = 4.0
_NOTIFY_WAIT = 2.0
# What the transferor's phone is told (NOTIFY sipfrag) when the target was not reached.
_REFER_FAILURE = {
    RingOutcome.BUSY: 486,
    RingOutcome.NO_ANSWER: 480,
    RingOutcome.FAILED: 503,
    RingOutcome.CALLER_GONE: 487,
}


class LegRole(enum.Enum):
    """What a SIP call leg is to the server."""

    CALLER = "caller"  # an inbound call to an IVR number: a contact
    AGENT = "agent"  # the leg that rang an agent's phone for a contact
    DIRECT = "direct"  # an authenticated phone's own call, and the leg it reached
    TRANSFERRED = "transferred"  # the leg a transfer reached (a caller is handed to it)
    CUSTOMER = "customer"  # an agent's click-to-dial call reached this customer


@dataclass(frozen=True, slots=True)
class MediaSummary:
    """What one leg's media socket saw, kept after the leg ended (tests, benchmarks, reports).

    `packets_relayed` counts packets the relay sent out of this leg, i.e. the other side's audio.
    """

    role: LegRole
    codec: str
    packets_received: int
    packets_sent: int
    packets_relayed: int
    rejected: int
    jitter_ms: float
    held: int = 0  # packets not sent because the phone had put this leg on hold


@dataclass(eq=False)
class _Leg:
    call: SipCall
    role: LegRole
    cause: HangupCause | None = None  # the cause the server gave when it hung the leg up
    music: asyncio.Task[None] | None = None
    peer: str | None = None  # the leg this one is bridged with
    ended: bool = False
    reported: bool = True  # its end goes to the handler (a contact's caller or agent leg)
    paired: bool = False  # its end hangs up `peer` (direct calls, handed-over callers)
    to_trunk: bool = False  # placed through the trunk: moving a caller to it needs credentials
    in_transfer: bool = False  # a transfer of or by this leg is under way
    defer_end: bool = False  # a transferor: its end waits for the transfer's outcome
    deferred: CallEnded | None = None  # ...and here it waits


@dataclass(frozen=True, slots=True)
class Trunk:
    """Where outside numbers go: a SIP peer (carrier or PBX) at host:port."""

    host: str
    port: int = 5060

    @classmethod
    def parse(cls, text: str) -> Trunk:
        """'host' or 'host:port' (checked by the configuration loader)."""
        host, sep, port = text.rpartition(":")
        return cls(host, int(port)) if sep else cls(text)

    def uri(self, number: str) -> SipUri:
        """The Request-URI for an outside number."""
        return SipUri(host=self.host, user=number, port=self.port)


class SipBackend:
    """A `TelephonyBackend` that is itself the SIP server (registrar, IVR media, B2BUA)."""

    name = "sip"

    def __init__(
        self,
        sip: SipConfig,
        *,
        ivr_numbers: Collection[str],
        prompts: PromptCache,
        trunk: Trunk | None = None,
        hold_music: bytes | None = None,
        stop_timeout: float = 5.0,
    ) -> None:
        self.ivr_numbers = frozenset(ivr_numbers)
        # Toll fraud: any number that is not the IVR's needs a phone that authenticates.
        self.sip_config = _with_auth_rule(sip, self.ivr_numbers)
        self.prompts = prompts
        self.trunk = trunk
        # Customers are reached through the trunk or at a registered extension; agents'
        # external phones only through the trunk.
        supported = {
            BackendCapability.RECORD, BackendCapability.TRANSFER, BackendCapability.DIAL_OUT
        }
        if trunk is not None:
            supported.add(BackendCapability.EXTERNAL_PHONES)
        self.capabilities = frozenset(supported)
        self.stop_timeout = stop_timeout
        self._hold_music = hold_music
        self._handler: TelephonyHandler | None = None
        self._endpoint: SipEndpoint | None = None
        self._legs: dict[str, _Leg] = {}
        self._tasks = TaskSet("sip-backend")
        self._pcm: OrderedDict[Path, bytes] = OrderedDict()
        self._summaries: OrderedDict[str, MediaSummary] = OrderedDict()
        self._bad_prompts: set[Path] = set()
        self._recordings: dict[str, asyncio.Task[float]] = {}

    @classmethod
    def from_config(cls, config: Config) -> SipBackend:
        """The backend a site's configuration describes (agents' extensions and passwords)."""
        settings = config.telephony.sip
        passwords = {a.extension: a.sip_password for a in config.agents if a.sip_password}
        ports = (settings.rtp_port_min, settings.rtp_port_max)
        sip = SipConfig(
            host=settings.host,
            port=settings.port,
            advertised_host=settings.advertised_host or None,
            realm=settings.realm,
            credentials=passwords.get,
            max_calls=settings.max_calls or 2 * config.telephony.max_calls,
            reach_contacts_at_source=settings.reach_contacts_at_source,
            rtp_ports=None if ports == (0, 0) else ports,
        )
        return cls(
            sip,
            ivr_numbers=config.ivr.numbers,
            prompts=PromptCache(config.server.data_dir / "prompts"),
            trunk=Trunk.parse(settings.trunk) if settings.trunk else None,
            stop_timeout=min(5.0, max(config.server.drain_timeout, 0.5)),
        )

    # -- what tests, benchmarks and the monitor may look at ---------------------------------------

    @property
    def endpoint(self) -> SipEndpoint:
        """The running SIP endpoint."""
        if self._endpoint is None:
            raise TelephonyError("the SIP backend is not open")
        return self._endpoint

    @property
    def address(self) -> tuple[str, int]:
        """The bound SIP address (host, port): what phones register with and callers dial."""
        return self.endpoint.address

    @property
    def live_calls(self) -> int:
        """Legs currently up (callers, agents' legs and direct calls)."""
        return len(self._legs)

    def media_summary(self, call_id: str) -> MediaSummary | None:
        """Media counters of a leg, live or among the last thousand that ended."""
        leg = self._legs.get(call_id)
        if leg is not None:
            return _summarize(leg)
        return self._summaries.get(call_id)

    @property
    def recent_media(self) -> Mapping[str, MediaSummary]:
        """Media counters of the last thousand legs that ended, oldest first, by Call-ID."""
        return dict(self._summaries)

    # -- TelephonyBackend: lifecycle ----------------------------------------------------------

    async def open(self, handler: TelephonyHandler) -> None:
        """Bind the SIP socket; return once it answers."""
        if self._endpoint is not None:
            raise TelephonyError("the SIP backend is already open")
        self._handler = handler
        if self._hold_music is None:
            self._hold_music = await asyncio.to_thread(music_on_hold)
        endpoint = SipEndpoint(self.sip_config, _Events(self))
        await endpoint.start()
        self._endpoint = endpoint

    async def stop_accepting(self) -> None:
        """New INVITEs get 503 from now on; live calls go on."""
        if self._endpoint is not None:
            self._endpoint.stop_accepting()

    async def close(self) -> None:
        """Hang up what is left (BYE/CANCEL/503), then close every socket. Idempotent."""
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            return
        for leg in self._legs.values():
            self._stop_music(leg)
        await endpoint.stop(self.stop_timeout)
        await self._tasks.cancel_all()

    # -- TelephonyBackend: commands -----------------------------------------------------------

    async def answer(self, call_id: str) -> None:
        """Answer the caller (200 OK with our SDP, retransmitted until the ACK)."""
        leg = self._leg(call_id)
        with _translated(call_id):
            leg.call.answer()

    async def play(self, call_id: str, prompt: Prompt) -> None:
        """Play a WAV, or text rendered through the prompt cache; returns when it ends."""
        leg = self._leg(call_id)
        if prompt.wav is not None:
            path = prompt.wav
        else:
            path = await self.prompts.render(prompt.text)
        pcm = await self._load(path)
        if pcm is None:
            return
        with _translated(call_id):
            await leg.call.play(pcm)

    async def collect_digits(
        self, call_id: str, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        """Digits keyed (typed-ahead ones included) until the count, terminator or timeout."""
        leg = self._leg(call_id)
        return await leg.call.collect_digits(
            max_digits=max_digits, timeout=timeout, terminator=terminator
        )

    async def start_music(self, call_id: str) -> None:
        """Loop music on hold until `stop_music`, a prompt, a bridge or the end of the call."""
        leg = self._leg(call_id)
        if leg.call.state not in (CallState.ANSWERED, CallState.CONNECTED):
            raise TelephonyError("music on hold needs an answered call", call_id=call_id)
        self._play_music(leg)

    def _play_music(self, leg: _Leg) -> None:
        if leg.music is None or leg.music.done():
            leg.music = self._tasks.spawn(self._music(leg), name=f"moh-{leg.call.id}")

    async def _music(self, leg: _Leg) -> None:
        assert self._hold_music is not None
        with suppress(SipCallGone):
            # `play` returns False when something else took the channel (a prompt, a bridge).
            while await leg.call.play(self._hold_music):
                pass

    async def stop_music(self, call_id: str) -> None:
        """Stop music on hold (nothing happens when none is playing)."""
        leg = self._legs.get(call_id)
        if leg is not None:
            self._stop_music(leg)

    def _stop_music(self, leg: _Leg) -> None:
        if leg.music is not None and not leg.music.done():
            leg.music.cancel()
            leg.call.stop_playback()
        leg.music = None

    async def ring_agent(
        self, call_id: str, agent: AgentEndpoint, *, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Ring the agent's registered phone, or their external number through the trunk.

        A caller who is already gone is an outcome (`CALLER_GONE`), not an error: the ACD may
        pick an agent for a caller in the very moment they hang up.
        """
        caller = self._legs.get(call_id)
        if caller is None or caller.ended:
            return RingOutcome.CALLER_GONE, None
        target = self._agent_target(agent)
        if target is None:
            log.info("agent %s has no registered phone and no reachable number", agent.agent_id)
            return RingOutcome.FAILED, None
        result = await self._ring(caller.call, target, caller.call.caller, timeout)
        if isinstance(result, RingOutcome):
            return result, None
        if result.state is CallState.ENDED:
            return RingOutcome.FAILED, None  # answered and gone before we could take it
        self._legs[result.id] = _Leg(result, LegRole.AGENT, to_trunk=isinstance(target, SipUri))
        return RingOutcome.ANSWERED, result.id

    def _agent_target(self, agent: AgentEndpoint) -> str | SipUri | None:
        if agent.extension and self.endpoint.registrar.lookup(agent.extension):
            return agent.extension
        if agent.external_number and self.trunk is not None:
            return self.trunk.uri(agent.external_number)
        return None

    async def _ring(
        self,
        caller: SipCall,
        target: str | SipUri,
        caller_id: str,
        timeout: float,
        *,
        caller_name: str | None = None,
        on_ringing: Callable[[int], None] | None = None,
    ) -> SipCall | RingOutcome:
        """Place an outbound leg for `caller`; give up (CANCEL) if the caller hangs up first."""
        name = caller.caller_name if caller_name is None else caller_name
        ring = self._tasks.spawn(
            self._place(target, caller_id, name, timeout, on_ringing), name=f"ring-{caller.id}"
        )
        gone = self._tasks.spawn(caller.ended.wait(), name=f"ring-watch-{caller.id}")
        try:
            await asyncio.wait({ring, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not ring.done():
                ring.cancel()  # endpoint.call CANCELs the INVITE on its way out
                await asyncio.gather(ring, return_exceptions=True)
        if ring.cancelled():
            return RingOutcome.CALLER_GONE
        leg = ring.result()
        if not isinstance(leg, SipCall):
            return _ring_failure(leg, target)
        if caller.state is CallState.ENDED:
            await leg.hangup()
            return RingOutcome.CALLER_GONE
        return leg

    async def _place(
        self,
        target: str | SipUri,
        caller_id: str,
        caller_name: str,
        timeout: float,
        on_ringing: Callable[[int], None] | None = None,
    ) -> SipCall | SipError | OSError:
        # Failures come back as values: a phone that does not answer is routine, not an error
        # for the task owner to log.
        try:
            return await self.endpoint.call(
                target,
                caller=caller_id,
                caller_name=caller_name,
                ring_timeout=timeout,
                on_ringing=on_ringing,
            )
        except (SipError, OSError) as exc:
            return exc

    # -- DialOutBackend: an agent's click-to-dial ---------------------------------------------

    async def call_agent(
        self, agent: AgentEndpoint, number: str, *, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """INVITE the agent's registered phone (or external number) showing `number`."""
        target = self._agent_target(agent)
        if target is None:
            log.info("agent %s has no registered phone and no reachable number", agent.agent_id)
            return RingOutcome.FAILED, None
        result = await self._place(target, number, "Caruso outbound", timeout)
        if not isinstance(result, SipCall):
            return _ring_failure(result, target), None
        if result.state is CallState.ENDED:
            return RingOutcome.FAILED, None
        self._legs[result.id] = _Leg(result, LegRole.AGENT, to_trunk=isinstance(target, SipUri))
        return RingOutcome.ANSWERED, result.id

    async def dial_customer(
        self, agent_leg_id: str, number: str, *, caller_id: str, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """INVITE `number` (a registered extension, else through the trunk) for the agent leg.

        The agent hears silence while it rings; their hang-up CANCELs the INVITE.
        """
        agent = self._legs.get(agent_leg_id)
        if agent is None or agent.ended:
            return RingOutcome.CALLER_GONE, None
        target, status = self._destination(number)
        if target is None:
            log.info("cannot dial out to this number (SIP %d)", status)
            return RingOutcome.FAILED, None
        result = await self._ring(agent.call, target, caller_id, timeout, caller_name="")
        if isinstance(result, RingOutcome):
            return result, None
        if result.state is CallState.ENDED:
            return RingOutcome.FAILED, None
        self._legs[result.id] = _Leg(
            result, LegRole.CUSTOMER, to_trunk=isinstance(target, SipUri)
        )
        return RingOutcome.ANSWERED, result.id

    async def bridge(self, call_id: str, agent_leg_id: str) -> None:
        """Join caller and agent through the RTP relay (music and prompts stop)."""
        caller = self._leg(call_id)
        agent = self._leg(agent_leg_id)
        self._stop_music(caller)
        with _translated(call_id):
            self.endpoint.bridge(caller.call, agent.call)
        caller.peer, agent.peer = agent.call.id, caller.call.id

    async def record(self, call_id: str, path: Path, *, max_seconds: float) -> float:
        """Record the caller until '#', five seconds of silence, hang-up or the limit."""
        leg = self._leg(call_id)
        self._stop_music(leg)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        with _translated(call_id):
            return await leg.call.record(
                path,
                max_seconds=max_seconds,
                silence_seconds=_RECORD_SILENCE_SECONDS,
                stop_digits="#",
            )

    async def hangup(self, call_id: str, cause: HangupCause = HangupCause.NORMAL) -> None:
        """End a leg however far it got (503 or 480 if unanswered, else BYE or CANCEL)."""
        leg = self._legs.get(call_id)
        if leg is None or leg.ended:
            return
        leg.cause = cause
        self._stop_music(leg)
        call = leg.call
        if call.direction is CallDirection.INBOUND and call.state in (
            CallState.OFFERED,
            CallState.RINGING,
        ):
            # Refused before answering: 503 says "try again later", 480 "nobody took it".
            refused = cause in (HangupCause.REJECTED, HangupCause.SHUTDOWN)
            call.reject(503 if refused else 480)
            return
        reason = EndReason.SHUTDOWN if cause is HangupCause.SHUTDOWN else EndReason.LOCAL_HANGUP
        await call.hangup(reason)

    # -- SupervisionBackend: recording and transfers -------------------------------------------

    async def start_recording(self, call_id: str, path: Path) -> None:
        """Record the whole call (the caller, and whatever they hear) to a mono WAV at `path`.

        The recording follows the caller's leg across bridges and ends with the call, when the
        caller is transferred away, or at `stop_recording`.
        """
        leg = self._leg(call_id)
        if leg.role is not LegRole.CALLER or not leg.reported:
            raise TelephonyError("only a caller's call can be recorded", call_id=call_id)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        with _translated(call_id):
            task = leg.call.start_call_recording(path)
        self._recordings[call_id] = task
        task.add_done_callback(lambda _: self._forget_recording(call_id, task))

    def _forget_recording(self, call_id: str, task: asyncio.Task[float]) -> None:
        if self._recordings.get(call_id) is task:
            del self._recordings[call_id]

    async def stop_recording(self, call_id: str) -> None:
        """Stop a call's recording and return once its WAV is written (nothing if none runs)."""
        task = self._recordings.pop(call_id, None)
        if task is None:
            return
        leg = self._legs.get(call_id)
        with _translated(call_id):
            if leg is not None and not leg.ended:
                await leg.call.stop_call_recording()
            else:
                await asyncio.shield(task)  # the call ended: its WAV is being written

    async def blind_transfer(self, call_id: str, destination: str) -> None:
        """Move a caller from their agent to `destination` (an extension or outside number).

        Returns once the destination answered and the caller was bridged to it (the agent's
        leg is then hung up); the caller hears music meanwhile. Raises `TelephonyError` when
        the destination did not answer: the caller is then back with the agent.
        """
        caller = self._leg(call_id)
        agent = self._connected_agent(caller)
        target = self._transfer_target(destination)
        outcome = await self._transfer_to(agent, caller, target, destination, attended=False)
        if isinstance(outcome, RingOutcome):
            if outcome is RingOutcome.CALLER_GONE:
                raise CallGone(f"call {call_id} ended during its transfer", call_id=call_id)
            raise TelephonyError(
                f"transfer to {destination} failed: {outcome.value}",
                call_id=call_id,
                destination=destination,
                outcome=outcome.value,
            )
        await self.hangup(agent.call.id)

    async def attended_transfer(self, call_id: str, destination: str) -> None:
        """The caller's agent consults `destination`; the caller moves when the agent hangs up.

        Returns once the destination answered (the agent now talks to it, the caller hears
        music). If the destination hangs up first, the caller is back with the agent. Raises
        `TelephonyError` when the destination did not answer.
        """
        caller = self._leg(call_id)
        agent = self._connected_agent(caller)
        target = self._transfer_target(destination)
        self._begin_transfer(agent, caller)
        # The consulted party sees the agent, not the customer.
        result = await self._ring(
            agent.call, target, agent.call.dialed, _TRANSFER_RING_TIMEOUT, caller_name=""
        )
        if isinstance(result, RingOutcome) or caller.ended:
            if not isinstance(result, RingOutcome):
                await result.hangup()
                result = RingOutcome.CALLER_GONE
            self._transfer_failed(agent, caller)
            raise TelephonyError(
                f"attended transfer to {destination} failed: {result.value}",
                call_id=call_id,
                destination=destination,
                outcome=result.value,
            )
        consult = _Leg(
            result,
            LegRole.TRANSFERRED,
            peer=agent.call.id,
            reported=False,
            to_trunk=isinstance(target, SipUri),
            in_transfer=True,
        )
        self._legs[result.id] = consult
        self.endpoint.bridge(agent.call, result)
        self._tasks.spawn(
            self._consultation(agent, caller, consult, destination), name=f"consult-{call_id}"
        )

    async def _consultation(
        self, agent: _Leg, caller: _Leg, consult: _Leg, destination: str
    ) -> None:
        """Wait for the consultation to end one way or the other, then carry it out."""
        ends = {
            self._tasks.spawn(leg.call.ended.wait(), name=f"consult-watch-{leg.call.id}"): leg
            for leg in (agent, caller, consult)
        }
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in ends:
                task.cancel()
        if caller.ended:
            consult.in_transfer = agent.in_transfer = agent.defer_end = False
            await consult.call.hangup()  # the controller hangs up the agent's leg
        elif agent.ended:
            consult.in_transfer = False
            self._hand_over(agent, caller, consult, destination, attended=True)
        else:  # the consulted party hung up: back to the caller
            consult.peer = None
            self._transfer_failed(agent, caller)

    def _connected_agent(self, caller: _Leg) -> _Leg:
        """The agent leg a contact's caller is bridged with (for a transfer)."""
        agent = self._legs.get(caller.peer) if caller.peer else None
        if caller.role is not LegRole.CALLER or not caller.reported or agent is None:
            raise TelephonyError(
                "a transfer needs a caller connected to an agent", call_id=caller.call.id
            )
        if agent.ended or agent.role is not LegRole.AGENT:
            raise TelephonyError("the caller's agent is gone", call_id=caller.call.id)
        if caller.in_transfer or agent.in_transfer:
            raise TelephonyError("a transfer is already under way", call_id=caller.call.id)
        return agent

    def _transfer_target(self, destination: str) -> str | SipUri:
        """Where Caruso's own transfer to `destination` rings: an extension, else the trunk."""
        target, status = self._destination(destination)
        if target is None:
            raise TelephonyError(
                f"cannot transfer to {destination!r}", destination=destination, sip_status=status
            )
        return target

    def _destination(self, number: str) -> tuple[str | SipUri | None, int]:
        """A transfer target for a dialled number, or None and the SIP status saying why not."""
        if not number or number in self.ivr_numbers:
            return None, 404  # back into the IVR would be a new contact: not a transfer
        if self.endpoint.registrar.lookup(number):
            return number, 200
        if self.sip_config.credentials(number) is not None:
            return None, 480  # one of our phones, not registered now
        if self.trunk is not None:
            return self.trunk.uri(number), 200
        return None, 404

    def _begin_transfer(self, transferor: _Leg, transferee: _Leg) -> None:
        """Take the transferee off its bridge onto music; hold back the transferor's end."""
        transferor.in_transfer = transferee.in_transfer = True
        transferor.defer_end = True
        if transferee.call.relay is not None:
            self.endpoint.unbridge(transferee.call)
        self._play_music(transferee)

    async def _transfer_to(
        self,
        transferor: _Leg,
        transferee: _Leg,
        target: str | SipUri,
        destination: str,
        *,
        attended: bool,
        on_ringing: Callable[[int], None] | None = None,
    ) -> _Leg | RingOutcome:
        """Ring `target` for the transferee and hand it over on answer; else undo."""
        self._begin_transfer(transferor, transferee)
        party = transferee.call
        number = party.caller if party.direction is CallDirection.INBOUND else party.dialed
        result = await self._ring(
            party, target, number, _TRANSFER_RING_TIMEOUT, on_ringing=on_ringing
        )
        if isinstance(result, RingOutcome):
            self._transfer_failed(transferor, transferee)
            return result
        reached = _Leg(result, LegRole.TRANSFERRED, to_trunk=isinstance(target, SipUri))
        self._legs[result.id] = reached
        self._hand_over(transferor, transferee, reached, destination, attended=attended)
        return reached

    def _hand_over(
        self,
        transferor: _Leg,
        transferee: _Leg,
        reached: _Leg,
        destination: str,
        *,
        attended: bool,
    ) -> None:
        """Bridge the transferee with the leg the transfer reached; the contact ends here."""
        self._stop_music(transferee)
        self.endpoint.bridge(transferee.call, reached.call)
        reached.role = LegRole.TRANSFERRED
        reached.peer, transferee.peer = transferee.call.id, reached.call.id
        reached.reported = transferor.reported = False
        reached.paired = transferee.paired = True
        transferor.peer = None
        transferor.paired = transferor.defer_end = False
        transferor.deferred = None
        transferor.in_transfer = transferee.in_transfer = reached.in_transfer = False
        if transferee.call.call_recording is not None:
            # A recording is of the contact, which ends here.
            self._tasks.spawn(
                self.stop_recording(transferee.call.id), name=f"stop-rec-{transferee.call.id}"
            )
        if transferee.reported:
            transferee.reported = False
            at = datetime.now(UTC)
            call_id = transferee.call.id
            log.info("call %s transferred to %s", call_id, destination)
            self._emit(
                CallTransferred(at=at, call_id=call_id, destination=destination, attended=attended)
            )
            self._emit(CallEnded(at=at, call_id=call_id, cause=HangupCause.NORMAL))

    def _transfer_failed(self, transferor: _Leg, transferee: _Leg) -> None:
        """Undo a transfer that did not happen: back together, or report who left."""
        transferor.in_transfer = transferee.in_transfer = False
        transferor.defer_end = False
        self._stop_music(transferee)
        if not transferee.ended and not transferor.ended:
            self.endpoint.bridge(transferee.call, transferor.call)
            transferee.peer, transferor.peer = transferor.call.id, transferee.call.id
            return
        if transferor.deferred is not None:
            deferred, transferor.deferred = transferor.deferred, None
            self._emit(deferred)
        if transferor.ended and transferor.paired and not transferee.ended:
            self._tasks.spawn(transferee.call.hangup(), name=f"hangup-{transferee.call.id}")

    async def _release_transferor(self, transferor: _Leg, notify: ClientTransaction | None) -> None:
        """After a REFER succeeded: let the phone hear the final NOTIFY and hang up itself."""
        if notify is not None:
            with suppress(Exception):
                async with asyncio.timeout(_NOTIFY_WAIT):
                    await asyncio.shield(notify.result)
        try:
            async with asyncio.timeout(_TRANSFEROR_GRACE):
                await transferor.call.ended.wait()
        except TimeoutError:
            await self.hangup(transferor.call.id)

    def _transfer_requested(self, transfer: Transfer, event: TransferRequested) -> None:
        """A phone's REFER: policy here (who may, to where); the SIP work in `Transfer`."""
        leg = self._legs.get(transfer.call.id)
        if leg is None or leg.ended:
            transfer.reject(481)
            return
        if leg.role is LegRole.CALLER:
            transfer.reject(403, "Forbidden (callers cannot transfer)")
            return
        partner = self._legs.get(leg.peer) if leg.peer else None
        if partner is None or partner.ended:
            transfer.reject(403, "Forbidden (nobody to transfer)")
            return
        if leg.in_transfer or partner.in_transfer:
            transfer.reject(491)
            return
        if event.replaces is not None:
            self._attended_by_refer(transfer, event, leg, partner)
            return
        target, status = self._destination(event.target_user)
        if target is None:
            transfer.reject(status)
            return
        if isinstance(target, SipUri) and event.authenticated_user is None:
            transfer.challenge()  # toll fraud: only an authenticated phone reaches the trunk
            return
        transfer.accept()
        self._tasks.spawn(
            self._blind_by_refer(transfer, leg, partner, target, event.target_user),
            name=f"refer-{leg.call.id}",
        )

    async def _blind_by_refer(
        self,
        transfer: Transfer,
        transferor: _Leg,
        transferee: _Leg,
        target: str | SipUri,
        destination: str,
    ) -> None:
        outcome = await self._transfer_to(
            transferor,
            transferee,
            target,
            destination,
            attended=False,
            on_ringing=lambda status: transfer.progress(status),
        )
        if isinstance(outcome, RingOutcome):
            transfer.finish(_REFER_FAILURE[outcome])
            return
        await self._release_transferor(transferor, transfer.finish(200))

    def _attended_by_refer(
        self, transfer: Transfer, event: TransferRequested, transferor: _Leg, transferee: _Leg
    ) -> None:
        """REFER with Replaces: the transferee takes the place of the phone in its consultation."""
        replaces = event.replaces
        assert replaces is not None
        found = self.endpoint.find_dialog(replaces.call_id, replaces.to_tag, replaces.from_tag)
        consult = self._legs.get(found.id) if found is not None else None
        far = self._legs.get(consult.peer) if consult is not None and consult.peer else None
        if (
            consult is None
            or far is None
            or consult.role is not LegRole.DIRECT  # only a phone's own consultation call
            or consult in (transferor, transferee)
            or far in (transferor, transferee)
            or far.ended
            or far.call.state is not CallState.CONNECTED
        ):
            transfer.reject(481, "Call/Transaction Does Not Exist (Replaces)")
            return
        if consult.in_transfer or far.in_transfer:
            transfer.reject(491)
            return
        mine, theirs = _phone_user(transferor), _phone_user(consult)
        if mine is not None and theirs is not None and mine != theirs:
            transfer.reject(403, "Forbidden (not your consultation call)")
            return
        if far.to_trunk and event.authenticated_user is None:
            transfer.challenge()
            return
        transfer.accept()
        # The consultation's two halves part: the phone's half is hung up, the far one stays.
        consult.peer, consult.paired, far.peer = None, False, None
        party = far.call
        destination = party.dialed if party.direction is CallDirection.OUTBOUND else party.caller
        self._hand_over(transferor, transferee, far, destination, attended=True)
        notify = transfer.finish(200)
        self._tasks.spawn(consult.call.hangup(), name=f"hangup-{consult.call.id}")
        self._tasks.spawn(
            self._release_transferor(transferor, notify), name=f"release-{transferor.call.id}"
        )

    async def spy(self, call_id: str, supervisor: AgentEndpoint, mode: SpyMode) -> str:
        """Not on the sip backend: listening in needs audio mixing it does not do."""
        raise TelephonyError(
            "listen, whisper and barge need the asterisk backend", call_id=call_id, mode=mode.value
        )

    # -- helpers ------------------------------------------------------------------------------

    def _leg(self, call_id: str) -> _Leg:
        leg = self._legs.get(call_id)
        if leg is None or leg.ended:
            raise CallGone(f"call {call_id} has ended", call_id=call_id)
        return leg

    async def _load(self, path: Path) -> bytes | None:
        pcm = self._pcm.get(path)
        if pcm is not None:
            self._pcm.move_to_end(path)
            return pcm
        try:
            pcm = await load_wav(path)
        except MediaError as exc:
            # A broken prompt file must not cost the caller the call: say it once, skip it.
            if path not in self._bad_prompts:
                self._bad_prompts.add(path)
                log.error("cannot play prompt %s: %s", path, exc)
            return None
        self._pcm[path] = pcm
        while len(self._pcm) > _PCM_CACHE_SIZE:
            self._pcm.popitem(last=False)
        return pcm

    def _emit(self, event: TelephonyEvent) -> None:
        if self._handler is not None:
            self._handler.on_telephony_event(event)

    # -- what the SIP endpoint reports (via `_Events`) ----------------------------------------

    def _offered(self, call: SipCall, event: SipCallOffered) -> None:
        if self._handler is None:
            call.reject(503)
            return
        if call.dialed in self.ivr_numbers:
            self._legs[call.id] = _Leg(call, LegRole.CALLER)
            call.ring()
            self._emit(
                CallOffered(
                    at=event.at,
                    call_id=call.id,
                    caller=event.caller,
                    dialed=event.dialed,
                    caller_name=event.caller_name,
                    headers=event.headers,
                )
            )
        elif event.authenticated_user is not None:
            leg = _Leg(call, LegRole.DIRECT, reported=False, paired=True)
            self._legs[call.id] = leg
            call.ring()
            self._tasks.spawn(
                self._connect_direct(leg, event.authenticated_user), name=f"direct-{call.id}"
            )
        else:  # the endpoint's auth rule makes this unreachable; refuse rather than trust it
            log.warning("unauthenticated call from %s to %s refused", event.source, call.dialed)
            call.reject(403)

    async def _connect_direct(self, leg: _Leg, user: str) -> None:
        """An agent's own call: to another registered extension, or out through the trunk."""
        call = leg.call
        target: str | SipUri | None = None
        if self.endpoint.registrar.lookup(call.dialed):
            target = call.dialed
        elif self.trunk is not None:
            target = self.trunk.uri(call.dialed)
        if target is None:
            log.info("%s dialled %s: no such extension and no trunk", user, call.dialed)
            _reject_if_waiting(call, 404)
            return
        result = await self._ring(call, target, user, _DIRECT_RING_TIMEOUT)
        if isinstance(result, RingOutcome):
            status = {RingOutcome.BUSY: 486, RingOutcome.NO_ANSWER: 480}.get(result, 502)
            _reject_if_waiting(call, status)
            return
        if call.state not in (CallState.OFFERED, CallState.RINGING):
            await result.hangup()  # the caller gave up just as the far end answered
            return
        if result.state is CallState.ENDED:
            _reject_if_waiting(call, 480)  # answered and hung up before we got here
            return
        # Paired before answering, so whichever leg ends first takes the other one down.
        self._legs[result.id] = _Leg(
            result,
            LegRole.DIRECT,
            peer=call.id,
            reported=False,
            paired=True,
            to_trunk=isinstance(target, SipUri),
        )
        leg.peer = result.id
        call.answer()
        self.endpoint.bridge(call, result)

    def _ended(self, call: SipCall, event: SipCallEnded) -> None:
        leg = self._legs.pop(call.id, None)
        if leg is None:
            return  # a ring attempt nobody took: the server never knew this leg
        leg.ended = True
        self._stop_music(leg)
        self._summaries[call.id] = _summarize(leg)
        while len(self._summaries) > _MEDIA_SUMMARIES:
            self._summaries.popitem(last=False)
        partner = self._legs.get(leg.peer) if leg.peer else None
        if leg.paired and not leg.defer_end and partner is not None and not partner.ended:
            self._tasks.spawn(partner.call.hangup(), name=f"hangup-{partner.call.id}")
        if not leg.reported:
            return
        cause = leg.cause or _cause(leg.role, event.reason)
        ended = CallEnded(at=event.at, call_id=call.id, cause=cause)
        if leg.defer_end:
            # A transferor's phone may hang up as soon as its REFER is accepted: whether that
            # ends the contact depends on the transfer, which decides when it is over.
            leg.deferred = ended
            return
        self._emit(ended)

    def _digit(self, call: SipCall, event: SipDtmfReceived) -> None:
        leg = self._legs.get(call.id)
        if leg is not None and leg.role is LegRole.CALLER and leg.reported:
            self._emit(DigitReceived(at=event.at, call_id=call.id, digit=event.digit))

    def _registration(self, event: SipRegistrationChanged) -> None:
        self._emit(
            EndpointRegistration(
                at=event.at,
                extension=event.aor,
                registered=event.state is SipRegistrationState.REGISTERED,
                contact=event.contact,
            )
        )


class _Events(BaseSipHandler):
    """The endpoint's handler: hands each SIP event to the backend, synchronously and in order."""

    def __init__(self, backend: SipBackend) -> None:
        self.backend = backend

    def call_offered(self, call: SipCall, event: SipCallOffered) -> None:
        """A new INVITE passed the endpoint's checks."""
        self.backend._offered(call, event)

    def dtmf_received(self, call: SipCall, event: SipDtmfReceived) -> None:
        """A key press."""
        self.backend._digit(call, event)

    def call_ended(self, call: SipCall, event: SipCallEnded) -> None:
        """A leg is over."""
        self.backend._ended(call, event)

    def registration_changed(self, event: SipRegistrationChanged) -> None:
        """A phone registered, unregistered or expired."""
        self.backend._registration(event)

    def hold_changed(self, call: SipCall, event: HoldChanged) -> None:
        """A phone held or resumed (the endpoint already relayed it across the bridge)."""
        log.info("call %s %s", call.id, "on hold" if event.held else "off hold")

    def transfer_requested(self, transfer: Transfer, event: TransferRequested) -> None:
        """A phone's REFER."""
        self.backend._transfer_requested(transfer, event)


def _with_auth_rule(sip: SipConfig, ivr_numbers: frozenset[str]) -> SipConfig:
    def requires_auth(request: SipRequest) -> bool:
        return (request.uri.user or "") not in ivr_numbers

    return replace(sip, invite_requires_auth=requires_auth)


def _cause(role: LegRole, reason: EndReason) -> HangupCause:
    """The telephony cause of a leg's end the server did not ask for."""
    if reason is EndReason.REMOTE_BYE:
        # A customer an agent dialled who hangs up is the caller of that contact.
        return HangupCause.AGENT_HANGUP if role is LegRole.AGENT else HangupCause.CALLER_HANGUP
    if reason is EndReason.CANCELLED:
        return HangupCause.CALLER_HANGUP if role is LegRole.CALLER else HangupCause.NO_ANSWER
    return {
        EndReason.LOCAL_HANGUP: HangupCause.NORMAL,
        EndReason.REJECTED: HangupCause.REJECTED,
        EndReason.DECLINED: HangupCause.BUSY,
        EndReason.NO_ANSWER: HangupCause.NO_ANSWER,
        EndReason.UNACKNOWLEDGED: HangupCause.UNREACHABLE,
        EndReason.TIMEOUT: HangupCause.UNREACHABLE,
        EndReason.SHUTDOWN: HangupCause.SHUTDOWN,
    }[reason]


def _ring_failure(exc: SipError | OSError, target: str | SipUri) -> RingOutcome:
    if isinstance(exc, CallFailed):
        if exc.status in _BUSY:
            return RingOutcome.BUSY
        if exc.status in _NO_ANSWER:
            return RingOutcome.NO_ANSWER
    elif isinstance(exc, NotRegistered):
        log.info("cannot ring %s: not registered", target)
        return RingOutcome.FAILED
    log.info("ringing %s failed: %s", target, exc)
    return RingOutcome.FAILED


def _phone_user(leg: _Leg) -> str | None:
    """The user (extension) whose phone is at the far end of a leg, when we know it."""
    call = leg.call
    if call.direction is CallDirection.INBOUND:
        return call.authenticated_user
    return None if leg.to_trunk else call.dialed


def _reject_if_waiting(call: SipCall, status: int) -> None:
    if call.state in (CallState.OFFERED, CallState.RINGING):
        call.reject(status)


def _summarize(leg: _Leg) -> MediaSummary:
    stats = leg.call.media.stats
    return MediaSummary(
        role=leg.role,
        codec=leg.call.codec.name,
        packets_received=stats.packets_received,
        packets_sent=stats.packets_sent,
        packets_relayed=stats.packets_relayed,
        rejected=stats.rejected,
        jitter_ms=stats.jitter_ms,
        held=stats.held,
    )


@contextmanager
def _translated(call_id: str) -> Iterator[None]:
    """SIP errors become telephony errors (the controller knows nothing of SIP)."""
    try:
        yield
    except SipCallGone:
        raise CallGone(f"call {call_id} has ended", call_id=call_id) from None
    except SipError as exc:
        raise TelephonyError(str(exc), call_id=call_id, sip_code=exc.code) from exc


__all__ = ["LegRole", "MediaSummary", "SipBackend", "Trunk"]
