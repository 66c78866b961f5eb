"""Accounts of the web front: users with a role, an optional agent link and an argon2 hash.

Users are business objects (`WebUser`, `monitor/model.xml`) stored through the storage
manager. Passwords are hashed with argon2id (argon2-cffi) in a worker thread, a few at a
time, because one hash costs tens of milliseconds and tens of megabytes by design.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from commserver.clock import utcnow
from monitor.domain_errors import DuplicateAccount, InvalidAccount, NoSuchAccount
from storage import Conflict, StorageManager

MODEL_FILE = Path(__file__).with_name("model.xml")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
AGENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: Hashes running at once: each argon2 hash takes 64 MiB with the default parameters.
HASHING_SLOTS = 2


class Role(enum.Enum):
    """What a user may do: each role includes everything the ones below it may do."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the hierarchy: agent < supervisor < admin."""
        return _RANKS[self]

    def includes(self, needed: Role) -> bool:
        """Whether a user with this role may do what `needed` may do."""
        return self.rank >= needed.rank


_RANKS = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class WebUser:
    """The stored account (business object `WebUser`)."""

    id: int | None
    name: str
    role: str
    agent_id: str | None
    password_hash: str
    created_at: datetime
    disabled: bool


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is signed in: the account without its hash."""

    user_id: int
    name: str
    role: Role
    agent_id: str | None

    @classmethod
    def of(cls, user: WebUser) -> Principal:
        """The principal of a stored account."""
        assert user.id is not None
        return cls(user.id, user.name, Role(user.role), user.agent_id)


def normalize_name(name: str) -> str:
    """The canonical form of a sign-in name (names are case-insensitive)."""
    return name.strip().lower()


def check_new_account(name: str, role: Role, agent_id: str | None) -> str:
    """The normalized name, or `InvalidAccount` saying which rule is broken."""
    canonical = normalize_name(name)
    if not NAME_PATTERN.match(canonical):
        raise InvalidAccount(
            f"user name {name!r} must be 1-64 characters: letters, digits and . _ @ -,"
            " starting with a letter or digit",
            field="name",
        )
    if agent_id is not None and not AGENT_ID_PATTERN.match(agent_id):
        raise InvalidAccount(f"agent id {agent_id!r} is not a valid agent id", field="agent_id")
    if role is Role.AGENT and agent_id is None:
        raise InvalidAccount(
            "an agent account needs the agent id it works as (--agent-id)", field="agent_id"
        )
    return canonical


def check_password(password: str) -> None:
    """Refuse passwords too short to resist guessing, or absurdly long."""
    if len(password) < MIN_PASSWORD:
        raise InvalidAccount(
            f"the password must have at least {MIN_PASSWORD} characters", field="password"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidAccount(
            f"the password must have at most {MAX_PASSWORD} characters", field="password"
        )


class AccountStore:
    """Create, list and authenticate web users over the storage manager."""

    def __init__(
        self,
        storage: StorageManager,
        *,
        hasher: PasswordHasher | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._storage = storage
        self._hasher = hasher or PasswordHasher()
        self._now = now
        self._slots = asyncio.Semaphore(HASHING_SLOTS)
        self._dummy_hash: str | None = None
        storage.bind(WebUser, "WebUser")

    async def _in_thread(self, work: Callable[[], str | bool]) -> str | bool:
        async with self._slots:
            return await asyncio.to_thread(work)

    async def _hash(self, password: str) -> str:
        hashed = await self._in_thread(lambda: self._hasher.hash(password))
        assert isinstance(hashed, str)
        return hashed

    async def _verify(self, password_hash: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return bool(await self._in_thread(verify))

    async def add(
        self, name: str, password: str, role: Role, agent_id: str | None = None
    ) -> Principal:
        """Create an account; `DuplicateAccount` if the name is taken."""
        canonical = check_new_account(name, role, agent_id)
        check_password(password)
        if await self.get(canonical) is not None:
            raise DuplicateAccount(f"user {canonical!r} already exists", name=canonical)
        user = WebUser(
            id=None,
            name=canonical,
            role=role.value,
            agent_id=agent_id,
            password_hash=await self._hash(password),
            created_at=self._now(),
            disabled=False,
        )
        try:
            stored = await self._storage.insert(user)
        except Conflict:
            # Two creations raced past the check above; the unique index decided.
            raise DuplicateAccount(f"user {canonical!r} already exists", name=canonical) from None
        return Principal.of(stored)

    async def get(self, name: str) -> WebUser | None:
        """The stored account with this name, or None."""
        rows = await self._storage.query(WebUser, where={"name": normalize_name(name)}, limit=1)
        return rows[0] if rows else None

    async def list(self) -> list[Principal]:
        """Every enabled account, by name."""
        rows = await self._storage.query(
            WebUser, where={"disabled": False}, order_by=["name"], limit=10_000
        )
        return [Principal.of(row) for row in rows]

    async def set_password(self, name: str, password: str) -> None:
        """Replace a user's password."""
        check_password(password)
        user = await self.get(name)
        if user is None:
            raise NoSuchAccount(f"no user {normalize_name(name)!r}", name=normalize_name(name))
        await self._storage.update(replace(user, password_hash=await self._hash(password)))

    async def authenticate(self, name: str, password: str) -> Principal | None:
        """The principal if the name and password match an enabled account, else None.

        An unknown name costs the same hash as a known one, so timing does not tell which
        names exist.
        """
        user = await self.get(name) if len(name) <= 200 else None
        if user is None or user.disabled or len(password) > MAX_PASSWORD:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash("not a password of anyone")
            await self._verify(self._dummy_hash, password[:MAX_PASSWORD])
            return None
        if not await self._verify(user.password_hash, password):
            return None
        if self._hasher.check_needs_rehash(user.password_hash):
            # Parameters were raised since this hash was made: upgrade it while we know the
            # password.
            await self._storage.update(replace(user, password_hash=await self._hash(password)))
        return Principal.of(user)
