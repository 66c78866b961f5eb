"""One dispatcher across all queues: choices, reasons, callbacks, limits and repairs."""

from __future__ import annotations

import logging

import pytest

from acd import (
    ActionKind,
    AgentConfig,
    Assign,
    Channel,
    ContactRequest,
    ContactState,
    Criterion,
    Overflow,
    OverflowAction,
    OverflowReason,
    Problem,
    QueueConfig,
    Repair,
    Trigger,
)
from acd.errors import (
    DuplicateContact,
    InvalidContactTransition,
    NoSuchAgent,
    NoSuchContact,
    NoSuchQueue,
)
from acd.matching import RoutingIndex
from tests.acd.conftest import DispatcherFactory
from tests.acd.helpers import agent, arrive, assigned, only

SUPPORT = QueueConfig("support", skills={"support": 1})
BILLING = QueueConfig("billing", skills={"billing": 1})
VIP = QueueConfig("vip", skills={"support": 1}, priority=5)


def test_a_freed_agent_takes_the_best_contact_across_all_their_queues(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT, BILLING, VIP], [agent("ada", support=50, billing=50)])
    arrive(d, "busy", 0.0)
    d.offer_answered("busy", "ada", 0.0)
    arrive(d, "s1", 1.0)
    arrive(d, "b1", 2.0, "billing")
    arrive(d, "v1", 3.0, "vip")
    arrive(d, "b2", 4.0, "billing", priority=9)
    out = d.contact_ended("busy", 10.0)
    assert assigned(out) == [("b2", "ada")]  # the customer's own priority outranks the VIP queue
    why = d.why("b2")
    assert why is not None
    assert (why.trigger, why.criterion, why.groups_considered) == (
        Trigger.AGENT_AVAILABLE,
        Criterion.BEST_CONTACT,
        2,
    )
    assert why.waited == 6.0
    order: list[str] = []
    for contact_id in ("b2", "v1", "s1", "b1"):
        d.offer_answered(contact_id, "ada", 11.0)
        out = d.contact_ended(contact_id, 12.0)
        order.extend(c for c, _ in assigned(out))
    assert order == ["v1", "s1", "b1"]  # queue priority, then the longest waiting


def test_an_arriving_contact_gets_an_eligible_agent_with_the_skill_level(
    make_dispatcher: DispatcherFactory,
) -> None:
    expert = QueueConfig("expert", skills={"support": 70})
    d = make_dispatcher([expert], [agent("novice", support=20), agent("pro", support=80)])
    out = arrive(d, "c1", 1.0, "expert")
    assert assigned(out) == [("c1", "pro")]
    why = d.why("c1")
    assert why is not None
    assert why.candidates == frozenset({"pro"})
    assert "expert" in why.describe()
    assert "support>=70" in why.describe()


