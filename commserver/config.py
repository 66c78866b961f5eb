"""Caruso's one TOML configuration: typed sections with documented defaults, loaded strictly.

Every section is a frozen dataclass; an unknown key, a wrong type or an inconsistent reference is
refused at start with a message naming the key and the file (see docs/configuration.md).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from acd import AcdConfig, AcdError, ActionKind, QueueConfig
from acd.config import acd_config_from_mapping
from commserver.errors import ConfigError
from ivr.hours import HoursError, OpeningHours, parse_hours
from ivr.voicemail import BOX_NAME
from scripts_engine.actions import InvalidEmail, build_email
from scripts_engine.effects import EmailEffect

T = TypeVar("T")


class BackendName(enum.Enum):
    """The telephony backend that carries calls."""

    SIM = "sim"
    SIP = "sip"
    ASTERISK = "asterisk"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Process-wide settings."""

    data_dir: Path = Path("var")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    drain_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The web front (monitor, agent desktop, REST API)."""

    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where business objects live. An empty url means SQLite at `<data_dir>/caruso.db`."""

    url: str = ""
    models: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class SimSettings:
    """The simulated backend: agents' phones answer after `answer_delay` seconds."""

    answer_delay: float = 0.5


@dataclass(frozen=True, slots=True)
class SipSettings:
    """The embedded SIP server: where it listens, its media ports, the trunk, agents' phones."""

    host: str = "127.0.0.1"
    port: int = 5060
    advertised_host: str = ""
    realm: str = "caruso"
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    trunk: str = ""
    ready_on_register: bool = False
    reach_contacts_at_source: bool = False
    max_calls: int = 0


@dataclass(frozen=True, slots=True)
class AsteriskSettings:
    """The `asterisk` backend: the manager (AMI) login, reconnect timing, dialplan names.

    `secret` is never logged (nor shown in this object's repr).
    """

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "caruso"
    secret: str = field(default="", repr=False)
    connect_timeout: float = 10.0
    action_timeout: float = 5.0
    ping_interval: float = 5.0
    reconnect_min: float = 0.2
    reconnect_max: float = 2.0
    context: str = "caruso-inbound"
    transfer_context: str = "caruso-transfer"
    agent_channel: str = "PJSIP/{extension}"
    external_channel: str = ""
    media_dir: str = ""
    music_class: str = "default"
    hangup_on_stop: bool = False


