"""Values in a run: checking answers, and turning stored values into what CEL reads.

Answers are kept as plain JSON values (text, yes/no as booleans, numbers, dates as ISO
strings) so that a run stores and resumes without loss; CEL sees dates and datetimes as
timestamps and numbers as int or double exactly as declared, because CEL never mixes them.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import cel

from scripts_engine.errors import InvalidAnswer
from scripts_engine.script import AnswerType, Step, ValueType, parse_date_limit

#: Numbers beyond this are refused: CEL integers are 64-bit and such answers are typos anyway.
MAX_NUMBER = 1e15
#: Longest free-text answer accepted when the script gives no max-length.
DEFAULT_MAX_TEXT = 2000
_YES = frozenset({"yes", "y", "true", "1", "ja", "oui", "si"})
_NO = frozenset({"no", "n", "false", "0", "2", "nein", "non"})
#: The sample time used to type-check expressions at load time.
SAMPLE_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def plain(value: object) -> object:
    """A JSON-able copy of `value` (datetimes kept): what services and storage hand back.

    Dataclasses become dicts, enums their values, decimals floats, dates ISO strings, and
    anything else unknown its text, so a run never stores an object it cannot reload.
    """
    if value is None or isinstance(value, bool | int | str | datetime):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def json_value(value: object) -> object:
    """A strictly JSON-serialisable copy of `value`: timestamps become ISO text.

    A timestamp at midnight UTC is how CEL holds a date answer, so it goes out as a date.
    """
    value = plain(value)
    if isinstance(value, datetime):
        return iso_text(value)
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


def iso_text(moment: datetime) -> str:
    """ISO text of a timestamp; just the date for midnight UTC (a date answer)."""
    if (
        moment.tzinfo is not None
        and moment.utcoffset() == timedelta(0)
        and moment.time() == time(0)
    ):
        return moment.date().isoformat()
    return moment.isoformat()


def _as_timestamp(value: object) -> object:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def to_cel(value: object, type_: ValueType) -> object:
    """How a customer field or variable of `type_` reads in CEL."""
    if value is None:
        return None
    if type_ in (ValueType.DATE, ValueType.DATETIME):
        return _as_timestamp(value)
    if type_ is ValueType.FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type_ is ValueType.JSON:
        return _cel_json(value)
    return value


def _cel_json(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _cel_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cel_json(v) for v in value]
    return plain(value)


def answer_to_cel(step: Step, value: object) -> object:
    """How a stored answer reads in CEL (dates become timestamps)."""
    if value is None:
        return None
    if step.answer_type is AnswerType.DATE:
        return _as_timestamp(value)
    if step.answer_type is AnswerType.NUMBER and not step.rules.integer:
        return float(value) if isinstance(value, int | float) else value
    return value


def from_cel(value: object) -> object:
    """A CEL result as a plain value (CEL optionals unwrapped)."""
    if isinstance(value, cel.OptionalValue):
        return plain(value.value()) if value.has_value() else None
    return plain(value)


def parse_answer(step: Step, raw: object, today: date) -> object:
    """The canonical answer to `step` for `raw` input; InvalidAnswer with a reason if refused.

    Text from a form is accepted as well as typed JSON, so a web page, a DTMF reader and a
    JSON file all go through the same checks.
    """
    kind = step.answer_type
    rules = step.rules
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if rules.required:
            raise InvalidAnswer("an answer is required", step=step.id)
        return None
    if kind is AnswerType.CHOICE:
        text = str(raw).strip()
        for choice in step.choices:
            if text == choice.value:
                return choice.value
        allowed = ", ".join(c.value for c in step.choices)
        raise InvalidAnswer(f"{text!r} is not one of the choices ({allowed})", step=step.id)
    if kind is AnswerType.YESNO:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in _YES:
            return True
        if word in _NO:
            return False
        raise InvalidAnswer("answer yes or no", step=step.id)
    if kind is AnswerType.NUMBER:
        return _parse_number(step, raw)
    if kind is AnswerType.DATE:
        return _parse_date(step, raw, today)
    if kind is AnswerType.TEXT:
        return _parse_text(step, raw)
    raise InvalidAnswer("this step takes no answer", step=step.id)


def _parse_number(step: Step, raw: object) -> int | float:
    rules = step.rules
    if isinstance(raw, bool):
        raise InvalidAnswer("a number is required", step=step.id)
    if isinstance(raw, int | float):
        number = float(raw)
    else:
        try:
            number = float(str(raw).strip().replace(",", "."))
        except ValueError:
            raise InvalidAnswer(f"{str(raw)!r} is not a number", step=step.id) from None
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise InvalidAnswer("the number is out of range", step=step.id)
    if rules.integer and not number.is_integer():
        raise InvalidAnswer("a whole number is required", step=step.id)
    if rules.minimum is not None and number < rules.minimum:
        raise InvalidAnswer(f"the number must be at least {_num(rules.minimum)}", step=step.id)
    if rules.maximum is not None and number > rules.maximum:
        raise InvalidAnswer(f"the number must be at most {_num(rules.maximum)}", step=step.id)
    return int(number) if rules.integer else number


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def _parse_date(step: Step, raw: object, today: date) -> str:
    rules = step.rules
    if isinstance(raw, datetime):
        day = raw.date()
    elif isinstance(raw, date):
        day = raw
    else:
        text = str(raw).strip()
        try:
            day = date.fromisoformat(text)
        except ValueError:
            digits = text.replace(".", "").replace("/", "")
            # DTMF and spoken forms: DDMMYYYY.
            if len(digits) == 8 and digits.isdigit():
                try:
                    day = date(int(digits[4:]), int(digits[2:4]), int(digits[:2]))
                except ValueError:
                    raise InvalidAnswer(f"{text!r} is not a date", step=step.id) from None
            else:
                raise InvalidAnswer(
                    f"{text!r} is not a date (write YYYY-MM-DD)", step=step.id
                ) from None
    if rules.min_date is not None and day < parse_date_limit(rules.min_date, today):
        limit = parse_date_limit(rules.min_date, today)
        raise InvalidAnswer(f"the date must be on or after {limit.isoformat()}", step=step.id)
    if rules.max_date is not None and day > parse_date_limit(rules.max_date, today):
        limit = parse_date_limit(rules.max_date, today)
        raise InvalidAnswer(f"the date must be on or before {limit.isoformat()}", step=step.id)
    return day.isoformat()


def _parse_text(step: Step, raw: object) -> str:
    rules = step.rules
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise InvalidAnswer("a text answer is required", step=step.id)
    text = str(raw).strip()
    # Control characters never belong in an answer (and would reach e-mails and logs).
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    longest = rules.max_length if rules.max_length is not None else DEFAULT_MAX_TEXT
    if len(text) > longest:
        raise InvalidAnswer(f"the answer is longer than {longest} characters", step=step.id)
    if rules.min_length is not None and len(text) < rules.min_length:
        raise InvalidAnswer(
            f"the answer must have at least {rules.min_length} characters", step=step.id
        )
    if rules.pattern is not None and not matches_pattern(rules.pattern, text):
        raise InvalidAnswer("the answer does not have the expected form", step=step.id)
    return text


def matches_pattern(pattern: str, text: str) -> bool:
    """Whether all of `text` matches `pattern`, in CEL's linear-time regex engine.

    Patterns come from script authors and answers from callers; a backtracking engine could
    be made to spin for minutes by one crafted answer, CEL's engine cannot.
    """
    result = cel.evaluate("value.matches(pattern)", {"value": text, "pattern": f"^(?:{pattern})$"})
    return result is True


def sample_value(type_: ValueType) -> object:
    """A typical value of `type_` for type-checking expressions (None for json: any shape)."""
    samples: dict[ValueType, object] = {
        ValueType.STRING: "sample",
        ValueType.TEXT: "sample",
        ValueType.INTEGER: 1,
        ValueType.FLOAT: 1.5,
        ValueType.BOOLEAN: True,
        ValueType.DATETIME: SAMPLE_TIME,
        ValueType.DATE: SAMPLE_TIME,
    }
    return samples.get(type_)


def sample_answer(step: Step) -> object:
    """A typical answer to `step` as CEL reads it, for type-checking expressions."""
    kind = step.answer_type
    if kind is AnswerType.CHOICE:
        return step.choices[0].value if step.choices else "sample"
    if kind is AnswerType.YESNO:
        return True
    if kind is AnswerType.NUMBER:
        return 1 if step.rules.integer else 1.5
    if kind is AnswerType.DATE:
        return SAMPLE_TIME
    return "sample"


def parse_initial(text: str, type_: ValueType) -> object:
    """A variable's initial value as written in the script; ValueError says what is wrong."""
    value = text.strip()
    if type_ in (ValueType.STRING, ValueType.TEXT):
        return text
    if type_ is ValueType.INTEGER:
        return int(value)
    if type_ is ValueType.FLOAT:
        return float(value)
    if type_ is ValueType.BOOLEAN:
        if value.lower() in ("true", "yes"):
            return True
        if value.lower() in ("false", "no"):
            return False
        raise ValueError(f"{text!r} is not a boolean (write true or false)")
    if type_ is ValueType.DATE:
        return date.fromisoformat(value).isoformat()
    if type_ is ValueType.DATETIME:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return plain(json.loads(value))


