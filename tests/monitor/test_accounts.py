"""Accounts over a real database (SQLite, and PostgreSQL/MariaDB when they run): argon2id
hashes, case-insensitive unique names, the account rules, and authentication."""

from __future__ import annotations

import pytest

from monitor.accounts import MODEL_FILE, AccountStore, Role, WebUser
from monitor.domain_errors import DuplicateAccount, InvalidAccount, NoSuchAccount
from storage import StorageManager, load_model

PASSWORD = "a long enough secret"


async def test_an_account_is_stored_with_an_argon2id_hash_and_authenticates(db_url: str) -> None:
    async with await StorageManager.open(db_url, models=[load_model(MODEL_FILE)]) as storage:
        accounts = AccountStore(storage)
        created = await accounts.add("Alice", PASSWORD, Role.SUPERVISOR)
        stored = await storage.query(WebUser)
        assert created.name == "alice"
        assert created.role is Role.SUPERVISOR
        assert len(stored) == 1
        assert stored[0].password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored[0].password_hash
        assert await accounts.authenticate("ALICE ", PASSWORD) == created
        assert await accounts.authenticate("alice", PASSWORD + "!") is None
        assert await accounts.authenticate("nobody", PASSWORD) is None


async def test_names_are_unique_whatever_their_case(sqlite_url: str) -> None:
    async with await StorageManager.open(sqlite_url, models=[load_model(MODEL_FILE)]) as storage:
        accounts = AccountStore(storage)
        await accounts.add("bob", PASSWORD, Role.AGENT, "s1")
        with pytest.raises(DuplicateAccount):
            await accounts.add("BOB", PASSWORD, Role.ADMIN)
        assert [u.name for u in await accounts.list()] == ["bob"]


@pytest.mark.parametrize(
    ("name", "role", "agent_id", "password", "field"),
    [
        ("", Role.ADMIN, None, PASSWORD, "name"),
        ("<script>", Role.ADMIN, None, PASSWORD, "name"),
        ("a" * 65, Role.ADMIN, None, PASSWORD, "name"),
        ("carol", Role.AGENT, None, PASSWORD, "agent_id"),
        ("carol", Role.AGENT, "s 1", PASSWORD, "agent_id"),
        ("carol", Role.ADMIN, None, "short", "password"),
    ],
)
async def test_accounts_breaking_a_rule_are_refused_with_the_field_named(
    sqlite_url: str, name: str, role: Role, agent_id: str | None, password: str, field: str
) -> None:
    async with await StorageManager.open(sqlite_url, models=[load_model(MODEL_FILE)]) as storage:
        accounts = AccountStore(storage)
        with pytest.raises(InvalidAccount) as refused:
            await accounts.add(name, password, role, agent_id)
        assert refused.value.details["field"] == field
        assert await storage.count(WebUser) == 0


async def test_a_new_password_replaces_the_old_one(sqlite_url: str) -> None:
    async with await StorageManager.open(sqlite_url, models=[load_model(MODEL_FILE)]) as storage:
        accounts = AccountStore(storage)
        await accounts.add("dora", PASSWORD, Role.ADMIN)
        await accounts.set_password("dora", "another long secret")
        assert await accounts.authenticate("dora", PASSWORD) is None
        assert await accounts.authenticate("dora", "another long secret") is not None
        with pytest.raises(NoSuchAccount):
            await accounts.set_password("nobody", "another long secret")


def test_roles_include_the_ones_below_them() -> None:
    assert Role.ADMIN.includes(Role.SUPERVISOR)
    assert Role.ADMIN.includes(Role.AGENT)
    assert Role.SUPERVISOR.includes(Role.AGENT)
    assert not Role.SUPERVISOR.includes(Role.ADMIN)
    assert not Role.AGENT.includes(Role.SUPERVISOR)
