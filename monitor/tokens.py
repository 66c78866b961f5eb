"""API tokens for integrators: bearer tokens for the event stream and Prometheus metrics.

An admin creates a token with a name (`POST /api/tokens`); its secret is shown once and only
its SHA-256 is stored (`ApiToken`, `monitor/model.xml`), so a database dump reveals no usable
token. Tokens carry 256 random bits, so a plain hash (no salt, no slow hash) is enough: there
is nothing to guess. A revoked token is refused at once; a stream it opened ends within 15 s.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from commserver.clock import utcnow
from monitor.accounts import NAME_PATTERN
from monitor.domain_errors import InvalidRequest, NoSuchToken
from storage import StorageManager

PREFIX = "caruso_"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token, without its secret (business object `ApiToken`)."""

    id: int | None
    name: str
    token_hash: str
    created_by: str
    created_at: datetime
    revoked: bool


def digest(secret: str) -> str:
    """What is stored of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Create, list, revoke and check integrators' tokens."""

    def __init__(self, storage: StorageManager) -> None:
        self._storage = storage
        storage.bind(ApiToken, "ApiToken")

    async def create(self, name: str, created_by: str) -> tuple[ApiToken, str]:
        """A new token and its secret (the only time the secret is known)."""
        name = name.strip().lower()
        if not NAME_PATTERN.match(name):
            raise InvalidRequest(
                "a token name is 1-64 characters: letters, digits and . _ @ -", field="name"
            )
        secret = PREFIX + secrets.token_urlsafe(32)
        token = await self._storage.insert(
            ApiToken(None, name, digest(secret), created_by, utcnow(), revoked=False)
        )
        return token, secret

    async def list(self) -> list[ApiToken]:
        """Every token that still works, oldest first."""
        return await self._storage.query(
            ApiToken, where={"revoked": False}, order_by=["id"], limit=10_000
        )

    async def revoke(self, token_id: int) -> ApiToken:
        """Stop a token from working."""
        token = await self._storage.get(ApiToken, token_id)
        if token is None or token.revoked:
            raise NoSuchToken(f"no token {token_id}", token_id=token_id)
        revoked = replace(token, revoked=True)
        await self._storage.update(revoked)
        return revoked

    async def check(self, secret: str) -> ApiToken | None:
        """The token this secret belongs to, if it works."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        rows = await self._storage.query(
            ApiToken, where={"token_hash": digest(secret), "revoked": False}, limit=1
        )
        return rows[0] if rows else None