@dataclass(frozen=True, slots=True)
class TelephonySettings:
    """Which backend carries calls, and settings every backend shares."""

    backend: BackendName = BackendName.SIP
    ring_timeout: float = 15.0
    max_calls: int = 500
    #: Numbers agents may dial out to or be rung at (external phones): a regular expression
    #: the whole number must match. Narrow it to the country or prefixes the site calls.
    outbound_number_pattern: str = r"^\+?[0-9]{3,20}$"
    sim: SimSettings = field(default_factory=SimSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    asterisk: AsteriskSettings = field(default_factory=AsteriskSettings)


@dataclass(frozen=True, slots=True)
class ServicesSettings:
    """The service manager: remote registration, call limits, the built-in customer directory."""

    registration_token: str = ""
    call_timeout: float = 5.0
    customer_directory: Literal["", "legacy"] = ""


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The server's side of an agent: who they are and where their phone is.

    The same `[[agents]]` table also carries the ACD's keys (`skills`, `capacity`), which
    `acd.config` reads into the agent's `AgentConfig`.
    """

    id: str
    name: str = ""
    extension: str = ""
    external_number: str = ""
    sip_password: str = ""
    logged_in: bool = False


@dataclass(frozen=True, slots=True)
class MenuSettings:
    """The main IVR menu: a prompt and a queue per digit, with timeout and retries."""

    prompt: str = "Welcome. For support press 1, for billing press 2."
    choices: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    retries: int = 2
    default_queue: str = ""


@dataclass(frozen=True, slots=True)
class HoursSettings:
    """Business hours (local to `timezone`) and holidays; no weekly hours means always open."""

    timezone: str = "UTC"
    weekly: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    holidays: tuple[str, ...] = ()
    closed_prompt: str = "We are closed right now. Please call again during our opening hours."

    def opening_hours(self) -> OpeningHours:
        """The calendar these settings describe (raises `HoursError` if malformed)."""
        return parse_hours(self.weekly, self.holidays, self.timezone)


@dataclass(frozen=True, slots=True)
class IvrSettings:
    """The IVR: the numbers it answers, its menu, caller identification, queue announcements."""

    numbers: tuple[str, ...] = ("100",)
    menu: MenuSettings = field(default_factory=MenuSettings)
    ask_customer_number: bool = False
    announce_every: float = 45.0
    hours: HoursSettings = field(default_factory=HoursSettings)


@dataclass(frozen=True, slots=True)
class ScriptsSettings:
    """Dialog scripts: the folder they load from, and where each runs.

    `folder` None means the scripts shipped in `dialog_scripts/`. `queues` maps a queue to
    the script of the agent desktop's pane, `phone` a dialled number (one of `ivr.numbers`)
    to the script the phone runs instead of the menu, `public` lists the scripts of the
    public self-service page. E-mail actions go out through `[smtp]` (skipped without a host).
    """

    folder: Path | None = None
    queues: Mapping[str, str] = field(default_factory=dict)
    phone: Mapping[str, str] = field(default_factory=dict)
    public: tuple[str, ...] = ()
    phone_key_timeout: float = 8.0
    phone_retries: int = 2


@dataclass(frozen=True, slots=True)
class SmtpServerSettings:
    """`[smtp]`: the one mail server Caruso sends through: voicemail, dialog-script e-mails.

    An empty `host` sends nothing (voicemail keeps retrying later; script e-mails are recorded
    as skipped). `password` is never logged (nor in the repr).
    """

    host: str = ""
    port: int = 25
    mail_from: str = "caruso@localhost.localdomain"
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class VoicemailBoxSettings:
    """One `[voicemail.boxes.<name>]`: a queue's box (named like it) or an agent's (`agent`).

    `email` lists who gets each message as an attachment; `callback_queue` (default: the queue
    of the box's name) is where its unheard messages become callbacks; `callback = false`
    keeps them out of the callback routing.
    """

    email: tuple[str, ...] = ()
    agent: str = ""
    callback_queue: str = ""
    callback: bool = True


@dataclass(frozen=True, slots=True)
class VoicemailSettings:
    """`[voicemail]`: message length, e-mail retries, callbacks, and the boxes.

    A message is recorded for at most `max_seconds` (it ends earlier on '#', silence or a
    hang-up). A message nobody has heard after `callback_after` seconds becomes a callback
    routed to an agent (0: never), who has `callback_work_limit` seconds to call back. A
    failed e-mail is retried after `email_retry` seconds, doubling, `email_attempts` times.
    """

    max_seconds: float = 120.0
    callback_after: float = 0.0
    callback_work_limit: float = 600.0
    email_attempts: int = 8
    email_retry: float = 60.0
    boxes: Mapping[str, VoicemailBoxSettings] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of one Caruso site."""

    server: ServerSettings = field(default_factory=ServerSettings)
    web: WebSettings = field(default_factory=WebSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    telephony: TelephonySettings = field(default_factory=TelephonySettings)
    services: ServicesSettings = field(default_factory=ServicesSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)
    scripts: ScriptsSettings = field(default_factory=ScriptsSettings)
    smtp: SmtpServerSettings = field(default_factory=SmtpServerSettings)
    voicemail: VoicemailSettings = field(default_factory=VoicemailSettings)
    acd: AcdConfig = field(default_factory=lambda: AcdConfig(queues=()))
    agents: tuple[AgentSettings, ...] = ()
    source: Path | None = field(default=None, compare=False)

    @property
    def queues(self) -> tuple[QueueConfig, ...]:
        """The queues, as the ACD reads them from `[[queues]]`."""
        return self.acd.queues

    @property
    def storage_url(self) -> str:
        """The SQLAlchemy URL of the store, defaulting to SQLite under the data folder."""
        if self.storage.url:
            return self.storage.url
        return f"sqlite+aiosqlite:///{self.server.data_dir / 'caruso.db'}"


def load_config(path: Path | None) -> Config:
    """Read and check a TOML file; `None` gives the embedded defaults."""
    if path is None:
        return _check(Config())
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", file=str(path)) from None
    return config_from_mapping(raw, source=path)


def config_from_mapping(raw: Mapping[str, Any], *, source: Path | None = None) -> Config:
    """Build a checked `Config` from already-parsed TOML data."""
    where = str(source) if source else "<config>"
    data = dict(raw)
    acd_config = _acd_config(data, where)
    config = _convert(Config, data, "", where)
    config = dataclasses.replace(config, acd=acd_config, source=source)
    return _check(config)


# Keys of an `[[agents]]` table that only the ACD reads.
_ACD_AGENT_KEYS = frozenset({"skills", "capacity"})


def _acd_config(data: dict[str, Any], where: str) -> AcdConfig:
    """Take `[acd]`, `[[queues]]` and the ACD's part of `[[agents]]` out of `data` for `acd`.

    A queue without its own `ring_timeout` takes `[telephony] ring_timeout`.
    """
    part: dict[str, Any] = {k: data.pop(k) for k in ("acd", "queues") if k in data}
    telephony = data.get("telephony", {})
    default_ring = telephony.get("ring_timeout") if isinstance(telephony, Mapping) else None
    if isinstance(default_ring, int | float) and isinstance(part.get("queues"), list):
        part["queues"] = [
            {"ring_timeout": default_ring, **q} if isinstance(q, Mapping) else q
            for q in part["queues"]
        ]
    agents = data.get("agents", [])
    part["agents"] = agents
    server_keys = {f.name for f in dataclasses.fields(AgentSettings)} - {"id", "name"}
    try:
        acd_config = acd_config_from_mapping(part, extra_agent_keys=server_keys)
    except AcdError as exc:
        raise ConfigError(f"{where}: {exc}", file=where, **exc.details) from None
    if isinstance(agents, list):
        data["agents"] = [
            {k: v for k, v in a.items() if k not in _ACD_AGENT_KEYS}
            if isinstance(a, Mapping)
            else a
            for a in agents
        ]
    return acd_config


def _convert(tp: Any, value: Any, key: str, where: str) -> Any:
    shown = key or "(top level)"
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(tp) if a is not type(None)]
        return _convert(options[0], value, key, where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: '{shown}' must be a table", key=shown, file=where)
        hints = typing.get_type_hints(tp)
        known = {f.name: f for f in dataclasses.fields(tp) if f.name != "source"}
        for name in value:
            if name not in known:
                full = f"{key}.{name}" if key else name
                raise ConfigError(
                    f"{where}: unknown key '{full}' (known here: {', '.join(sorted(known))})",
                    key=full,
                    file=where,
                )
        kwargs: dict[str, Any] = {}
        for name, fld in known.items():
            full = f"{key}.{name}" if key else name
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], full, where)
            elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key '{full}'", key=full, file=where)
        return tp(**kwargs)
    if origin is tuple:
        (item_type, _) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: '{shown}' must be a list", key=shown, file=where)
        return tuple(_convert(item_type, v, f"{key}[{i}]", where) for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is Mapping:
        _key_type, value_type = get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: '{shown}' must be a table", key=shown, file=where)
        return {str(k): _convert(value_type, v, f"{key}.{k}", where) for k, v in value.items()}
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{where}: '{shown}' must be one of {', '.join(map(str, allowed))}, not {value!r}",
                key=shown,
                file=where,
            )
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed_values = ", ".join(str(m.value) for m in tp)
            raise ConfigError(
                f"{where}: '{shown}' must be one of {allowed_values}, not {value!r}",
                key=shown,
                file=where,
            ) from None
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: '{shown}' must be a path string", key=shown, file=where)
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, float, bool):
        if type(value) is not tp:
            raise ConfigError(
                f"{where}: '{shown}' must be {tp.__name__}, not {type(value).__name__} {value!r}",
                key=shown,
                file=where,
            )
        return value
    raise TypeError(f"configuration type {tp!r} is not supported")  # a bug in this module


