"""Errors of the script engine: a stable kebab-case `code` and structured `details` each.

They know nothing of HTTP; the web edge maps them to statuses (an invalid answer is a 400,
a stale step a 409, an unknown run a 404, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar


class Severity(Enum):
    """How bad a validation finding is: errors refuse the script, warnings only inform."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a script file, printed as ``file:line: message``."""

    file: str
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


class ScriptError(Exception):
    """Base of the script engine's errors."""

    code: ClassVar[str] = "script-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class InvalidScript(ScriptError):
    """A script file cannot be used: malformed, unsafe, not valid to the DTD, or inconsistent.

    `problems` lists every finding (errors first); the message is their ``file:line:`` lines.
    """

    code: ClassVar[str] = "invalid-dialog-script"

    def __init__(self, problems: Sequence[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.severity is not Severity.ERROR, p.line))
        super().__init__(
            "\n".join(str(p) for p in ordered),
            problems=[{"file": p.file, "line": p.line, "message": p.message} for p in ordered],
        )
        self.problems: tuple[Problem, ...] = tuple(ordered)


class InvalidAnswer(ScriptError):
    """An answer does not fit its question (type, range, pattern, choices)."""

    code: ClassVar[str] = "invalid-answer"


class NotCurrentStep(ScriptError):
    """An answer was given for a step the run is not waiting on (a stale or double submit)."""

    code: ClassVar[str] = "not-current-step"


class CannotGoBack(ScriptError):
    """The run is at its first step, or not waiting for an answer, so it cannot step back."""

    code: ClassVar[str] = "cannot-go-back"


class RunNotActive(ScriptError):
    """The run has ended (completed, abandoned or failed) and takes no more input."""

    code: ClassVar[str] = "script-run-ended"


class ChannelNotSupported(ScriptError):
    """The script does not declare the channel a run was started on."""

    code: ClassVar[str] = "channel-not-supported"


class ScriptRuntimeError(ScriptError):
    """The script cannot go on: no transition holds, or branches loop without a question."""

    code: ClassVar[str] = "script-runtime-error"


class NoSuchRun(ScriptError):
    """No stored run has this id."""

    code: ClassVar[str] = "no-such-script-run"


class NoSuchScript(ScriptError):
    """No loaded script has this id (and version)."""

    code: ClassVar[str] = "no-such-dialog-script"