def test_assignments_are_logged_with_their_reason(
    make_dispatcher: DispatcherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    with caplog.at_level(logging.INFO, logger="acd"):
        arrive(d, "c1", 1.0)
    assert "assign c1 -> ada: contact-arrived in support" in caplog.text


def test_an_agent_handles_one_call_and_three_emails_at_once(
    make_dispatcher: DispatcherFactory,
) -> None:
    mail = QueueConfig("mail", skills={"support": 1}, channel=Channel.EMAIL)
    ada = AgentConfig("ada", skills={"support": 50}, capacity={Channel.VOICE: 1, Channel.EMAIL: 3})
    d = make_dispatcher([SUPPORT, mail], [ada])
    got = []
    for n in range(5):
        got += assigned(arrive(d, f"m{n}", float(n), "mail"))
    got += assigned(arrive(d, "call", 6.0))
    assert got == [("m0", "ada"), ("m1", "ada"), ("m2", "ada"), ("call", "ada")]
    assert d.agent("ada").load == {Channel.EMAIL: 3, Channel.VOICE: 1}
    d.offer_answered("m1", "ada", 7.0)
    assert assigned(d.contact_ended("m1", 8.0)) == [("m3", "ada")]
    assert d.check_invariants() == []


def test_position_and_estimated_wait_follow_the_live_staffing(
    make_dispatcher: DispatcherFactory,
) -> None:
    q = QueueConfig("support", skills={"support": 1}, expected_handle_time=100.0)
    d = make_dispatcher([q], [agent("ada", support=50), agent("bob", support=50)])
    for n in range(2):
        arrive(d, f"busy{n}", 0.0)
    for n in range(3):
        arrive(d, f"w{n}", 1.0 + n)
    assert [d.position(f"w{n}") for n in range(3)] == [1, 2, 3]
    # Two agents each finishing a 100 s call: one slot frees every 50 s on average.
    assert [d.estimated_wait(f"w{n}") for n in range(3)] == [50.0, 100.0, 150.0]
    d.pause("bob", 3.0, "break")  # a busy agent pausing will not come back to the queue
    assert d.estimated_wait("w0") == 100.0
    d.offer_answered("busy0", "ada", 3.0)
    d.contact_ended("busy0", 4.0)
    assert d.position("w1") == 1  # w0 is being offered
    assert d.estimated_wait("w0") == 0.0
    d.logout("ada", 5.0)  # w0 goes back to its place; nobody is staffed any more
    assert d.position("w0") == 1
    assert d.estimated_wait("w0") is None


def test_a_callback_keeps_its_place_and_never_jumps_ahead(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    arrive(d, "busy", 0.0)
    d.offer_answered("busy", "ada", 0.0)
    for n in range(3):
        arrive(d, f"c{n}", 1.0 + n)
    d.callback_requested("c1", 5.0)
    assert d.contact("c1").state is ContactState.CALLBACK
    assert d.position("c1") == 2
    arrive(d, "late", 6.0)
    served = []
    for current in ("busy", "c0", "c1", "c2"):
        out = d.contact_ended(current, 10.0)
        ((nxt, who),) = assigned(out)
        served.append(nxt)
        d.offer_answered(nxt, who, 10.0)
    assert served == ["c0", "c1", "c2", "late"]
    why = d.why("c1")
    assert why is not None


def test_a_due_callback_is_marked_as_a_callback(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)], login=False)
    out = arrive(d, "web", 1.0, callback=True)
    assert out == []
    out = d.login("ada", 2.0)
    (assign,) = only(out, Assign)
    assert assign.callback is True