def _check_sip(sip: SipSettings, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    """The `[telephony.sip]` section: ports, the media range, the trunk address."""
    if not 0 <= sip.port <= 65535:
        fail("telephony.sip.port", f"{sip.port} is not a UDP port (1-65535, or 0 for any)")
    if sip.host in ("0.0.0.0", "::") and not sip.advertised_host:
        fail("telephony.sip.advertised_host", "needed when host is a wildcard address")
    low, high = sip.rtp_port_min, sip.rtp_port_max
    if (low, high) != (0, 0):
        if not 1024 <= low <= high <= 65535:
            fail("telephony.sip.rtp_port_min", f"range {low}-{high} is not within 1024-65535")
        if low == high and low % 2:
            fail("telephony.sip.rtp_port_max", "the RTP range needs at least one even port")
    if sip.trunk:
        host, _, port = sip.trunk.rpartition(":") if ":" in sip.trunk else (sip.trunk, "", "")
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            fail("telephony.sip.trunk", f"'{sip.trunk}' is not host or host:port")
    if sip.max_calls < 0:
        fail("telephony.sip.max_calls", "must not be negative (0: twice telephony.max_calls)")
    if not sip.realm:
        fail("telephony.sip.realm", "must not be empty")


def _check_asterisk(config: Config, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    """The `[telephony.asterisk]` section (login needed only when it is the backend)."""
    ast = config.telephony.asterisk
    key = "telephony.asterisk"
    if not 0 < ast.port <= 65535:
        fail(f"{key}.port", f"{ast.port} is not a TCP port (1-65535)")
    for name in ("connect_timeout", "action_timeout", "ping_interval", "reconnect_min"):
        if getattr(ast, name) <= 0:
            fail(f"{key}.{name}", "must be positive")
    if ast.reconnect_max < ast.reconnect_min:
        fail(f"{key}.reconnect_max", "must not be smaller than reconnect_min")
    if "{extension}" not in ast.agent_channel:
        fail(f"{key}.agent_channel", "must contain {extension}, e.g. 'PJSIP/{extension}'")
    if ast.external_channel and "{number}" not in ast.external_channel:
        fail(f"{key}.external_channel", "must contain {number}, e.g. 'PJSIP/{number}@trunk'")
    if config.telephony.backend is BackendName.ASTERISK:
        if not ast.host:
            fail(f"{key}.host", "the manager's address is needed")
        if not ast.username or not ast.secret:
            name = "username" if not ast.username else "secret"
            fail(f"{key}.{name}", "needed to log in to the Asterisk manager (manager.conf)")
        if not ast.context:
            fail(f"{key}.context", "the dialplan context of Caruso's inbound calls is needed")


def _check(config: Config) -> Config:
    """Cross-checks a type system cannot express: names unique, references resolvable."""
    where = str(config.source) if config.source else "<config>"

    def fail(key: str, message: str) -> typing.NoReturn:
        raise ConfigError(f"{where}: '{key}': {message}", key=key, file=where)

    if not 0 <= config.web.port <= 65535:
        fail("web.port", f"{config.web.port} is not a TCP port (1-65535, or 0 for any free port)")
    if config.telephony.ring_timeout <= 0:
        fail("telephony.ring_timeout", "must be positive")
    try:
        re.compile(config.telephony.outbound_number_pattern)
    except re.error as exc:
        fail("telephony.outbound_number_pattern", f"not a regular expression: {exc}")
    if config.server.drain_timeout < 0:
        fail("server.drain_timeout", "must not be negative")
    queue_names = {queue.name for queue in config.queues}
    for i, queue in enumerate(config.queues):
        for limit in ("on_max_wait", "on_full", "on_no_agents", "on_closed"):
            action = getattr(queue, limit)
            if action is not None and action.action is ActionKind.CALLBACK:
                fail(
                    f"queues[{i}].{limit}",
                    "callback is not available yet (dialling customers back needs outbound "
                    "calls); use voicemail, queue, announcement or hangup",
                )
    _check_sip(config.telephony.sip, fail)
    _check_asterisk(config, fail)
    agent_ids: set[str] = set()
    extensions: set[str] = set()
    for i, agent in enumerate(config.agents):
        if agent.id in agent_ids:
            fail(f"agents[{i}].id", f"agent '{agent.id}' is defined twice")
        agent_ids.add(agent.id)
        if agent.extension:
            if agent.extension in extensions:
                fail(f"agents[{i}].extension", f"extension {agent.extension} is used twice")
            if agent.extension in config.ivr.numbers:
                fail(f"agents[{i}].extension", f"{agent.extension} is also an IVR number")
            extensions.add(agent.extension)
        if agent.sip_password and not agent.extension:
            fail(f"agents[{i}].sip_password", "a SIP password needs an extension to register")
    try:
        config.ivr.hours.opening_hours()
    except HoursError as exc:
        fail(f"ivr.hours.{str(exc).split(':', 1)[0]}", str(exc).split(": ", 1)[-1])
    menu = config.ivr.menu
    for digit, queue_name in menu.choices.items():
        if digit not in "0123456789*#" or len(digit) != 1:
            fail(f"ivr.menu.choices.{digit}", "a choice must be one DTMF key (0-9, *, #)")
        if queue_name not in queue_names:
            fail(f"ivr.menu.choices.{digit}", f"no queue named '{queue_name}' in [[queues]]")
    if menu.default_queue and menu.default_queue not in queue_names:
        fail("ivr.menu.default_queue", f"no queue named '{menu.default_queue}' in [[queues]]")
    _check_scripts(config, queue_names, fail)
    _check_voicemail(config, queue_names, agent_ids, fail)
    return config


def _check_scripts(
    config: Config, queue_names: set[str], fail: typing.Callable[[str, str], typing.NoReturn]
) -> None:
    """The `[scripts]` section; whether the named scripts exist is checked when they load."""
    scripts = config.scripts
    for queue_name, script_id in scripts.queues.items():
        if queue_name not in queue_names:
            fail(f"scripts.queues.{queue_name}", f"no queue named '{queue_name}' in [[queues]]")
        if not script_id:
            fail(f"scripts.queues.{queue_name}", "the script id must not be empty")
    for number, script_id in scripts.phone.items():
        if number not in config.ivr.numbers:
            fail(f"scripts.phone.{number}", f"{number} is not one of ivr.numbers, so no call to it "
                 "reaches the IVR; add it there")
        if not script_id:
            fail(f"scripts.phone.{number}", "the script id must not be empty")
    for i, script_id in enumerate(scripts.public):
        if not script_id:
            fail(f"scripts.public[{i}]", "the script id must not be empty")
    if scripts.phone_key_timeout <= 0:
        fail("scripts.phone_key_timeout", "must be positive")
    if scripts.phone_retries < 0:
        fail("scripts.phone_retries", "must not be negative")


def _check_voicemail(
    config: Config,
    queue_names: set[str],
    agent_ids: set[str],
    fail: typing.Callable[[str, str], typing.NoReturn],
) -> None:
    """`[smtp]` and `[voicemail]`: box names are folder names, addresses must be deliverable."""
    smtp, voicemail = config.smtp, config.voicemail
    if not 0 < smtp.port <= 65535:
        fail("smtp.port", f"{smtp.port} is not a TCP port (1-65535)")
    if smtp.timeout <= 0:
        fail("smtp.timeout", "must be positive")
    if smtp.password and not smtp.username:
        fail("smtp.password", "a password needs smtp.username")
    if not 0 < voicemail.max_seconds <= 3600:
        fail("voicemail.max_seconds", "must be more than 0 and at most 3600")
    if voicemail.callback_after < 0:
        fail("voicemail.callback_after", "must not be negative (0: never)")
    if voicemail.callback_work_limit <= 0:
        fail("voicemail.callback_work_limit", "must be positive")
    if voicemail.email_attempts < 1:
        fail("voicemail.email_attempts", "must be at least 1")
    if voicemail.email_retry <= 0:
        fail("voicemail.email_retry", "must be positive")
    for i, queue in enumerate(config.queues):
        for limit in ("on_max_wait", "on_full", "on_no_agents", "on_closed"):
            action = getattr(queue, limit)
            if action is None or action.action is not ActionKind.VOICEMAIL:
                continue
            # Without a target the queue's own name is the box, and a box is a folder name.
            box = action.target or queue.name
            if not BOX_NAME.match(box):
                fail(
                    f"queues[{i}].{limit}.target",
                    f"'{box}' is not a voicemail box name (letters, digits, '.', '_' or '-'; "
                    "at most 64)",
                )
    for name, box in voicemail.boxes.items():
        key = f"voicemail.boxes.{name}"
        if not BOX_NAME.match(name):
            fail(key, "a box name is letters, digits, '.', '_' or '-' (at most 64)")
        if box.agent and box.agent not in agent_ids:
            fail(f"{key}.agent", f"no agent '{box.agent}' in [[agents]]")
        if box.callback_queue and box.callback_queue not in queue_names:
            fail(f"{key}.callback_queue", f"no queue named '{box.callback_queue}' in [[queues]]")
        if box.email and not smtp.host:
            fail(f"{key}.email", "e-mail needs a mail server: set [smtp] host")
        for address in box.email:
            problem = _address_problem(address, smtp.mail_from)
            if problem:
                fail(f"{key}.email", problem)


def _address_problem(address: str, sender: str) -> str | None:
    """Why an e-mail from `sender` to `address` could not be sent (the sender's very rules)."""
    try:
        build_email(EmailEffect("check", address, "", "", False), sender)
    except InvalidEmail as exc:
        return str(exc)
    return None
