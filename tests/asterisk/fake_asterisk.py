"""A fake Asterisk that speaks the manager interface (AMI) over TCP, for the backend's tests.

Asterisk cannot run here (not packaged in Debian 12, no Docker), so this plays its part, with
its own parser (it shares no code with Caruso's client, so a framing bug cannot hide on both
sides). What it does follows the AMI documentation and the recorded transcripts in
`fixtures/` (see `test_fake_against_transcripts.py`):

* banner `Asterisk Call Manager/9.0.0`, CRLF framing, `Login` (wrong credentials: `Response:
  Error` / `Authentication failed`, then the socket closes, as Asterisk does), `Permission
  denied` before login, `Logoff` (`Goodbye`), `Ping`, ActionID echoed in every response and
  list item, EventLists (`EventList: start` ... `...Complete` with `ListItems`);
* `Originate` (`Async: true`, `ChannelId`) with `OriginateResponse` (reason 4 answered, 5
  busy, 3 no answer, 0 failure), the answered channel running `AGI(agi:async)` or `ChanSpy`;
* AsyncAGI: `AsyncAGIStart` (URL-encoded `Env`), the `AGI` action, `AsyncAGIExec` with the
  command's `CommandID` and URL-encoded result, `AsyncAGIEnd`; commands ANSWER, STREAM FILE,
  WAIT FOR DIGIT, RECORD FILE (writes a WAV), SET MUSIC, SET/GET VARIABLE, EXEC Bridge,
  ASYNCAGI BREAK, HANGUP;
* `Hangup` (with `Cause`), `CoreShowChannels`, `BridgeList`, `DeviceStateList`, `Getvar`,
  `Setvar` (globals), `MixMonitor`, `StopMixMonitor`, `Redirect`, `BlindTransfer`, `Atxfer`,
  `Command`;
* unsolicited events: Newchannel, Newstate, Hangup, DTMFBegin/DTMFEnd, BridgeCreate/Enter/
  Leave/Destroy, DeviceStateChange, ContactStatus, FullyBooted, BlindTransfer,
  AttendedTransfer.

Its inbound context models the sample dialplan (`sip-testbed/asterisk/extensions.conf`): a call
goes to `AGI(agi:async)` only while the global `CARUSO_ONLINE` is 1 and `CARUSO_HEARTBEAT` is
fresh, and to the fallback queue otherwise or after `ASYNCAGI BREAK` with `CARUSO_FALLBACK=1`.
Tests drive the callers' side directly: `incoming_call`, `press`, `hangup`, `register`, phones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import wave
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from commserver.tasks import TaskSet

CRLF = "\r\n"
VERSION = "9.0.0"
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
CAUSE_TEXT = {
    16: "Normal Clearing",
    17: "User busy",
    19: "No answer",
    21: "Call Rejected",
    0: "Unknown",
}


@dataclass
class Phone:
    """An agent's phone behind Asterisk: answers after `answer_after` s (None: never)."""

    extension: str
    answer_after: float | None = 0.02
    busy: bool = False
    registered: bool = True


@dataclass(eq=False)
class FakeBridge:
    """A two-party bridge made by `Bridge()`."""

    bridge_id: str
    bridger: FakeChannel
    target: FakeChannel
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class FakeChannel:
    """One channel: its dialplan position, state, AGI queue and what happened to it."""

    uniqueid: str
    name: str
    context: str
    exten: str
    caller_num: str = ""
    caller_name: str = ""
    state: int = 4
    application: str = ""
    app_data: str = ""
    device: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    in_agi: bool = False
    agi_queue: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    digit_waiter: asyncio.Future[str] | None = None
    waiter_digits: str = ""
    moh: bool = False
    played: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    bridge: FakeBridge | None = None
    fallback: bool = False
    mixmonitor: str = ""
    spying_on: str = ""
    spy_options: str = ""
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    agi_done: asyncio.Event = field(default_factory=asyncio.Event)
    cause: int = 0
    created: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Session:
    """One manager connection."""

    writer: asyncio.StreamWriter
    logged_in: bool = False
    events: bool = True
    received: list[dict[str, str]] = field(default_factory=list)


