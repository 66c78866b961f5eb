"""Rule conditions: parsed once without eval, evaluated as plain comparisons."""

from __future__ import annotations

import math

import pytest

from acd import Comparison, Metric, Op, parse_condition
from acd.errors import InvalidRuleCondition


def test_a_condition_is_a_conjunction_of_comparisons() -> None:
    condition = parse_condition("wait >= 30 and ewt > 120.5")
    assert condition.comparisons == (
        Comparison(Metric.WAIT, Op.GE, 30.0),
        Comparison(Metric.EWT, Op.GT, 120.5),
    )
    assert str(condition) == "wait >= 30 and ewt > 120.5"
    assert condition.is_dynamic
    assert condition.needs_ewt


@pytest.mark.parametrize("text", ["", "  ", "always", "TRUE"])
def test_an_empty_condition_always_holds(text: str) -> None:
    condition = parse_condition(text)
    assert condition.comparisons == ()
    assert not condition.is_dynamic
    assert str(condition) == "always"


def test_time_only_conditions_are_not_dynamic() -> None:
    assert not parse_condition("wait >= 10 and total_wait < 60").is_dynamic


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("wiat >= 30", 1, "unknown metric 'wiat'"),
        ("wait = 30", 6, "unexpected character '='"),
        ("wait >= thirty", 9, "expected a number"),
        ("wait >= 30 or ewt > 1", 12, "expected 'and'"),
        ("wait >= 30 and", 15, "must follow 'and'"),
        ("wait >=", 1, "expected '<metric> <operator> <number>'"),
        ("__import__('os') > 1", 11, "unexpected character"),
        ("wait 30 >=", 6, "expected a comparison operator"),
    ],
)
def test_a_bad_condition_names_its_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(InvalidRuleCondition) as caught:
        parse_condition(text)
    assert caught.value.details["column"] == column
    assert fragment in caught.value.message
    assert caught.value.code == "invalid-rule-condition"


@pytest.mark.parametrize(
    ("op", "below", "at", "above"),
    [
        (Op.GE, False, True, True),
        (Op.GT, False, False, True),
        (Op.LE, True, True, False),
        (Op.LT, True, False, False),
    ],
)
def test_each_operator_compares_as_written(op: Op, below: bool, at: bool, above: bool) -> None:
    comparison = Comparison(Metric.POSITION, op, 5.0)
    assert [comparison.holds(4.0), comparison.holds(5.0), comparison.holds(6.0)] == [
        below,
        at,
        above,
    ]


@pytest.mark.parametrize("op", list(Op))
def test_a_time_comparison_flips_exactly_when_its_deadline_says(op: Op) -> None:
    comparison = Comparison(Metric.WAIT, op, 30.0)
    base = 1234.567
    flip = comparison.flips_at(base)
    before = math.nextafter(flip, -math.inf)
    assert comparison.holds_since(before, base) != comparison.holds_since(flip, base)
    assert flip >= base + 30.0
