"""Interface specs derived from Protocols, and the JSON codecs behind them."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Protocol

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service_manager import (
    CodecError,
    InterfaceRegistry,
    InterfaceSpec,
    InvalidArguments,
    UnknownInterface,
    codec_for,
)
from service_manager.examples.customer_directory import CUSTOMER_DIRECTORY_V1, Customer


class Tariff(enum.Enum):
    BASIC = "basic"
    GREEN = "green"


@dataclass(frozen=True)
class Reading:
    meter: str
    value: float
    taken_at: dt.datetime
    tariff: Tariff = Tariff.BASIC
    tags: tuple[str, ...] = ()


class Metering(Protocol):
    async def submit(self, reading: Reading, notify: bool = False) -> int: ...

    async def history(self, meter: str, since: dt.date | None = None) -> list[Reading]: ...


def test_spec_lists_arguments_result_and_idempotent_flag() -> None:
    spec = InterfaceSpec.from_protocol("metering", 2, Metering, idempotent={"history"})
    assert spec.id == "metering/2"
    assert [m.describe() for m in spec.methods.values()] == [
        {"name": "history", "idempotent": True, "result": "list of Reading",
         "arguments": [{"name": "meter", "type": "string", "required": True},
                       {"name": "since", "type": "date or null", "required": False}]},
        {"name": "submit", "idempotent": False, "result": "integer",
         "arguments": [{"name": "reading", "type": "Reading", "required": True},
                       {"name": "notify", "type": "boolean", "required": False}]},
    ]
    assert CUSTOMER_DIRECTORY_V1.describe()["id"] == "customer-directory/1"


def test_arguments_are_decoded_with_defaults_and_checked() -> None:
    submit = InterfaceSpec.from_protocol("metering", 1, Metering).methods["submit"]
    values = submit.decode_arguments(
        {"reading": {"meter": "M-1", "value": 3, "taken_at": "2024-05-01T08:00:00Z",
                     "tariff": "green", "unknown-later-field": 1}}
    )
    reading = values["reading"]
    assert reading == Reading("M-1", 3.0, dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC),
                              Tariff.GREEN)
    assert values["notify"] is False
    with pytest.raises(InvalidArguments) as info:
        submit.decode_arguments({"reading": {"meter": "M-1", "value": True,
                                             "taken_at": "2024-05-01T08:00:00"}})
    assert info.value.details["errors"] == {
        "reading": "reading.value: expected a number, got boolean"
    }
    with pytest.raises(InvalidArguments, match="missing"):
        submit.decode_arguments({})
    assert submit.bind(("r",), {"notify": True}) == {"reading": "r", "notify": True}
    with pytest.raises(InvalidArguments, match="submit"):
        submit.bind((), {"nope": 1})


@pytest.mark.parametrize(
    ("hint", "data", "message"),
    [
        (dt.datetime, "2024-05-01T08:00:00", "needs a UTC offset"),
        (dt.datetime, "yesterday", "not an ISO 8601 datetime"),
        (int, True, "expected an integer, got boolean"),
        (float, float("nan"), "finite"),
        (list[int], [1, "2"], "value[1]: expected an integer"),
        (dict[str, int], {"a": None}, "value.a: expected an integer, got null"),
        (Tariff, "brown", "expected one of 'basic', 'green'"),
        (Customer, {"id": 1}, "value.name: missing"),
    ],
)
def test_codecs_refuse_data_of_the_wrong_shape(hint: object, data: object, message: str) -> None:
    with pytest.raises(CodecError, match=re.escape(message)):
        codec_for(hint).decode(data)


def test_protocols_that_cannot_travel_are_refused() -> None:
    class Sync(Protocol):
        def ping(self) -> str: ...

    class Untyped(Protocol):
        async def ping(self, x) -> str: ...  # type: ignore[no-untyped-def]

    class OddUnion(Protocol):
        async def ping(self, x: int | str) -> str: ...

    with pytest.raises(TypeError, match="must be 'async def'"):
        InterfaceSpec.from_protocol("sync", 1, Sync)
    with pytest.raises(TypeError, match="needs a type annotation"):
        InterfaceSpec.from_protocol("untyped", 1, Untyped)
    with pytest.raises(TypeError, match="unions other than"):
        InterfaceSpec.from_protocol("odd", 1, OddUnion)
    with pytest.raises(ValueError, match="idempotent names unknown methods"):
        InterfaceSpec.from_protocol("metering", 1, Metering, idempotent={"delete"})
    with pytest.raises(ValueError, match="kebab-case"):
        InterfaceSpec.from_protocol("Metering", 1, Metering)


def test_registry_resolves_versions_and_names_what_it_knows() -> None:
    v1 = InterfaceSpec.from_protocol("metering", 1, Metering)
    v2 = InterfaceSpec.from_protocol("metering", 2, Metering)
    registry = InterfaceRegistry([v1, v2, CUSTOMER_DIRECTORY_V1])
    assert registry.get("metering/1") is v1
    assert registry.get("metering") is v2
    assert registry.for_protocol(Metering) is v2
    with pytest.raises(UnknownInterface, match="known: customer-directory/1, metering/1"):
        registry.get("billing/1")


@given(
    st.builds(
        Customer,
        id=st.integers(min_value=-(2**53), max_value=2**53),
        name=st.text(max_size=30),
        phone=st.none() | st.text(max_size=20),
        email=st.none() | st.text(max_size=20),
        priority=st.none() | st.integers(min_value=-100, max_value=100),
        account=st.none() | st.text(max_size=10),
        vip=st.none() | st.booleans(),
    )
)
def test_customer_round_trips_through_its_json_form(customer: Customer) -> None:
    codec = codec_for(Customer | None)
    assert codec.decode(codec.encode(customer)) == customer
