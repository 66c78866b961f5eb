"""Escalation rules: first that holds applies, re-evaluated while the contact waits."""

from __future__ import annotations

from acd import (
    Moved,
    QueueConfig,
    Rule,
    RuleApplied,
    parse_condition,
)
from tests.acd.conftest import DispatcherFactory
from tests.acd.helpers import agent, arrive, assigned, only


def relaxing_queue(*rules: Rule) -> QueueConfig:
    return QueueConfig("support", skills={"support": 80}, rules=rules)


def test_a_rule_relaxes_the_requirement_at_the_exact_waiting_time(
    make_dispatcher: DispatcherFactory,
) -> None:
    relax = Rule("relax", when=parse_condition("wait >= 30"), skills={"support": 20})
    d = make_dispatcher([relaxing_queue(relax)], [agent("junior", support=30)])
    assert arrive(d, "c1", 10.0) == []
    assert d.next_deadline() == 40.0
    assert d.tick(39.9) == []
    out = d.tick(40.0)
    assert only(out, RuleApplied) == [RuleApplied("c1", "support", "relax", (("support", 20),), 0)]
    assert assigned(out) == [("c1", "junior")]
    why = d.why("c1")
    assert why is not None
    assert (why.rule, why.trigger.value, why.waited) == ("relax", "requirements-changed", 30.0)


def test_the_first_rule_that_holds_applies(make_dispatcher: DispatcherFactory) -> None:
    rules = (
        Rule("late", when=parse_condition("wait >= 60"), skills={"support": 10}),
        Rule("early", when=parse_condition("wait >= 20"), skills={"support": 50}),
    )
    d = make_dispatcher([relaxing_queue(*rules)], [])
    arrive(d, "c1", 0.0)
    d.tick(20.0)
    assert d.contact("c1").rule == "early"
    d.tick(60.0)
    view = d.contact("c1")
    assert (view.rule, view.requirements) == ("late", (("support", 10),))


def test_rules_can_raise_requirements_and_change_priority(
    make_dispatcher: DispatcherFactory,
) -> None:
    raise_rule = Rule(
        "escalate",
        when=parse_condition("total_wait >= 5"),
        add_skills={"senior": 1},
        priority_delta=3,
    )
    q = QueueConfig("support", skills={"support": 1}, rules=(raise_rule,))
    d = make_dispatcher([q], [])
    arrive(d, "c1", 0.0)
    arrive(d, "c2", 1.0)
    d.tick(5.0)
    view = d.contact("c1")
    assert (view.priority, view.requirements) == (3, (("senior", 1), ("support", 1)))
    d.add_agent(agent("ada", support=50))
    assert assigned(d.login("ada", 5.5)) == [("c2", "ada")]  # c1 now needs a senior


def test_a_higher_priority_from_a_rule_moves_the_contact_ahead(
    make_dispatcher: DispatcherFactory,
) -> None:
    boost = Rule("boost", when=parse_condition("wait >= 10"), priority_delta=1)
    vip = QueueConfig("vip", skills={"support": 1}, rules=(boost,))
    d = make_dispatcher([QueueConfig("support", skills={"support": 1}), vip], [])
    arrive(d, "normal", 0.0)
    arrive(d, "v", 5.0, "vip")
    assert d.position("v") == 1  # its own queue
    d.tick(15.0)
    d.add_agent(agent("ada", support=5))
    assert assigned(d.login("ada", 16.0)) == [("v", "ada")]


def test_a_rule_moves_a_contact_to_another_queue(make_dispatcher: DispatcherFactory) -> None:
    move = Rule("to-general", when=parse_condition("wait >= 30"), move_to="general")
    d = make_dispatcher(
        [
            QueueConfig("support", skills={"support": 1}, rules=(move,)),
            QueueConfig("general", skills={"general": 1}),
        ],
        [agent("gus", general=10)],
    )
    arrive(d, "c1", 0.0)
    out = d.tick(30.0)
    assert only(out, Moved) == [Moved("c1", "support", "general", "to-general")]
    assert assigned(out) == [("c1", "gus")]
    assert d.queue_figures("support").overflowed == 1


def test_rules_on_estimated_wait_are_re_evaluated_not_frozen(
    make_dispatcher: DispatcherFactory,
) -> None:
    # While the estimated wait is long, accept anyone with the skill; when it drops, go back.
    relax = Rule("long-wait", when=parse_condition("ewt > 100"), skills={"support": 1})
    q = QueueConfig("support", skills={"support": 80}, rules=(relax,), expected_handle_time=120.0)
    d = make_dispatcher(
        [q], [agent("busy", support=90), agent("junior", support=10)], rule_interval=1.0
    )
    d.pause("junior", 0.0, "meeting")
    arrive(d, "first", 0.0)  # takes the one senior
    d.offer_answered("first", "busy", 0.0)
    arrive(d, "c1", 1.0)
    arrive(d, "c2", 1.0)
    # c2: two ahead of it in line, 2 staffed agents... junior paused, so 1 staffed.
    d.tick(2.0)
    assert d.contact("c2").rule == "long-wait"
    d.ready("junior", 2.5)  # takes c1 (relaxed); now 2 staffed agents
    assert d.contact("c1").state.value == "offered"
    d.tick(3.5)
    assert d.contact("c2").rule is None  # ewt is back under 100: back to base requirements
    assert d.contact("c2").requirements == (("support", 80),)


def test_contact_skills_add_to_the_queue_and_a_rule_can_drop_them(
    make_dispatcher: DispatcherFactory,
) -> None:
    drop = Rule("any-language", when=parse_condition("wait >= 60"), drop_skills=frozenset({"fr"}))
    d = make_dispatcher([relaxing_queue(drop)], [agent("ada", support=90)])
    d.pause("ada", 0.0, "x")
    arrive(d, "c1", 0.0, skills={"fr": 30})
    assert d.contact("c1").requirements == (("fr", 30), ("support", 80))
    d.ready("ada", 1.0)
    assert d.contact("c1").state.value == "queued"
    out = d.tick(60.0)
    assert assigned(out) == [("c1", "ada")]
