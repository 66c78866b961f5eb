"""The matcher: who takes a contact, and which contact a free agent takes.

Two implementations share one contract and give the same answers:

* `IndexedMatcher` (the one the dispatcher uses) looks only where an answer can be: the free
  agents of the rarest required skill, and the heads of the waiting groups the agent
  qualifies for (groups are kept sorted, so a head is the best contact of its group).
* `LinearScanMatcher` scans every agent and every waiting contact. It is the reference the
  tests compare against and the baseline of `caruso bench routing`.

Both apply the queue's strategy through `choose_agents`, so ties break the same way: by the
strategy's criterion, then longest idle, then the agent's creation order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from acd.decisions import Criterion
from acd.model import CHANNELS, Channel, Strategy
from acd.records import (
    AgentRecord,
    ContactRecord,
    Entry,
    Requirements,
    WaitingGroup,
    meets,
)
from acd.states import Presence


class RoutingIndex:
    """The dispatcher's indexes: free agents by channel and skill, waiting groups by channel."""

    __slots__ = ("agents", "free", "free_all", "group_version", "groups", "next_ordinal", "waiting")

    MAX_GROUPS = 512  # past this, empty groups are dropped (contacts with one-off skills)

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.next_ordinal = 0
        self.free: dict[Channel, dict[str, set[AgentRecord]]] = {ch: {} for ch in CHANNELS}
        self.free_all: dict[Channel, set[AgentRecord]] = {ch: set() for ch in CHANNELS}
        self.groups: dict[Channel, dict[Requirements, WaitingGroup]] = {ch: {} for ch in CHANNELS}
        self.group_version: dict[Channel, int] = dict.fromkeys(CHANNELS, 0)
        self.waiting: dict[str, ContactRecord] = {}

    # -- free agents ------------------------------------------------------------------------

    def add_free(self, agent: AgentRecord, channel: Channel) -> None:
        """The agent can take one more contact on `channel`."""
        agent.available.add(channel)
        self.free_all[channel].add(agent)
        per_skill = self.free[channel]
        for skill in agent.skills:
            bucket = per_skill.get(skill)
            if bucket is None:
                bucket = per_skill[skill] = set()
            bucket.add(agent)

    def remove_free(self, agent: AgentRecord, channel: Channel) -> None:
        """The agent can take nothing more on `channel`."""
        agent.available.discard(channel)
        self.free_all[channel].discard(agent)
        per_skill = self.free[channel]
        for skill in agent.skills:
            bucket = per_skill.get(skill)
            if bucket is not None:
                bucket.discard(agent)

    # -- waiting groups ---------------------------------------------------------------------

    def group_for(self, channel: Channel, requirements: Requirements) -> WaitingGroup:
        """The group of waiting contacts with these requirements, created on first use."""
        groups = self.groups[channel]
        group = groups.get(requirements)
        if group is None:
            if len(groups) >= self.MAX_GROUPS:
                self._drop_empty_groups(channel)
            group = groups[requirements] = WaitingGroup(channel, requirements)
            self.group_version[channel] += 1
        return group

    def _drop_empty_groups(self, channel: Channel) -> None:
        groups = self.groups[channel]
        for key in [k for k, g in groups.items() if not g.entries]:
            del groups[key]
        self.group_version[channel] += 1
        for agent in self.agents.values():
            agent.elig_cache.clear()

    def eligible_groups(self, agent: AgentRecord, channel: Channel) -> list[WaitingGroup]:
        """The waiting groups whose requirements the agent meets (cached per group version)."""
        version = self.group_version[channel]
        if agent.elig_version.get(channel) != version:
            cache = agent.elig_cache
            eligible = []
            for group in self.groups[channel].values():
                ok = cache.get(group)
                if ok is None:
                    ok = cache[group] = meets(agent.skills, group.requirements)
                if ok:
                    eligible.append(group)
            agent.elig_groups[channel] = eligible
            agent.elig_version[channel] = version
        return agent.elig_groups[channel]

    def skills_changed(self, agent: AgentRecord) -> None:
        """Forget what the agent qualified for."""
        agent.elig_cache.clear()
        agent.elig_version.clear()


class AgentChoice(NamedTuple):
    """The agents picked for a contact (several for ring-all), and why.

    An immutable named tuple rather than a frozen dataclass: it is built on every routing
    decision and never leaves the ACD, and a tuple is several times cheaper to build.
    """

    agents: tuple[AgentRecord, ...]
    criterion: Criterion
    value: float
    candidates: Sequence[AgentRecord]  # the free eligible agents considered


class Matcher(Protocol):
    """The two questions routing asks."""

    name: str

    def best_contact_for(
        self, agent: AgentRecord, channel: Channel
    ) -> tuple[ContactRecord, int] | None:
        """The best waiting contact the agent can take on `channel`, and how many groups
        were compared; None if there is none."""
        ...

    def best_agents_for(
        self, contact: ContactRecord, now: float, rng: random.Random
    ) -> AgentChoice | None:
        """The free agent(s) the contact's queue strategy picks, or None."""
        ...


