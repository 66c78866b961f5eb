"""The registrar (RFC 3261 §10.3): digest-authenticated REGISTER, bindings that expire.

Pure over its inputs and a clock: `handle` takes a request and returns the response plus the
binding changes it caused; the endpoint sends the one and reports the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate

from .auth import AuthOutcome, DigestAuthenticator
from .errors import MalformedMessage
from .events import RegistrationChanged, RegistrationState
from .message import (
    NameAddress,
    SipRequest,
    SipResponse,
    SipUri,
    get_param,
    make_response,
    new_tag,
)
from .transport import Address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an address-of-record (a phone's current location)."""

    aor: str
    contact: SipUri
    source: Address
    expires_at: float
    call_id: str
    cseq: int
    user_agent: str = ""

    def remaining(self, now: float) -> int:
        """Whole seconds until expiry (never negative)."""
        return max(0, int(self.expires_at - now))


def _reply(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    headers: list[tuple[str, str]] | None = None,
) -> SipResponse:
    # Final responses outside a dialog carry a To tag (RFC 3261 §8.2.6.2).
    return make_response(request, status, reason, to_tag=new_tag(), headers=headers or [])


class Registrar:
    """Bindings per address-of-record (the user part of the To URI), with expiry."""

    def __init__(
        self,
        authenticator: DigestAuthenticator,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_bindings_per_aor: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authenticator = authenticator
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_bindings_per_aor = max_bindings_per_aor
        self._clock = clock
        self._bindings: dict[str, dict[str, Binding]] = {}

    def lookup(self, aor: str) -> list[Binding]:
        """Live bindings of an address-of-record, most recently registered first."""
        now = self._clock()
        live = [b for b in self._bindings.get(aor, {}).values() if b.expires_at > now]
        return sorted(live, key=lambda b: b.expires_at, reverse=True)

    @property
    def aors(self) -> list[str]:
        """Every address-of-record with at least one binding (expired ones included until swept)."""
        return list(self._bindings)

    def expire(self) -> list[RegistrationChanged]:
        """Drop bindings whose time is up; returns what expired."""
        now = self._clock()
        changes: list[RegistrationChanged] = []
        for aor in list(self._bindings):
            contacts = self._bindings[aor]
            for key, binding in list(contacts.items()):
                if binding.expires_at <= now:
                    del contacts[key]
                    changes.append(self._event(binding, RegistrationState.EXPIRED, 0))
            if not contacts:
                del self._bindings[aor]
        return changes

    def _event(
        self, binding: Binding, state: RegistrationState, expires: int
    ) -> RegistrationChanged:
        return RegistrationChanged(
            aor=binding.aor,
            contact=str(binding.contact),
            state=state,
            source=binding.source,
            expires=expires,
            user_agent=binding.user_agent,
        )

    def handle(
        self, request: SipRequest, source: Address
    ) -> tuple[SipResponse, list[RegistrationChanged]]:
        """Process a REGISTER: authenticate, then add, refresh or remove bindings."""
        result = self.authenticator.verify(
            request.headers.get("Authorization"),
            method=request.method,
            request_uri=request.uri,
            source=source[0],
        )
        if result.outcome is AuthOutcome.BLOCKED:
            return _reply(request, 403, "Forbidden (too many failed attempts)"), []
        if result.outcome in (AuthOutcome.MISSING, AuthOutcome.STALE):
            challenge = self.authenticator.challenge(stale=result.outcome is AuthOutcome.STALE)
            return _reply(request, 401, headers=[("WWW-Authenticate", challenge)]), []
        if result.outcome is AuthOutcome.FAILED:
            return _reply(request, 403, "Forbidden"), []

        aor = request.to_addr.uri.user or ""
        if result.username != aor:
            # Credentials of one phone must not move another extension's calls.
            log.warning("user %r tried to register %r from %s", result.username, aor, source[0])
            return _reply(request, 403, "Forbidden (not your address-of-record)"), []

        header_expires = request.headers.get("Expires")
        try:
            default = int(header_expires) if header_expires is not None else self.default_expires
        except ValueError:
            return _reply(request, 400, "Bad Request (Expires)"), []

        contact_values = request.headers.get_all("Contact")
        changes: list[RegistrationChanged] = []
        now = self._clock()
        current = self._bindings.setdefault(aor, {})
        if any(v.strip() == "*" for v in contact_values):
            if default != 0 or len(contact_values) != 1:
                return _reply(request, 400, "Bad Request (wildcard Contact)"), []
            for binding in current.values():
                changes.append(self._event(binding, RegistrationState.UNREGISTERED, 0))
            current.clear()
        else:
            try:
                contacts = [NameAddress.parse(v) for v in contact_values]
            except MalformedMessage:
                return _reply(request, 400, "Bad Request (Contact)"), []
            for contact in contacts:
                param = get_param(contact.params, "expires")
                expires = int(param) if param is not None and param.isdigit() else default
                if 0 < expires < self.min_expires:
                    return make_response(
                        request, 423, headers=[("Min-Expires", str(self.min_expires))]
                    ), []
                expires = min(expires, self.max_expires)
                key = str(contact.uri)
                previous = current.get(key)
                if expires == 0:
                    if previous is not None:
                        del current[key]
                        changes.append(self._event(previous, RegistrationState.UNREGISTERED, 0))
                    continue
                if previous is None and len(current) >= self.max_bindings_per_aor:
                    return _reply(request, 403, "Forbidden (too many contacts)"), []
                binding = Binding(
                    aor=aor,
                    contact=contact.uri,
                    source=source,
                    expires_at=now + expires,
                    call_id=request.call_id,
                    cseq=request.cseq.number,
                    user_agent=request.headers.get("User-Agent") or "",
                )
                current[key] = binding
                # A refresh is not news: only a new location is (a paused agent stays paused).
                if previous is None or previous.source != source:
                    changes.append(self._event(binding, RegistrationState.REGISTERED, expires))
        if not current:
            self._bindings.pop(aor, None)

        response = _reply(request, 200)
        for binding in self.lookup(aor):
            response.headers.add("Contact", f"<{binding.contact}>;expires={binding.remaining(now)}")
        response.headers.add("Date", formatdate(usegmt=True))
        return response, changes
