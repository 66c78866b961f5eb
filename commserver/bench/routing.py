"""`caruso bench routing`: matcher latency and dispatcher throughput at full load.

A site of `--agents` agents with 2-4 of `--skills` skills each (random levels) serves one
queue per skill; `--waiting` contacts wait. Each event then ends a random agent's call (the
agent frees up and the dispatcher picks their next contact across every queue), the agent
answers, and a new contact arrives. The same seeded workload runs twice: through the indexed
matcher the server uses, and through a naive router that scans every agent and every waiting
contact; both must make the same decisions.

Figures: matcher time per decision (p50/p99/mean, microseconds), event-to-assignment time
(the whole dispatcher input that produced an assignment), decisions per second of dispatcher
time, and the speed-up over the naive scan.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from acd import (
    AcdConfig,
    AcdSettings,
    AgentConfig,
    Assign,
    ContactRequest,
    Decision,
    Dispatcher,
    QueueConfig,
    Strategy,
)
from acd.matching import AgentChoice, Matcher
from acd.model import Channel
from acd.records import AgentRecord, ContactRecord

HELP = "routing decision latency and throughput at 180 agents / 1,000 waiting / 12 skills"

GOALS = {
    "matcher_p99_us": 50.0,
    "event_to_assignment_p99_us": 1000.0,
    "decisions_per_s": 10_000.0,
    "speedup": 100.0,
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `caruso bench routing`."""
    parser.add_argument("--agents", type=int, default=180, help="agents logged in (180)")
    parser.add_argument("--waiting", type=int, default=1000, help="contacts waiting (1000)")
    parser.add_argument("--skills", type=int, default=12, help="skills, one queue each (12)")
    parser.add_argument("--events", type=int, default=5000, help="measured events (5000)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (1)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each matcher, interleaved; the fastest of each is reported (3)",
    )
    parser.add_argument(
        "--strategy",
        choices=[s.value for s in Strategy if s is not Strategy.RING_ALL],
        default=Strategy.LONGEST_IDLE.value,
        help="agent-selection strategy of every queue (longest-idle)",
    )


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the workload through both matchers and return the figures."""
    workload = Workload(
        agents=args.agents,
        waiting=args.waiting,
        skills=args.skills,
        events=args.events,
        seed=args.seed,
        strategy=Strategy(args.strategy),
    )
    print(f"routing bench: {workload.describe()}", file=sys.stderr)
    # A shared machine adds noise to microsecond timings: like timeit, keep the fastest of a
    # few interleaved runs of each matcher (every run makes the same decisions).
    indexed_runs: list[Measurement] = []
    naive_runs: list[Measurement] = []
    for round_ in range(1, max(1, args.repeat) + 1):
        for linear_scan, runs in ((False, indexed_runs), (True, naive_runs)):
            run_ = measure(workload, linear_scan=linear_scan)
            runs.append(run_)
            print(
                f"  round {round_} {'naive  ' if linear_scan else 'indexed'}: matcher p50 "
                f"{run_.matcher_p(0.5):.1f} us, p99 {run_.matcher_p(0.99):.1f} us, "
                f"{run_.decisions_per_s:,.0f} decisions/s",
                file=sys.stderr,
            )
    indexed = min(indexed_runs, key=Measurement.matcher_mean)
    naive = min(naive_runs, key=Measurement.matcher_mean)
    if any(r.trace != indexed.trace for r in (*indexed_runs, *naive_runs)):
        naive.trace = []  # reported as same_decisions: false
    return report(workload, indexed, naive, args.repeat)


# -- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """What to build and how many events to measure."""

    agents: int = 180
    waiting: int = 1000
    skills: int = 12
    events: int = 5000
    seed: int = 1
    strategy: Strategy = Strategy.LONGEST_IDLE

    def describe(self) -> str:
        """One line for progress output."""
        return (
            f"{self.agents} agents, {self.waiting} waiting, {self.skills} skills, "
            f"{self.events} events, {self.strategy.value}"
        )

    def config(self) -> AcdConfig:
        """Queues (one per skill, varied minimum levels and priorities) and agents."""
        rng = random.Random(self.seed)
        skills = [f"skill{i:02d}" for i in range(self.skills)]
        queues = tuple(
            QueueConfig(
                f"queue{i:02d}",
                skills={skill: rng.choice((1, 20, 40))},
                priority=1 if i % 4 == 0 else 0,
                strategy=self.strategy,
            )
            for i, skill in enumerate(skills)
        )
        agents = []
        for n in range(self.agents):
            # Every skill is covered: agent n always has skill n mod S, plus 1-3 others.
            own = {skills[n % self.skills]}
            own.update(rng.sample(skills, rng.randint(1, min(3, self.skills))))
            agents.append(
                AgentConfig(f"agent{n:03d}", skills={s: rng.randint(41, 100) for s in own})
            )
        # No periodic audit inside the measurement: the bench times routing alone.
        settings = AcdSettings(audit_interval=None, max_handle_time=None, seed=self.seed)
        return AcdConfig(queues=queues, agents=tuple(agents), settings=settings)


class TimedMatcher:
    """Wraps a matcher and records how long each question took (nanoseconds)."""

    def __init__(self, inner: Matcher) -> None:
        self.inner = inner
        self.name = inner.name
        self.agent_freed: list[int] = []
        self.contact_arrived: list[int] = []
        self.recording = False

    def best_contact_for(
        self, agent: AgentRecord, channel: Channel
    ) -> tuple[ContactRecord, int] | None:
        """Timed `best_contact_for`."""
        start = time.perf_counter_ns()
        result = self.inner.best_contact_for(agent, channel)
        if self.recording:
            self.agent_freed.append(time.perf_counter_ns() - start)
        return result

    def best_agents_for(
        self, contact: ContactRecord, now: float, rng: random.Random
    ) -> AgentChoice | None:
        """Timed `best_agents_for`."""
        start = time.perf_counter_ns()
        result = self.inner.best_agents_for(contact, now, rng)
        if self.recording:
            self.contact_arrived.append(time.perf_counter_ns() - start)
        return result


@dataclass
class Measurement:
    """Raw timings of one run."""

    matcher: list[int] = field(default_factory=list)
    matcher_agent_freed: list[int] = field(default_factory=list)
    matcher_contact_arrived: list[int] = field(default_factory=list)
    event_to_assignment: list[int] = field(default_factory=list)
    dispatcher_ns: int = 0
    decisions: int = 0
    trace: list[tuple[str, str]] = field(default_factory=list)

    @property
    def decisions_per_s(self) -> float:
        """Assignments per second of time spent inside the dispatcher."""
        return self.decisions / (self.dispatcher_ns / 1e9) if self.dispatcher_ns else 0.0

    def matcher_mean(self) -> float:
        """Mean matcher time in nanoseconds."""
        return sum(self.matcher) / len(self.matcher) if self.matcher else 0.0

    def matcher_p(self, q: float) -> float:
        """A quantile of the matcher time in microseconds."""
        return quantile(self.matcher, q) / 1000.0


def measure(workload: Workload, *, linear_scan: bool) -> Measurement:
    """Build the site, fill the queues, then time `workload.events` events."""
    site = _Site(workload, linear_scan)
    site.fill()
    gc.collect()
    # Like timeit: no collector pauses inside the timings (they are the allocator's cost, not
    # the matcher's, and land on whichever call happens to be running).
    gc.disable()
    site.timed.recording = True
    try:
        site.run_events()
    finally:
        gc.enable()
        site.timed.recording = False
    problems = site.dispatcher.check_invariants()
    if problems:
        raise RuntimeError(f"routing bench broke an invariant: {problems[0]}")
    result = site.result
    result.matcher_agent_freed = site.timed.agent_freed
    result.matcher_contact_arrived = site.timed.contact_arrived
    result.matcher = site.timed.agent_freed + site.timed.contact_arrived
    return result


class _Site:
    """The simulated floor the benchmark drives: agents answer at once, calls end at random."""

    def __init__(self, workload: Workload, linear_scan: bool) -> None:
        self.workload = workload
        self.rng = random.Random(workload.seed * 7919 + 1)
        self.config = workload.config()
        self.dispatcher = Dispatcher(self.config, linear_scan=linear_scan)
        self.timed = TimedMatcher(self.dispatcher.matcher)
        self.dispatcher.use_matcher(self.timed)
        self.queue_names = [q.name for q in self.config.queues]
        self.connected: dict[str, str] = {}  # agent -> contact
        self.ids = itertools.count(1)
        self.now = 0.0
        self.result = Measurement()

    def carry_out(self, decisions: list[Decision]) -> int:
        """Agents answer every assignment at once; returns how many there were."""
        assigned = 0
        for decision in decisions:
            if isinstance(decision, Assign):
                assigned += 1
                self.result.trace.append((decision.contact_id, decision.agent_id))
                self.dispatcher.offer_answered(decision.contact_id, decision.agent_id, self.now)
                self.connected[decision.agent_id] = decision.contact_id
        return assigned

    def arrive(self) -> list[Decision]:
        """A new contact in a random queue, priority 0-2."""
        request = ContactRequest(
            f"c{next(self.ids)}",
            self.rng.choice(self.queue_names),
            priority=self.rng.choice((0, 0, 0, 1, 2)),
        )
        return self.dispatcher.contact_arrived(request, self.now)

    def fill(self) -> None:
        """Log everyone in and queue contacts until `waiting` wait (bounded)."""
        for agent in self.config.agents:
            self.carry_out(self.dispatcher.login(agent.id, self.now))
        for _ in range(self.workload.agents + self.workload.waiting * 4):
            if len(self.dispatcher.index.waiting) >= self.workload.waiting:
                break
            self.now += 0.01
            self.carry_out(self.arrive())

    def run_events(self) -> None:
        """The measured events: a random agent's call ends, then a new contact arrives."""
        result = self.result
        for _ in range(self.workload.events):
            self.now += 0.01
            busy = sorted(self.connected)
            if not busy:
                break
            contact_id = self.connected.pop(self.rng.choice(busy))
            events: tuple[Callable[[], list[Decision]], ...] = (
                partial(self.dispatcher.contact_ended, contact_id, self.now),
                self.arrive,
            )
            for event in events:
                start = time.perf_counter_ns()
                decisions = event()
                elapsed = time.perf_counter_ns() - start
                if any(isinstance(d, Assign) for d in decisions):
                    result.event_to_assignment.append(elapsed)
                start = time.perf_counter_ns()
                result.decisions += self.carry_out(decisions)  # the agents answer
                result.dispatcher_ns += elapsed + time.perf_counter_ns() - start
            self.dispatcher.tick(self.now)


