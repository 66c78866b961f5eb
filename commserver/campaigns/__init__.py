"""Outbound campaigns: lists of customers to call, paced to the agents who take the calls.

The core is pure (plain data and a clock in, decisions out): `model` holds a campaign's
settings and its leads, `schedule` decides which lead may be called when (calling windows,
retry rules, the do-not-call list), `pacing` how many calls to place now (preview,
progressive, predictive with a cap on the drop rate). See docs/campaigns.md.
"""

from commserver.campaigns.model import (
    AttemptOutcome,
    CallingWindow,
    CampaignSettings,
    DialMode,
    Lead,
    LeadState,
    RetryRule,
)
from commserver.campaigns.pacing import PacingWindow, dials_wanted
from commserver.campaigns.schedule import after_attempt, due_leads, in_calling_window

__all__ = [
    "AttemptOutcome",
    "CallingWindow",
    "CampaignSettings",
    "DialMode",
    "Lead",
    "LeadState",
    "PacingWindow",
    "RetryRule",
    "after_attempt",
    "dials_wanted",
    "due_leads",
    "in_calling_window",
]
