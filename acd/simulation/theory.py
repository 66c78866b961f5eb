"""Queueing theory the simulator is checked against: Erlang B, Erlang C (M/M/N) and Erlang A
(M/M/N+M, exponential patience).

Erlang C uses the stable Erlang B recursion; Erlang A solves its birth-death chain directly
(log weights, so 180 agents do not overflow a float).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/N/N with offered load `load` (erlangs)."""
    b = 1.0
    for n in range(1, agents + 1):
        b = load * b / (n + load * b)
    return b


def erlang_c(agents: int, load: float) -> float:
    """Probability that a contact waits in M/M/N (needs load < agents)."""
    if load >= agents:
        return 1.0
    b = erlang_b(agents, load)
    return agents * b / (agents - load * (1.0 - b))


def erlang_c_service_level(agents: int, load: float, aht: float, threshold: float) -> float:
    """Share of contacts answered within `threshold` seconds in M/M/N."""
    if load >= agents:
        return 0.0
    return 1.0 - erlang_c(agents, load) * math.exp(-(agents - load) * threshold / aht)


def erlang_c_asa(agents: int, load: float, aht: float) -> float:
    """Mean wait (all contacts, including those answered at once) in M/M/N."""
    if load >= agents:
        return math.inf
    return erlang_c(agents, load) * aht / (agents - load)


@dataclass(frozen=True, slots=True)
class ErlangA:
    """Stationary figures of M/M/N+M."""

    p_wait: float  # an arriving contact finds every agent busy
    p_abandon: float  # share of contacts that abandon
    mean_wait: float  # mean time in queue over all contacts (served or not)
    mean_queue: float  # mean number waiting


def erlang_a(agents: int, arrival_rate: float, aht: float, mean_patience: float) -> ErlangA:
    """M/M/N+M by its birth-death chain: arrivals `arrival_rate`/s, exponential handle times
    of mean `aht`, exponential patience of mean `mean_patience`."""
    mu = 1.0 / aht
    theta = 1.0 / mean_patience
    log_w = [0.0]
    k = 0
    # Weights fall geometrically once abandonments dominate; stop when negligible.
    while True:
        k += 1
        rate = min(k, agents) * mu + max(k - agents, 0) * theta
        log_w.append(log_w[-1] + math.log(arrival_rate) - math.log(rate))
        if k > agents and log_w[-1] < max(log_w) - 50:
            break
    top = max(log_w)
    w = [math.exp(x - top) for x in log_w]
    total = sum(w)
    p = [x / total for x in w]
    p_wait = sum(p[agents:])
    mean_queue = sum((i - agents) * p[i] for i in range(agents + 1, len(p)))
    return ErlangA(
        p_wait=p_wait,
        p_abandon=theta * mean_queue / arrival_rate,
        mean_wait=mean_queue / arrival_rate,
        mean_queue=mean_queue,
    )
