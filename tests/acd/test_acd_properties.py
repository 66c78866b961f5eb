"""Property tests: random histories never lose a contact, never assign one twice, never push
an agent over capacity, and the indexed matcher decides exactly like the naive scan."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd import (
    AcdConfig,
    AcdSettings,
    ActionKind,
    AgentConfig,
    Assign,
    CancelOffer,
    Channel,
    ContactRequest,
    Decision,
    Dispatcher,
    Overflow,
    OverflowAction,
    QueueConfig,
    Repair,
    RingAll,
    Rule,
    Strategy,
    parse_condition,
)
from acd.errors import AcdError, NoSuchContact

QUEUES = (
    QueueConfig(
        "support",
        skills={"support": 20},
        wrap_up=5.0,
        rules=(Rule("relax", when=parse_condition("wait >= 20"), skills={"support": 1}),),
        max_wait=100.0,
        on_max_wait=OverflowAction(ActionKind.CALLBACK),
    ),
    QueueConfig(
        "billing",
        skills={"billing": 1},
        strategy=Strategy.RING_ALL,
        ring_timeout=10.0,
        max_length=3,
        on_full=OverflowAction(ActionKind.QUEUE, "support"),
    ),
    QueueConfig(
        "vip",
        skills={"support": 1},
        priority=2,
        strategy=Strategy.ROUND_ROBIN,
        on_no_agents=OverflowAction(ActionKind.VOICEMAIL, "vip-box"),
    ),
    QueueConfig(
        "mail", skills={"support": 1}, channel=Channel.EMAIL, strategy=Strategy.FEWEST_CALLS
    ),
    QueueConfig(
        "sales",
        skills={"sales": 30},
        strategy=Strategy.BEST_SKILL,
        rules=(Rule("spill", when=parse_condition("ewt > 400"), move_to="support"),),
    ),
    QueueConfig("any", strategy=Strategy.RANDOM, wrap_up=2.0),
)
AGENTS = (
    AgentConfig("a0", skills={"support": 50, "billing": 10}),
    AgentConfig("a1", skills={"support": 10}),
    AgentConfig("a2", skills={"billing": 50}),
    AgentConfig(
        "a3", skills={"support": 90, "billing": 90}, capacity={Channel.VOICE: 1, Channel.EMAIL: 2}
    ),
    AgentConfig("a4", skills={"sales": 40, "support": 30}),
)
SKILL_SETS: tuple[dict[str, int], ...] = (
    {"support": 50},
    {"billing": 60, "sales": 35},
    {"support": 5, "sales": 80},
    {},
)
LEAVING = frozenset({ActionKind.VOICEMAIL, ActionKind.HANGUP, ActionKind.ANNOUNCEMENT})

OPS = (
    "arrive",
    "answer",
    "miss",
    "abandon",
    "end",
    "callback",
    "wrapup",
    "login",
    "logout",
    "pause",
    "ready",
    "skills",
    "tick",
    "transfer",
)
op = st.tuples(st.sampled_from(OPS), st.integers(0, 1000), st.integers(0, 1000))


def build(linear_scan: bool) -> Dispatcher:
    config = AcdConfig(
        queues=QUEUES,
        agents=AGENTS,
        settings=AcdSettings(
            ring_retry=3.0,
            auto_pause_after_misses=2,
            rule_interval=5.0,
            audit_interval=50.0,
            seed=3,
        ),
    )
    return Dispatcher(config, linear_scan=linear_scan)


@dataclass
class Model:
    """What the decisions say, tracked independently of the dispatcher's own books."""

    live: set[str] = field(default_factory=set)  # contacts the ACD must still hold
    gone: set[str] = field(default_factory=set)
    ringing: dict[str, set[str]] = field(default_factory=dict)  # contact -> agents rung
    connected: dict[str, str] = field(default_factory=dict)  # contact -> agent
    channel: dict[str, Channel] = field(default_factory=dict)

    def apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, Assign | RingAll):
                agents = {d.agent_id} if isinstance(d, Assign) else set(d.agent_ids)
                # Never offered while already ringing or talking: no double assignment.
                assert d.contact_id not in self.ringing, d
                assert d.contact_id not in self.connected, d
                assert d.contact_id in self.live, d
                self.ringing[d.contact_id] = agents
            elif isinstance(d, CancelOffer):
                rung = self.ringing[d.contact_id]
                rung.remove(d.agent_id)
                if not rung:
                    del self.ringing[d.contact_id]
            elif isinstance(d, Overflow) and d.action in LEAVING:
                self.leave(d.contact_id)
            elif isinstance(d, Repair):
                raise AssertionError(f"nothing was broken, yet: {d}")

    def leave(self, contact_id: str) -> None:
        self.live.discard(contact_id)
        self.gone.add(contact_id)
        self.ringing.pop(contact_id, None)
        self.connected.pop(contact_id, None)

    def check(self, d: Dispatcher) -> None:
        for contact_id in self.live:
            d.contact(contact_id)  # raises if lost
        for contact_id in self.gone:
            try:
                d.contact(contact_id)
            except NoSuchContact:
                continue
            raise AssertionError(f"{contact_id} left but is still in the ACD")
        per_agent: dict[tuple[str, Channel], int] = {}
        for contact_id, agents in self.ringing.items():
            for agent_id in agents:
                key = (agent_id, self.channel[contact_id])
                per_agent[key] = per_agent.get(key, 0) + 1
        for contact_id, agent_id in self.connected.items():
            key = (agent_id, self.channel[contact_id])
            per_agent[key] = per_agent.get(key, 0) + 1
        for (agent_id, channel), count in per_agent.items():
            view = d.agent(agent_id)
            assert count <= view.capacity.get(channel, 0), (agent_id, channel, count)
        for view in d.agents():
            for channel, load in view.load.items():
                assert load <= view.capacity.get(channel, 0), view
        assert set(self.connected) | set(self.ringing) <= self.live


