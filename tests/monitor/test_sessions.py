"""Server-side sessions on a fake clock: idle timeout, maximum age, sign-out, bounded store."""

from __future__ import annotations

from monitor.accounts import Principal, Role
from monitor.sessions import SessionStore

ALICE = Principal(1, "alice", Role.SUPERVISOR, None)
BOB = Principal(2, "bob", Role.AGENT, "s1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_when_idle_and_use_keeps_it_alive() -> None:
    clock = FakeClock()
    store = SessionStore(idle_timeout=100, max_age=1000, clock=clock)
    session = store.create(ALICE)
    clock.now = 90
    assert store.get(session.id) is session
    clock.now = 180
    assert store.get(session.id) is session  # 90 s since last use
    clock.now = 281
    assert store.get(session.id) is None
    assert len(store) == 0


def test_a_session_ends_at_its_maximum_age_however_busy() -> None:
    clock = FakeClock()
    store = SessionStore(idle_timeout=100, max_age=250, clock=clock)
    session = store.create(ALICE)
    for t in (80, 160, 240):
        clock.now = t
        assert store.get(session.id) is session
    clock.now = 251
    assert store.get(session.id) is None


def test_each_sign_in_gets_a_new_random_id_and_its_own_csrf_token() -> None:
    store = SessionStore()
    first, second = store.create(ALICE), store.create(ALICE)
    assert first.id != second.id
    assert first.csrf_token != second.csrf_token
    assert len(first.id) >= 43
    assert first.csrf_token != first.id


def test_ending_a_session_or_all_of_a_users_sessions_revokes_them() -> None:
    store = SessionStore()
    a1, a2, b = store.create(ALICE), store.create(ALICE), store.create(BOB)
    store.end(a1)
    assert store.get(a1.id) is None
    assert a1.ended
    assert store.end_user(ALICE.user_id) == 1
    assert store.get(a2.id) is None
    assert store.get(b.id) is b
    assert store.get("") is None
    assert store.get("forged") is None


def test_the_store_is_bounded_and_evicts_the_oldest_session() -> None:
    store = SessionStore(max_sessions=3)
    sessions = [store.create(ALICE) for _ in range(4)]
    assert len(store) == 3
    assert store.get(sessions[0].id) is None
    assert all(store.get(s.id) is s for s in sessions[1:])
