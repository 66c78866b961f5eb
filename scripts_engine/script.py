"""A loaded dialog script: plain, immutable data built by `scripts_engine.loader`.

A `DialogScript` is a graph of `Step`s joined by `Transition`s; transitions carry conditions
and `Action`s. Every element remembers the line it was written on so that validation and
runtime notes can point the script's author at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from typing import ClassVar

from scripts_engine.expressions import Expression, Template


class Channel(Enum):
    """Where a script runs: the agent desktop, the public web page, or the phone (IVR)."""

    AGENT = "agent"
    WEB = "web"
    PHONE = "phone"


class StepKind(Enum):
    """What a step does: ask, inform, decide silently, or end the run."""

    QUESTION = "question"
    INFORMATION = "information"
    BRANCH = "branch"
    END = "end"

    @property
    def interactive(self) -> bool:
        """Whether the run waits at this step for the reader (an answer or a 'continue')."""
        return self in (StepKind.QUESTION, StepKind.INFORMATION)


class AnswerType(Enum):
    """The kinds of answer a question takes."""

    CHOICE = "choice"
    YESNO = "yesno"
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"


class ValueType(Enum):
    """Types of customer fields and variables (the storage manager's attribute types)."""

    STRING = "string"
    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class FieldDecl:
    """A customer field the script reads or sets."""

    name: str
    type: ValueType
    label: str | None
    line: int


@dataclass(frozen=True, slots=True)
class ServiceDecl:
    """A service the script calls, with the methods it may call."""

    name: str
    methods: frozenset[str]
    line: int


@dataclass(frozen=True, slots=True)
class VariableDecl:
    """A run variable, its type and its initial value (already parsed)."""

    name: str
    type: ValueType
    initial: object
    line: int


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """An e-mail's subject and body with placeholders; `html` bodies escape their values."""

    id: str
    subject: Template
    body: Template
    html: bool
    line: int


@dataclass(frozen=True, slots=True)
class SetVariable:
    """Set a run variable to an expression's value (done inside the engine core)."""

    var: str
    value: Expression
    line: int
    name: ClassVar[str] = "set"

    @property
    def on_error(self) -> str | None:
        """Setting a variable cannot fail at the edge, so it has no error branch."""
        return None


@dataclass(frozen=True, slots=True)
class SetField:
    """Set a field of the customer's business object through storage."""

    field: str
    value: Expression
    on_error: str | None
    line: int
    name: ClassVar[str] = "set-field"


@dataclass(frozen=True, slots=True)
class SendEmail:
    """Send an e-mail from a template to the address an expression gives."""

    template: str
    to: Expression
    on_error: str | None
    line: int
    name: ClassVar[str] = "send-email"


@dataclass(frozen=True, slots=True)
class CallService:
    """Call a method of a registered service; the result may go into a variable."""

    service: str
    method: str
    args: tuple[tuple[str, Expression], ...]
    timeout: float
    result: str | None
    on_error: str | None
    line: int
    name: ClassVar[str] = "call-service"


@dataclass(frozen=True, slots=True)
class ScheduleCallback:
    """Ask the server to call the customer back at a time (and number, queue) given."""

    at: Expression
    number: Expression | None
    queue: str | None
    note: Template | None
    on_error: str | None
    line: int
    name: ClassVar[str] = "schedule-callback"


@dataclass(frozen=True, slots=True)
class Transfer:
    """Ask the server to transfer the contact to a queue."""

    queue: str
    note: Template | None
    on_error: str | None
    line: int
    name: ClassVar[str] = "transfer"


Action = SetVariable | SetField | SendEmail | CallService | ScheduleCallback | Transfer

#: Element names of the actions, as written in scripts.
ACTION_ELEMENTS = (
    "set",
    "set-field",
    "send-email",
    "call-service",
    "schedule-callback",
    "transfer",
)


@dataclass(frozen=True, slots=True)
class Transition:
    """A way out of a step: taken when `when` holds (or always), running `actions` in order."""

    to: str
    when: Expression | None
    actions: tuple[Action, ...]
    label: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Choice:
    """One allowed answer of a choice question; `key` is its DTMF digit on the phone."""

    value: str
    label: str
    key: str
    line: int


@dataclass(frozen=True, slots=True)
class AnswerRules:
    """What a question accepts beyond its type."""

    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    #: For date questions: limits as written (ISO dates or today, today+N, today-N).
    min_date: str | None = None
    max_date: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a script."""

    id: str
    kind: StepKind
    title: str | None
    text: Template | None
    phone_text: Template | None
    hint: Template | None
    answer_type: AnswerType | None
    choices: tuple[Choice, ...]
    rules: AnswerRules
    transitions: tuple[Transition, ...]
    disposition: str | None
    line: int


@dataclass(frozen=True, slots=True)
class DialogScript:
    """A loaded, validated dialog script."""

    id: str
    version: str
    title: str
    description: str | None
    start: str
    channels: frozenset[Channel]
    language: str
    on_error: str | None
    customer_object: str | None
    customer_fields: Mapping[str, FieldDecl]
    services: Mapping[str, ServiceDecl]
    variables: Mapping[str, VariableDecl]
    templates: Mapping[str, EmailTemplate]
    steps: Mapping[str, Step]
    file: str
    line: int

    def step(self, step_id: str) -> Step:
        """The step of this id (KeyError if none: validated scripts have no dangling ids)."""
        return self.steps[step_id]

    @property
    def key(self) -> tuple[str, str]:
        """(id, version): what a stored run records to find its script again."""
        return (self.id, self.version)


def parse_date_limit(text: str, today: date) -> date:
    """A date limit as written in a script: ``2024-05-01``, ``today``, ``today+30``, ``today-7``."""
    value = text.strip()
    if value.startswith("today"):
        rest = value[len("today") :].strip()
        if not rest:
            return today
        if rest[0] in "+-" and rest[1:].strip().isdigit():
            days = int(rest[1:].strip())
            return today + timedelta(days=days if rest[0] == "+" else -days)
        raise ValueError(f"bad date limit {text!r}: write YYYY-MM-DD, today, today+N or today-N")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"bad date limit {text!r}: write YYYY-MM-DD, today, today+N or today-N"
        ) from None