# -- figures ---------------------------------------------------------------------------------


def quantile(values: list[int], q: float) -> float:
    """Nearest-rank quantile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))
    return float(ordered[index])


def _summary_us(values: list[int]) -> dict[str, float]:
    mean = sum(values) / len(values) if values else 0.0
    return {
        "p50": round(quantile(values, 0.50) / 1000.0, 2),
        "p99": round(quantile(values, 0.99) / 1000.0, 2),
        "mean": round(mean / 1000.0, 2),
        "samples": len(values),
    }


def _figures(m: Measurement) -> dict[str, object]:
    return {
        "matcher_us": _summary_us(m.matcher),
        "matcher_agent_freed_us": _summary_us(m.matcher_agent_freed),
        "matcher_contact_arrived_us": _summary_us(m.matcher_contact_arrived),
        "event_to_assignment_us": _summary_us(m.event_to_assignment),
        "decisions": m.decisions,
        "decisions_per_s": round(m.decisions_per_s),
    }


def report(
    workload: Workload, indexed: Measurement, naive: Measurement, repeat: int = 1
) -> dict[str, object]:
    """The JSON-able result: both runs, the speed-ups, and the goals met or not.

    The speed-up goal is judged on the median decision (a typical one): means and 99th
    percentiles of microsecond timings on a shared machine carry the scheduler's noise, and
    they are reported beside it.
    """

    def ratio(a: float, b: float) -> float:
        return round(a / b, 1) if b else 0.0

    def mean(values: list[int]) -> float:
        return sum(values) / len(values) if values else 0.0

    def median(values: list[int]) -> float:
        return quantile(values, 0.5)

    speedup = {
        "matcher_p50": ratio(median(naive.matcher), median(indexed.matcher)),
        "matcher_p99": ratio(quantile(naive.matcher, 0.99), quantile(indexed.matcher, 0.99)),
        "matcher_mean": ratio(mean(naive.matcher), mean(indexed.matcher)),
        "agent_freed_p50": ratio(
            median(naive.matcher_agent_freed), median(indexed.matcher_agent_freed)
        ),
        "agent_freed_mean": ratio(
            mean(naive.matcher_agent_freed), mean(indexed.matcher_agent_freed)
        ),
        "contact_arrived_p50": ratio(
            median(naive.matcher_contact_arrived), median(indexed.matcher_contact_arrived)
        ),
        "contact_arrived_mean": ratio(
            mean(naive.matcher_contact_arrived), mean(indexed.matcher_contact_arrived)
        ),
        "decisions_per_s": ratio(indexed.decisions_per_s, naive.decisions_per_s),
    }
    matcher_p99 = indexed.matcher_p(0.99)
    e2a_p99 = quantile(indexed.event_to_assignment, 0.99) / 1000.0
    return {
        "repeat": max(1, repeat),
        "workload": {
            "agents": workload.agents,
            "waiting": workload.waiting,
            "skills": workload.skills,
            "events": workload.events,
            "seed": workload.seed,
            "strategy": workload.strategy.value,
        },
        "indexed": _figures(indexed),
        "naive": _figures(naive),
        "speedup": speedup,
        "same_decisions": indexed.trace == naive.trace,
        "goals": {
            "matcher_p99_us<=50": matcher_p99 <= GOALS["matcher_p99_us"],
            "event_to_assignment_p99_us<=1000": e2a_p99 <= GOALS["event_to_assignment_p99_us"],
            "decisions_per_s>=10000": indexed.decisions_per_s >= GOALS["decisions_per_s"],
            "speedup_p50>=100": speedup["matcher_p50"] >= GOALS["speedup"],
        },
    }
