"""Loading dialog scripts: a hardened XML parse, our own DTD, then the script's semantics.

Scripts are written by hand by a company's administrator, so every refusal is a
``file:line: message`` the author can act on. The parser never expands entities, never
touches the network, and refuses DTD internal subsets outright (XXE, billion laughs),
oversized files and absurdly deep nesting before any of it can cost memory or time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast

from lxml import etree

from dialog_scripts import DTD_PATH
from scripts_engine.errors import InvalidScript, Problem, Severity
from scripts_engine.expressions import (
    Expression,
    ExpressionSyntaxError,
    Template,
    compile_expression,
    compile_template,
)
from scripts_engine.script import (
    ACTION_ELEMENTS,
    Action,
    AnswerRules,
    AnswerType,
    CallService,
    Channel,
    Choice,
    DialogScript,
    EmailTemplate,
    FieldDecl,
    ScheduleCallback,
    SendEmail,
    ServiceDecl,
    SetField,
    SetVariable,
    Step,
    StepKind,
    Transfer,
    Transition,
    ValueType,
    VariableDecl,
    parse_date_limit,
)
from scripts_engine.validation import validate
from scripts_engine.values import matches_pattern, parse_initial
from storage.loader import hardened_parser

#: Largest script file accepted (a 500-step script is about 150 KiB).
MAX_BYTES = 1024 * 1024
#: Deepest element nesting accepted; the format needs 5 (script/question/next/call-service/arg).
MAX_DEPTH = 12
#: Most elements accepted in one file.
MAX_ELEMENTS = 50_000
#: Longest a service call may be given to answer, and what it gets when the script says nothing.
MAX_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 5.0

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_INTERNAL_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
_DTMF_KEYS = "1234567890*#"


@functools.cache
def _dtd() -> etree.DTD:
    # Our DTD from the package: the DOCTYPE a file names is never fetched or trusted.
    return etree.DTD(str(DTD_PATH))


@dataclass(frozen=True, slots=True)
class ScriptCheck:
    """The result of reading one file: the script when it is usable, and every finding."""

    file: str
    script: DialogScript | None
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Findings that make the script unusable."""
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def ok(self) -> bool:
        """Whether the script loaded without errors (warnings allowed)."""
        return self.script is not None and not self.errors


