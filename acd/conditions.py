"""Routing-rule conditions: plain comparisons on waiting time and estimated wait.

A condition is written `"wait >= 30"` or `"total_wait >= 60 and ewt > 120"`. It is parsed once,
at configuration time, by a tiny tokenizer (never `eval`), and evaluated on the hot path as a
few float comparisons: no expression engine runs inside a routing decision.

Waiting-time comparisons are evaluated against absolute times (`now >= entered + 30`) so the
moment a condition starts to hold is exactly the deadline the dispatcher schedules for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from acd.errors import InvalidRuleCondition


class Metric(StrEnum):
    """What a comparison looks at."""

    WAIT = "wait"  # seconds since the contact entered its current queue
    TOTAL_WAIT = "total_wait"  # seconds since the contact arrived in the ACD
    EWT = "ewt"  # estimated remaining wait in seconds (infinite when nobody is staffed)
    POSITION = "position"  # 1-based place in its queue
    QUEUE_LENGTH = "queue_length"  # contacts waiting in its queue, itself included


TIME_METRICS = frozenset({Metric.WAIT, Metric.TOTAL_WAIT})


class Op(StrEnum):
    """A comparison operator."""

    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"


@dataclass(frozen=True, slots=True)
class Comparison:
    """`metric op value`, for instance `wait >= 30`."""

    metric: Metric
    op: Op
    value: float

    def holds(self, x: float) -> bool:
        """Whether the comparison holds for the metric's value `x`."""
        op, v = self.op, self.value
        if op is Op.GE:
            return x >= v
        if op is Op.GT:
            return x > v
        if op is Op.LE:
            return x <= v
        return x < v

    def holds_since(self, now: float, base: float) -> bool:
        """For a time metric measured from `base`: whether it holds at `now`."""
        return self.holds_at_threshold(now, base + self.value)

    def holds_at_threshold(self, now: float, threshold: float) -> bool:
        """Compare `now` with the absolute time `threshold` using this operator."""
        op = self.op
        if op is Op.GE:
            return now >= threshold
        if op is Op.GT:
            return now > threshold
        if op is Op.LE:
            return now <= threshold
        return now < threshold

    def flips_at(self, base: float) -> float:
        """The first instant at which this time comparison changes its truth value."""
        threshold = base + self.value
        # `>` and `<=` change just after the threshold itself.
        if self.op in (Op.GT, Op.LE):
            return math.nextafter(threshold, math.inf)
        return threshold

    def __str__(self) -> str:
        value = int(self.value) if self.value.is_integer() else self.value
        return f"{self.metric.value} {self.op.value} {value}"


@dataclass(frozen=True, slots=True)
class Condition:
    """All of `comparisons` must hold; an empty condition always holds."""

    comparisons: tuple[Comparison, ...] = ()

    @property
    def is_dynamic(self) -> bool:
        """Whether it looks at something other than time (re-evaluated periodically)."""
        return any(c.metric not in TIME_METRICS for c in self.comparisons)

    @property
    def needs_ewt(self) -> bool:
        """Whether evaluating it needs the estimated wait (costlier than the rest)."""
        return any(c.metric is Metric.EWT for c in self.comparisons)

    def __str__(self) -> str:
        return " and ".join(str(c) for c in self.comparisons) or "always"


ALWAYS = Condition()

_TOKEN = re.compile(
    r"\s*(?:(?P<op>>=|<=|>|<)|(?P<num>\d+(?:\.\d+)?|\.\d+)|(?P<word>[A-Za-z_][A-Za-z_0-9]*)|(?P<bad>\S))"
)


def parse_condition(text: str) -> Condition:
    """Parse `"wait >= 30 and ewt > 60"`; `""`, `"always"` and `"true"` always hold.

    Raises `InvalidRuleCondition` with the 1-based column of the first bad token.
    """
    stripped = text.strip()
    if stripped.lower() in ("", "always", "true"):
        return ALWAYS
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        kind = m.lastgroup
        if kind is None:
            break
        if kind == "bad":
            _fail(text, m.start(kind), f"unexpected character {m.group(kind)!r}")
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    comparisons: list[Comparison] = []
    i = 0
    while True:
        if i + 3 > len(tokens):
            col = tokens[i][2] if i < len(tokens) else len(text)
            _fail(text, col, "expected '<metric> <operator> <number>'")
        (k1, name, c1), (k2, op, c2), (k3, num, c3) = tokens[i : i + 3]
        if k1 != "word" or name not in Metric._value2member_map_:
            known = ", ".join(m.value for m in Metric)
            _fail(text, c1, f"unknown metric {name!r} (known: {known})")
        if k2 != "op":
            _fail(text, c2, f"expected a comparison operator (>=, >, <=, <), got {op!r}")
        if k3 != "num":
            _fail(text, c3, f"expected a number, got {num!r}")
        comparisons.append(Comparison(Metric(name), Op(op), float(num)))
        i += 3
        if i == len(tokens):
            break
        kind, word, col = tokens[i]
        if kind != "word" or word.lower() != "and":
            _fail(text, col, f"expected 'and' or the end, got {word!r}")
        i += 1
        if i == len(tokens):
            _fail(text, len(text), "a comparison must follow 'and'")
    return Condition(tuple(comparisons))


def _fail(text: str, index: int, message: str) -> NoReturn:
    raise InvalidRuleCondition(
        f"rule condition {text!r}, column {index + 1}: {message}",
        condition=text,
        column=index + 1,
    )