class IndexedMatcher:
    """Looks only at the free agents of the rarest required skill and at group heads."""

    name = "indexed"

    def __init__(self, index: RoutingIndex) -> None:
        self.index = index

    def best_contact_for(
        self, agent: AgentRecord, channel: Channel
    ) -> tuple[ContactRecord, int] | None:
        """Compare the heads of the groups the agent qualifies for."""
        index = self.index
        # The cached list of groups the agent qualifies for, inline: this is the hot path.
        if agent.elig_version.get(channel) == index.group_version[channel]:
            groups = agent.elig_groups[channel]
        else:
            groups = index.eligible_groups(agent, channel)
        best: Entry | None = None
        considered = 0
        for group in groups:
            entries = group.entries
            if not entries:
                continue
            entry: Entry | None = entries[0]
            assert entry is not None
            excluded = entry[3].excluded
            if excluded is not None and agent in excluded:
                # Rare: the head just rang this agent in vain; take the first it may have.
                entry = next((e for e in entries if not _excludes(e[3], agent)), None)
                if entry is None:
                    continue
            considered += 1
            if best is None or entry < best:
                best = entry
        return None if best is None else (best[3], considered)

    def best_agents_for(
        self, contact: ContactRecord, now: float, rng: random.Random
    ) -> AgentChoice | None:
        """Filter the free agents of the rarest required skill, then apply the strategy."""
        requirements = contact.requirements
        channel = contact.channel
        pool: set[AgentRecord] | None
        if not requirements:
            pool = self.index.free_all[channel]
        else:
            per_skill = self.index.free[channel]
            pool = None
            for skill, _ in requirements:
                bucket = per_skill.get(skill)
                if not bucket:
                    return None
                if pool is None or len(bucket) < len(pool):
                    pool = bucket
        if not pool:
            return None
        if len(requirements) == 1:
            skill, level = requirements[0]
            candidates = [a for a in pool if a.skills[skill] >= level]
        else:
            candidates = [a for a in pool if meets(a.skills, requirements)]
        excluded = contact.excluded
        if excluded:
            candidates = [a for a in candidates if a not in excluded]
        if not candidates:
            return None
        return choose_agents(candidates, contact, now, rng, self.index.next_ordinal)


class LinearScanMatcher:
    """The naive router: every agent, every waiting contact, every time."""

    name = "linear-scan"

    def __init__(self, index: RoutingIndex) -> None:
        self.index = index

    def best_contact_for(
        self, agent: AgentRecord, channel: Channel
    ) -> tuple[ContactRecord, int] | None:
        """Scan all waiting contacts."""
        best: Entry | None = None
        groups: set[Requirements] = set()
        skills = agent.skills
        for contact in self.index.waiting.values():
            if contact.channel is not channel or not meets(skills, contact.requirements):
                continue
            if _excludes(contact, agent):
                continue
            groups.add(contact.requirements)
            entry = contact.entry
            assert entry is not None
            if best is None or entry < best:
                best = entry
        return None if best is None else (best[3], len(groups))

    def best_agents_for(
        self, contact: ContactRecord, now: float, rng: random.Random
    ) -> AgentChoice | None:
        """Scan all agents."""
        channel = contact.channel
        requirements = contact.requirements
        candidates = [
            a
            for a in self.index.agents.values()
            if a.presence is Presence.READY
            and a.load[channel] < a.capacity.get(channel, 0)
            and meets(a.skills, requirements)
            and not _excludes(contact, a)
        ]
        if not candidates:
            return None
        return choose_agents(candidates, contact, now, rng, self.index.next_ordinal)


def _excludes(contact: ContactRecord, agent: AgentRecord) -> bool:
    excluded = contact.excluded
    return excluded is not None and agent in excluded


def choose_agents(
    candidates: list[AgentRecord],
    contact: ContactRecord,
    now: float,
    rng: random.Random,
    ordinals: int,
) -> AgentChoice:
    """Apply the contact's queue strategy to the free eligible agents (non-empty).

    Every key ends with (idle since, creation order), so the choice never depends on the
    order the candidates come in.
    """
    queue = contact.queue
    strategy = queue.config.strategy
    channel = contact.channel

    if strategy is Strategy.LONGEST_IDLE:
        if len(candidates) == 1:
            agent = candidates[0]
        else:
            agent = min(candidates, key=lambda a: (a.idle_since[channel], a.ordinal))
        return AgentChoice(
            (agent,), Criterion.LONGEST_IDLE, now - agent.idle_since[channel], candidates
        )
    if strategy is Strategy.FEWEST_CALLS:
        agent = min(candidates, key=lambda a: (a.answered, a.idle_since[channel], a.ordinal))
        return AgentChoice((agent,), Criterion.FEWEST_CALLS, float(agent.answered), candidates)
    if strategy is Strategy.LEAST_OCCUPIED:
        agent = min(candidates, key=lambda a: (a.occupancy(now), a.idle_since[channel], a.ordinal))
        return AgentChoice((agent,), Criterion.LEAST_OCCUPIED, agent.occupancy(now), candidates)
    if strategy is Strategy.BEST_SKILL:
        # The queue's own skills decide (a contact's extra needs only filter); a queue without
        # skills falls back to the contact's requirements.
        skills = tuple(queue.config.skills) or tuple(s for s, _ in contact.requirements)

        def level(a: AgentRecord) -> int:
            return sum(a.skills.get(s, 0) for s in skills)

        agent = min(candidates, key=lambda a: (-level(a), a.idle_since[channel], a.ordinal))
        return AgentChoice((agent,), Criterion.BEST_SKILL, float(level(agent)), candidates)
    if strategy is Strategy.ROUND_ROBIN:
        last = queue.rr_last
        span = max(ordinals, 1)
        agent = min(candidates, key=lambda a: (a.ordinal - last - 1) % span)
        return AgentChoice((agent,), Criterion.ROUND_ROBIN, float(agent.ordinal), candidates)
    ordered = sorted(candidates, key=lambda a: a.ordinal)
    if strategy is Strategy.RING_ALL:
        return AgentChoice(tuple(ordered), Criterion.RING_ALL, float(len(ordered)), candidates)
    agent = ordered[rng.randrange(len(ordered))]
    return AgentChoice((agent,), Criterion.RANDOM, float(agent.ordinal), candidates)
