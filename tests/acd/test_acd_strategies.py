"""Each strategy picks the agent it promises; ties always break the same way."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from acd import Assign, Criterion, Decision, Dispatcher, QueueConfig, RingAll, Strategy, Why
from acd.decisions import CancelOffer, CancelReason
from tests.acd.conftest import DispatcherFactory
from tests.acd.helpers import agent, arrive, assigned, only


def queue(strategy: Strategy, ring_timeout: float = 15.0) -> QueueConfig:
    return QueueConfig(
        "support", skills={"support": 1}, strategy=strategy, ring_timeout=ring_timeout
    )


def serve(d: Dispatcher, contact_id: str, agent_id: str, start: float, end: float) -> None:
    """The agent takes one call from `start` to `end`."""
    d.offer_answered(contact_id, agent_id, start)
    d.contact_ended(contact_id, end)


def test_longest_idle_takes_the_agent_free_the_longest(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([queue(Strategy.LONGEST_IDLE)], [agent("ada", support=1)], login=False)
    d.add_agent(agent("bob", support=1))
    d.login("bob", 1.0)
    d.login("ada", 2.0)
    out = arrive(d, "c1", 5.0)
    assert assigned(out) == [("c1", "bob")]
    why = only_why(out)
    assert (why.criterion, why.value, why.candidates) == (
        Criterion.LONGEST_IDLE,
        4.0,
        frozenset({"ada", "bob"}),
    )


def test_equal_idle_time_breaks_by_creation_order(make_dispatcher: DispatcherFactory) -> None:
    agents = [agent(name, support=1) for name in ("zoe", "ada", "bob")]
    d = make_dispatcher([queue(Strategy.LONGEST_IDLE)], agents)
    assert assigned(arrive(d, "c1", 1.0)) == [("c1", "zoe")]


def test_fewest_calls_prefers_the_agent_who_answered_least(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher(
        [queue(Strategy.FEWEST_CALLS)], [agent("ada", support=1), agent("bob", support=1)]
    )
    assert assigned(arrive(d, "c1", 1.0)) == [("c1", "ada")]
    serve(d, "c1", "ada", 1.0, 2.0)
    # Bob has been idle longest, but ada took a call: bob, with none, goes first.
    assert assigned(arrive(d, "c2", 3.0)) == [("c2", "bob")]
    serve(d, "c2", "bob", 3.0, 4.0)
    serve_next = arrive(d, "c3", 5.0)
    assert assigned(serve_next) == [("c3", "ada")]  # 1 call each: longest idle (ada since 2)
    assert only_why(serve_next).criterion is Criterion.FEWEST_CALLS


def test_least_occupied_prefers_the_least_busy_share(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher(
        [queue(Strategy.LEAST_OCCUPIED)], [agent("ada", support=1), agent("bob", support=1)]
    )
    serve(d, assigned(arrive(d, "c1", 0.0))[0][0], "ada", 0.0, 50.0)  # ada busy 50 of 100 s
    serve(d, assigned(arrive(d, "c2", 60.0))[0][0], "bob", 60.0, 70.0)  # bob busy 10 of 100 s
    out = arrive(d, "c3", 100.0)
    assert assigned(out) == [("c3", "bob")]
    assert only_why(out).value == pytest.approx(0.1)


def test_best_skill_prefers_the_highest_level_of_the_queue_skills(
    make_dispatcher: DispatcherFactory,
) -> None:
    agents = [agent("ada", support=40), agent("bob", support=90), agent("cy", support=90)]
    d = make_dispatcher([queue(Strategy.BEST_SKILL)], agents)
    out = arrive(d, "c1", 1.0)
    assert assigned(out) == [("c1", "bob")]  # bob and cy tie at 90: equal idle, creation order
    assert only_why(out).value == 90.0


def test_round_robin_remembers_whose_turn_it_is(make_dispatcher: DispatcherFactory) -> None:
    agents = [agent(name, support=1) for name in ("ada", "bob", "cy")]
    d = make_dispatcher([queue(Strategy.ROUND_ROBIN)], agents)
    order = []
    for n in range(5):
        ((contact, chosen),) = assigned(arrive(d, f"c{n}", float(n)))
        order.append(chosen)
        serve(d, contact, chosen, float(n), float(n) + 0.5)
    assert order == ["ada", "bob", "cy", "ada", "bob"]


def test_round_robin_skips_agents_who_are_not_free(make_dispatcher: DispatcherFactory) -> None:
    agents = [agent(name, support=1) for name in ("ada", "bob", "cy")]
    d = make_dispatcher([queue(Strategy.ROUND_ROBIN)], agents)
    assert assigned(arrive(d, "c1", 1.0)) == [("c1", "ada")]
    d.pause("bob", 1.5, "break")
    assert assigned(arrive(d, "c2", 2.0)) == [("c2", "cy")]


def test_random_is_seeded_and_reproducible(make_dispatcher: DispatcherFactory) -> None:
    def picks(seed: int) -> list[str]:
        agents = [agent(f"a{n}", support=1) for n in range(8)]
        d = make_dispatcher([queue(Strategy.RANDOM)], agents, seed=seed)
        chosen = []
        for n in range(12):
            ((contact, who),) = assigned(arrive(d, f"c{n}", float(n)))
            chosen.append(who)
            serve(d, contact, who, float(n), float(n) + 0.1)
        return chosen

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)
    assert len(set(picks(1))) > 3


def test_ring_all_rings_every_free_agent_and_the_first_answer_wins(
    make_dispatcher: DispatcherFactory,
) -> None:
    agents = [agent(name, support=1) for name in ("ada", "bob", "cy")]
    d = make_dispatcher([queue(Strategy.RING_ALL)], agents)
    out = arrive(d, "c1", 1.0)
    (ring,) = only(out, RingAll)
    assert ring.agent_ids == ("ada", "bob", "cy")
    assert all(d.agent(a).state.value == "reserved" for a in ring.agent_ids)
    out = d.offer_answered("c1", "bob", 2.0)
    assert only(out, CancelOffer) == [
        CancelOffer("c1", "ada", CancelReason.ANSWERED_ELSEWHERE),
        CancelOffer("c1", "cy", CancelReason.ANSWERED_ELSEWHERE),
    ]
    assert [d.agent(a).state.value for a in ("ada", "bob", "cy")] == ["ready", "busy", "ready"]
    assert d.agent("ada").consecutive_misses == 0


def test_ring_all_timeout_is_a_miss_for_every_rung_agent(
    make_dispatcher: DispatcherFactory,
) -> None:
    agents = [agent(name, support=1) for name in ("ada", "bob")]
    d = make_dispatcher([queue(Strategy.RING_ALL, ring_timeout=10.0)], agents, ring_retry=5.0)
    arrive(d, "c1", 1.0)
    out = d.tick(11.0)
    assert {c.agent_id for c in only(out, CancelOffer)} == {"ada", "bob"}
    assert [d.agent(a).consecutive_misses for a in ("ada", "bob")] == [1, 1]
    assert d.contact("c1").state.value == "queued"
    out = d.tick(16.0)  # the retry pause is over: both are rung again
    assert only(out, RingAll)[0].agent_ids == ("ada", "bob")


def only_why(decisions: Sequence[Decision]) -> Why:
    """The reason recorded with the one assignment among `decisions`."""
    (assign,) = only(decisions, Assign)
    return assign.why
