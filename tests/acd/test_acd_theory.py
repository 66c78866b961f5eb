"""The queueing formulas the simulator is validated against."""

from __future__ import annotations

import pytest

from acd.simulation.theory import (
    erlang_a,
    erlang_b,
    erlang_c,
    erlang_c_asa,
    erlang_c_service_level,
)


def test_erlang_b_and_c_match_published_tables() -> None:
    assert erlang_b(10, 8.0) == pytest.approx(0.12166, abs=5e-5)
    assert erlang_c(10, 8.0) == pytest.approx(0.40918, abs=5e-5)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho


def test_erlang_c_service_level_and_asa() -> None:
    assert erlang_c_service_level(10, 8.0, 180.0, 20.0) == pytest.approx(0.67236, abs=5e-5)
    assert erlang_c_asa(10, 8.0, 180.0) == pytest.approx(36.826, abs=5e-3)
    assert erlang_c_service_level(4, 4.0, 180.0, 20.0) == 0.0  # unstable


def test_erlang_c_does_not_overflow_at_180_agents() -> None:
    c = erlang_c(180, 170.0)
    assert 0.3 < c < 0.4


def test_erlang_a_tends_to_erlang_c_when_nobody_gives_up() -> None:
    a = erlang_a(10, 8.0 / 180.0, 180.0, mean_patience=1e9)
    assert a.p_wait == pytest.approx(erlang_c(10, 8.0), rel=1e-4)
    assert a.mean_wait == pytest.approx(erlang_c_asa(10, 8.0, 180.0), rel=1e-3)
    assert a.p_abandon < 1e-6


def test_erlang_a_balances_its_flows_even_overloaded() -> None:
    # Offered 60 erlangs to 50 agents: only abandonment keeps it stable.
    arrival_rate, aht, patience = 60.0 / 180.0, 180.0, 120.0
    a = erlang_a(50, arrival_rate, aht, patience)
    served_per_s = arrival_rate * (1 - a.p_abandon)
    assert served_per_s * aht <= 50.0
    # Abandonment at least takes away the overload: 10 of 60 erlangs.
    assert a.p_abandon >= 10.0 / 60.0 - 1e-9
    assert a.p_abandon == pytest.approx(a.mean_queue / patience / arrival_rate)
