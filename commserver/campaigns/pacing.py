"""How many calls to place now: preview, progressive, or predictive under a drop-rate cap.

Predictive dialling places more calls than there are free agents because most calls are not
answered; a customer who answers when no agent is free is *dropped* (an abandoned call),
which regulators cap (Ofcom and the FTC: 3 % of live-answered calls). The pacer estimates the
answer rate from recent attempts and falls back to progressive (one call per free agent, no
drops possible) whenever the recent drop rate reaches the cap.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from commserver.campaigns.model import AttemptOutcome, CampaignSettings, DialMode

#: Outcomes in which a customer picked up (the drop rate's denominator).
_LIVE = frozenset({AttemptOutcome.CONNECTED, AttemptOutcome.DROPPED, AttemptOutcome.REFUSED})


@dataclass(slots=True)
class PacingWindow:
    """The outcomes of the last `size` attempts: the answer rate and the drop rate."""

    size: int = 200
    _outcomes: deque[AttemptOutcome] = field(default_factory=deque)
    _live: int = 0
    _dropped: int = 0

    def record(self, outcome: AttemptOutcome) -> None:
        """Count one finished attempt, forgetting the oldest beyond `size`."""
        self._outcomes.append(outcome)
        self._count(outcome, 1)
        if len(self._outcomes) > self.size:
            self._count(self._outcomes.popleft(), -1)

    def _count(self, outcome: AttemptOutcome, step: int) -> None:
        if outcome in _LIVE:
            self._live += step
        if outcome is AttemptOutcome.DROPPED:
            self._dropped += step

    @property
    def attempts(self) -> int:
        """Attempts in the window."""
        return len(self._outcomes)

    @property
    def answer_rate(self) -> float:
        """Share of attempts a customer picked up, with a prior of one in two (no history)."""
        return (self._live + 1) / (len(self._outcomes) + 2)

    @property
    def drop_rate(self) -> float:
        """Dropped calls over live-answered calls (0 with none answered)."""
        return self._dropped / self._live if self._live else 0.0


def dials_wanted(
    settings: CampaignSettings, *, free_agents: int, in_flight: int, window: PacingWindow
) -> int:
    """Calls to start now so that, by the answer rate, about one answer waits per free agent.

    `free_agents` are the campaign queue's ready agents not yet holding a campaign call;
    `in_flight` are calls placed and not yet answered or ended. Preview never dials by itself.
    """
    if settings.mode is DialMode.PREVIEW or free_agents <= 0:
        return 0
    if settings.mode is DialMode.PROGRESSIVE or window.drop_rate >= settings.max_drop_rate:
        return max(free_agents - in_flight, 0)
    # Predictive: enough calls that the expected answers cover the free agents, no more than
    # max_ratio per agent; the margin below the cap shrinks the ratio as drops approach it.
    headroom = 1.0 - window.drop_rate / settings.max_drop_rate
    ratio = min(1.0 / window.answer_rate, settings.max_ratio)
    ratio = 1.0 + (ratio - 1.0) * headroom
    return max(math.floor(free_agents * ratio) - in_flight, 0)
