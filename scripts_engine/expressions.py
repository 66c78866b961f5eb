"""Safe expressions for conditions, values and templates: Common Expression Language (CEL).

CEL is side-effect free, typed and cannot reach Python objects, so a script can never run
code (no `eval` anywhere). Expressions are compiled once when a script loads; this module
also finds which names an expression reads (`answers.reading`, `customer.vip`) so that
validation can report unknown fields with their line before any run starts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import cel

#: The names an expression may start with, and what they hold.
ROOTS: Mapping[str, str] = {
    "answers": "the answers given so far, by question id",
    "customer": "the customer's business-object fields",
    "vars": "the run's variables",
    "call": "data of the call or contact",
    "now": "the current time (a timestamp)",
    "error": "the last failed action: error.code, error.message, error.action",
}

#: CEL macros whose first argument names a bound loop variable, e.g. `list.exists(x, x > 1)`.
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_KEYWORDS = frozenset({"true", "false", "null", "in"})
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
                          |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?|0[xX][0-9a-fA-F]+[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<dot>\.)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_CEL_LOCATION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class ExpressionSyntaxError(ValueError):
    """CEL refused to compile an expression; `column` is 1-based within the expression."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class ExpressionFailed(ValueError):
    """Evaluating an expression failed: a missing field, a type mismatch, a bad conversion."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A name an expression reads: `root` (answers, customer, ...) and its first member."""

    root: str
    member: str | None
    #: Inside `has(...)`: reading it is a test for presence, so it need not be answered yet.
    guarded: bool = False


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression and where it was written (line of its element)."""

    source: str
    line: int
    references: tuple[Reference, ...]
    unknown_roots: tuple[str, ...]
    #: (question id, text) pairs compared with == or != (`answers.kind == "gas"`).
    comparisons: tuple[tuple[str, str], ...]
    #: Per root name read: the members read, or None when the whole value is needed.
    needs: tuple[tuple[str, frozenset[str] | None], ...]
    program: cel.Program = field(compare=False, repr=False)

    def _slice(self, context: Mapping[str, object]) -> dict[str, object]:
        """Only the parts of `context` this expression reads.

        Handing CEL a whole run (hundreds of answers) on every evaluation would cost far
        more than the evaluation itself; a missing member stays missing, so `has()` and
        "no such field" behave exactly as with the whole context.
        """
        out: dict[str, object] = {}
        for root, members in self.needs:
            if root not in context:
                continue
            value = context[root]
            if isinstance(value, Mapping):
                if members is None:
                    out[root] = dict(value)
                else:
                    out[root] = {m: value[m] for m in members if m in value}
            else:
                out[root] = value
        return out

    def evaluate(self, context: Mapping[str, object]) -> object:
        """The expression's value in `context`; ExpressionFailed when CEL cannot evaluate it."""
        try:
            return self.program.execute(self._slice(context))
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise ExpressionFailed(_describe_failure(exc)) from None


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no such field {exc.args[0]!r}" if exc.args else "no such field"
    text = str(exc).strip() or type(exc).__name__
    if text.startswith("No such overload"):
        # CEL's own text is long; keep the first sentence and the practical hint.
        return (
            "type mismatch: the operation is not defined for these operand types "
            "(CEL does not mix int and double: write 100.0 to compare with a decimal number)"
        )
    return text.splitlines()[0]


def _tokens(source: str) -> list[tuple[str, str, int]]:
    return [
        (match.lastgroup or "other", match.group(), match.start())
        for match in _TOKEN.finditer(source)
        if match.lastgroup != "space"
    ]


def _literal(token: str) -> str | None:
    """The text of a plain string literal token (no raw/bytes prefix), else None."""
    if token[:1] in ("'", '"') and not token.startswith(("'''", '"""')):
        body = token[1:-1]
        return None if "\\" in body else body
    return None


def _analyse(
    source: str,
) -> tuple[tuple[Reference, ...], frozenset[str], tuple[tuple[str, str], ...]]:
    """Dotted names read by `source`, the loop variables its macros bind, and literal comparisons.

    CEL's compiled program only lists root names, so member names (`answers.reading`)
    come from this small lexer, which skips string literals and function names. The
    comparisons (`answers.kind == "gas"`) let validation catch a misspelt choice value.
    """
    tokens = [(kind, text) for kind, text, _ in _tokens(source)]
    bound: set[str] = set()
    for i in range(len(tokens) - 3):
        if (
            tokens[i] == ("dot", ".")
            and tokens[i + 1][0] == "ident"
            and tokens[i + 1][1] in _MACROS
            and tokens[i + 2] == ("other", "(")
            and tokens[i + 3][0] == "ident"
        ):
            bound.add(tokens[i + 3][1])
    refs: list[Reference] = []
    for i, (kind, text) in enumerate(tokens):
        previous = tokens[i - 1] if i > 0 else ("", "")
        if kind != "ident" or previous == ("dot", ".") or text in _KEYWORDS or text in bound:
            continue
        if i + 1 < len(tokens) and tokens[i + 1] == ("other", "("):
            continue  # a function call, not a name
        member: str | None = None
        if i + 2 < len(tokens) and tokens[i + 1] == ("dot", ".") and tokens[i + 2][0] == "ident":
            is_method = i + 3 < len(tokens) and tokens[i + 3] == ("other", "(")
            if not is_method:
                member = tokens[i + 2][1]
        guarded = i >= 2 and tokens[i - 2] == ("ident", "has") and tokens[i - 1] == ("other", "(")
        refs.append(Reference(text, member, guarded))
    comparisons: list[tuple[str, str]] = []
    for i in range(len(tokens) - 4):
        window = tokens[i : i + 6]
        if [t[1] for t in window[:2]] == ["answers", "."] and window[2][0] == "ident":
            operator = "".join(t[1] for t in window[3:5])
            if operator in ("==", "!=") and len(window) > 5 and window[5][0] == "string":
                literal = _literal(window[5][1])
                if literal is not None:
                    comparisons.append((window[2][1], literal))
        if window[0][0] == "string" and len(window) > 5:
            operator = "".join(t[1] for t in window[1:3])
            if operator in ("==", "!=") and [t[1] for t in window[3:5]] == ["answers", "."]:
                literal = _literal(window[0][1])
                if literal is not None and window[5][0] == "ident":
                    comparisons.append((window[5][1], literal))
    return tuple(dict.fromkeys(refs)), frozenset(bound), tuple(comparisons)


