"""The `asterisk` backend: an existing Asterisk carries SIP and media, Caruso drives it over AMI.

Inbound calls reach Caruso from the dialplan: Caruso's context runs `AGI(agi:async)`, and the
`AsyncAGIStart` event becomes `CallOffered` (call id = the channel's uniqueid). The IVR runs as
AsyncAGI commands over the manager connection (`ANSWER`, `STREAM FILE`, `RECORD FILE`,
`SET MUSIC`); digits come from `DTMFEnd` events. Agents are rung with an asynchronous
`Originate` whose channel gets a uniqueid Caruso chose (`caruso-agent-<token>-<agent>`) and
lands in AsyncAGI when answered; caller and agent are joined by running `Bridge(<agent>)` on
the caller. Hang-ups (`Hangup` events with Q.850 causes) become `CallEnded`; device and PJSIP
contact states become `EndpointRegistration` and `EndpointStateChanged`.

Restart safety. On every login (first start, reconnect, Caruso restart) the backend lists
`DeviceStateList`, `BridgeList` and `CoreShowChannels` while the manager holds events back, and
reconciles: legs it knew that are gone end (`CallEnded`), legs it knew stay as they are (no
second contact), and channels of Caruso's context it did not know are adopted: a caller already
talking to an agent, or already answered, as `CallAdopted`; one that never got service as
`CallOffered`. AGI results and Originate outcomes lost with a connection are settled from the
same snapshot. A global variable heartbeat (`CARUSO_HEARTBEAT`, `CARUSO_ONLINE`) lets the
dialplan send new callers to a plain queue while Caruso is unreachable, and callers Caruso
refuses or lets go at shutdown continue there (`ASYNCAGI BREAK` with `CARUSO_FALLBACK=1`)
rather than being hung up. Connected calls survive a Caruso stop (`hangup_on_stop = false`).

Per-leg state lives in `_Leg` objects keyed by uniqueid; background work (heartbeat, waiting
for a bridge command to finish, hand-overs) is owned by a `TaskSet`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import secrets
import time
import wave
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote

from commserver.asterisk import agi
from commserver.asterisk.channels import AsteriskState
from commserver.asterisk.errors import (
    AmiActionFailed,
    AmiAuthenticationFailed,
    AmiError,
)
from commserver.asterisk.events import (
    AgiEnded,
    AgiExecuted,
    AgiStarted,
    AmiEvent,
    BridgeEntered,
    ChannelCreated,
    ChannelHungUp,
    ChannelSnapshot,
    ChannelState,
    ChannelStateChanged,
    ContactStatusChanged,
    DeviceState,
    DeviceStateChanged,
    DtmfEnded,
    OriginateResult,
    ServerShutdown,
    TransferDone,
    decode,
)
from commserver.asterisk.manager import AmiManager, AmiSettings
from commserver.asterisk.message import AmiAction, AmiMessage, sanitize
from commserver.clock import utcnow
from commserver.config import AsteriskSettings, Config
from commserver.errors import ConfigError
from commserver.tasks import TaskSet
from commserver.telephony.base import (
    AgentEndpoint,
    BackendCapability,
    CallAdopted,
    CallEnded,
    CallGone,
    CallOffered,
    CallTransferred,
    DigitReceived,
    EndpointRegistration,
    EndpointState,
    EndpointStateChanged,
    HangupCause,
    Prompt,
    RingOutcome,
    SpyMode,
    TelephonyError,
    TelephonyEvent,
    TelephonyHandler,
)
from ivr.prompts import PromptCache

log = logging.getLogger(__name__)
T = TypeVar("T")

AGENT_PREFIX = "caruso-agent-"
"""Uniqueids of agent legs Caruso originates: `caruso-agent-<token>-<url-quoted agent id>`."""
SPY_PREFIX = "caruso-spy-"
HEARTBEAT_VARIABLE = "CARUSO_HEARTBEAT"
ONLINE_VARIABLE = "CARUSO_ONLINE"
FALLBACK_VARIABLE = "CARUSO_FALLBACK"
SAMPLE_RATE = 8000
_RECORD_SILENCE_SECONDS = 5
_BRIDGE_APPLICATIONS = frozenset({"agi", "bridge"})
_ANSWERED = 4
_DECLINED = 1
_NO_ANSWER = 3
_BUSY = 5

# Q.850 causes Caruso asks for when it hangs up, by reason.
_Q850: Mapping[HangupCause, int] = {
    HangupCause.NORMAL: 16,
    HangupCause.CALLER_HANGUP: 16,
    HangupCause.AGENT_HANGUP: 16,
    HangupCause.SHUTDOWN: 16,
    HangupCause.BUSY: 17,
    HangupCause.NO_ANSWER: 19,
    HangupCause.REJECTED: 21,
    HangupCause.UNREACHABLE: 27,
    HangupCause.FAILED: 41,
}
_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({18, 19})
_REJECTED_CAUSES = frozenset({21})
_UNREACHABLE_CAUSES = frozenset({1, 2, 3, 20, 22, 27, 28, 38})
_NORMAL_CAUSES = frozenset({0, 16, 31})

_ENDPOINT_STATES: Mapping[DeviceState, EndpointState] = {
    DeviceState.NOT_INUSE: EndpointState.AVAILABLE,
    DeviceState.INUSE: EndpointState.IN_USE,
    DeviceState.BUSY: EndpointState.BUSY,
    DeviceState.RINGING: EndpointState.RINGING,
    DeviceState.RINGINUSE: EndpointState.RINGING,
    DeviceState.ONHOLD: EndpointState.ON_HOLD,
    DeviceState.UNAVAILABLE: EndpointState.UNAVAILABLE,
    DeviceState.INVALID: EndpointState.UNAVAILABLE,
    DeviceState.UNKNOWN: EndpointState.UNKNOWN,
}
_SPY_OPTIONS: Mapping[SpyMode, str] = {
    SpyMode.LISTEN: "qE",
    SpyMode.WHISPER: "qEw",
    SpyMode.BARGE: "qEB",
}


class LegRole(enum.Enum):
    """What a channel is to Caruso."""

    CALLER = "caller"  # entered Caruso's context: a contact
    AGENT = "agent"  # originated to ring an agent for a caller
    SPY = "spy"  # a supervisor listening, whispering or barging


@dataclass(eq=False)
class _Leg:
    uniqueid: str
    role: LegRole
    channel: str = ""
    answered: bool = False
    in_agi: bool = False
    reported: bool = False  # the server knows this leg (callers; agents once answered)
    agent_id: str | None = None
    caller_leg: str | None = None  # for agent and spy legs: the caller's uniqueid
    cause: HangupCause | None = None  # what Caruso asked for when it hung the leg up
    abandoned: bool = False  # an agent leg whose ring Caruso gave up: hang up on sight
    bridge_target: str | None = None  # a caller waiting to be bridged with this agent leg
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    bridged: asyncio.Event = field(default_factory=asyncio.Event)
    digits: deque[str] = field(default_factory=deque)
    digit_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def target(self) -> str:
        """How to name the channel in an action (its name, or its uniqueid before we know it)."""
        return self.channel or self.uniqueid


@dataclass(eq=False)
class _Ring:
    leg: _Leg
    result: asyncio.Future[OriginateResult | None]
    abandoned: bool = False  # nobody waits: hang up if it answers, forget if it fails
    lost: bool = False  # in flight when the manager connection dropped


@dataclass(eq=False)
class _AgiCommand:
    leg: _Leg
    future: asyncio.Future[agi.AgiResult]
    lost: bool = False


class AsteriskBackend:
    """A `TelephonyBackend` that drives an existing Asterisk over the manager interface."""

    name = "asterisk"
    capabilities = frozenset(
        {
            BackendCapability.RECORD,
            BackendCapability.TRANSFER,
            BackendCapability.LISTEN,
            BackendCapability.WHISPER,
            BackendCapability.BARGE,
        }
    )

    def __init__(
        self,
        settings: AsteriskSettings,
        *,
        prompts: PromptCache,
        extensions: Collection[str] = (),
        data_dir: Path | None = None,
        ring_timeout: float = 15.0,
    ) -> None:
        self.settings = settings
        if settings.external_channel:
            # Agents' phones may be external numbers, rung through `external_channel`. Click-
            # to-dial (DIAL_OUT, two Originates bridged) is not implemented here yet.
            self.capabilities = type(self).capabilities | {BackendCapability.EXTERNAL_PHONES}
        self.prompts = prompts
        self.extensions = frozenset(extensions)
        self.data_dir = data_dir
        self.ring_timeout = ring_timeout
        self.manager = AmiManager(
            AmiSettings(
                host=settings.host,
                port=settings.port,
                username=settings.username,
                secret=settings.secret,
                connect_timeout=settings.connect_timeout,
                action_timeout=settings.action_timeout,
                ping_interval=settings.ping_interval,
                reconnect_min=settings.reconnect_min,
                reconnect_max=settings.reconnect_max,
            ),
            self,
        )
        self.state = AsteriskState()
        self.resyncs = 0
        self.adopted = 0
        self.events_applied = 0
        self._handler: TelephonyHandler | None = None
        self._legs: dict[str, _Leg] = {}
        self._rings: dict[str, _Ring] = {}
        self._agi_commands: dict[str, _AgiCommand] = {}
        self._endpoint_states: dict[str, EndpointState] = {}
        self._registered: dict[str, bool] = {}
        self._transfers: dict[str, str] = {}
        self._bad_sounds: set[str] = set()
        self._command_ids = itertools.count(1)
        self._tasks = TaskSet("asterisk-backend")
        self._accepting = False
        self._open = False
        prefix, _, suffix = settings.agent_channel.partition("{extension}")
        self._device_affixes = (prefix, suffix)

    @classmethod
    def from_config(cls, config: Config) -> AsteriskBackend:
        """The backend a site's configuration describes."""
        return cls(
            config.telephony.asterisk,
            prompts=PromptCache(config.server.data_dir / "prompts"),
            extensions=[a.extension for a in config.agents if a.extension],
            data_dir=config.server.data_dir,
            ring_timeout=config.telephony.ring_timeout,
        )

    # -- what tests, benchmarks and the monitor may look at -----------------------------------

    @property
    def live_calls(self) -> int:
        """Legs Caruso controls right now (callers, agents, supervisors)."""
        return len(self._legs)

    def leg_channel(self, call_id: str) -> str:
        """The Asterisk channel name of a live leg ('' if unknown)."""
        leg = self._legs.get(call_id)
        return leg.channel if leg is not None else ""

    async def health(self) -> bool | str:
        """Up while logged in to the manager (the service manager's health probe)."""
        if not self.manager.ready:
            return False
        return f"AMI logged in to {self.settings.host}:{self.settings.port}, {len(self._legs)} legs"

    # -- TelephonyBackend: lifecycle ----------------------------------------------------------

    async def open(self, handler: TelephonyHandler) -> None:
        """Log in to the manager and resync; return once calls are taken."""
        if self._open:
            raise TelephonyError("the Asterisk backend is already open")
        self._handler = handler
        self._accepting = True
        try:
            await self.manager.connect()
        except AmiAuthenticationFailed as exc:
            raise ConfigError(exc.message, key="telephony.asterisk.secret") from exc
        except AmiError as exc:
            raise ConfigError(
                f"{exc.message} (is Asterisk running, and are [telephony.asterisk] host and "
                "port right?)",
                key="telephony.asterisk.host",
            ) from exc
        self._open = True
        self._tasks.spawn(self._heartbeat(), name="asterisk-heartbeat")

    async def stop_accepting(self) -> None:
        """New callers go to the dialplan fallback from now on; live calls go on."""
        self._accepting = False
        await self._publish_online(False)

    async def close(self) -> None:
        """Let go of every leg and log off. Idempotent.

        Callers still in the IVR or queue continue in the dialplan fallback; connected calls
        stay up in Asterisk (to be adopted by the next Caruso) unless `hangup_on_stop`.
        """
        if not self._open:
            return
        self._open = False
        self._accepting = False
        await self._publish_online(False)
        for leg in list(self._legs.values()):
            if leg.ended.is_set():
                continue
            if self.settings.hangup_on_stop:
                leg.cause = HangupCause.SHUTDOWN
                await self._ami_hangup(leg, HangupCause.SHUTDOWN)
            elif leg.role is LegRole.CALLER and leg.in_agi and not leg.bridged.is_set():
                await self._hand_over(leg, emit=True, cause=HangupCause.SHUTDOWN)
        for leg in list(self._legs.values()):
            self._release(leg, HangupCause.SHUTDOWN)
        await self.manager.close()
        await self._tasks.cancel_all()

    # -- TelephonyBackend: commands -----------------------------------------------------------

    async def answer(self, call_id: str) -> None:
        """Answer the caller (AGI `ANSWER`)."""
        leg = self._caller(call_id)
        if leg.answered:
            return
        result = await self._agi(leg, agi.answer())
        if not result.ok:
            raise TelephonyError(f"Asterisk could not answer {call_id}", call_id=call_id)
        leg.answered = True

    async def play(self, call_id: str, prompt: Prompt) -> None:
        """Play a WAV or rendered text (`STREAM FILE`; any key interrupts and is buffered)."""
        leg = self._caller(call_id)
        path = prompt.wav if prompt.wav is not None else await self.prompts.render(prompt.text)
        sound = self._sound(path)
        result = await self._agi(leg, agi.stream_file(sound))
        if result.result == "-1" and not leg.ended.is_set() and sound not in self._bad_sounds:
            # A prompt Asterisk cannot read must not cost the caller the call: say it once.
            self._bad_sounds.add(sound)
            log.error("Asterisk could not play %s (is it readable by Asterisk?)", sound)

    async def collect_digits(
        self, call_id: str, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        """Digits keyed (typed-ahead ones included) until the count, terminator or timeout."""
        leg = self._caller(call_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        keyed = ""
        while len(keyed) < max_digits:
            if leg.digits:
                digit = leg.digits.popleft()
                if digit in terminator:
                    break
                keyed += digit
                continue
            if leg.ended.is_set():
                raise CallGone(f"call {call_id} has ended", call_id=call_id)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            leg.digit_arrived.clear()
            await _wait_any(remaining, leg.digit_arrived, leg.ended)
        return keyed

    async def start_music(self, call_id: str) -> None:
        """Music on hold (`SET MUSIC ON`: a generator, plays until stopped or bridged)."""
        leg = self._caller(call_id)
        await self._agi(leg, agi.set_music(True, self.settings.music_class))

    async def stop_music(self, call_id: str) -> None:
        """Stop music on hold (nothing happens when the call is gone)."""
        leg = self._legs.get(call_id)
        if leg is None or leg.ended.is_set() or not leg.in_agi:
            return
        with contextlib.suppress(CallGone):
            await self._agi(leg, agi.set_music(False, self.settings.music_class))

    async def ring_agent(
        self, call_id: str, agent: AgentEndpoint, *, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Originate to the agent's phone; answered, it waits in AsyncAGI to be bridged."""
        caller = self._caller(call_id)
        dial = self._dial_string(agent)
        if dial is None:
            log.info("agent %s has no extension and no reachable number", agent.agent_id)
            return RingOutcome.FAILED, None
        uniqueid = f"{AGENT_PREFIX}{secrets.token_hex(6)}-{quote(agent.agent_id, safe='')}"
        leg = _Leg(uniqueid, LegRole.AGENT, agent_id=agent.agent_id, caller_leg=call_id)
        self._legs[uniqueid] = leg
        action_id = self.manager.new_action_id()
        ring = _Ring(leg, asyncio.get_running_loop().create_future())
        self._rings[action_id] = ring
        action = AmiAction.of(
            "Originate",
            Channel=dial,
            Application="AGI",
            Data="agi:async",
            Timeout=int(timeout * 1000),
            CallerID=_caller_id(self.state.channels.get(call_id)),
            Async="true",
            ChannelId=uniqueid,
            Variable=[
                "CARUSO_ROLE=agent",
                f"CARUSO_CALL={call_id}",
                f"CARUSO_AGENT={sanitize(agent.agent_id)}",
            ],
        )
        try:
            try:
                await self.manager.send_with_id(action, action_id)
            except AmiError as exc:
                self._rings.pop(action_id, None)
                self._legs.pop(uniqueid, None)
                log.warning("cannot ring agent %s (%s): %s", agent.agent_id, dial, exc.message)
                return RingOutcome.FAILED, None
            guard = timeout + self.settings.action_timeout + 5.0
            await _wait_any(guard, _future_done(ring.result), caller.ended)
        except asyncio.CancelledError:
            # The server withdrew the offer (its ring timeout, another agent answered first):
            # the phone must stop ringing even though nobody waits for the outcome.
            ring.abandoned = True
            self._tasks.spawn(self._abandon_ring(leg), name=f"unring-{uniqueid}")
            raise
        if caller.ended.is_set() or not ring.result.done():
            ring.abandoned = True
            await self._abandon_ring(leg)
            return (
                RingOutcome.CALLER_GONE if caller.ended.is_set() else RingOutcome.NO_ANSWER
            ), None
        outcome = ring.result.result()
        if outcome is None or not outcome.success or outcome.reason != _ANSWERED:
            self._forget(leg)
            return _ring_outcome(outcome), None
        leg.answered = True
        leg.channel = outcome.channel_name or leg.channel
        if leg.ended.is_set():
            self._forget(leg)
            return RingOutcome.FAILED, None  # answered and gone before we could take it
        leg.reported = True
        return RingOutcome.ANSWERED, uniqueid

    async def bridge(self, call_id: str, agent_leg_id: str) -> None:
        """Join caller and agent: `Bridge(<agent>)` runs on the caller until the call ends."""
        caller = self._caller(call_id)
        agent_leg = self._leg(agent_leg_id)
        caller.bridge_target = agent_leg.uniqueid
        caller.bridged.clear()
        command = await self._submit(caller, agi.exec_application("Bridge", agent_leg.target))
        running = self._tasks.spawn(self._settle(command), name=f"bridge-{call_id}")
        await _wait_any(
            self.settings.action_timeout * 2,
            caller.bridged,
            caller.ended,
            agent_leg.ended,
            _task_done(running),
        )
        if caller.bridged.is_set():
            return
        if caller.ended.is_set():
            raise CallGone(f"call {call_id} has ended", call_id=call_id)
        if agent_leg.ended.is_set():
            raise CallGone(f"agent leg {agent_leg_id} has ended", call_id=agent_leg_id)
        raise TelephonyError(
            f"Asterisk did not bridge {call_id} with {agent_leg_id}",
            call_id=call_id,
            agent_leg_id=agent_leg_id,
        )

    async def record(self, call_id: str, path: Path, *, max_seconds: float) -> float:
        """Record the caller (`RECORD FILE` wav, beep, '#' or 5 s of silence ends it)."""
        leg = self._caller(call_id)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        target = self._asterisk_path(path.with_suffix(""))
        command = agi.record_file(
            target,
            timeout_ms=int(max_seconds * 1000),
            silence_seconds=_RECORD_SILENCE_SECONDS,
            beep=True,
        )
        try:
            result = await self._agi(leg, command)
        except CallGone:
            # Voicemail usually ends with a hang-up: the file is what counts.
            seconds = await asyncio.to_thread(_wav_seconds, path.with_suffix(".wav"))
            if seconds is None:
                raise
            return min(seconds, max_seconds)
        if result.lost:
            seconds = await asyncio.to_thread(_wav_seconds, path.with_suffix(".wav"))
            return min(seconds or 0.0, max_seconds)
        return min(result.endpos / SAMPLE_RATE, max_seconds)

    async def hangup(self, call_id: str, cause: HangupCause = HangupCause.NORMAL) -> None:
        """End a leg (AMI `Hangup` with a Q.850 cause); a refused caller goes to the fallback."""
        leg = self._legs.get(call_id)
        if leg is None or leg.ended.is_set():
            return
        if (
            leg.role is LegRole.CALLER
            and leg.in_agi
            and not leg.answered
            and cause in (HangupCause.REJECTED, HangupCause.SHUTDOWN)
        ):
            # Refused (draining, max_calls): the dialplan's plain queue still serves them.
            await self._hand_over(leg, emit=True, cause=cause)
            return
        leg.cause = cause
        await self._ami_hangup(leg, cause)

    # -- supervision (SupervisionBackend) ------------------------------------------------------

    async def start_recording(self, call_id: str, path: Path) -> None:
        """Record both parties of a call (`MixMonitor` on the caller's channel)."""
        leg = self._caller(call_id)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        target = self._asterisk_path(path.with_suffix(".wav"))
        await self._action(AmiAction.of("MixMonitor", Channel=leg.target, File=target), call_id)

    async def stop_recording(self, call_id: str) -> None:
        """Stop a call recording (`StopMixMonitor`)."""
        leg = self._legs.get(call_id)
        if leg is None or leg.ended.is_set():
            return
        try:
            await self.manager.send(AmiAction.of("StopMixMonitor", Channel=leg.target))
        except AmiActionFailed:
            pass  # nothing was recording
        except AmiError as exc:
            raise TelephonyError(exc.message, call_id=call_id) from exc

    async def blind_transfer(self, call_id: str, destination: str) -> None:
        """Send the caller to `destination` in `transfer_context`; Caruso lets go of the call."""
        caller = self._caller(call_id)
        agent_leg = self._agent_of(caller)
        context = self.settings.transfer_context
        exten = sanitize(destination)
        if agent_leg is not None:
            # The agent is the transferer: Asterisk moves whoever is bridged with them.
            action = AmiAction.of(
                "BlindTransfer", Channel=agent_leg.target, Context=context, Exten=exten
            )
        else:
            action = AmiAction.of(
                "Redirect", Channel=caller.target, Context=context, Exten=exten, Priority=1
            )
        await self._action(action, call_id)
        self._transferred(caller, destination, attended=False)

    async def attended_transfer(self, call_id: str, destination: str) -> None:
        """The agent consults `destination` (`Atxfer`); the caller moves when the agent leaves."""
        caller = self._caller(call_id)
        agent_leg = self._agent_of(caller)
        if agent_leg is None:
            raise TelephonyError("an attended transfer needs a connected agent", call_id=call_id)
        action = AmiAction.of(
            "Atxfer",
            Channel=agent_leg.target,
            Context=self.settings.transfer_context,
            Exten=sanitize(destination),
        )
        self._transfers[caller.uniqueid] = destination
        try:
            await self._action(action, call_id)
        except TelephonyError:
            self._transfers.pop(caller.uniqueid, None)
            raise

    async def spy(self, call_id: str, supervisor: AgentEndpoint, mode: SpyMode) -> str:
        """Ring the supervisor into `ChanSpy` on the call's agent leg; returns the spy leg id."""
        caller = self._caller(call_id)
        agent_leg = self._agent_of(caller)
        if agent_leg is None:
            raise TelephonyError("only a call connected to an agent can be supervised")
        dial = self._dial_string(supervisor)
        if dial is None:
            raise TelephonyError(f"supervisor {supervisor.agent_id} has no phone to ring")
        uniqueid = f"{SPY_PREFIX}{secrets.token_hex(6)}"
        leg = _Leg(uniqueid, LegRole.SPY, caller_leg=call_id, agent_id=supervisor.agent_id)
        self._legs[uniqueid] = leg
        action_id = self.manager.new_action_id()
        ring = _Ring(leg, asyncio.get_running_loop().create_future())
        self._rings[action_id] = ring
        action = AmiAction.of(
            "Originate",
            Channel=dial,
            Application="ChanSpy",
            Data=f"{agent_leg.target},{_SPY_OPTIONS[mode]}",
            Timeout=int(self.ring_timeout * 1000),
            CallerID=f'"Caruso {mode.value}" <{sanitize(caller.uniqueid)[:20]}>',
            Async="true",
            ChannelId=uniqueid,
        )
        try:
            await self.manager.send_with_id(action, action_id)
            await _wait_any(
                self.ring_timeout + self.settings.action_timeout, _future_done(ring.result)
            )
        except AmiError as exc:
            self._forget(leg)
            raise TelephonyError(exc.message, call_id=call_id) from exc
        finally:
            self._rings.pop(action_id, None)
        outcome = ring.result.result() if ring.result.done() else None
        if outcome is None or not outcome.success:
            await self._abandon_ring(leg)
            raise TelephonyError(
                f"supervisor {supervisor.agent_id} did not answer ({_ring_outcome(outcome).value})",
                call_id=call_id,
            )
        leg.answered = True
        leg.reported = True
        leg.channel = outcome.channel_name or leg.channel
        return uniqueid

    # -- AmiHandler: what the manager reports --------------------------------------------------

    async def ami_ready(self, manager: AmiManager) -> None:
        """Logged in (again): list devices, bridges and channels, then reconcile."""
        devices: dict[str, DeviceState] | None
        try:
            listed = await manager.send_list(AmiAction.of("DeviceStateList"))
            devices = {m.get("Device"): DeviceState.parse(m.get("State")) for m in listed}
        except AmiActionFailed:
            devices = None  # an Asterisk before 13: device states arrive as they change
        bridge_items = await manager.send_list(AmiAction.of("BridgeList"))
        bridges = [m.get("BridgeUniqueid") for m in bridge_items]
        channels = [
            ChannelSnapshot.from_message(m)
            for m in await manager.send_list(AmiAction.of("CoreShowChannels"))
        ]
        self.state.rebuild(channels, bridges, devices)
        await self._publish_online(self._accepting, manager=manager)
        self._reconcile()
        for device, device_state in (devices or {}).items():
            self._device(device, device_state)
        self.resyncs += 1
        log.info(
            "Asterisk resync #%d: %d channels, %d bridges, %d Caruso legs",
            self.resyncs,
            len(channels),
            len(bridges),
            len(self._legs),
        )

    def ami_event(self, message: AmiMessage) -> None:
        """Apply one manager event to the mirror, then to Caruso's legs."""
        event = decode(message)
        if event is None:
            return
        self.state.apply(event)
        self.events_applied += 1
        self._on_event(event)

    def ami_lost(self, reason: str) -> None:
        """The manager connection dropped: results in flight are settled at the next resync."""
        # Originate outcomes are events every session gets: a ring still pending waits for
        # its OriginateResponse on the new connection, or is settled from the snapshot.
        for command in self._agi_commands.values():
            command.lost = True
        for ring in self._rings.values():
            ring.lost = True

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, event: AmiEvent) -> None:
        if isinstance(event, AgiExecuted):
            command = self._agi_commands.pop(event.command_id, None)
            if command is not None and not command.future.done():
                command.future.set_result(event.result)
        elif isinstance(event, DtmfEnded):
            leg = self._legs.get(event.channel.uniqueid)
            if leg is not None and event.received and leg.role is LegRole.CALLER:
                leg.digits.append(event.digit)
                leg.digit_arrived.set()
                self._emit(DigitReceived(at=utcnow(), call_id=leg.uniqueid, digit=event.digit))
        elif isinstance(event, AgiStarted):
            self._agi_started(event)
        elif isinstance(event, AgiEnded):
            leg = self._legs.get(event.channel.uniqueid)
            if leg is not None:
                leg.in_agi = False
                self._fail_commands(leg, "left AsyncAGI")
        elif isinstance(event, ChannelHungUp):
            leg = self._legs.get(event.channel.uniqueid)
            if leg is not None:
                self._hung_up(leg, event.cause)
        elif isinstance(event, ChannelCreated | ChannelStateChanged):
            self._channel_update(event.channel)
        elif isinstance(event, BridgeEntered):
            self._bridged(event.channel.uniqueid)
        elif isinstance(event, OriginateResult):
            ring = self._rings.pop(event.action_id, None)
            if ring is not None:
                self._originated(ring, event)
        elif isinstance(event, DeviceStateChanged):
            self._device(event.device, event.state)
        elif isinstance(event, ContactStatusChanged):
            self._contact(event)
        elif isinstance(event, TransferDone):
            self._transfer_done(event)
        elif isinstance(event, ServerShutdown):
            log.warning("Asterisk is shutting down (restart=%s)", event.restart)

    def _originated(self, ring: _Ring, result: OriginateResult | None) -> None:
        """An Originate's outcome: to whoever waits for it, or settled here if nobody does."""
        if not ring.abandoned:
            if not ring.result.done():
                ring.result.set_result(result)
            return
        leg = ring.leg
        if result is not None and result.success:
            leg.channel = result.channel_name or leg.channel
            self._spawn_hangup(leg)  # answered after all: free the phone
        elif leg.uniqueid not in self.state.channels:
            self._release(leg, HangupCause.NO_ANSWER)  # never reported: no event

    def _agi_started(self, event: AgiStarted) -> None:
        snapshot = event.channel
        leg = self._legs.get(snapshot.uniqueid)
        if leg is not None:
            leg.in_agi = True
            leg.channel = snapshot.name or leg.channel
            if leg.abandoned:
                self._spawn_hangup(leg)
            return
        if snapshot.uniqueid.startswith((AGENT_PREFIX, SPY_PREFIX)):
            return  # a leg a previous Caruso placed: the resync decides about it
        env = event.env
        leg = _Leg(
            snapshot.uniqueid,
            LegRole.CALLER,
            channel=snapshot.name or env.get("agi_channel", ""),
            in_agi=True,
            answered=snapshot.state is ChannelState.UP,
            reported=True,
        )
        self._legs[leg.uniqueid] = leg
        if not self._accepting or self._handler is None:
            leg.reported = False
            self._tasks.spawn(self._hand_over(leg, emit=False), name=f"refuse-{leg.uniqueid}")
            return
        caller = env.get("agi_callerid", "") or snapshot.caller_number
        self._emit(
            CallOffered(
                at=utcnow(),
                call_id=leg.uniqueid,
                caller="" if caller == "unknown" else caller,
                dialed=env.get("agi_extension", "") or snapshot.exten,
                caller_name=_unknown_empty(env.get("agi_calleridname", "")),
                headers=dict(env),
            )
        )

    def _channel_update(self, snapshot: ChannelSnapshot) -> None:
        leg = self._legs.get(snapshot.uniqueid)
        if leg is None:
            return
        if snapshot.name:
            leg.channel = snapshot.name
        if snapshot.state is ChannelState.UP and leg.role is not LegRole.CALLER:
            leg.answered = True
        if leg.abandoned and snapshot.name:
            self._spawn_hangup(leg)

    def _bridged(self, uniqueid: str) -> None:
        """A channel entered a bridge: wake a caller waiting to be joined with its agent."""
        leg = self._legs.get(uniqueid)
        if leg is None:
            return
        callers = [leg] if leg.role is LegRole.CALLER else []
        if leg.role is LegRole.AGENT and leg.caller_leg in self._legs:
            callers.append(self._legs[leg.caller_leg])
        for caller in callers:
            target = caller.bridge_target
            if target is not None and target in self.state.bridged_with(caller.uniqueid):
                caller.bridged.set()
                partner = self._legs.get(target)
                if partner is not None:
                    partner.bridged.set()

    def _hung_up(self, leg: _Leg, cause_code: int) -> None:
        cause = leg.cause or _cause(leg.role, cause_code)
        self._release(leg, cause)

    def _release(self, leg: _Leg, cause: HangupCause) -> None:
        """The leg is no longer Caruso's: wake its waiters and tell the server (once)."""
        if leg.ended.is_set():
            return
        leg.ended.set()
        self._legs.pop(leg.uniqueid, None)
        self._fail_commands(leg, "hung up")
        self._transfers.pop(leg.uniqueid, None)
        if leg.reported:
            self._emit(CallEnded(at=utcnow(), call_id=leg.uniqueid, cause=cause))

    def _forget(self, leg: _Leg) -> None:
        """An agent leg nobody took: drop it without telling the server about it."""
        leg.reported = False
        if leg.ended.is_set():
            return
        if not self.state.channels.get(leg.uniqueid):
            self._release(leg, HangupCause.NO_ANSWER)
        else:
            leg.abandoned = True
            self._spawn_hangup(leg)

    def _fail_commands(self, leg: _Leg, why: str) -> None:
        for command_id, command in list(self._agi_commands.items()):
            if command.leg is leg:
                del self._agi_commands[command_id]
                if not command.future.done():
                    command.future.set_exception(
                        CallGone(f"call {leg.uniqueid} {why}", call_id=leg.uniqueid)
                    )

    def _device(self, device: str, device_state: DeviceState) -> None:
        prefix, suffix = self._device_affixes
        if not device.startswith(prefix) or not device.endswith(suffix):
            return
        extension = device[len(prefix) : len(device) - len(suffix)]
        if extension not in self.extensions:
            return
        state = _ENDPOINT_STATES[device_state]
        if self._endpoint_states.get(extension) is not state:
            self._endpoint_states[extension] = state
            self._emit(EndpointStateChanged(at=utcnow(), extension=extension, state=state))
        if state is EndpointState.UNAVAILABLE:
            self._set_registered(extension, False, "")
        elif state is not EndpointState.UNKNOWN:
            self._set_registered(extension, True, "")

    def _contact(self, event: ContactStatusChanged) -> None:
        extension = event.aor or event.endpoint
        if extension not in self.extensions:
            return
        registered = bool(self.state.contacts.get(event.aor))
        self._set_registered(extension, registered, event.uri)

    def _set_registered(self, extension: str, registered: bool, contact: str) -> None:
        # Only changes are news: a re-registration must not make a paused agent ready.
        if self._registered.get(extension) is registered:
            return
        self._registered[extension] = registered
        self._emit(
            EndpointRegistration(
                at=utcnow(), extension=extension, registered=registered, contact=contact
            )
        )

    def _transfer_done(self, event: TransferDone) -> None:
        caller = self._legs.get(event.transferee_uniqueid)
        if caller is None or caller.role is not LegRole.CALLER or not event.attended:
            return
        destination = self._transfers.pop(caller.uniqueid, None)
        if destination is not None and event.success:
            self._transferred(caller, destination, attended=True)

    def _transferred(self, caller: _Leg, destination: str, *, attended: bool) -> None:
        self._emit(
            CallTransferred(
                at=utcnow(), call_id=caller.uniqueid, destination=destination, attended=attended
            )
        )
        self._release(caller, HangupCause.NORMAL)

    # -- resync --------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        channels = self.state.channels
        for leg in list(self._legs.values()):
            snapshot = channels.get(leg.uniqueid)
            if snapshot is None:
                self._release(leg, leg.cause or _away_cause(leg))
                continue
            leg.channel = snapshot.name or leg.channel
            if snapshot.state is ChannelState.UP:
                leg.answered = True
            if leg.role is LegRole.CALLER and snapshot.application:
                leg.in_agi = snapshot.application.lower() in _BRIDGE_APPLICATIONS
        self._settle_lost_results()
        for snapshot in list(channels.values()):
            if snapshot.uniqueid not in self._legs and self._is_caruso_caller(snapshot):
                self._adopt(snapshot)
        for snapshot in list(channels.values()):
            if snapshot.uniqueid.startswith(AGENT_PREFIX) and snapshot.uniqueid not in self._legs:
                # An agent leg of a previous Caruso that is not talking to a caller we adopted:
                # nobody will ever bridge it, so free the agent's phone.
                orphan = _Leg(snapshot.uniqueid, LegRole.AGENT, channel=snapshot.name)
                orphan.abandoned = True
                self._legs[orphan.uniqueid] = orphan
                self._spawn_hangup(orphan)

    def _settle_lost_results(self) -> None:
        for command_id, command in list(self._agi_commands.items()):
            if not command.lost:
                continue
            del self._agi_commands[command_id]
            if command.future.done():
                continue
            if command.leg.ended.is_set():
                command.future.set_exception(CallGone(f"call {command.leg.uniqueid} has ended"))
            else:
                # The result went down with the connection; the command did run.
                command.future.set_result(agi.AgiResult(code=200, result="0", lost=True))
        for action_id, ring in list(self._rings.items()):
            leg = ring.leg
            if not ring.lost:
                continue  # sent on this connection: its OriginateResponse is still to come
            if self.state.is_up(leg.uniqueid):
                answered = OriginateResult(
                    action_id=action_id,
                    success=True,
                    reason=_ANSWERED,
                    uniqueid=leg.uniqueid,
                    channel_name=leg.channel,
                )
                del self._rings[action_id]
                self._originated(ring, answered)
            elif leg.uniqueid not in self.state.channels:
                del self._rings[action_id]
                self._originated(ring, None)
            # Still ringing: its OriginateResponse reaches the new connection too.

    def _is_caruso_caller(self, snapshot: ChannelSnapshot) -> bool:
        if snapshot.uniqueid.startswith((AGENT_PREFIX, SPY_PREFIX)):
            return False
        if snapshot.context != self.settings.context:
            return False
        if snapshot.application.lower() in _BRIDGE_APPLICATIONS:
            return True
        return any(p.startswith(AGENT_PREFIX) for p in self.state.bridged_with(snapshot.uniqueid))

    def _adopt(self, snapshot: ChannelSnapshot) -> None:
        answered = snapshot.state is ChannelState.UP
        caller = _Leg(
            snapshot.uniqueid,
            LegRole.CALLER,
            channel=snapshot.name,
            answered=answered,
            in_agi=True,
            reported=True,
        )
        self._legs[caller.uniqueid] = caller
        if not self._accepting or self._handler is None:
            caller.reported = False
            self._tasks.spawn(self._hand_over(caller, emit=False), name=f"refuse-{caller.uniqueid}")
            return
        agent_snapshot = next(
            (
                self.state.channels[p]
                for p in self.state.bridged_with(snapshot.uniqueid)
                if p.startswith(AGENT_PREFIX) and p in self.state.channels
            ),
            None,
        )
        if agent_snapshot is None and not answered:
            # It reached Caruso's context while nobody listened: a new call, offered now.
            self._emit(
                CallOffered(
                    at=utcnow(),
                    call_id=caller.uniqueid,
                    caller=snapshot.caller_number,
                    dialed=snapshot.exten,
                    caller_name=snapshot.caller_name,
                )
            )
            return
        agent_leg: _Leg | None = None
        if agent_snapshot is not None:
            agent_leg = _Leg(
                agent_snapshot.uniqueid,
                LegRole.AGENT,
                channel=agent_snapshot.name,
                answered=True,
                reported=True,
                agent_id=_agent_id_of(agent_snapshot.uniqueid),
                caller_leg=caller.uniqueid,
            )
            agent_leg.bridged.set()
            caller.bridged.set()
            caller.bridge_target = agent_leg.uniqueid
            self._legs[agent_leg.uniqueid] = agent_leg
        self.adopted += 1
        now = utcnow()
        up_since = now - timedelta(seconds=snapshot.duration_seconds)
        self._emit(
            CallAdopted(
                at=now,
                call_id=caller.uniqueid,
                caller=snapshot.caller_number,
                dialed=snapshot.exten,
                caller_name=snapshot.caller_name,
                answered=answered,
                agent_leg_id=agent_leg.uniqueid if agent_leg else None,
                agent_id=agent_leg.agent_id if agent_leg else None,
                up_since=up_since,
            )
        )

    # -- helpers -------------------------------------------------------------------------------

    def _emit(self, event: TelephonyEvent) -> None:
        if self._handler is not None:
            self._handler.on_telephony_event(event)

    def _leg(self, call_id: str) -> _Leg:
        leg = self._legs.get(call_id)
        if leg is None or leg.ended.is_set():
            raise CallGone(f"call {call_id} has ended", call_id=call_id)
        return leg

    def _caller(self, call_id: str) -> _Leg:
        leg = self._leg(call_id)
        if leg.role is not LegRole.CALLER:
            raise TelephonyError(f"{call_id} is not a caller's leg", call_id=call_id)
        return leg

    def _agent_of(self, caller: _Leg) -> _Leg | None:
        for uniqueid in [caller.bridge_target, *self.state.bridged_with(caller.uniqueid)]:
            leg = self._legs.get(uniqueid or "")
            if leg is not None and leg.role is LegRole.AGENT and not leg.ended.is_set():
                return leg
        return None

    def _dial_string(self, agent: AgentEndpoint) -> str | None:
        if agent.extension:
            return self.settings.agent_channel.format(extension=sanitize(agent.extension))
        if agent.external_number and self.settings.external_channel:
            return self.settings.external_channel.format(number=sanitize(agent.external_number))
        return None

    def _asterisk_path(self, path: Path) -> str:
        """The path as Asterisk sees it (`media_dir` stands in for Caruso's data folder)."""
        if self.settings.media_dir and self.data_dir is not None:
            try:
                return str(Path(self.settings.media_dir) / path.relative_to(self.data_dir))
            except ValueError:
                pass
        return str(path)

    def _sound(self, path: Path) -> str:
        """A prompt file as `STREAM FILE` wants it: the Asterisk path without `.wav`."""
        return self._asterisk_path(path.with_suffix("") if path.suffix == ".wav" else path)

    async def _submit(self, leg: _Leg, command: str) -> _AgiCommand:
        """Queue an AGI command on the leg (returns once Asterisk accepted it, not ran it)."""
        command_id = f"{self.manager.id_prefix}-agi-{next(self._command_ids)}"
        entry = _AgiCommand(leg, asyncio.get_running_loop().create_future())
        # Registered before sending: the AsyncAGIExec may come right after the response.
        self._agi_commands[command_id] = entry
        entry.future.add_done_callback(lambda _: self._agi_commands.pop(command_id, None))
        action = AmiAction.of("AGI", Channel=leg.target, Command=command, CommandID=command_id)
        try:
            await self.manager.send(action)
        except AmiActionFailed as exc:
            error: TelephonyError = (
                CallGone(f"call {leg.uniqueid} has ended", call_id=leg.uniqueid)
                if "does not exist" in exc.reason or leg.ended.is_set()
                else TelephonyError(exc.message, call_id=leg.uniqueid)
            )
            if not entry.future.done():
                entry.future.set_exception(error)
        except AmiError as exc:
            if not entry.future.done():
                entry.future.set_exception(TelephonyError(exc.message, call_id=leg.uniqueid))

        return entry

    async def _agi(self, leg: _Leg, command: str) -> agi.AgiResult:
        """Run one AGI command on a leg and return its result."""
        if leg.ended.is_set():
            raise CallGone(f"call {leg.uniqueid} has ended", call_id=leg.uniqueid)
        entry = await self._submit(leg, command)
        try:
            return await entry.future
        except asyncio.CancelledError:
            entry.future.cancel()  # nobody will read its result any more
            raise

    async def _settle(self, command: _AgiCommand) -> None:
        """Wait for a long command (a bridge) in the background; its failure is routine."""
        with contextlib.suppress(TelephonyError):
            await command.future

    async def _action(self, action: AmiAction, call_id: str) -> AmiMessage:
        try:
            return await self.manager.send(action)
        except AmiError as exc:
            raise TelephonyError(exc.message, call_id=call_id, action=action.name) from exc

    async def _ami_hangup(self, leg: _Leg, cause: HangupCause) -> None:
        action = AmiAction.of("Hangup", Channel=leg.target, Cause=_Q850[cause])
        try:
            await self.manager.send(action)
        except AmiActionFailed:
            pass  # already gone: its Hangup event is on the way (or came)
        except AmiError as exc:
            # Without a manager connection the next resync settles the leg's fate.
            log.warning("cannot hang up %s now: %s", leg.uniqueid, exc.message)

    def _spawn_hangup(self, leg: _Leg) -> None:
        self._tasks.spawn(self._ami_hangup(leg, HangupCause.NORMAL), name=f"hangup-{leg.uniqueid}")

    async def _abandon_ring(self, leg: _Leg) -> None:
        """Stop ringing an agent (the caller left, or no answer came): hang up, forget."""
        leg.reported = False
        leg.abandoned = True
        if leg.ended.is_set():
            return
        if leg.channel or leg.uniqueid in self.state.channels:
            await self._ami_hangup(leg, HangupCause.NORMAL)
        # Else the channel does not exist yet: `abandoned` hangs it up as soon as it shows.

    async def _hand_over(
        self, leg: _Leg, *, emit: bool, cause: HangupCause = HangupCause.REJECTED
    ) -> None:
        """Let the dialplan serve the caller (its fallback queue): `ASYNCAGI BREAK`."""
        set_fallback = AmiAction.of(
            "Setvar", Channel=leg.target, Variable=FALLBACK_VARIABLE, Value="1"
        )
        try:
            await self.manager.send(set_fallback)
            leaving = await self._submit(leg, agi.asyncagi_break())
            self._tasks.spawn(self._settle(leaving), name=f"hand-over-{leg.uniqueid}")
        except AmiError as exc:
            log.warning("cannot hand %s over to the dialplan: %s", leg.uniqueid, exc.message)
        leg.in_agi = False
        if not emit:
            leg.reported = False
        self._release(leg, cause)

    async def _publish_online(self, online: bool, *, manager: AmiManager | None = None) -> None:
        """Tell the dialplan whether Caruso takes calls (global variables, read per call)."""
        manager = manager or self.manager
        actions = [
            AmiAction.of("Setvar", Variable=ONLINE_VARIABLE, Value="1" if online else "0"),
            AmiAction.of("Setvar", Variable=HEARTBEAT_VARIABLE, Value=str(int(time.time()))),
        ]
        for action in actions:
            try:
                await manager.send(action)
            except AmiError as exc:
                log.debug("cannot publish Caruso's state to the dialplan: %s", exc.message)
                return

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            if self.manager.ready:
                await self._publish_online(self._accepting)


def _ring_outcome(result: OriginateResult | None) -> RingOutcome:
    if result is None:
        return RingOutcome.FAILED
    if result.success and result.reason == _ANSWERED:
        return RingOutcome.ANSWERED
    if result.reason in (_BUSY, _DECLINED):
        return RingOutcome.BUSY
    if result.reason == _NO_ANSWER:
        return RingOutcome.NO_ANSWER
    return RingOutcome.FAILED


def _cause(role: LegRole, code: int) -> HangupCause:
    """The telephony cause of a hang-up Caruso did not ask for, from its Q.850 cause."""
    if code in _NORMAL_CAUSES:
        return HangupCause.CALLER_HANGUP if role is LegRole.CALLER else HangupCause.AGENT_HANGUP
    if code in _BUSY_CAUSES:
        return HangupCause.BUSY
    if code in _NO_ANSWER_CAUSES:
        return HangupCause.NO_ANSWER
    if code in _REJECTED_CAUSES:
        return HangupCause.REJECTED
    if code in _UNREACHABLE_CAUSES:
        return HangupCause.UNREACHABLE
    return HangupCause.FAILED


def _away_cause(leg: _Leg) -> HangupCause:
    # Gone while the manager connection was down: most likely the person hung up.
    return HangupCause.CALLER_HANGUP if leg.role is LegRole.CALLER else HangupCause.AGENT_HANGUP


def _agent_id_of(uniqueid: str) -> str | None:
    token_and_agent = uniqueid[len(AGENT_PREFIX) :]
    _, sep, quoted = token_and_agent.partition("-")
    return unquote(quoted) if sep and quoted else None


def _caller_id(snapshot: ChannelSnapshot | None) -> str:
    """What the agent's phone shows: the caller's name and number."""
    if snapshot is None:
        return "Caruso"
    name = sanitize(snapshot.caller_name).replace('"', "'")
    number = sanitize(snapshot.caller_number).replace("<", "").replace(">", "")
    return f'"{name}" <{number}>' if name else f"<{number}>"


def _unknown_empty(value: str) -> str:
    return "" if value == "unknown" else value


def _wav_seconds(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / float(wav.getframerate() or SAMPLE_RATE)
    except (OSError, EOFError, wave.Error):
        return None


async def _wait_any(timeout: float, *signals: asyncio.Event) -> None:
    """Wait until one of the events is set, or the timeout passes."""
    if any(s.is_set() for s in signals):
        return
    waiters = [asyncio.ensure_future(s.wait()) for s in signals]
    try:
        await asyncio.wait(waiters, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _future_done(future: asyncio.Future[T]) -> asyncio.Event:
    """An event set when a future completes (to wait on it beside other events)."""
    done = asyncio.Event()
    if future.done():
        done.set()
    else:
        future.add_done_callback(lambda _: done.set())
    return done


def _task_done(task: asyncio.Task[None]) -> asyncio.Event:
    return _future_done(task)


__all__ = ["AGENT_PREFIX", "SPY_PREFIX", "AsteriskBackend", "LegRole"]
