"""Discrete-event simulation on a virtual clock, driving the real `Dispatcher`.

Callers arrive as Poisson streams per queue; agents answer after `answer_delay` (or let it
ring out with `no_answer_probability`), talk for a drawn handle time and wrap up for the
queue's `wrap_up`; callers without an agent by the end of their drawn patience hang up. Every
routing decision is the dispatcher's own, through the same calls the server makes, and the
dispatcher's `next_deadline()` is honoured exactly, so rules, ring timeouts and wrap-up timers
run as they do live.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from acd.decisions import Assign, AutoPause, Decision, Overflow, RingAll
from acd.dispatcher import Dispatcher
from acd.errors import NoSuchContact, NotOffered
from acd.model import AcdConfig, ActionKind, ContactRequest
from acd.simulation.results import QueueTally, RunResult
from acd.simulation.scenario import Scenario

_ARRIVAL, _ANSWER, _END, _ABANDON, _READY = range(5)


class _Caller:
    """What the simulator tracks of one contact."""

    __slots__ = (
        "answered_at",
        "arrived",
        "callback",
        "done",
        "id",
        "measured",
        "predicted",
        "queue",
        "waited",
    )

    def __init__(self, contact_id: str, queue: int, arrived: float, measured: bool) -> None:
        self.id = contact_id
        self.queue = queue
        self.arrived = arrived
        self.measured = measured
        self.answered_at: float | None = None
        self.predicted: float | None = None
        self.waited = False
        self.callback = False
        self.done = False


@dataclass(frozen=True, slots=True)
class _Streams:
    arrivals: random.Random
    service: random.Random
    patience: random.Random
    misc: random.Random


def simulate(
    scenario: Scenario,
    *,
    seed: int | None = None,
    linear_scan: bool = False,
    record_waits: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Run one replication and return its figures; `record_waits` keeps every measured
    answered contact's wait, in answer order (for batch-means error estimates)."""
    seed = scenario.seed if seed is None else seed
    return _Run(scenario, seed, linear_scan, progress, record_waits).run()


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        linear_scan: bool,
        progress: Callable[[str], None] | None,
        record_waits: bool = False,
    ) -> None:
        self.scenario = scenario
        self.record_waits = record_waits
        self.seed = seed
        master = random.Random(seed)
        self.rng = _Streams(*(random.Random(master.getrandbits(64)) for _ in range(4)))
        config = AcdConfig(
            queues=tuple(q.config for q in scenario.queues),
            agents=tuple(scenario.agent_configs()),
            settings=scenario.settings,
        )
        self.dispatcher = Dispatcher(config, linear_scan=linear_scan)
        self.queue_index = {q.config.name: i for i, q in enumerate(scenario.queues)}
        self.service = [
            (q.service_time or scenario.service_time).sampler(self.rng.service)
            for q in scenario.queues
        ]
        self.wrap_up = [q.config.wrap_up for q in scenario.queues]
        patience = [q.patience or scenario.patience for q in scenario.queues]
        self.patience = [p.sampler(self.rng.patience) if p else None for p in patience]
        self.interarrival = [
            (lambda r=q.arrival_rate: self.rng.arrivals.expovariate(r))
            if q.arrival_rate > 0
            else None
            for q in scenario.queues
        ]
        self.tallies = [QueueTally() for _ in scenario.queues]
        self.callers: dict[str, _Caller] = {}
        self.events: list[tuple[float, int, int, object]] = []
        self.seq = itertools.count()
        self.ids = itertools.count(1)
        self.progress = progress
        self.arrivals = 0
        self.total_calls = (
            None if scenario.calls is None else scenario.calls + scenario.warmup_calls
        )
        self.window_start: float | None = None
        self.window_end = 0.0
        # Contact slots staffed on the scenario's channel (all its queues share one).
        channel = scenario.queues[0].config.channel
        self.capacity = sum(g.count * g.template.capacity.get(channel, 0) for g in scenario.agents)

    # -- main loop ----------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Log everyone in, then process events and dispatcher deadlines in time order."""
        started = time.perf_counter()
        dispatcher = self.dispatcher
        for agent in self.scenario.agent_configs():
            self.handle(dispatcher.login(agent.id, 0.0), 0.0)
        for i, next_gap in enumerate(self.interarrival):
            if next_gap is not None:
                self.push(next_gap(), _ARRIVAL, i)
        events = self.events
        now = 0.0
        report_every = max(10_000, (self.total_calls or 100_000) // 10)
        while True:
            due = events[0][0] if events else math.inf
            deadline = dispatcher.next_deadline()
            if deadline is not None and deadline <= due:
                if not events and (
                    not self.callers or deadline > self.window_end + self.scenario.drain_limit
                ):
                    break
                now = deadline
                self.handle(dispatcher.tick(now), now)
                continue
            if not events:
                break
            now, _, kind, payload = heapq.heappop(events)
            if kind == _ARRIVAL:
                assert isinstance(payload, int)
                self.arrive(payload, now)
                if self.progress is not None and self.arrivals % report_every == 0:
                    self.progress(f"{self.arrivals} calls, {now / 3600:.1f} h simulated")
            elif kind == _END:
                assert isinstance(payload, str)
                self.handle(dispatcher.contact_ended(payload, now), now)
            elif kind == _ANSWER:
                assert isinstance(payload, tuple)
                self.answer(payload[0], payload[1], payload[2], now)
            elif kind == _ABANDON:
                assert isinstance(payload, str)
                caller = self.callers.get(payload)
                if caller is not None and caller.answered_at is None and not caller.callback:
                    self.finish(caller, "abandoned", now)
                    self.handle(dispatcher.contact_abandoned(payload, now), now)
            elif kind == _READY:
                assert isinstance(payload, str)
                if dispatcher.agent(payload).pause_reason is not None:
                    self.handle(dispatcher.ready(payload, now), now)
        unfinished = sum(1 for c in self.callers.values() if c.measured)
        for caller in self.callers.values():
            if caller.measured:
                self.tallies[caller.queue].unfinished += 1
        start = self.window_start if self.window_start is not None else 0.0
        return RunResult(
            scenario=self.scenario.name,
            seed=self.seed,
            queues={
                q.config.name: t for q, t in zip(self.scenario.queues, self.tallies, strict=True)
            },
            thresholds={
                q.config.name: q.config.service_level_seconds for q in self.scenario.queues
            },
            formula=self.scenario.service_level_formula,
            window_start=start,
            window=max(self.window_end - start, 0.0),
            capacity=self.capacity,
            simulated_seconds=now,
            wall_seconds=time.perf_counter() - started,
            arrivals=self.arrivals,
            unfinished=unfinished,
        )

    def push(self, at: float, kind: int, payload: object) -> None:
        """Schedule a simulation event."""
        heapq.heappush(self.events, (at, next(self.seq), kind, payload))

    # -- callers ------------------------------------------------------------------------------

    def arrive(self, queue: int, now: float) -> None:
        """A caller arrives: schedule the next one, enter the ACD, predict the wait."""
        scenario = self.scenario
        self.arrivals += 1
        measured = self.arrivals > scenario.warmup_calls
        if measured and self.window_start is None:
            self.window_start = now
        if measured:
            self.window_end = now
        more = (
            self.arrivals < self.total_calls
            if self.total_calls is not None
            else scenario.duration_s is not None and now < scenario.duration_s
        )
        if more:
            gap = self.interarrival[queue]
            assert gap is not None
            at = now + gap()
            if scenario.duration_s is None or at <= scenario.duration_s:
                self.push(at, _ARRIVAL, queue)
        elif self.total_calls is not None:
            # The other queues' next arrivals will not happen: drop them (in place, the main
            # loop holds this list).
            self.events[:] = [e for e in self.events if e[2] != _ARRIVAL]
            heapq.heapify(self.events)
        contact_id = f"c{next(self.ids)}"
        caller = _Caller(contact_id, queue, now, measured)
        self.callers[contact_id] = caller
        if measured:
            self.tallies[queue].offered += 1
        name = scenario.queues[queue].config.name
        decisions = self.dispatcher.contact_arrived(ContactRequest(contact_id, name), now)
        assigned = any(
            isinstance(d, Assign | RingAll) and d.contact_id == contact_id for d in decisions
        )
        self.handle(decisions, now)
        if caller.done:
            return
        if not assigned:
            caller.waited = True
            if not caller.done and not caller.callback:
                caller.predicted = self.dispatcher.estimated_wait(contact_id)
        patience = self.patience[queue]
        if patience is not None and caller.answered_at is None and not caller.done:
            self.push(now + patience(), _ABANDON, contact_id)

    def handle(self, decisions: list[Decision], now: float) -> None:
        """Carry out the dispatcher's decisions as the telephony would."""
        for decision in decisions:
            if isinstance(decision, Assign):
                self.offered(decision.contact_id, decision.agent_id, decision.queue, now)
            elif isinstance(decision, RingAll):
                self.offered(decision.contact_id, decision.agent_ids[0], decision.queue, now)
            elif isinstance(decision, Overflow):
                caller = self.callers.get(decision.contact_id)
                if caller is None:
                    continue
                if decision.action is ActionKind.CALLBACK:
                    caller.callback = True
                elif decision.action is not ActionKind.QUEUE:
                    self.finish(caller, "overflowed", now)
            elif isinstance(decision, AutoPause):
                self.push(now + self.scenario.ready_after_auto_pause, _READY, decision.agent_id)

    def offered(self, contact_id: str, agent_id: str, queue: str, now: float) -> None:
        """An agent's phone rings: answer now, later, or never (ring-no-answer)."""
        scenario = self.scenario
        if scenario.no_answer_probability and (
            self.rng.misc.random() < scenario.no_answer_probability
        ):
            return  # let it ring: the dispatcher's ring timeout takes over
        if scenario.answer_delay > 0:
            self.push(now + scenario.answer_delay, _ANSWER, (contact_id, agent_id, queue))
        else:
            self.answer(contact_id, agent_id, queue, now)

    def answer(self, contact_id: str, agent_id: str, queue: str, now: float) -> None:
        """The agent picks up: count the wait, draw the handle time."""
        caller = self.callers.get(contact_id)
        if caller is None:
            return
        try:
            decisions = self.dispatcher.offer_answered(contact_id, agent_id, now)
        except (NotOffered, NoSuchContact):
            return  # the caller hung up or the offer timed out meanwhile
        served_in = self.queue_index[queue]
        caller.answered_at = now
        handle_time = self.service[served_in]()
        self.push(now + handle_time, _END, contact_id)
        if caller.measured:
            tally = self.tallies[caller.queue]
            wait = now - caller.arrived
            tally.answered += 1
            tally.wait_total += wait
            if self.record_waits:
                tally.waits.append(wait)
            if wait <= self.scenario.queues[caller.queue].config.service_level_seconds:
                tally.answered_within += 1
            tally.handle_total += handle_time + self.wrap_up[served_in]
            if caller.waited:
                tally.waited += 1
                if caller.predicted is not None:
                    error = caller.predicted - wait
                    tally.ewt_abs_error += abs(error)
                    tally.ewt_error += error
                    tally.ewt_samples += 1
        self.add_work(caller.queue, now, now + handle_time + self.wrap_up[served_in])
        del self.callers[contact_id]
        caller.done = True
        self.handle(decisions, now)

    def finish(self, caller: _Caller, outcome: str, now: float) -> None:
        """The caller leaves unanswered (abandoned or overflowed out)."""
        caller.done = True
        self.callers.pop(caller.id, None)
        if not caller.measured:
            return
        tally = self.tallies[caller.queue]
        wait = now - caller.arrived
        if caller.waited:
            tally.waited += 1
        if outcome == "abandoned":
            tally.abandoned += 1
            if wait <= self.scenario.queues[caller.queue].config.service_level_seconds:
                tally.short_abandoned += 1
        else:
            tally.overflowed += 1

    def add_work(self, queue: int, start: float, end: float) -> None:
        """Agent time spent on a contact; clipped to the measurement window (first to last
        measured arrival) when the run is summarised, since its end is not known yet."""
        self.tallies[queue].work.append((start, end))