def top_level_operands(source: str) -> list[str]:
    """The operands of a top-level `&&` / `||` chain (empty when there is no such chain).

    CEL's `&&` and `||` absorb errors (`false && <error>` is false), so validation
    type-checks each operand on its own to find mistakes a sample run would skip.
    """
    depth = 0
    cuts: list[tuple[int, int]] = []
    tokens = _tokens(source)
    for index, (kind, text, start) in enumerate(tokens):
        if kind != "other":
            continue
        if text in "([{":
            depth += 1
        elif text in ")]}":
            depth -= 1
        elif depth == 0 and text == "?":
            return []  # a conditional expression: its parts are not operands
        elif depth == 0 and text in "&|" and index + 1 < len(tokens):
            following = tokens[index + 1]
            if following[1] == text and following[2] == start + 1:
                cuts.append((start, start + 2))
    if not cuts:
        return []
    parts: list[str] = []
    position = 0
    for begin, end in cuts:
        parts.append(source[position:begin].strip())
        position = end
    parts.append(source[position:].strip())
    return [part for part in parts if part]


def compile_expression(source: str, line: int) -> Expression:
    """Compile `source` (written at `line`); ExpressionSyntaxError with the column if invalid."""
    text = source.strip()
    if not text:
        raise ExpressionSyntaxError("the expression is empty", line, 1)
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        raise _syntax_error(str(exc), line) from None
    references, bound, comparisons = _analyse(text)
    roots = set(program.variables()) - bound
    unknown = tuple(sorted(name for name in roots if name not in ROOTS))
    needs: dict[str, set[str] | None] = {root: set() for root in roots}
    for ref in references:
        if ref.root not in needs:
            continue
        members = needs[ref.root]
        if ref.member is None or members is None:
            needs[ref.root] = None
        else:
            members.add(ref.member)
    frozen = tuple(
        (root, None if members is None else frozenset(members))
        for root, members in sorted(needs.items())
    )
    return Expression(text, line, references, unknown, comparisons, frozen, program)


def _syntax_error(raw: str, line: int) -> ExpressionSyntaxError:
    for raw_line in raw.splitlines():
        found = _CEL_LOCATION.search(raw_line)
        if found:
            row, column, message = int(found.group(1)), int(found.group(2)), found.group(3)
            message = message.removeprefix("Syntax error: ").strip()
            # ANTLR lists every token it would have accepted: too long to help an author.
            if message.startswith("mismatched input '<EOF>'"):
                message = "the expression ends too early"
            message = re.sub(r"\s*expecting \{.*\}", "", message)
            return ExpressionSyntaxError(
                f"syntax error at column {column}: {message}", line + row - 1, column
            )
    first = raw.splitlines()[0] if raw else "cannot compile the expression"
    return ExpressionSyntaxError(first, line, 1)


@dataclass(frozen=True, slots=True)
class Template:
    """Text with ``{{ expression }}`` placeholders, filled in when shown or sent."""

    parts: tuple[str | Expression, ...]
    line: int

    @property
    def expressions(self) -> tuple[Expression, ...]:
        """The placeholders' compiled expressions."""
        return tuple(part for part in self.parts if isinstance(part, Expression))

    def render(self, context: Mapping[str, object], escape: bool = False) -> str:
        """The text with every placeholder replaced; a failing placeholder renders empty.

        With `escape`, placeholder values are HTML-escaped (an HTML e-mail body); the
        template's own text is trusted as written by the script's author.
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                value = part.evaluate(context)
            except ExpressionFailed:
                value = None
            text = format_value(value)
            out.append(html.escape(text, quote=True) if escape else text)
        return "".join(out)


def format_value(value: object) -> str:
    """How a value reads in a text: null is empty, booleans are yes/no, floats trimmed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.utcoffset() == timedelta(0) and value.time() == time(0):
            return value.date().isoformat()  # a date answer, held by CEL as a timestamp
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def compile_template(text: str, line: int) -> Template:
    """Split `text` into literal parts and compiled placeholders (line counts into the text)."""
    parts: list[str | Expression] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        placeholder_line = line + text.count("\n", 0, match.start())
        parts.append(compile_expression(match.group(1), placeholder_line))
        position = match.end()
    rest = text[position:]
    if "{{" in rest:
        bad_line = line + text.count("\n", 0, position + rest.index("{{"))
        raise ExpressionSyntaxError("'{{' without a closing '}}'", bad_line, 1)
    if rest:
        parts.append(rest)
    return Template(tuple(parts), line)
