"""Estimated wait from the live skill mix: exact for one queue, shared agents weighted."""

from __future__ import annotations

from acd import QueueConfig
from tests.acd.conftest import DispatcherFactory
from tests.acd.helpers import agent, arrive


def test_shared_agents_count_only_their_share_of_other_queues(
    make_dispatcher: DispatcherFactory,
) -> None:
    support = QueueConfig("support", skills={"support": 1}, expected_handle_time=100.0)
    billing = QueueConfig("billing", skills={"billing": 1}, expected_handle_time=100.0)
    # Two agents: one serves both queues, one only billing.
    d = make_dispatcher(
        [support, billing], [agent("both", support=50, billing=50), agent("bill", billing=50)]
    )
    arrive(d, "x1", 0.0, "billing")
    arrive(d, "x2", 0.0, "billing")
    arrive(d, "b1", 1.0, "billing")  # ahead of s1 in time, in a competing group
    arrive(d, "s1", 2.0)
    # s1 can use 1 agent; b1 is ahead and half of billing's agents are also s1's:
    # ahead = 0.5, so (0.5 + 1) * 100 / 1.
    assert d.estimated_wait("s1") == 150.0
    # b1: 2 agents, nothing ahead of it in its own group, s1 is behind it.
    assert d.estimated_wait("b1") == 50.0


def test_the_handle_time_estimate_learns_from_finished_contacts(
    make_dispatcher: DispatcherFactory,
) -> None:
    q = QueueConfig("support", skills={"support": 1}, expected_handle_time=100.0)
    d = make_dispatcher([q], [agent("ada", support=50)], handle_time_smoothing=0.5)
    arrive(d, "c1", 0.0)
    d.offer_answered("c1", "ada", 0.0)
    arrive(d, "c2", 1.0)
    assert d.estimated_wait("c2") == 100.0
    d.contact_ended("c1", 300.0)  # a 300 s call: the moving average goes to 200
    d.offer_answered("c2", "ada", 300.0)
    arrive(d, "c3", 301.0)
    assert d.estimated_wait("c3") == 200.0
    assert d.queue_figures("support").aht == 200.0
