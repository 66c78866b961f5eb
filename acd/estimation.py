"""Estimated wait time of a waiting contact, from the live skill mix and staffing.

For a contact whose eligible agents are all occupied, the wait is the time until enough of
them free up to serve everyone ahead of it and then itself. With `c` contact slots staffed
(agents ready or working, summed over their capacity on the channel) and a moving average
handle time `h`, one slot frees up every `h / c` seconds on average, so

    EWT = (ahead + 1) * h / c

which for a single queue with exponential handle times is the exact conditional mean (the
M/M/N wait given the position). With several skills, "ahead" counts the better-placed contacts
of every group that competes for the same agents, each weighted by the share of that group's
agents this contact could also use. Contacts ahead who will abandon are not foreseen, so with
impatient callers the estimate errs long.
"""

from __future__ import annotations

from bisect import bisect_left

from acd.matching import RoutingIndex
from acd.records import AgentRecord, ContactRecord, WaitingGroup, meets
from acd.states import Presence


class WaitEstimator:
    """Estimates waits; caches who staffs each group until staffing or the groups change."""

    def __init__(self, index: RoutingIndex) -> None:
        self.index = index
        self.staffing_version = 0
        self._staffed: dict[WaitingGroup, tuple[int, frozenset[AgentRecord], int]] = {}
        self._logged_in: dict[WaitingGroup, tuple[int, int]] = {}
        self._competitors: dict[
            WaitingGroup, tuple[int, int, tuple[tuple[WaitingGroup, float], ...]]
        ] = {}

    def staffing_changed(self) -> None:
        """Someone logged in or out, paused, came back, or changed skills or capacity."""
        self.staffing_version += 1

    def _trim(self) -> None:
        # Groups come and go when contacts carry one-off skills; entries of dropped groups
        # are dead weight, so start afresh once the caches outgrow the groups.
        if len(self._staffed) + len(self._logged_in) + len(self._competitors) > (
            4 * RoutingIndex.MAX_GROUPS
        ):
            self._staffed.clear()
            self._logged_in.clear()
            self._competitors.clear()

    def staffed(self, group: WaitingGroup) -> tuple[frozenset[AgentRecord], int]:
        """Agents ready or working who qualify for the group, and their summed capacity."""
        cached = self._staffed.get(group)
        if cached is not None and cached[0] == self.staffing_version:
            return cached[1], cached[2]
        channel = group.channel
        agents = frozenset(
            a
            for a in self.index.agents.values()
            if a.presence is Presence.READY
            and a.capacity.get(channel, 0) > 0
            and meets(a.skills, group.requirements)
        )
        capacity = sum(a.capacity[channel] for a in agents)
        self._trim()
        self._staffed[group] = (self.staffing_version, agents, capacity)
        return agents, capacity

    def logged_in(self, group: WaitingGroup) -> int:
        """How many logged-in agents (paused included) could ever take this group."""
        cached = self._logged_in.get(group)
        if cached is not None and cached[0] == self.staffing_version:
            return cached[1]
        channel = group.channel
        count = sum(
            1
            for a in self.index.agents.values()
            if a.presence is not Presence.LOGGED_OUT
            and a.capacity.get(channel, 0) > 0
            and meets(a.skills, group.requirements)
        )
        self._trim()
        self._logged_in[group] = (self.staffing_version, count)
        return count

    def competitors(self, group: WaitingGroup) -> tuple[tuple[WaitingGroup, float], ...]:
        """Groups sharing agents with `group`, each with the share of its agents in common."""
        version = self.index.group_version[group.channel]
        cached = self._competitors.get(group)
        if cached is not None and cached[0] == self.staffing_version and cached[1] == version:
            return cached[2]
        mine, _ = self.staffed(group)
        result: list[tuple[WaitingGroup, float]] = []
        for other in self.index.groups[group.channel].values():
            if other is group:
                result.append((group, 1.0))
                continue
            theirs, _ = self.staffed(other)
            if theirs and mine:
                common = len(mine & theirs)
                if common:
                    result.append((other, common / len(theirs)))
        self._trim()
        self._competitors[group] = (self.staffing_version, version, tuple(result))
        return tuple(result)

    def estimate(self, contact: ContactRecord) -> float | None:
        """Expected remaining wait in seconds; 0 once offered; None if nobody could serve it."""
        group = contact.group
        entry = contact.entry
        if group is None or entry is None:
            return 0.0
        _, capacity = self.staffed(group)
        if capacity == 0:
            return None
        ahead = 0.0
        for other, share in self.competitors(group):
            if other.entries:
                ahead += share * bisect_left(other.entries, entry)
        return (ahead + 1.0) * contact.queue.aht / capacity