def run(history: list[tuple[str, int, int]], d: Dispatcher, model: Model | None) -> list[object]:
    """Apply a history; returns every outcome (decisions or error codes) for comparison."""
    now = 0.0
    outcomes: list[object] = []
    next_id = 0
    for agent in AGENTS:
        outcomes.append(d.login(agent.id, now))
    for kind, x, y in history:
        live = sorted(d.contact_ids())
        if model is not None:
            assert set(live) == model.live
        agents = [a.id for a in AGENTS]
        agent_id = agents[x % len(agents)]
        after = ("", "", "")  # model updates due once the decisions are applied
        try:
            if kind == "arrive":
                next_id += 1
                contact_id = f"c{next_id}"
                queue = QUEUES[x % len(QUEUES)]
                request = ContactRequest(
                    contact_id, queue.name, priority=y % 3, callback=(y % 7 == 0)
                )
                if model is not None:
                    model.live.add(contact_id)
                    model.channel[contact_id] = queue.channel
                out = d.contact_arrived(request, now)
            elif kind in ("answer", "miss"):
                offers = sorted(
                    (c, a)
                    for c in live
                    for a in d.contact(c).agents
                    if d.contact(c).state.value == "offered"
                )
                if not offers:
                    continue
                contact_id, agent_id = offers[x % len(offers)]
                if kind == "answer":
                    out = d.offer_answered(contact_id, agent_id, now)
                    after = ("connect", contact_id, agent_id)
                else:
                    # The miss comes first: the contact may be offered again in `out`.
                    if model is not None:
                        model.ringing[contact_id].discard(agent_id)
                        if not model.ringing[contact_id]:
                            del model.ringing[contact_id]
                    out = d.offer_missed(contact_id, agent_id, now)
            elif kind in ("abandon", "end", "callback", "transfer"):
                if not live:
                    continue
                contact_id = live[x % len(live)]
                if kind == "abandon":
                    out = d.contact_abandoned(contact_id, now)
                    after = ("leave", contact_id, "")
                elif kind == "end":
                    out = d.contact_ended(contact_id, now)
                    after = ("leave", contact_id, "")
                elif kind == "callback":
                    out = d.callback_requested(contact_id, now)
                else:
                    target = QUEUES[y % len(QUEUES)].name
                    # Transferred: no longer connected, waiting again (and maybe offered in `out`).
                    if model is not None:
                        model.connected.pop(contact_id, None)
                    out = d.transfer_to_queue(contact_id, target, now)
            elif kind == "wrapup":
                out = d.wrapup_done(agent_id, now)
            elif kind == "login":
                out = d.login(agent_id, now, pause_reason="late" if y % 2 else None)
            elif kind == "logout":
                out = d.logout(agent_id, now)
            elif kind == "pause":
                out = d.pause(agent_id, now, "break")
            elif kind == "ready":
                out = d.ready(agent_id, now)
            elif kind == "skills":
                out = d.set_skills(agent_id, SKILL_SETS[y % len(SKILL_SETS)], now)
            else:
                now += float(y % 40)
                out = d.tick(now)
        except AcdError as exc:
            outcomes.append(exc.code)
            if model is not None:
                model.check(d)
            continue
        outcomes.append(out)
        if model is not None:
            model.apply(out)
            if after[0] == "connect":
                model.ringing.pop(after[1], None)
                model.connected[after[1]] = after[2]
            elif after[0] == "leave":
                model.leave(after[1])
            model.check(d)
            assert d.check_invariants() == [], (kind, d.check_invariants())
    return outcomes


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(op, min_size=1, max_size=60))
def test_random_histories_keep_every_invariant_and_match_the_naive_scan(
    history: list[tuple[str, int, int]],
) -> None:
    indexed = build(linear_scan=False)
    model = Model()
    outcomes = run(history, indexed, model)
    naive = build(linear_scan=True)
    assert run(history, naive, None) == outcomes
