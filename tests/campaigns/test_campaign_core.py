"""The campaign core: calling windows, retries, the do-not-call list and pacing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from commserver.campaigns import (
    AttemptOutcome,
    CallingWindow,
    CampaignSettings,
    DialMode,
    Lead,
    LeadState,
    PacingWindow,
    RetryRule,
    after_attempt,
    dials_wanted,
    due_leads,
    in_calling_window,
)
from commserver.campaigns.schedule import normalize_number

MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = CampaignSettings("renewals", "sales")


def window_of(*outcomes: AttemptOutcome, size: int = 200) -> PacingWindow:
    window = PacingWindow(size)
    for outcome in outcomes:
        window.record(outcome)
    return window


def test_calling_windows_follow_the_campaign_time_zone_and_weekdays() -> None:
    berlin = replace(SETTINGS, timezone="Europe/Berlin")
    # 19:30 UTC is 20:30 in Berlin (winter): outside 09-20 there, inside in UTC.
    evening = MONDAY_NOON.replace(hour=19, minute=30)
    assert in_calling_window(SETTINGS, evening)
    assert not in_calling_window(berlin, evening)
    assert not in_calling_window(SETTINGS, MONDAY_NOON - timedelta(days=1))  # Sunday
    late = replace(SETTINGS, windows=(CallingWindow(frozenset({6}), time(10), time(12)),))
    assert in_calling_window(late, MONDAY_NOON - timedelta(days=1, hours=1))


def test_a_no_answer_is_retried_after_its_delay_until_the_attempts_run_out() -> None:
    settings = replace(SETTINGS, retries=(RetryRule(AttemptOutcome.NO_ANSWER, 600.0, 2),))
    lead = after_attempt(Lead("l1", "+4930111"), AttemptOutcome.NO_ANSWER, MONDAY_NOON, settings)
    assert lead.state is LeadState.PENDING
    assert lead.next_attempt_at == MONDAY_NOON + timedelta(minutes=10)
    lead = after_attempt(lead, AttemptOutcome.NO_ANSWER, MONDAY_NOON, settings)
    assert lead.state is LeadState.EXHAUSTED
    assert lead.attempts == 2
    assert lead.outcomes == (AttemptOutcome.NO_ANSWER, AttemptOutcome.NO_ANSWER)


def test_final_outcomes_end_a_lead_whatever_the_retry_rules() -> None:
    lead = Lead("l1", "+4930111")
    assert after_attempt(lead, AttemptOutcome.CONNECTED, MONDAY_NOON, SETTINGS).state is (
        LeadState.DONE
    )
    assert after_attempt(lead, AttemptOutcome.INVALID_NUMBER, MONDAY_NOON, SETTINGS).state is (
        LeadState.EXHAUSTED
    )
    assert after_attempt(lead, AttemptOutcome.REFUSED, MONDAY_NOON, SETTINGS).state is (
        LeadState.DO_NOT_CALL
    )
    no_rules = replace(SETTINGS, retries=())
    assert after_attempt(lead, AttemptOutcome.BUSY, MONDAY_NOON, no_rules).state is (
        LeadState.EXHAUSTED
    )


def test_due_leads_skip_the_do_not_call_list_and_put_priority_first() -> None:
    later = MONDAY_NOON + timedelta(hours=1)
    leads = [
        Lead("a", "+49 30 111", priority=0),
        Lead("b", "+49-30-222", priority=5),
        Lead("c", "+4930333", next_attempt_at=later),
        Lead("d", "030 444"),
        Lead("e", "+4930555", state=LeadState.DONE),
    ]
    due, blocked = due_leads(leads, MONDAY_NOON, do_not_call={"030444"}, limit=10)
    assert [lead.id for lead in due] == ["b", "a"]
    assert [(lead.id, lead.state) for lead in blocked] == [("d", LeadState.DO_NOT_CALL)]
    due, _ = due_leads(leads, later, do_not_call=set(), limit=2)
    assert [lead.id for lead in due] == ["b", "a"]
    assert normalize_number(" +49 (30) 111-0 ") == "+49301110"


def test_preview_never_dials_and_progressive_dials_one_per_free_agent() -> None:
    preview = replace(SETTINGS, mode=DialMode.PREVIEW)
    assert dials_wanted(preview, free_agents=5, in_flight=0, window=window_of()) == 0
    assert dials_wanted(SETTINGS, free_agents=5, in_flight=2, window=window_of()) == 3
    assert dials_wanted(SETTINGS, free_agents=2, in_flight=4, window=window_of()) == 0


def test_predictive_dials_ahead_by_the_answer_rate_within_the_ratio_cap() -> None:
    predictive = replace(SETTINGS, mode=DialMode.PREDICTIVE, max_ratio=3.0)
    # One answer in four attempts: about four calls per free agent, capped at three.
    quarter = window_of(*([AttemptOutcome.CONNECTED] + [AttemptOutcome.NO_ANSWER] * 3) * 50)
    assert dials_wanted(predictive, free_agents=4, in_flight=0, window=quarter) == 12
    # Half answered: two per agent.
    half = window_of(*[AttemptOutcome.CONNECTED, AttemptOutcome.BUSY] * 100)
    assert dials_wanted(predictive, free_agents=4, in_flight=3, window=half) == 5


def test_predictive_falls_back_to_progressive_when_drops_reach_the_cap() -> None:
    predictive = replace(SETTINGS, mode=DialMode.PREDICTIVE, max_drop_rate=0.03)
    dropping = window_of(*([AttemptOutcome.DROPPED] + [AttemptOutcome.CONNECTED] * 9) * 10)
    assert dropping.drop_rate == 0.1
    assert dials_wanted(predictive, free_agents=4, in_flight=1, window=dropping) == 3


def test_the_pacing_window_forgets_old_attempts() -> None:
    window = window_of(*[AttemptOutcome.DROPPED] * 5, size=10)
    for _ in range(10):
        window.record(AttemptOutcome.CONNECTED)
    assert window.attempts == 10
    assert window.drop_rate == 0.0
    assert window.answer_rate == 11 / 12


@given(
    mode=st.sampled_from(list(DialMode)),
    free=st.integers(0, 200),
    in_flight=st.integers(0, 600),
    outcomes=st.lists(st.sampled_from(list(AttemptOutcome)), max_size=300),
)
def test_the_pacer_never_exceeds_the_ratio_cap_nor_dials_without_free_agents(
    mode: DialMode, free: int, in_flight: int, outcomes: list[AttemptOutcome]
) -> None:
    settings = replace(SETTINGS, mode=mode)
    window = window_of(*outcomes)
    wanted = dials_wanted(settings, free_agents=free, in_flight=in_flight, window=window)
    assert wanted >= 0
    assert wanted + in_flight <= max(free * settings.max_ratio, in_flight)
    if free == 0 or mode is DialMode.PREVIEW:
        assert wanted == 0
    if mode is DialMode.PROGRESSIVE or window.drop_rate >= settings.max_drop_rate:
        assert wanted <= max(free - in_flight, 0)
