"""The contact state machine allows the documented moves and refuses the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commserver.contacts import Channel, Contact, ContactState
from commserver.contacts.model import ALLOWED, FINAL
from commserver.errors import InvalidTransition

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def contact() -> Contact:
    return Contact(id="c1", channel=Channel.VOICE, arrived_at=T0)


def test_an_answered_call_walks_the_happy_path_and_stamps_times() -> None:
    c = contact()
    path = [
        ContactState.IVR,
        ContactState.QUEUED,
        ContactState.OFFERED,
        ContactState.CONNECTED,
        ContactState.WRAP_UP,
        ContactState.ENDED,
    ]
    for i, state in enumerate(path):
        c.move_to(state, T0 + timedelta(seconds=i))
    assert c.queued_at == T0 + timedelta(seconds=1)
    assert c.answered_at == T0 + timedelta(seconds=3)
    assert c.ended_at == T0 + timedelta(seconds=5)
    assert c.is_final


def test_a_missed_offer_goes_back_to_the_queue() -> None:
    c = contact()
    for state in (ContactState.QUEUED, ContactState.OFFERED, ContactState.QUEUED):
        c.move_to(state, T0)
    assert c.state is ContactState.QUEUED


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ((), ContactState.CONNECTED),
        ((ContactState.QUEUED,), ContactState.CONNECTED),
        ((ContactState.QUEUED, ContactState.ABANDONED), ContactState.QUEUED),
        ((ContactState.ENDED,), ContactState.IVR),
    ],
)
def test_illegal_moves_are_refused(path: tuple[ContactState, ...], bad: ContactState) -> None:
    c = contact()
    for state in path:
        c.move_to(state, T0)
    with pytest.raises(InvalidTransition, match=f"to {bad.value}"):
        c.move_to(bad, T0)
    assert c.state is (path[-1] if path else ContactState.ARRIVING)


def test_every_state_has_rules_and_final_states_lead_nowhere() -> None:
    assert set(ALLOWED) == set(ContactState)
    for state in FINAL:
        assert not ALLOWED[state]
