"""Login throttling on a fake clock: per-name and per-address limits in a sliding window."""

from __future__ import annotations

from monitor.throttle import LoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_locked_after_its_limit_of_failures_until_the_window_slides() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(user_limit=3, address_limit=100, window=60.0, clock=clock)
    for _ in range(3):
        assert throttle.check("alice", "10.0.0.1") is None
        throttle.failed("alice", "10.0.0.1")
        clock.now += 5
    lockout = throttle.check("alice", "10.0.0.2")
    assert lockout is not None
    assert lockout.key_kind == "user"
    assert lockout.retry_after == 60.0 - 15.0
    clock.now += lockout.retry_after
    assert throttle.check("alice", "10.0.0.2") is None
    assert throttle.check("bob", "10.0.0.1") is None


def test_one_address_guessing_many_names_is_locked_by_the_address_limit() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(user_limit=3, address_limit=5, window=60.0, clock=clock)
    for i in range(5):
        throttle.failed(f"user{i}", "10.0.0.9")
    lockout = throttle.check("someone-new", "10.0.0.9")
    assert lockout is not None
    assert lockout.key_kind == "address"
    assert throttle.check("someone-new", "10.0.0.10") is None


def test_a_correct_password_clears_the_name_but_not_the_address() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(user_limit=3, address_limit=4, window=60.0, clock=clock)
    throttle.failed("alice", "10.0.0.1")
    throttle.failed("alice", "10.0.0.1")
    throttle.succeeded("alice")
    throttle.failed("alice", "10.0.0.1")
    throttle.failed("alice", "10.0.0.1")
    assert throttle.check("alice", "10.0.0.2") is None
    lockout = throttle.check("bob", "10.0.0.1")
    assert lockout is not None
    assert lockout.key_kind == "address"