def test_a_callback_needs_a_queued_contact(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    arrive(d, "c1", 1.0)
    with pytest.raises(InvalidContactTransition):
        d.callback_requested("c1", 2.0)


def test_max_wait_sends_the_contact_to_voicemail(make_dispatcher: DispatcherFactory) -> None:
    q = QueueConfig(
        "support",
        skills={"support": 1},
        max_wait=120.0,
        on_max_wait=OverflowAction(ActionKind.VOICEMAIL, "support-box"),
    )
    d = make_dispatcher([q], [])
    arrive(d, "c1", 0.0)
    assert d.next_deadline() == 120.0
    out = d.tick(120.0)
    assert out == [
        Overflow("c1", "support", OverflowReason.MAX_WAIT, ActionKind.VOICEMAIL, "support-box")
    ]
    with pytest.raises(NoSuchContact):
        d.contact("c1")
    assert d.queue_figures("support").overflowed == 1


def test_a_full_queue_overflows_to_another_queue(make_dispatcher: DispatcherFactory) -> None:
    q = QueueConfig(
        "support",
        skills={"support": 1},
        max_length=2,
        on_full=OverflowAction(ActionKind.QUEUE, "backup"),
    )
    backup = QueueConfig("backup", skills={"backup": 1})
    d = make_dispatcher([q, backup], [agent("bea", backup=1)])
    d.pause("bea", 0.0, "x")
    arrive(d, "c1", 1.0)
    arrive(d, "c2", 2.0)
    d.callback_requested("c2", 2.5)  # callbacks do not count against the length
    arrive(d, "c3", 3.0)
    out = arrive(d, "c4", 4.0)
    assert only(out, Overflow) == [
        Overflow("c4", "support", OverflowReason.QUEUE_FULL, ActionKind.QUEUE, "backup")
    ]
    assert d.contact("c4").queue == "backup"
    assert assigned(d.ready("bea", 5.0)) == [("c4", "bea")]


def test_no_agent_logged_in_offers_a_callback(make_dispatcher: DispatcherFactory) -> None:
    q = QueueConfig(
        "support", skills={"support": 1}, on_no_agents=OverflowAction(ActionKind.CALLBACK)
    )
    d = make_dispatcher([q], [agent("ada", support=50)], login=False)
    out = arrive(d, "c1", 1.0)
    assert only(out, Overflow)[0].reason is OverflowReason.NO_AGENTS
    assert d.contact("c1").state is ContactState.CALLBACK
    d.login("ada", 2.0)
    assert d.contact("c1").state is ContactState.OFFERED


def test_paused_agents_count_as_logged_in(make_dispatcher: DispatcherFactory) -> None:
    q = QueueConfig(
        "support", skills={"support": 1}, on_no_agents=OverflowAction(ActionKind.HANGUP)
    )
    d = make_dispatcher([q], [agent("ada", support=50)])
    d.pause("ada", 0.5, "lunch")
    assert arrive(d, "c1", 1.0) == []


def test_the_last_agent_logging_out_empties_the_queue_by_its_rule(
    make_dispatcher: DispatcherFactory,
) -> None:
    q = QueueConfig(
        "support",
        skills={"support": 1},
        on_no_agents=OverflowAction(ActionKind.VOICEMAIL, "box"),
    )
    d = make_dispatcher([q], [agent("ada", support=50)])
    arrive(d, "busy", 0.0)
    d.offer_answered("busy", "ada", 0.0)
    d.contact_ended("busy", 1.0)
    d.pause("ada", 1.0, "x")
    arrive(d, "c1", 2.0)
    arrive(d, "cb", 2.0, callback=True)
    out = d.logout("ada", 3.0)
    assert [(o.contact_id, o.action) for o in only(out, Overflow)] == [("c1", ActionKind.VOICEMAIL)]
    assert d.contact("cb").state is ContactState.CALLBACK  # a callback can wait for tomorrow


def test_a_closed_queue_plays_its_announcement(make_dispatcher: DispatcherFactory) -> None:
    q = QueueConfig(
        "support",
        skills={"support": 1},
        on_closed=OverflowAction(ActionKind.ANNOUNCEMENT, "closed-prompt"),
    )
    d = make_dispatcher([q], [agent("ada", support=50)])
    d.set_queue_open("support", False, 0.0)
    assert arrive(d, "c1", 1.0) == [
        Overflow("c1", "support", OverflowReason.CLOSED, ActionKind.ANNOUNCEMENT, "closed-prompt")
    ]
    d.set_queue_open("support", True, 2.0)
    assert assigned(arrive(d, "c2", 3.0)) == [("c2", "ada")]


def test_a_transferred_contact_waits_afresh_in_the_new_queue(
    make_dispatcher: DispatcherFactory,
) -> None:
    billing = QueueConfig("billing", skills={"billing": 1}, wrap_up=5.0)
    d = make_dispatcher([SUPPORT, billing], [agent("ada", support=50), agent("bob", billing=50)])
    arrive(d, "c1", 0.0)
    d.offer_answered("c1", "ada", 0.0)
    out = d.transfer_to_queue("c1", "billing", 30.0)
    assert assigned(out) == [("c1", "bob")]
    assert d.agent("ada").state.value == "ready"  # support has no wrap-up
    assert d.queue_figures("support").transferred == 1
    assert d.contact("c1").arrived_at == 30.0


def test_abandon_while_ringing_releases_the_agent_without_a_miss(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    arrive(d, "c1", 1.0)
    arrive(d, "c2", 2.0)
    out = d.contact_abandoned("c1", 3.0)
    assert assigned(out) == [("c2", "ada")]
    assert d.agent("ada").consecutive_misses == 0
    figures = d.queue_figures("support")
    assert (figures.abandoned, figures.short_abandoned, figures.offered) == (1, 1, 1)


def test_live_figures_follow_the_service_level_formula(make_dispatcher: DispatcherFactory) -> None:
    q = QueueConfig("support", skills={"support": 1}, service_level_seconds=20.0)
    d = make_dispatcher([q], [agent("ada", support=50)], service_level_formula="offered")
    arrive(d, "fast", 0.0)
    d.offer_answered("fast", "ada", 5.0)
    arrive(d, "slow", 6.0)
    arrive(d, "gone", 7.0)
    d.contact_abandoned("gone", 10.0)  # a short abandon
    d.contact_ended("fast", 60.0)
    d.offer_answered("slow", "ada", 61.0)
    figures = d.queue_figures("support")
    assert (figures.offered, figures.answered, figures.answered_within) == (3, 2, 1)
    assert figures.service_level == pytest.approx(1 / 3)
    assert figures.asa == pytest.approx((5 + 55) / 2)
    d2 = make_dispatcher(
        [q], [agent("ada", support=50)], service_level_formula="offered-excluding-short-abandons"
    )
    arrive(d2, "gone", 0.0)
    arrive(d2, "ok", 0.0)
    d2.contact_abandoned("gone", 1.0)
    d2.offer_answered("ok", "ada", 1.5)
    assert d2.queue_figures("support").service_level == 1.0


def test_the_audit_repairs_contacts_the_telephony_lost(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50), agent("bob", support=50)])
    arrive(d, "talking", 0.0)
    d.offer_answered("talking", "ada", 0.0)
    arrive(d, "ringing", 1.0)
    arrive(d, "waiting", 2.0)
    out = d.audit(3.0, live_contact_ids={"waiting"})
    repairs = only(out, Repair)
    assert {(r.problem, r.contact_id, r.action) for r in repairs} == {
        (Problem.CONTACT_GONE, "talking", "ended"),
        (Problem.CONTACT_GONE, "ringing", "abandoned"),
    }
    assert sorted(assigned(out)) == [("waiting", "ada")]
    assert d.check_invariants() == []


