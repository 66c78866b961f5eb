"""Agent states: explicit transitions, ring-no-answer, wrap-up, pauses and logouts."""

from __future__ import annotations

import pytest

from acd import (
    AUTO_PAUSE_REASON,
    AgentState,
    Assign,
    AutoPause,
    CancelOffer,
    CancelReason,
    Channel,
    ContactState,
    Presence,
    QueueConfig,
    SessionState,
    Trigger,
    WrapUpEnded,
)
from acd.errors import AgentHasLiveContacts, InvalidAgentTransition, NotOffered
from acd.states import CONTACT_TRANSITIONS, PRESENCE_TRANSITIONS, SESSION_TRANSITIONS
from tests.acd.conftest import DispatcherFactory
from tests.acd.helpers import agent, arrive, assigned, only

SUPPORT = QueueConfig("support", skills={"support": 1}, wrap_up=10.0, ring_timeout=15.0)


def test_transition_tables_cover_every_state() -> None:
    assert set(PRESENCE_TRANSITIONS) == set(Presence)
    assert set(SESSION_TRANSITIONS) == set(SessionState)
    assert set(CONTACT_TRANSITIONS) == set(ContactState)
    assert SESSION_TRANSITIONS[SessionState.FINISHED] == frozenset()
    assert CONTACT_TRANSITIONS[ContactState.LEFT] == frozenset()


def test_a_call_takes_the_agent_through_every_working_state(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)], login=False)
    assert d.agent("ada").state is AgentState.LOGGED_OUT
    d.login("ada", 1.0)
    assert (d.agent("ada").state, d.agent("ada").state_since) == (AgentState.READY, 1.0)
    assert assigned(arrive(d, "c1", 2.0)) == [("c1", "ada")]
    assert d.agent("ada").state is AgentState.RESERVED
    d.offer_answered("c1", "ada", 3.0)
    assert d.agent("ada").state is AgentState.BUSY
    assert d.contact("c1").state is ContactState.CONNECTED
    d.contact_ended("c1", 63.0)
    view = d.agent("ada")
    assert (view.state, view.state_since) == (AgentState.WRAP_UP, 63.0)
    assert d.next_deadline() == 73.0
    assert only(d.tick(73.0), WrapUpEnded) == [WrapUpEnded("ada", "c1")]
    view = d.agent("ada")
    assert (view.state, view.answered, view.idle_since[Channel.VOICE]) == (
        AgentState.READY,
        1,
        73.0,
    )


def test_wrap_up_time_is_per_queue(make_dispatcher: DispatcherFactory) -> None:
    quick = QueueConfig("quick", skills={"support": 1}, wrap_up=0.0)
    d = make_dispatcher([SUPPORT, quick], [agent("ada", support=50)])
    arrive(d, "c1", 1.0, "quick")
    d.offer_answered("c1", "ada", 1.0)
    d.contact_ended("c1", 5.0)
    assert d.agent("ada").state is AgentState.READY
    arrive(d, "c2", 6.0)
    d.offer_answered("c2", "ada", 6.0)
    d.contact_ended("c2", 9.0)
    assert d.agent("ada").state is AgentState.WRAP_UP


def test_wrap_up_can_end_early_and_the_next_contact_follows(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    arrive(d, "c1", 1.0)
    d.offer_answered("c1", "ada", 1.0)
    arrive(d, "c2", 2.0)
    d.contact_ended("c1", 5.0)
    assert assigned(d.wrapup_done("ada", 7.0)) == [("c2", "ada")]
    with pytest.raises(InvalidAgentTransition, match="not in wrap-up"):
        d.wrapup_done("ada", 8.0)


def test_a_pause_needs_a_reason_and_stops_offers(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    with pytest.raises(InvalidAgentTransition, match="reason"):
        d.pause("ada", 1.0, "")
    d.pause("ada", 1.0, "lunch")
    view = d.agent("ada")
    assert (view.state, view.pause_reason) == (AgentState.PAUSED, "lunch")
    assert arrive(d, "c1", 2.0) == []
    d.pause("ada", 3.0, "training")  # a new reason code while paused
    assert d.agent("ada").pause_reason == "training"
    assert assigned(d.ready("ada", 4.0)) == [("c1", "ada")]


def test_pausing_during_a_call_takes_effect_after_it(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    arrive(d, "c1", 1.0)
    d.offer_answered("c1", "ada", 1.0)
    d.pause("ada", 2.0, "coaching")
    assert d.agent("ada").state is AgentState.BUSY
    arrive(d, "c2", 3.0)
    d.contact_ended("c1", 4.0)
    assert only(d.tick(14.0), Assign) == []
    assert d.agent("ada").state is AgentState.PAUSED


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("ready_when_logged_out", "only a paused agent"),
        ("login_twice", "already logged in"),
        ("logout_when_logged_out", "not logged in"),
        ("pause_when_logged_out", "not logged in"),
        ("ready_when_ready", "only a paused agent"),
    ],
)
def test_refused_agent_transitions(
    make_dispatcher: DispatcherFactory, action: str, message: str
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50), agent("bob", support=50)])
    d.logout("bob", 0.5)
    calls = {
        "ready_when_logged_out": lambda: d.ready("bob", 1.0),
        "login_twice": lambda: d.login("ada", 1.0),
        "logout_when_logged_out": lambda: d.logout("bob", 1.0),
        "pause_when_logged_out": lambda: d.pause("bob", 1.0, "x"),
        "ready_when_ready": lambda: d.ready("ada", 1.0),
    }
    with pytest.raises(InvalidAgentTransition, match=message) as caught:
        calls[action]()
    assert caught.value.code == "invalid-agent-transition"


