"""AsyncAGI over AMI: command lines, result lines and the start environment.

A channel that runs `AGI(agi:async)` in the dialplan raises `AsyncAGIStart` (with its AGI
environment, URL-encoded in `Env`) and then waits for commands sent with the AMI `AGI` action;
each command's outcome comes back as an `AsyncAGIExec` event with the `CommandID` we chose and
the AGI result line, URL-encoded, in `Result` (Asterisk 11 and older: `Event: AsyncAGI` with
`SubEvent: Start/Exec/End`, which `commserver.asterisk.events` accepts too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

ALL_DIGITS = "0123456789*#"
_RESULT = re.compile(r"^(?P<code>\d{3})[ -]?(?P<rest>.*)$", re.DOTALL)
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z_]+)=(?P<value>\S*)(?:\s+\((?P<data>[^)]*)\))?")


@dataclass(frozen=True, slots=True)
class AgiResult:
    """One AGI result line: `200 result=49 (dtmf) endpos=8000` and the like."""

    code: int
    result: str = ""
    data: str = ""
    extras: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    lost: bool = False
    """True when the result never arrived (the manager connection dropped) and was presumed."""

    @property
    def ok(self) -> bool:
        """The command ran (code 200) and did not report a failure or a hang-up."""
        return self.code == 200 and self.result != "-1" and self.data != "hangup"

    @property
    def value(self) -> int | None:
        """`result=` as an integer, if it is one."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def digit(self) -> str | None:
        """The key that ended a prompt or wait (results carry its ASCII code), if any."""
        value = self.value
        if value is None or value <= 0:
            return None
        char = chr(value)
        return char if char in ALL_DIGITS + "ABCD" else None

    @property
    def endpos(self) -> int:
        """`endpos=` (samples played or recorded), 0 if absent."""
        try:
            return int(self.extras.get("endpos", "0"))
        except ValueError:
            return 0


def parse_result(text: str) -> AgiResult:
    """Parse an AGI result line (already URL-decoded); unknown shapes keep their raw text."""
    line = text.strip()
    if line == "HANGUP":
        return AgiResult(code=511, data="hangup", text=line)
    match = _RESULT.match(line)
    if match is None:
        return AgiResult(code=0, text=line)
    code = int(match["code"])
    rest = match["rest"]
    if code != 200:
        return AgiResult(code=code, data=rest.strip(), text=line)
    result = ""
    data = ""
    extras: dict[str, str] = {}
    for item in _KEY_VALUE.finditer(rest):
        key, value = item["key"], item["value"]
        if key == "result":
            result = value
            data = item["data"] or ""
        else:
            extras[key] = value
    if not data:
        # `200 result= (timeout)`: the empty value swallows nothing, the data stands alone.
        alone = re.search(r"\(([^)]*)\)", rest)
        data = alone.group(1) if alone else ""
    return AgiResult(code=code, result=result, data=data, extras=extras, text=line)


def parse_encoded_result(encoded: str) -> AgiResult:
    """Parse the URL-encoded `Result` of an `AsyncAGIExec` event."""
    return parse_result(unquote(encoded))


def parse_env(encoded: str) -> dict[str, str]:
    """The `Env` of `AsyncAGIStart`: `agi_channel`, `agi_callerid`, `agi_extension`..."""
    env: dict[str, str] = {}
    for line in unquote(encoded).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            env[key.strip()] = value.strip()
    return env


def quote(argument: str) -> str:
    """One AGI argument, quoted so spaces, quotes and backslashes survive Asterisk's parser."""
    cleaned = "".join(ch if ch >= " " else " " for ch in argument)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def answer() -> str:
    """Answer the channel."""
    return "ANSWER"


def hangup() -> str:
    """Hang the channel up from inside AGI."""
    return "HANGUP"


def stream_file(sound: str, escape_digits: str = ALL_DIGITS) -> str:
    """Play a sound file (path without extension); a key in `escape_digits` interrupts it."""
    return f"STREAM FILE {quote(sound)} {quote(escape_digits)}"


def wait_for_digit(timeout_ms: int) -> str:
    """Wait for one key press (`-1` waits forever)."""
    return f"WAIT FOR DIGIT {timeout_ms}"


def record_file(
    path: str, *, timeout_ms: int, silence_seconds: int, escape_digits: str = "#", beep: bool
) -> str:
    """Record to `path`.wav until a key in `escape_digits`, silence, hang-up or the limit."""
    beep_word = " BEEP" if beep else ""
    return (
        f"RECORD FILE {quote(path)} wav {quote(escape_digits)} {timeout_ms} 0"
        f"{beep_word} s={silence_seconds}"
    )


def set_music(on: bool, music_class: str = "default") -> str:
    """Start or stop music on hold (a generator: returns at once, plays until stopped)."""
    return f"SET MUSIC {'ON' if on else 'OFF'} {quote(music_class)}"


def set_variable(name: str, value: str) -> str:
    """Set a channel variable."""
    return f"SET VARIABLE {quote(name)} {quote(value)}"


def exec_application(application: str, data: str) -> str:
    """Run a dialplan application (`Bridge`, `MixMonitor`...) on the channel."""
    return f"EXEC {application} {quote(data)}"


def asyncagi_break() -> str:
    """Leave AsyncAGI: the channel goes on in the dialplan (Caruso's fallback)."""
    return "ASYNCAGI BREAK"