def test_the_periodic_self_check_frees_an_agent_stuck_on_a_vanished_contact(
    make_dispatcher: DispatcherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)], audit_interval=60.0)
    arrive(d, "c1", 1.0)
    d.offer_answered("c1", "ada", 1.0)
    # Simulate a lost "ended" event corrupting the books: the contact disappears.
    del d._contacts["c1"]
    assert d.check_invariants() != []
    with caplog.at_level(logging.WARNING, logger="acd"):
        out = d.tick(60.0)
    assert [(r.problem, r.agent_id) for r in only(out, Repair)] == [(Problem.STUCK_BUSY, "ada")]
    assert "invariant broken and repaired" in caplog.text
    assert d.agent("ada").state.value == "ready"
    assert d.check_invariants() == []


def test_a_call_busy_far_too_long_is_ended_at_the_audit(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher(
        [SUPPORT], [agent("ada", support=50)], audit_interval=60.0, max_handle_time=600.0
    )
    arrive(d, "c1", 0.0)
    d.offer_answered("c1", "ada", 0.0)
    assert only(d.tick(540.0), Repair) == []
    out = d.tick(600.0)
    assert only(out, Repair) == [Repair(Problem.STUCK_BUSY, "ada", "c1", "ended (too long)")]
    assert d.agent("ada").state.value == "ready"


def test_unknown_ids_raise_typed_errors(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    with pytest.raises(NoSuchQueue) as queue_error:
        arrive(d, "c1", 1.0, "nowhere")
    assert queue_error.value.code == "no-such-queue"
    with pytest.raises(NoSuchAgent):
        d.login("nobody", 1.0)
    with pytest.raises(NoSuchContact):
        d.contact_ended("ghost", 1.0)
    arrive(d, "c1", 1.0)
    with pytest.raises(DuplicateContact):
        d.contact_arrived(ContactRequest("c1", "support"), 2.0)


def test_time_never_runs_backwards(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    arrive(d, "c1", 10.0)
    d.offer_answered("c1", "ada", 5.0)  # a late, out-of-order report
    assert d.now == 10.0
    assert d.queue_figures("support").asa == 0.0


def test_groups_of_one_off_requirements_are_dropped_when_empty(
    make_dispatcher: DispatcherFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RoutingIndex, "MAX_GROUPS", 4)
    d = make_dispatcher([SUPPORT], [agent("ada", support=50, **{f"lang{n}": 50 for n in range(9)})])
    for n in range(9):  # each contact needs its own language: a group of its own
        arrive(d, f"c{n}", float(n), skills={f"lang{n}": 10})
        d.offer_answered(f"c{n}", "ada", float(n))
        d.contact_ended(f"c{n}", float(n) + 0.5)
    assert len(d.index.groups[Channel.VOICE]) <= 4
    d.pause("ada", 10.0, "x")
    arrive(d, "late", 11.0, skills={"lang3": 10})
    assert d.estimated_wait("late") is None  # its only agent is paused
    assert assigned(d.ready("ada", 12.0)) == [("late", "ada")]
    assert d.check_invariants() == []