class FakeAsterisk:
    """The fake server (see the module docstring)."""

    def __init__(
        self,
        *,
        username: str = "caruso",
        secret: str = "s3cret",
        context: str = "caruso-inbound",
        prompt_seconds: float = 0.0,
        record_seconds: float = 0.05,
        heartbeat_max_age: float = 15.0,
    ) -> None:
        self.users = {username: secret}
        self.context = context
        self.prompt_seconds = prompt_seconds
        self.record_seconds = record_seconds
        self.heartbeat_max_age = heartbeat_max_age
        self.response_delay = 0.0
        self.stalled = False
        self.phones: dict[str, Phone] = {}
        self.channels: dict[str, FakeChannel] = {}
        self.hung_up: dict[str, FakeChannel] = {}
        self.bridges: dict[str, FakeBridge] = {}
        self.globals: dict[str, str] = {}
        self.devices: dict[str, str] = {}
        self.sessions: list[Session] = []
        self.actions: list[dict[str, str]] = []
        self.logins = 0
        self.failed_logins = 0
        self._ids = itertools.count(1)
        self._tasks = TaskSet("fake-asterisk")
        self._server: asyncio.Server | None = None
        self._session_tasks: set[asyncio.Task[Any]] = set()
        self._epoch = int(time.time())

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1, a free port."""
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0, limit=1 << 20)

    @property
    def port(self) -> int:
        """The manager port."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close every session and the listener; stop every simulated channel."""
        if self._server is not None:
            self._server.close()
        self.drop_sessions()
        if self._session_tasks:
            # Handlers end once their socket closed (a delayed one is cancelled): none is left
            # to the loop's end with an unclosed socket.
            handlers = set(self._session_tasks)
            _, pending = await asyncio.wait(handlers, timeout=0.2)
            for handler in pending:
                handler.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()
        await self._tasks.cancel_all()

    def drop_sessions(self) -> None:
        """Close every manager connection (a network blip); channels stay up."""
        for session in list(self.sessions):
            session.writer.close()
        self.sessions.clear()

    # -- the callers' side ---------------------------------------------------------------------

    def phone(self, extension: str, **behaviour: object) -> Phone:
        """Add (or change) an agent's phone; it registers at once unless told otherwise."""
        phone = Phone(extension, **behaviour)  # type: ignore[arg-type]
        self.phones[extension] = phone
        if phone.registered:
            self.register(extension)
        return phone

    def register(self, extension: str) -> None:
        """The phone registers: ContactStatus Created and DeviceStateChange NOT_INUSE."""
        self.phones.setdefault(extension, Phone(extension)).registered = True
        uri = f"sip:{extension}@127.0.0.1:5070"
        self.emit(
            "ContactStatus",
            [
                ("URI", uri),
                ("ContactStatus", "Created"),
                ("AOR", extension),
                ("EndpointName", extension),
                ("RoundtripUsec", "0"),
            ],
            privilege="system,all",
        )
        self._device(f"PJSIP/{extension}", "NOT_INUSE")

    def unregister(self, extension: str) -> None:
        """The phone's registration is removed: ContactStatus Removed, UNAVAILABLE."""
        if extension in self.phones:
            self.phones[extension].registered = False
        self.emit(
            "ContactStatus",
            [
                ("URI", f"sip:{extension}@127.0.0.1:5070"),
                ("ContactStatus", "Removed"),
                ("AOR", extension),
                ("EndpointName", extension),
                ("RoundtripUsec", "0"),
            ],
            privilege="system,all",
        )
        self._device(f"PJSIP/{extension}", "UNAVAILABLE")

    def incoming_call(
        self, caller: str = "5551234", dialed: str = "100", name: str = "Alice Caller"
    ) -> FakeChannel:
        """A call from the trunk enters the inbound context and runs its dialplan."""
        n = next(self._ids)
        channel = FakeChannel(
            uniqueid=f"{self._epoch}.{n}",
            name=f"PJSIP/trunk-{n:08x}",
            context=self.context,
            exten=dialed,
            caller_num=caller,
            caller_name=name,
            state=4,
        )
        self.channels[channel.uniqueid] = channel
        self.emit("Newchannel", self.snapshot(channel))
        online = self.globals.get("CARUSO_ONLINE") == "1"
        beat = int(self.globals.get("CARUSO_HEARTBEAT", "0") or 0)
        fresh = time.time() - beat <= self.heartbeat_max_age
        if online and fresh:
            self._start_agi(channel)
        else:
            self._fallback(channel)
        return channel

    def press(self, channel: FakeChannel, digits: str) -> None:
        """The caller keys digits (DTMFBegin/DTMFEnd, and a waiting AGI command wakes)."""
        for digit in digits:
            block = self.snapshot(channel)
            self.emit(
                "DTMFBegin",
                [*block, ("Digit", digit), ("Direction", "Received")],
                privilege="dtmf,all",
            )
            self.emit(
                "DTMFEnd",
                [*block, ("Digit", digit), ("DurationMs", "120"), ("Direction", "Received")],
                privilege="dtmf,all",
            )
            waiter = channel.digit_waiter
            if waiter is not None and not waiter.done() and digit in channel.waiter_digits:
                waiter.set_result(digit)

    def hangup(self, channel: FakeChannel, cause: int = 16) -> None:
        """The party on this channel hangs up."""
        self._tasks.spawn(self._hangup(channel, cause), name=f"hangup-{channel.uniqueid}")

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        """Poll until `predicate()` is true (or fail the test with a timeout)."""
        async with asyncio.timeout(timeout):
            # Polling: the predicate reads state that other objects (the backend) own.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    def inject(self, raw: bytes) -> None:
        """Write raw bytes to every logged-in session (junk, truncated frames)."""
        for session in self.sessions:
            if session.logged_in:
                session.writer.write(raw)

    def find(self, name_or_id: str) -> FakeChannel | None:
        """A live channel by name, uniqueid or name prefix (as Asterisk looks them up)."""
        if name_or_id in self.channels:
            return self.channels[name_or_id]
        for channel in self.channels.values():
            if channel.name == name_or_id:
                return channel
        for channel in self.channels.values():
            if name_or_id and channel.name.startswith(name_or_id):
                return channel
        return None

    def agent_channels(self) -> list[FakeChannel]:
        """Live channels that Caruso originated to agents."""
        return [c for c in self.channels.values() if c.uniqueid.startswith("caruso-agent-")]

    # -- events --------------------------------------------------------------------------------

    def snapshot(self, channel: FakeChannel, prefix: str = "") -> list[tuple[str, str]]:
        """The channel block every channel event carries (Asterisk 13+ field order)."""
        return [
            (f"{prefix}Channel", channel.name),
            (f"{prefix}ChannelState", str(channel.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(channel.state, "Unknown")),
            (f"{prefix}CallerIDNum", channel.caller_num or "<unknown>"),
            (f"{prefix}CallerIDName", channel.caller_name or "<unknown>"),
            (f"{prefix}ConnectedLineNum", "<unknown>"),
            (f"{prefix}ConnectedLineName", "<unknown>"),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", channel.context),
            (f"{prefix}Exten", channel.exten),
            (f"{prefix}Priority", "1"),
            (f"{prefix}Uniqueid", channel.uniqueid),
            (f"{prefix}Linkedid", channel.uniqueid),
        ]

    def emit(
        self, name: str, fields: Iterable[tuple[str, str]], *, privilege: str = "call,all"
    ) -> None:
        """Send an event to every logged-in session that asked for events."""
        frame = _frame([("Event", name), ("Privilege", privilege), *fields])
        if self.stalled:
            return
        for session in self.sessions:
            if session.logged_in and session.events:
                session.writer.write(frame)

    def _device(self, device: str, state: str) -> None:
        if self.devices.get(device) == state:
            return
        self.devices[device] = state
        self.emit("DeviceStateChange", [("Device", device), ("State", state)])

    def _set_state(self, channel: FakeChannel, state: int) -> None:
        if channel.state != state:
            channel.state = state
            self.emit("Newstate", self.snapshot(channel))

    # -- the dialplan --------------------------------------------------------------------------

    def _start_agi(self, channel: FakeChannel) -> None:
        channel.application, channel.app_data = "AGI", "agi:async"
        channel.in_agi = True
        channel.agi_done.clear()
        env = "".join(
            f"{key}: {value}\n"
            for key, value in (
                ("agi_request", "async"),
                ("agi_channel", channel.name),
                ("agi_language", "en"),
                ("agi_type", channel.name.split("/")[0]),
                ("agi_uniqueid", channel.uniqueid),
                ("agi_version", "20.5.0"),
                ("agi_callerid", channel.caller_num or "unknown"),
                ("agi_calleridname", channel.caller_name or "unknown"),
                ("agi_callingpres", "0"),
                ("agi_dnid", channel.exten),
                ("agi_context", channel.context),
                ("agi_extension", channel.exten),
                ("agi_priority", "3"),
                ("agi_enhanced", "0.0"),
                ("agi_accountcode", ""),
                ("agi_threadid", "140000000000000"),
            )
        )
        self.emit(
            "AsyncAGIStart",
            [*self.snapshot(channel), ("Env", _uri_encode(env + "\n"))],
            privilege="agi,all",
        )
        self._tasks.spawn(self._agi_worker(channel), name=f"agi-{channel.uniqueid}")

    def _fallback(self, channel: FakeChannel) -> None:
        """The dialplan's plan B: answer and queue in Asterisk itself."""
        channel.fallback = True
        channel.application, channel.app_data = "Queue", "caruso-fallback"
        self._set_state(channel, 6)

    async def _agi_worker(self, channel: FakeChannel) -> None:
        try:
            while _agi_live(channel):
                getter = asyncio.ensure_future(channel.agi_queue.get())
                gone = asyncio.ensure_future(channel.hung_up.wait())
                await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
                gone.cancel()
                if not getter.done():
                    getter.cancel()
                    break
                command, command_id = getter.result()
                if not _agi_live(channel):
                    break  # hung up, or redirected elsewhere in the dialplan
                channel.commands.append(command)
                result, leave = await self._run_agi(channel, command)
                self.emit(
                    "AsyncAGIExec",
                    [
                        *self.snapshot(channel),
                        ("CommandID", command_id),
                        ("Result", _uri_encode(result + "\n")),
                    ],
                    privilege="agi,all",
                )
                if leave:
                    break
        finally:
            channel.in_agi = False
            self.emit("AsyncAGIEnd", self.snapshot(channel), privilege="agi,all")
            channel.agi_done.set()

    async def _wait_digit(self, channel: FakeChannel, allowed: str, seconds: float) -> str:
        """A digit from `allowed` pressed within `seconds` ('' on timeout, '-' on hang-up)."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        channel.digit_waiter, channel.waiter_digits = waiter, allowed
        gone = asyncio.ensure_future(channel.hung_up.wait())
        watched: set[asyncio.Future[Any]] = {waiter, gone}
        try:
            await asyncio.wait(watched, timeout=max(seconds, 0.0), return_when=FIRST_COMPLETED)
        finally:
            gone.cancel()
            channel.digit_waiter = None
        if waiter.done():
            return waiter.result()
        waiter.cancel()
        return "-" if channel.hung_up.is_set() else ""

    async def _run_agi(self, channel: FakeChannel, command: str) -> tuple[str, bool]:
        """Run one AGI command; returns the result line and whether AGI ends after it."""
        words = _agi_words(command)
        verb = " ".join(words[:2]).upper()
        if words and words[0].upper() == "ANSWER":
            self._set_state(channel, 6)
            return "200 result=0", False
        if words and words[0].upper() == "HANGUP":
            self.hangup(channel, 16)
            return "200 result=1", True
        if verb == "STREAM FILE" and len(words) >= 3:
            channel.played.append(words[2])
            escape = words[3] if len(words) > 3 else ""
            digit = await self._wait_digit(channel, escape, self.prompt_seconds)
            if digit == "-":
                return "200 result=-1 endpos=0", True
            code = ord(digit) if digit else 0
            return f"200 result={code} endpos={int(self.prompt_seconds * 8000)}", False
        if verb == "WAIT FOR":
            timeout_ms = int(words[3]) if len(words) > 3 else 0
            digit = await self._wait_digit(channel, "0123456789*#", timeout_ms / 1000)
            if digit == "-":
                return "200 result=-1", True
            return f"200 result={ord(digit) if digit else 0}", False
        if verb == "RECORD FILE" and len(words) >= 6:
            return await self._record(channel, words), channel.hung_up.is_set()
        if verb == "SET MUSIC":
            channel.moh = len(words) > 2 and words[2].upper() == "ON"
            return "200 result=0", False
        if verb == "SET VARIABLE" and len(words) >= 4:
            channel.variables[words[2]] = words[3]
            return "200 result=1", False
        if verb == "GET VARIABLE" and len(words) >= 3:
            value = channel.variables.get(words[2])
            return ("200 result=0" if value is None else f"200 result=1 ({value})"), False
        if verb == "ASYNCAGI BREAK":
            self._tasks.spawn(self._after_break(channel), name=f"break-{channel.uniqueid}")
            return "200 result=0", True
        if words and words[0].upper() == "EXEC" and len(words) >= 2:
            return await self._exec(channel, words[1], words[2] if len(words) > 2 else "")
        return "510 Invalid or unknown command", False

    async def _after_break(self, channel: FakeChannel) -> None:
        await channel.agi_done.wait()
        if channel.variables.get("CARUSO_FALLBACK") == "1":
            self._fallback(channel)
        else:
            await self._hangup(channel, 16)

    async def _record(self, channel: FakeChannel, words: Sequence[str]) -> str:
        path, escape, timeout_ms = words[2], words[4], int(words[5])
        channel.recorded.append(path)
        seconds = min(self.record_seconds, timeout_ms / 1000)
        started = time.monotonic()
        digit = await self._wait_digit(channel, escape, seconds)
        length = min(time.monotonic() - started, seconds) if digit else seconds
        samples = int(length * 8000)
        target = Path(f"{path}.wav")
        with contextlib.suppress(OSError):
            with wave.open(str(target), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(8000)
                wav.writeframes(bytes(samples * 2))
        if digit == "-":
            return f"200 result=-1 (hangup) endpos={samples}"
        if digit:
            return f"200 result={ord(digit)} (dtmf) endpos={samples}"
        return f"200 result=0 (timeout) endpos={samples}"

    async def _exec(self, channel: FakeChannel, application: str, data: str) -> tuple[str, bool]:
        if application.lower() != "bridge":
            return "200 result=0", False
        target = self.find(data.split(",")[0])
        if target is None or target is channel:
            channel.variables["BRIDGERESULT"] = "NONEXISTENT"
            return "200 result=0", False
        bridge = FakeBridge(f"bridge-{next(self._ids):04d}-fake", channel, target)
        self.bridges[bridge.bridge_id] = bridge
        channel.moh = False
        self.emit("BridgeCreate", _bridge_fields(bridge, 0))
        for number, member in enumerate((target, channel), start=1):
            member.bridge = bridge
            self.emit(
                "BridgeEnter",
                [*_bridge_fields(bridge, number), *self.snapshot(member)],
            )
        channel.variables["BRIDGERESULT"] = "SUCCESS"
        await bridge.ended.wait()
        return ("200 result=-1" if channel.hung_up.is_set() else "200 result=0"), False

    def _end_bridge(self, bridge: FakeBridge) -> None:
        if bridge.ended.is_set():
            return
        remaining = 2
        for member in (bridge.bridger, bridge.target):
            remaining -= 1
            if member.bridge is bridge:
                member.bridge = None
                self.emit(
                    "BridgeLeave", [*_bridge_fields(bridge, remaining), *self.snapshot(member)]
                )
        self.emit("BridgeDestroy", _bridge_fields(bridge, 0))
        self.bridges.pop(bridge.bridge_id, None)
        bridge.ended.set()

    async def _hangup(self, channel: FakeChannel, cause: int) -> None:
        if channel.hung_up.is_set():
            return
        channel.cause = cause
        channel.hung_up.set()
        bridge = channel.bridge
        if bridge is not None:
            self._end_bridge(bridge)
        if channel.in_agi:
            await channel.agi_done.wait()
        for spy in [c for c in self.channels.values() if c.spying_on == channel.name]:
            self._tasks.spawn(self._hangup(spy, 16), name=f"spy-end-{spy.uniqueid}")
        self.emit(
            "Hangup",
            [
                *self.snapshot(channel),
                ("Cause", str(cause)),
                ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")),
            ],
        )
        if channel.device:
            self._device(channel.device, "NOT_INUSE")
        self.channels.pop(channel.uniqueid, None)
        self.hung_up[channel.uniqueid] = channel
        if bridge is not None and channel is bridge.bridger:
            # Bridge() without F: the bridged party is hung up once the bridger is gone.
            await self._hangup(bridge.target, 16)

    # -- the manager interface -----------------------------------------------------------------

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self.sessions.append(session)
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(task)
            task.add_done_callback(self._session_tasks.discard)
        writer.write(f"Asterisk Call Manager/{VERSION}{CRLF}".encode())
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                fields = _parse(raw.decode("utf-8", "replace"))
                if not fields:
                    continue
                action = {k.lower(): v for k, v in fields}
                action["variable"] = ",".join(v for k, v in fields if k.lower() == "variable")
                session.received.append(action)
                self.actions.append(action)
                if self.stalled:
                    continue
                if self.response_delay:
                    await asyncio.sleep(self.response_delay)
                if not await self._dispatch(session, fields, action):
                    return
        finally:
            if session in self.sessions:
                self.sessions.remove(session)
            writer.close()

    def _reply(
        self, session: Session, action: dict[str, str], response: str, *rest: tuple[str, str]
    ) -> None:
        fields: list[tuple[str, str]] = [("Response", response)]
        if "actionid" in action:
            fields.append(("ActionID", action["actionid"]))
        fields.extend(rest)
        session.writer.write(_frame(fields))

    def _list(
        self,
        session: Session,
        action: dict[str, str],
        message: str,
        event: str,
        items: list[list[tuple[str, str]]],
    ) -> None:
        self._reply(session, action, "Success", ("EventList", "start"), ("Message", message))
        action_id = [("ActionID", action["actionid"])] if "actionid" in action else []
        for item in items:
            session.writer.write(_frame([("Event", event), *action_id, *item]))
        session.writer.write(
            _frame(
                [
                    (
                        "Event",
                        f"{event.removesuffix('Item')}Complete"
                        if event.endswith("Item")
                        else f"{event}sComplete",
                    ),
                    *action_id,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(items))),
                ]
            )
        )

    async def _dispatch(
        self, session: Session, fields: list[tuple[str, str]], action: dict[str, str]
    ) -> bool:
        name = action.get("action", "").lower()
        if not name:
            self._reply(session, action, "Error", ("Message", "Missing action in request"))
            return True
        if name == "login":
            if self.users.get(action.get("username", "")) != action.get("secret"):
                self.failed_logins += 1
                self._reply(session, action, "Error", ("Message", "Authentication failed"))
                await session.writer.drain()
                return False  # Asterisk closes the session after a failed login
            session.logged_in = True
            session.events = action.get("events", "on").lower() != "off"
            self.logins += 1
            self._reply(session, action, "Success", ("Message", "Authentication accepted"))
            if session.events:
                session.writer.write(
                    _frame(
                        [
                            ("Event", "FullyBooted"),
                            ("Privilege", "system,all"),
                            ("Uptime", "100"),
                            ("LastReload", "100"),
                            ("Status", "Fully Booted"),
                        ]
                    )
                )
            return True
        if not session.logged_in:
            self._reply(session, action, "Error", ("Message", "Permission denied"))
            return True
        handler = getattr(self, f"_action_{name}", None)
        if handler is None:
            self._reply(session, action, "Error", ("Message", "Invalid/unknown command"))
            return True
        return bool(handler(session, fields, action))

    def _action_logoff(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        self._reply(session, action, "Goodbye", ("Message", "Thanks for all the fish."))
        return False

    def _action_ping(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        self._reply(
            session, action, "Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")
        )
        return True

    def _action_command(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        output = "Asterisk 20.5.0 built by fake @ caruso-tests on a x86_64 running Linux"
        if action.get("command", "").lower() != "core show version":
            output = f"No such command '{action.get('command', '')}'"
        self._reply(
            session, action, "Success", ("Message", "Command output follows"), ("Output", output)
        )
        return True

    def _action_setvar(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        variable, value = action.get("variable", ""), action.get("value", "")
        if "channel" in action:
            channel = self.find(action["channel"])
            if channel is None:
                self._reply(session, action, "Error", ("Message", "No such channel"))
                return True
            channel.variables[variable] = value
        else:
            self.globals[variable] = value
        self._reply(session, action, "Success", ("Message", "Variable Set"))
        return True

    def _action_getvar(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        variable = action.get("variable", "")
        if "channel" in action:
            channel = self.find(action["channel"])
            if channel is None:
                self._reply(session, action, "Error", ("Message", "No such channel"))
                return True
            value = channel.variables.get(variable, "")
        else:
            value = self.globals.get(variable, "")
        self._reply(session, action, "Success", ("Variable", variable), ("Value", value))
        return True

    def _action_agi(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        name = action.get("channel", "")
        channel = self.find(name)
        if channel is None or not channel.in_agi or channel.hung_up.is_set():
            self._reply(session, action, "Error", ("Message", f"Channel {name} does not exist."))
            return True
        channel.agi_queue.put_nowait((action.get("command", ""), action.get("commandid", "")))
        self._reply(session, action, "Success", ("Message", "Added AGI command to queue"))
        return True

    def _action_hangup(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        channel = self.find(action.get("channel", ""))
        if channel is None or channel.hung_up.is_set():
            self._reply(session, action, "Error", ("Message", "No such channel"))
            return True
        self._reply(session, action, "Success", ("Message", "Channel Hungup"))
        self.hangup(channel, int(action.get("cause", "16") or 16))
        return True

    def _action_coreshowchannels(
        self, session: Session, fields: object, action: dict[str, str]
    ) -> bool:
        items = []
        for channel in self.channels.values():
            seconds = int(time.monotonic() - channel.created)
            items.append(
                [
                    *self.snapshot(channel),
                    ("BridgeId", channel.bridge.bridge_id if channel.bridge else ""),
                    ("Application", channel.application),
                    ("ApplicationData", channel.app_data),
                    (
                        "Duration",
                        f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
                    ),
                ]
            )
        self._reply(
            session, action, "Success", ("EventList", "start"), ("Message", "Channels will follow")
        )
        action_id = [("ActionID", action["actionid"])] if "actionid" in action else []
        for item in items:
            session.writer.write(_frame([("Event", "CoreShowChannel"), *action_id, *item]))
        session.writer.write(
            _frame(
                [
                    ("Event", "CoreShowChannelsComplete"),
                    *action_id,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(items))),
                ]
            )
        )
        return True

    def _action_bridgelist(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        items = [
            _bridge_fields(
                bridge, sum(1 for m in (bridge.bridger, bridge.target) if m.bridge is bridge)
            )
            for bridge in self.bridges.values()
        ]
        self._list(session, action, "Bridge listing will follow", "BridgeListItem", items)
        return True

    def _action_devicestatelist(
        self, session: Session, fields: object, action: dict[str, str]
    ) -> bool:
        self._reply(
            session,
            action,
            "Success",
            ("EventList", "start"),
            ("Message", "Device State Changes will follow"),
        )
        action_id = [("ActionID", action["actionid"])] if "actionid" in action else []
        for device, state in self.devices.items():
            session.writer.write(
                _frame(
                    [
                        ("Event", "DeviceStateChange"),
                        *action_id,
                        ("Device", device),
                        ("State", state),
                    ]
                )
            )
        session.writer.write(
            _frame(
                [
                    ("Event", "DeviceStateListComplete"),
                    *action_id,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(self.devices))),
                ]
            )
        )
        return True

    def _action_mixmonitor(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        channel = self.find(action.get("channel", ""))
        if channel is None:
            self._reply(session, action, "Error", ("Message", "No such channel"))
            return True
        channel.mixmonitor = action.get("file", "")
        self._reply(session, action, "Success")
        return True

    def _action_stopmixmonitor(
        self, session: Session, fields: object, action: dict[str, str]
    ) -> bool:
        channel = self.find(action.get("channel", ""))
        if channel is None or not channel.mixmonitor:
            self._reply(session, action, "Error", ("Message", "Could not stop MixMonitor"))
            return True
        channel.mixmonitor = ""
        self._reply(session, action, "Success")
        return True

    def _action_redirect(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        channel = self.find(action.get("channel", ""))
        if channel is None:
            self._reply(session, action, "Error", ("Message", "Channel does not exist"))
            return True
        self._move(channel, action.get("context", ""), action.get("exten", ""))
        self._reply(session, action, "Success", ("Message", "Redirect successful"))
        return True

    def _action_blindtransfer(
        self, session: Session, fields: object, action: dict[str, str]
    ) -> bool:
        transferer = self.find(action.get("channel", ""))
        bridge = transferer.bridge if transferer is not None else None
        if transferer is None or bridge is None:
            self._reply(session, action, "Error", ("Message", "Transfer failed"))
            return True
        transferee = bridge.bridger if bridge.target is transferer else bridge.target
        self._reply(session, action, "Success", ("Message", "Transfer succeeded"))
        self.emit(
            "BlindTransfer",
            [
                ("Result", "Success"),
                *self.snapshot(transferer, "Transferer"),
                *self.snapshot(transferee, "Transferee"),
                ("IsExternal", "No"),
                ("Context", action.get("context", "")),
                ("Extension", action.get("exten", "")),
            ],
        )
        self._end_bridge(bridge)
        self._move(transferee, action.get("context", ""), action.get("exten", ""))
        self.hangup(transferer, 16)
        return True

    def _action_atxfer(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        transferer = self.find(action.get("channel", ""))
        bridge = transferer.bridge if transferer is not None else None
        if transferer is None or bridge is None:
            self._reply(session, action, "Error", ("Message", "No such channel"))
            return True
        self._reply(session, action, "Success", ("Message", "Atxfer successfully queued"))
        transferee = bridge.bridger if bridge.target is transferer else bridge.target
        self._tasks.spawn(self._complete_atxfer(transferer, transferee, action), name="atxfer")
        return True

    async def _complete_atxfer(
        self, transferer: FakeChannel, transferee: FakeChannel, action: dict[str, str]
    ) -> None:
        await asyncio.sleep(0.02)  # the agent consults, then hangs up to complete
        self.emit(
            "AttendedTransfer",
            [
                ("Result", "Success"),
                *self.snapshot(transferer, "OrigTransferer"),
                *self.snapshot(transferee, "Transferee"),
                ("DestType", "Bridge"),
                ("DestExtension", action.get("exten", "")),
            ],
        )
        if transferee.bridge is not None:
            self._end_bridge(transferee.bridge)
        self._move(transferee, action.get("context", ""), action.get("exten", ""))
        await self._hangup(transferer, 16)

    def _move(self, channel: FakeChannel, context: str, exten: str) -> None:
        """Send a channel elsewhere in the dialplan (it leaves AsyncAGI)."""
        channel.context, channel.exten = context, exten
        channel.application, channel.app_data = "Dial", exten
        if channel.in_agi:
            channel.in_agi = False
            channel.agi_queue.put_nowait(("NOOP", ""))  # wake the worker so it ends

    def _action_originate(self, session: Session, fields: object, action: dict[str, str]) -> bool:
        call = self._tasks.spawn(
            self._originate(action), name=f"originate-{action.get('actionid')}"
        )
        if action.get("async", "").lower() == "true":
            self._reply(session, action, "Success", ("Message", "Originate successfully queued"))
        else:
            # Synchronous: the answer waits for the outcome (it holds up this session).
            call.add_done_callback(lambda done: self._sync_originate_reply(session, action, done))
        return True

    def _sync_originate_reply(
        self, session: Session, action: dict[str, str], done: asyncio.Task[bool]
    ) -> None:
        if done.cancelled() or done.exception() is not None or not done.result():
            self._reply(session, action, "Error", ("Message", "Originate failed"))
        else:
            self._reply(session, action, "Success", ("Message", "Originate successfully queued"))

    async def _originate(self, action: dict[str, str]) -> bool:
        dial = action.get("channel", "")
        tech, _, rest = dial.partition("/")
        extension = rest.split("@")[0]
        phone = self.phones.get(extension) if tech.upper() == "PJSIP" else None
        application, data = action.get("application", ""), action.get("data", "")
        timeout = int(action.get("timeout", "30000")) / 1000
        n = next(self._ids)
        uniqueid = action.get("channelid") or f"{self._epoch}.{n}"
        base = [("ActionID", action.get("actionid", ""))] if "actionid" in action else []

        def response(success: bool, reason: int, channel_name: str = "") -> None:
            self.emit(
                "OriginateResponse",
                [
                    *base,
                    ("Response", "Success" if success else "Failure"),
                    ("Channel", channel_name or dial),
                    ("Context", ""),
                    ("Exten", ""),
                    ("Application", application),
                    ("Data", data),
                    ("Reason", str(reason)),
                    ("Uniqueid", uniqueid if channel_name else "<null>"),
                    ("CallerIDNum", "<unknown>"),
                    ("CallerIDName", "<unknown>"),
                ],
            )

        if phone is None or not phone.registered:
            await asyncio.sleep(0)
            response(False, 0)
            return False
        channel = FakeChannel(
            uniqueid=uniqueid,
            name=f"{dial}-{n:08x}",
            context="caruso-agent",
            exten=extension,
            state=0,
            device=f"PJSIP/{extension}",
            caller_num=extension,
        )
        for item in _variables(action):
            key, _, value = item.partition("=")
            channel.variables[key] = value
        self.channels[uniqueid] = channel
        self.emit("Newchannel", self.snapshot(channel))
        self._set_state(channel, 5)
        self._device(channel.device, "RINGING")
        if phone.busy:
            await asyncio.sleep(0.005)
            await self._hangup(channel, 17)
            response(False, 5)
            return False
        wait = timeout if phone.answer_after is None else min(phone.answer_after, timeout)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await channel.hung_up.wait()
        if channel.hung_up.is_set():
            response(False, 1)
            return False
        if phone.answer_after is None or phone.answer_after > timeout:
            await self._hangup(channel, 19)
            response(False, 3)
            return False
        self._set_state(channel, 6)
        self._device(channel.device, "INUSE")
        response(True, 4, channel.name)
        if application.lower() == "agi":
            self._start_agi(channel)
        elif application.lower() == "chanspy":
            target, _, options = data.partition(",")
            spied = self.find(target)
            channel.application, channel.app_data = "ChanSpy", data
            channel.spying_on, channel.spy_options = (spied.name if spied else target), options
        else:
            channel.application, channel.app_data = application, data
        return True


def _uri_encode(text: str) -> str:
    """URL-encoding as Asterisk's `ast_uri_encode` does it (`/` encoded, `()` kept)."""
    return quote(text, safe="!*'()")


def _agi_live(channel: FakeChannel) -> bool:
    return channel.in_agi and not channel.hung_up.is_set()


def _frame(fields: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{key}: {value}{CRLF}" for key, value in fields) + CRLF).encode()


def _parse(text: str) -> list[tuple[str, str]]:
    fields = []
    for line in text.split(CRLF):
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields.append((key.strip(), value.strip()))
    return fields


def _variables(action: dict[str, str]) -> list[str]:
    # Every `Variable:` line of the action, joined by the session reader.
    return [v for v in action.get("variable", "").split(",") if v]


def _bridge_fields(bridge: FakeBridge, members: int) -> list[tuple[str, str]]:
    return [
        ("BridgeUniqueid", bridge.bridge_id),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", str(members)),
        ("BridgeVideoSourceMode", "none"),
    ]


def _agi_words(command: str) -> list[str]:
    """Split an AGI command line like Asterisk does: spaces, double quotes, backslashes."""
    words: list[str] = []
    current = ""
    quoted = escaped = started = False
    for char in command:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            started = True
        elif char == " " and not quoted:
            if current or started:
                words.append(current)
            current, started = "", False
        else:
            current += char
    if current or started:
        words.append(current)
    return words