def check_script(path: Path | str, *, today: date | None = None) -> ScriptCheck:
    """Read, parse and validate the script at `path`, collecting every problem found."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return ScriptCheck(name, None, (Problem(name, 1, f"cannot read the file: {exc.strerror}"),))
    return check_script_bytes(data, name, today=today)


def check_script_bytes(data: bytes, name: str, *, today: date | None = None) -> ScriptCheck:
    """Like `check_script` for a document already in memory (`name` labels the messages)."""
    problems = _check_raw(data, name)
    if problems:
        return ScriptCheck(name, None, tuple(problems))
    try:
        root = etree.fromstring(data, hardened_parser(keep_comments=True))
    except etree.XMLSyntaxError as exc:
        return ScriptCheck(name, None, (_syntax_problem(exc, name),))
    problems = _check_tree(root, name)
    if problems:
        return ScriptCheck(name, None, tuple(problems))
    problems = _check_dtd(root, name)
    if problems:
        return ScriptCheck(name, None, tuple(problems))
    builder = _Builder(name, today or date.today())
    script = builder.build(root)
    problems = list(builder.problems)
    if not any(p.severity is Severity.ERROR for p in problems):
        problems.extend(validate(script))
    if any(p.severity is Severity.ERROR for p in problems):
        return ScriptCheck(name, None, tuple(problems))
    return ScriptCheck(name, script, tuple(problems))


def load_script(path: Path | str, *, today: date | None = None) -> DialogScript:
    """Load a script for use; InvalidScript lists every error (``file:line: message``)."""
    check = check_script(path, today=today)
    if check.script is None:
        raise InvalidScript(check.problems)
    return check.script


def load_script_bytes(data: bytes, name: str, *, today: date | None = None) -> DialogScript:
    """Load a script held in memory (an upload); InvalidScript if it has errors."""
    check = check_script_bytes(data, name, today=today)
    if check.script is None:
        raise InvalidScript(check.problems)
    return check.script


def _entries(log: object) -> list[Any]:
    """The entries of an lxml error log (its stubs do not say it is iterable)."""
    return list(cast(Any, log))


def _line(element: etree._Element, default: int = 1) -> int:
    """The line an element starts on (lxml's stubs leave `sourceline` untyped)."""
    line = getattr(element, "sourceline", None)
    return line if isinstance(line, int) and line > 0 else default


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _check_raw(data: bytes, name: str) -> list[Problem]:
    if len(data) > MAX_BYTES:
        return [
            Problem(
                name,
                1,
                f"the file is larger than {MAX_BYTES // 1024} KiB, the limit for a dialog "
                "script; split it into several scripts",
            )
        ]
    if not data.strip():
        return [Problem(name, 1, "the file is empty")]
    # Refused before parsing: an entity declaration is how XXE and "billion laughs" start.
    found = _ENTITY_DECL.search(data)
    if found:
        return [
            Problem(
                name,
                _line_of(data, found.start()),
                "entity declarations (<!ENTITY ...>) are not allowed in dialog scripts: "
                "they can read local files or expand without limit",
            )
        ]
    found = _INTERNAL_SUBSET.search(data)
    if found:
        return [
            Problem(
                name,
                _line_of(data, found.start()),
                "an internal DTD subset (<!DOCTYPE script [ ... ]>) is not allowed; "
                'write <!DOCTYPE script SYSTEM "dialog-script.dtd">',
            )
        ]
    return []


def _syntax_problem(exc: etree.XMLSyntaxError, name: str) -> Problem:
    entries = [e for e in _entries(exc.error_log) if e.level_name in ("ERROR", "FATAL")]
    if entries:
        first = entries[0]
        return Problem(name, max(first.line, 1), f"malformed XML: {first.message.strip()}")
    line = exc.lineno or 1
    message = str(exc.msg).split(", line ")[0]
    return Problem(name, max(line, 1), f"malformed XML: {message}")


def _check_tree(root: etree._Element, name: str) -> list[Problem]:
    tree = root.getroottree()
    internal: Any = tree.docinfo.internalDTD
    if internal is not None and (list(internal.entities()) or list(internal.elements())):
        # Defence in depth: the raw scan misses documents in other encodings (UTF-16).
        return [Problem(name, 1, "an internal DTD subset is not allowed in dialog scripts")]
    count = 0
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        line = _line(element, 1)
        if isinstance(element, etree._Entity):
            return [Problem(name, line, "entity references are not allowed in dialog scripts")]
        if depth > MAX_DEPTH:
            return [Problem(name, line, f"elements are nested deeper than {MAX_DEPTH} levels")]
        if count > MAX_ELEMENTS:
            return [Problem(name, line, f"the script has more than {MAX_ELEMENTS} elements")]
        stack.extend((child, depth + 1) for child in element)
    if root.tag != "script":
        return [
            Problem(name, _line(root, 1), f"the root element must be <script>, not <{root.tag}>")
        ]
    return []


def _allowed_values(element: str, attribute: str) -> list[str]:
    dtd: Any = _dtd()
    for decl in dtd.elements():
        if decl.name == element:
            for attr in decl.attributes():
                if attr.name == attribute:
                    return list(attr.values())
    return []


_DTD_MESSAGES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"No declaration for attribute (\S+) of element (\S+)"),
        "unknown attribute '{0}' on <{1}>",
    ),
    (
        re.compile(r"Element (\S+) does not carry attribute (\S+)"),
        "<{0}> needs the attribute '{1}'",
    ),
    (
        re.compile(r"Syntax of value for attribute (\S+) of (\S+) is not valid"),
        "the value of '{0}' on <{1}> must be a name: letters, digits, '-', '_' or '.', no spaces",
    ),
    (
        re.compile(r"Element (\S+) content does not follow the DTD, expecting (.*), got \((.*)\)"),
        "<{0}> has the wrong content: expected {1}, found ({2})",
    ),
]