def test_logout_is_refused_while_connected_and_changes_nothing(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)])
    arrive(d, "c1", 1.0)
    d.offer_answered("c1", "ada", 1.0)
    with pytest.raises(AgentHasLiveContacts) as caught:
        d.logout("ada", 2.0)
    assert caught.value.details["contacts"] == ["c1"]
    assert d.agent("ada").state is AgentState.BUSY
    assert d.check_invariants() == []


def test_logout_while_ringing_puts_the_contact_back_for_the_next_agent(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50), agent("bob", support=50)])
    d.pause("bob", 0.5, "break")
    arrive(d, "c1", 1.0)
    out = d.logout("ada", 2.0)
    assert only(out, CancelOffer) == [CancelOffer("c1", "ada", CancelReason.AGENT_LOGGED_OUT)]
    assert d.contact("c1").state is ContactState.QUEUED
    assert d.agent("ada").consecutive_misses == 0  # not a miss
    assert assigned(d.ready("bob", 3.0)) == [("c1", "bob")]


def test_ring_timeout_counts_a_miss_and_offers_the_next_agent(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50), agent("bob", support=50)])
    assert assigned(arrive(d, "c0", 0.5)) == [("c0", "ada")]  # equal idle: creation order
    d.offer_answered("c0", "ada", 0.5)
    assert assigned(arrive(d, "c1", 1.0)) == [("c1", "bob")]
    assert d.next_deadline() == 16.0
    out = d.tick(16.0)
    assert only(out, CancelOffer) == [CancelOffer("c1", "bob", CancelReason.RING_TIMEOUT)]
    assert d.agent("bob").consecutive_misses == 1
    assert d.contact("c1").state is ContactState.QUEUED
    assert d.position("c1") == 1


def test_an_agent_is_not_rung_again_for_a_contact_they_just_missed(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)], ring_retry=5.0)
    arrive(d, "c1", 1.0)
    assert d.offer_missed("c1", "ada", 2.0) == []
    assert d.next_deadline() == 7.0
    assert assigned(d.tick(7.0)) == [("c1", "ada")]
    why = d.why("c1")
    assert why is not None
    assert why.trigger is Trigger.RETRY


def test_consecutive_misses_auto_pause_the_agent(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher(
        [SUPPORT], [agent("ada", support=50)], auto_pause_after_misses=2, ring_retry=0.0
    )
    arrive(d, "c1", 1.0)
    out = d.offer_missed("c1", "ada", 2.0)
    assert assigned(out) == [("c1", "ada")]  # no retry pause: rung again at once
    out = d.offer_missed("c1", "ada", 3.0)
    assert only(out, AutoPause) == [AutoPause("ada", AUTO_PAUSE_REASON, 2)]
    view = d.agent("ada")
    assert (view.state, view.pause_reason) == (AgentState.PAUSED, AUTO_PAUSE_REASON)
    assert d.contact("c1").state is ContactState.QUEUED
    # Back from the pause, the count starts again.
    assert assigned(d.ready("ada", 4.0)) == [("c1", "ada")]
    assert d.agent("ada").consecutive_misses == 0


def test_an_answer_resets_the_miss_count(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50)], ring_retry=0.0)
    arrive(d, "c1", 1.0)
    d.offer_missed("c1", "ada", 2.0)
    d.offer_answered("c1", "ada", 3.0)
    assert d.agent("ada").consecutive_misses == 0


def test_auto_pause_can_be_switched_off(make_dispatcher: DispatcherFactory) -> None:
    d = make_dispatcher(
        [SUPPORT], [agent("ada", support=50)], auto_pause_after_misses=0, ring_retry=0.0
    )
    arrive(d, "c1", 1.0)
    for n in range(5):
        assert only(d.offer_missed("c1", "ada", 2.0 + n), AutoPause) == []
    assert d.agent("ada").state is AgentState.RESERVED


def test_answering_an_offer_that_is_not_ringing_is_refused(
    make_dispatcher: DispatcherFactory,
) -> None:
    d = make_dispatcher([SUPPORT], [agent("ada", support=50), agent("bob", support=50)])
    arrive(d, "c1", 1.0)
    ringing = d.contact("c1").agents[0]
    other = "bob" if ringing == "ada" else "ada"
    with pytest.raises(NotOffered) as caught:
        d.offer_answered("c1", other, 2.0)
    assert caught.value.code == "contact-not-offered-to-agent"
    d.offer_answered("c1", ringing, 2.0)
    with pytest.raises(NotOffered):
        d.offer_missed("c1", ringing, 3.0)


def test_skills_change_live_and_apply_to_the_next_contact(
    make_dispatcher: DispatcherFactory,
) -> None:
    billing = QueueConfig("billing", skills={"billing": 30})
    d = make_dispatcher([SUPPORT, billing], [agent("ada", support=50)])
    assert arrive(d, "b1", 1.0, "billing") == []
    assert assigned(d.set_skills("ada", {"support": 50, "billing": 40}, 2.0)) == [("b1", "ada")]
    d.offer_answered("b1", "ada", 2.0)
    d.set_skills("ada", {"support": 50}, 3.0)  # the live contact is unaffected
    assert d.agent("ada").state is AgentState.BUSY
    assert d.check_invariants() == []
