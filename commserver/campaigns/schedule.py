"""Which lead may be called when: calling windows, retry rules and the do-not-call list."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from commserver.campaigns.model import (
    FINAL,
    AttemptOutcome,
    CampaignSettings,
    Lead,
    LeadState,
)

_NOT_DIGITS = re.compile(r"[^0-9]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalize_number(number: str) -> str:
    """A number as compared with the do-not-call list: digits only, a leading '+' kept."""
    digits = _NOT_DIGITS.sub("", number)
    return f"+{digits}" if number.strip().startswith("+") else digits


def in_calling_window(settings: CampaignSettings, now: datetime) -> bool:
    """True when customers of this campaign may be called at `now` (an aware datetime)."""
    local = now.astimezone(ZoneInfo(settings.timezone))
    return any(window.contains(local) for window in settings.windows)


def after_attempt(
    lead: Lead, outcome: AttemptOutcome, now: datetime, settings: CampaignSettings
) -> Lead:
    """The lead once a call to it ended with `outcome`: done, retried later, or given up."""
    attempts = lead.attempts + 1
    outcomes = (*lead.outcomes, outcome)
    final = FINAL.get(outcome)
    rule = settings.retry_rule(outcome)
    if final is None and (rule is None or attempts >= rule.max_attempts):
        final = LeadState.EXHAUSTED
    if final is not None:
        return replace(
            lead, state=final, attempts=attempts, next_attempt_at=None,
            last_outcome=outcome, outcomes=outcomes,
        )  # fmt: skip
    assert rule is not None
    return replace(
        lead,
        state=LeadState.PENDING,
        attempts=attempts,
        next_attempt_at=now + timedelta(seconds=rule.delay),
        last_outcome=outcome,
        outcomes=outcomes,
    )


def due_leads(
    leads: Iterable[Lead], now: datetime, *, do_not_call: Collection[str], limit: int
) -> tuple[list[Lead], list[Lead]]:
    """Up to `limit` leads to call now (highest priority, longest due first), and the leads
    found on the do-not-call list on the way (returned in state DO_NOT_CALL, never called)."""
    blocked: list[Lead] = []
    due: list[Lead] = []
    for lead in leads:
        if lead.state is not LeadState.PENDING:
            continue
        if normalize_number(lead.number) in do_not_call:
            blocked.append(replace(lead, state=LeadState.DO_NOT_CALL, next_attempt_at=None))
            continue
        if lead.next_attempt_at is None or lead.next_attempt_at <= now:
            due.append(lead)
    due.sort(key=lambda lead: (-lead.priority, lead.next_attempt_at or _EPOCH, lead.id))
    return due[: max(limit, 0)], blocked