def _check_dtd(root: etree._Element, name: str) -> list[Problem]:
    dtd: Any = _dtd()  # lxml's stubs lack the DTD introspection methods
    if dtd.validate(root):
        return []
    problems: list[Problem] = []
    known = {decl.name for decl in dtd.elements()}
    for element in root.iter(tag=etree.Element):
        tag = element.tag
        if isinstance(tag, str) and tag not in known:
            parent = element.getparent()
            line = _line(element, 1)
            if parent is not None and parent.tag == "next":
                problems.append(
                    Problem(
                        name,
                        line,
                        f"unknown action <{tag}>; the actions are "
                        + ", ".join(f"<{a}>" for a in ACTION_ELEMENTS),
                    )
                )
            else:
                problems.append(Problem(name, line, f"unknown element <{tag}>"))
    for entry in _entries(dtd.error_log):
        message = entry.message.strip()
        if message.startswith("No declaration for element"):
            continue  # reported above with more context
        problems.append(Problem(name, max(entry.line, 1), _explain_dtd(message)))
    return sorted(_unique(problems), key=lambda p: p.line)


def _explain_dtd(message: str) -> str:
    enumerated = re.match(
        r'Value "(.*)" for attribute (\S+) of (\S+) is not among the enumerated set', message
    )
    if enumerated:
        value, attribute, element = enumerated.groups()
        allowed = ", ".join(_allowed_values(element, attribute))
        return f"'{value}' is not allowed for '{attribute}' on <{element}>; allowed: {allowed}"
    for pattern, text in _DTD_MESSAGES:
        found = pattern.match(message)
        if found:
            return text.format(*found.groups())
    return message


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def normalize_text(text: str) -> str:
    """Step text as written, reflowed: lines joined, blank lines kept as paragraph breaks."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            current.append(stripped)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


class _Builder:
    """Turns a DTD-valid tree into a DialogScript, noting every local problem on the way."""

    def __init__(self, name: str, today: date) -> None:
        self.name = name
        self.today = today
        self.problems: list[Problem] = []

    def problem(self, line: int | None, message: str, *, warning: bool = False) -> None:
        severity = Severity.WARNING if warning else Severity.ERROR
        self.problems.append(Problem(self.name, line or 1, message, severity))

    # ---- small helpers -------------------------------------------------------------------

    def expression(self, element: etree._Element, attribute: str, where: str) -> Expression | None:
        source = element.get(attribute)
        if source is None:
            return None
        line = _line(element, 1)
        try:
            return compile_expression(source, line)
        except ExpressionSyntaxError as exc:
            self.problem(exc.line, f"{where}: {attribute}={source.strip()!r}: {exc.message}")
            return None

    def template(
        self, text: str | None, line: int, where: str, *, reflow: bool = True
    ) -> Template | None:
        if text is None:
            return None
        try:
            compile_template(text, line)  # for exact line numbers in messages
            return compile_template(normalize_text(text) if reflow else text, line)
        except ExpressionSyntaxError as exc:
            self.problem(exc.line, f"{where}: placeholder: {exc.message}")
            return None

    def child_template(self, element: etree._Element, tag: str, where: str) -> Template | None:
        child = element.find(tag)
        if child is None:
            return None
        return self.template(child.text or "", _line(child, 1), f"{where} <{tag}>")

    def identifier(self, value: str, line: int | None, what: str) -> None:
        if not _IDENTIFIER.match(value):
            self.problem(
                line,
                f"{what} {value!r} must be an identifier (letters, digits and '_', not starting "
                "with a digit) so that conditions can name it",
            )

    def number(self, element: etree._Element, attribute: str) -> float | None:
        text = element.get(attribute)
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            self.problem(_line(element), f"{attribute}={text!r} is not a number")
            return None

    def count(self, element: etree._Element, attribute: str) -> int | None:
        text = element.get(attribute)
        if text is None:
            return None
        if not text.strip().isdigit():
            self.problem(_line(element), f"{attribute}={text!r} must be a whole number >= 0")
            return None
        return int(text)

    # ---- the script ----------------------------------------------------------------------

    def build(self, root: etree._Element) -> DialogScript:
        line = _line(root, 1)
        channels: set[Channel] = set()
        for word in (root.get("channels") or "agent web").split():
            try:
                channels.add(Channel(word))
            except ValueError:
                self.problem(line, f"unknown channel {word!r}; the channels are agent, web, phone")
        customer_object, fields = self.customer(root.find("customer"))
        services = self.services(root.find("services"))
        variables = self.variables(root.find("variables"))
        templates = self.templates(root.find("templates"))
        steps: dict[str, Step] = {}
        for element in root:
            if element.tag in ("question", "information", "branch", "end"):
                step = self.step(element)
                if step.id in steps:
                    self.problem(
                        _line(element),
                        f"duplicate step id {step.id!r} (first defined on line "
                        f"{steps[step.id].line})",
                    )
                    continue
                steps[step.id] = step
        start = root.get("start") or next(iter(steps), "")
        description = root.findtext("description")
        return DialogScript(
            id=root.get("id", ""),
            version=root.get("version", ""),
            title=root.get("title", ""),
            description=normalize_text(description) if description else None,
            start=start,
            channels=frozenset(channels),
            language=root.get("language", "en"),
            on_error=root.get("on-error"),
            customer_object=customer_object,
            customer_fields=fields,
            services=services,
            variables=variables,
            templates=templates,
            steps=steps,
            file=self.name,
            line=line,
        )

    def customer(self, element: etree._Element | None) -> tuple[str | None, dict[str, FieldDecl]]:
        if element is None:
            return None, {}
        fields: dict[str, FieldDecl] = {}
        for child in element.iter("field"):
            name = child.get("name", "")
            self.identifier(name, _line(child), "customer field")
            if name in fields:
                self.problem(_line(child), f"customer field {name!r} is declared twice")
                continue
            fields[name] = FieldDecl(
                name,
                ValueType(child.get("type", "string")),
                child.get("label"),
                _line(child, 1),
            )
        return element.get("object", ""), fields

    def services(self, element: etree._Element | None) -> dict[str, ServiceDecl]:
        services: dict[str, ServiceDecl] = {}
        if element is None:
            return services
        for child in element.iter("service"):
            name = child.get("name", "")
            if name in services:
                self.problem(_line(child), f"service {name!r} is declared twice")
                continue
            methods = frozenset((child.get("methods") or "").split())
            services[name] = ServiceDecl(name, methods, _line(child))
        return services

    def variables(self, element: etree._Element | None) -> dict[str, VariableDecl]:
        variables: dict[str, VariableDecl] = {}
        if element is None:
            return variables
        defaults: dict[ValueType, object] = {
            ValueType.STRING: "",
            ValueType.INTEGER: 0,
            ValueType.FLOAT: 0.0,
            ValueType.BOOLEAN: False,
        }
        for child in element.iter("variable"):
            name = child.get("name", "")
            line = _line(child, 1)
            self.identifier(name, line, "variable")
            if name in variables:
                self.problem(line, f"variable {name!r} is declared twice")
                continue
            type_ = ValueType(child.get("type", "string"))
            initial: object = defaults.get(type_)
            text = child.get("initial")
            if text is not None:
                try:
                    initial = parse_initial(text, type_)
                except ValueError as exc:
                    self.problem(line, f"variable {name!r}: initial value {text!r}: {exc}")
            variables[name] = VariableDecl(name, type_, initial, line)
        return variables

    def templates(self, element: etree._Element | None) -> dict[str, EmailTemplate]:
        templates: dict[str, EmailTemplate] = {}
        if element is None:
            return templates
        for child in element.iter("email-template"):
            template_id = child.get("id", "")
            line = _line(child, 1)
            if template_id in templates:
                self.problem(line, f"e-mail template {template_id!r} is declared twice")
                continue
            where = f"e-mail template {template_id!r}"
            subject_element = child.find("subject")
            body_element = child.find("body")
            subject_line = line if subject_element is None else _line(subject_element, line)
            body_line = line if body_element is None else _line(body_element, line)
            subject = self.template(
                " ".join(child.findtext("subject", "").split()), subject_line, f"{where} <subject>"
            )
            body = self.template(
                _dedent(child.findtext("body", "")), body_line, f"{where} <body>", reflow=False
            )
            if subject is None or body is None:
                continue
            templates[template_id] = EmailTemplate(
                template_id, subject, body, child.get("format") == "html", line
            )
        return templates

    # ---- steps ---------------------------------------------------------------------------

    def step(self, element: etree._Element) -> Step:
        step_id = element.get("id", "")
        line = _line(element, 1)
        self.identifier(step_id, line, "step id")
        kind = StepKind(element.tag)
        where = f"step {step_id!r}"
        answer_type = AnswerType(element.get("type")) if kind is StepKind.QUESTION else None
        choices = self.choices(element, answer_type, where)
        rules = self.rules(element, answer_type, where) if answer_type else AnswerRules()
        transitions = tuple(self.transition(child, where) for child in element.iter("next"))
        return Step(
            id=step_id,
            kind=kind,
            title=element.get("title"),
            text=self.child_template(element, "text", where),
            phone_text=self.child_template(element, "phone-text", where),
            hint=self.child_template(element, "hint", where),
            answer_type=answer_type,
            choices=choices,
            rules=rules,
            transitions=transitions,
            disposition=element.get("disposition"),
            line=line,
        )

    def choices(
        self, element: etree._Element, answer_type: AnswerType | None, where: str
    ) -> tuple[Choice, ...]:
        children = list(element.iter("choice"))
        if answer_type is not AnswerType.CHOICE:
            if children:
                self.problem(_line(children[0]), f"{where}: only choice questions have <choice>")
            return ()
        if len(children) < 2:
            self.problem(_line(element), f"{where}: a choice question needs at least two <choice>")
        explicit = {c.get("key") for c in children if c.get("key")}
        free = iter(k for k in _DTMF_KEYS if k not in explicit)
        choices: list[Choice] = []
        seen_values: dict[str, int] = {}
        seen_keys: dict[str, int] = {}
        for child in children:
            line = _line(child, 1)
            value = child.get("value", "").strip()
            label = normalize_text(child.text or "") or value
            key = child.get("key") or next(free, "")
            if not value:
                self.problem(line, f"{where}: a choice needs a non-empty value")
            if value in seen_values:
                self.problem(
                    line,
                    f"{where}: choice value {value!r} is used twice (also line "
                    f"{seen_values[value]})",
                )
            seen_values.setdefault(value, line)
            if key and (len(key) != 1 or key not in _DTMF_KEYS):
                self.problem(
                    line, f"{where}: choice key {key!r} must be one phone key: 0-9, * or #"
                )
            elif key in seen_keys:
                self.problem(
                    line, f"{where}: choice key {key!r} is used twice (also line {seen_keys[key]})"
                )
            if key:
                seen_keys.setdefault(key, line)
            choices.append(Choice(value, label, key, line))
        return tuple(choices)

    def rules(self, element: etree._Element, answer_type: AnswerType, where: str) -> AnswerRules:
        line = _line(element)
        applies = {
            "min": (AnswerType.NUMBER, AnswerType.DATE),
            "max": (AnswerType.NUMBER, AnswerType.DATE),
            "integer": (AnswerType.NUMBER,),
            "min-length": (AnswerType.TEXT,),
            "max-length": (AnswerType.TEXT,),
            "pattern": (AnswerType.TEXT,),
        }
        for attribute, types in applies.items():
            if element.get(attribute) is not None and answer_type not in types:
                if attribute == "integer" and element.get(attribute) == "no":
                    continue
                kinds = " and ".join(t.value for t in types)
                self.problem(
                    line, f"{where}: '{attribute}' applies to {kinds} questions only", warning=True
                )
        required = element.get("required", "yes") == "yes"
        if answer_type is AnswerType.DATE:
            limits: list[str | None] = []
            for attribute in ("min", "max"):
                text = element.get(attribute)
                if text is not None:
                    try:
                        parse_date_limit(text, self.today)
                    except ValueError as exc:
                        self.problem(line, f"{where}: {attribute}: {exc}")
                        text = None
                limits.append(text)
            return AnswerRules(required=required, min_date=limits[0], max_date=limits[1])
        if answer_type is AnswerType.NUMBER:
            minimum, maximum = self.number(element, "min"), self.number(element, "max")
            if minimum is not None and maximum is not None and minimum > maximum:
                self.problem(line, f"{where}: min is greater than max")
            return AnswerRules(
                required=required,
                minimum=minimum,
                maximum=maximum,
                integer=element.get("integer") == "yes",
            )
        if answer_type is AnswerType.TEXT:
            min_length, max_length = (
                self.count(element, "min-length"),
                self.count(element, "max-length"),
            )
            if min_length is not None and max_length is not None and min_length > max_length:
                self.problem(line, f"{where}: min-length is greater than max-length")
            pattern = element.get("pattern")
            if pattern is not None:
                try:
                    matches_pattern(pattern, "")
                except (ValueError, RuntimeError) as exc:
                    self.problem(
                        line,
                        f"{where}: pattern {pattern!r} is not a valid regular expression "
                        f"({str(exc).splitlines()[0]})",
                    )
                    pattern = None
            return AnswerRules(
                required=required, min_length=min_length, max_length=max_length, pattern=pattern
            )
        return AnswerRules(required=required)

    def transition(self, element: etree._Element, where: str) -> Transition:
        line = _line(element, 1)
        here = f"{where}, transition to {element.get('to')!r}"
        actions: list[Action] = []
        for child in element:
            tag: object = child.tag
            if not isinstance(tag, str):
                continue  # comments
            action = self.action(child, here)
            if action is not None:
                actions.append(action)
        return Transition(
            to=element.get("to", ""),
            when=self.expression(element, "when", here),
            actions=tuple(actions),
            label=element.get("label"),
            line=line,
        )

    def action(self, element: etree._Element, where: str) -> Action | None:
        tag = element.tag
        line = _line(element, 1)
        here = f"{where}, <{tag}>"
        on_error = element.get("on-error")
        if tag == "set":
            value = self.expression(element, "value", here)
            return SetVariable(element.get("var", ""), value, line) if value else None
        if tag == "set-field":
            value = self.expression(element, "value", here)
            return SetField(element.get("field", ""), value, on_error, line) if value else None
        if tag == "send-email":
            to = self.expression(element, "to", here)
            return SendEmail(element.get("template", ""), to, on_error, line) if to else None
        if tag == "call-service":
            # DTD defaults are not applied (the file's DTD is never loaded): 5 s is ours.
            timeout = self.number(element, "timeout") if element.get("timeout") else DEFAULT_TIMEOUT
            if timeout is None or not 0 < timeout <= MAX_TIMEOUT:
                self.problem(
                    line,
                    f"{here}: timeout must be a number of seconds above 0 and at most "
                    f"{MAX_TIMEOUT:g}",
                )
                timeout = 5.0
            args: list[tuple[str, Expression]] = []
            names: set[str] = set()
            for arg in element.iter("arg"):
                name = arg.get("name", "")
                if name in names:
                    self.problem(_line(arg), f"{here}: argument {name!r} is given twice")
                names.add(name)
                value = self.expression(arg, "value", f"{here} argument {name!r}")
                if value is not None:
                    args.append((name, value))
            return CallService(
                service=element.get("service", ""),
                method=element.get("method", ""),
                args=tuple(args),
                timeout=timeout,
                result=element.get("result"),
                on_error=on_error,
                line=line,
            )
        if tag == "schedule-callback":
            at = self.expression(element, "at", here)
            if at is None:
                return None
            return ScheduleCallback(
                at=at,
                number=self.expression(element, "number", here),
                queue=element.get("queue"),
                note=self.template(element.get("note"), line, f"{here} note"),
                on_error=on_error,
                line=line,
            )
        if tag == "transfer":
            return Transfer(
                queue=element.get("queue", ""),
                note=self.template(element.get("note"), line, f"{here} note"),
                on_error=on_error,
                line=line,
            )
        self.problem(line, f"{where}: unknown action <{tag}>")
        return None


def _dedent(text: str) -> str:
    """An e-mail body as written, without the XML indentation (line breaks are kept)."""
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:].rstrip() for line in lines)