def matches_type(value: object, type_: ValueType) -> bool:
    """Whether a CEL result fits a variable or field of `type_` (null always fits)."""
    if value is None or type_ is ValueType.JSON:
        return True
    if type_ in (ValueType.STRING, ValueType.TEXT):
        return isinstance(value, str)
    if type_ is ValueType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ is ValueType.FLOAT:
        return isinstance(value, float | int) and not isinstance(value, bool)
    if type_ is ValueType.BOOLEAN:
        return isinstance(value, bool)
    # DATE and DATETIME: a timestamp, or ISO text.
    return isinstance(value, datetime | date) or (isinstance(value, str) and _is_iso(value))


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def coerce_to_type(value: object, type_: ValueType) -> object:
    """A CEL result stored as a variable or field of `type_` (int into float, dates as ISO)."""
    if value is None:
        return None
    if type_ is ValueType.FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type_ is ValueType.INTEGER and isinstance(value, float) and value.is_integer():
        return int(value)  # JSON services often send 3.0 for 3
    if type_ is ValueType.DATE and isinstance(value, datetime):
        return value.date().isoformat()
    return plain(value)


def answer_from_keys(step: Step, keys: str) -> object:
    """The answer a caller keyed on the phone (DTMF), for `parse_answer` to check.

    Choices by their key; yes/no as 1/2; numbers as digits; dates as DDMMYYYY. An empty
    entry is "no answer". The IVR reads the step's phone text, collects keys, calls this.
    """
    entry = keys.strip().rstrip("#")
    if not entry:
        return None
    kind = step.answer_type
    if kind is AnswerType.CHOICE:
        for choice in step.choices:
            if choice.key == entry:
                return choice.value
        raise InvalidAnswer(f"key {entry!r} is not one of the choices", step=step.id)
    if kind is AnswerType.YESNO:
        if entry == "1":
            return True
        if entry == "2":
            return False
        raise InvalidAnswer("press 1 for yes or 2 for no", step=step.id)
    if kind in (AnswerType.NUMBER, AnswerType.DATE):
        if not entry.isdigit():
            raise InvalidAnswer("only digits are expected", step=step.id)
        return entry
    raise InvalidAnswer("this question cannot be answered with the phone keys", step=step.id)
