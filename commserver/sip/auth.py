"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617 / RFC 7616 with MD5).

Nonces are stateless (a timestamp signed with a per-process secret) so a flood of challenges
costs no memory; they expire after `nonce_ttl` and a late but otherwise right answer is told
`stale=true` so the phone retries without asking its user. Repeated failures from one source
address block that source for a while, whatever it sends.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .errors import MalformedMessage
from .message import SipUri, split_outside_quotes

log = logging.getLogger(__name__)

CredentialLookup = Callable[[str], str | None]
"""Returns the SIP password of a user name, or None when there is no such user."""


class AuthOutcome(enum.Enum):
    """The verdict on a request's credentials."""

    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    FAILED = "failed"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The verdict and, when OK, who was authenticated."""

    outcome: AuthOutcome
    username: str | None = None


def parse_digest(value: str) -> dict[str, str]:
    """Parse 'Digest k="v", k2=v2' into a dict with lower-case keys; raises `MalformedMessage`."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise MalformedMessage("not a Digest credential")
    out: dict[str, str] = {}
    for item in split_outside_quotes(rest, ","):
        name, sep, raw = item.strip().partition("=")
        if not sep:
            continue
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[name.strip().lower()] = raw
    return out


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The MD5 digest `response` value a client computes (used by our UAC side and tests)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


class FailureThrottle:
    """Counts authentication failures per source address and blocks brute-force guessing."""

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        block_seconds: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.block_seconds = block_seconds
        self._clock = clock
        self._max_sources = max_sources
        # source -> (window start, failures, blocked until)
        self._sources: OrderedDict[str, tuple[float, int, float]] = OrderedDict()

    def is_blocked(self, source: str) -> bool:
        """True while this source is serving a block."""
        entry = self._sources.get(source)
        return entry is not None and entry[2] > self._clock()

    def record_failure(self, source: str) -> bool:
        """Count a failure; True when this failure starts a block."""
        now = self._clock()
        start, failures, blocked_until = self._sources.pop(source, (now, 0, 0.0))
        if now - start > self.window:
            start, failures = now, 0
        failures += 1
        started = False
        if failures >= self.max_failures and blocked_until <= now:
            blocked_until = now + self.block_seconds
            started = True
        self._sources[source] = (start, failures, blocked_until)
        while len(self._sources) > self._max_sources:
            self._sources.popitem(last=False)  # the least recently failing source goes first
        return started

    def record_success(self, source: str) -> None:
        """A success clears the count (a block still runs out on its own)."""
        entry = self._sources.get(source)
        if entry is not None and entry[2] <= self._clock():
            del self._sources[source]


class DigestAuthenticator:
    """Challenges and verifies digest credentials for one realm."""

    def __init__(
        self,
        realm: str,
        credentials: CredentialLookup,
        *,
        nonce_ttl: float = 300.0,
        throttle: FailureThrottle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.realm = realm
        self.credentials = credentials
        self.nonce_ttl = nonce_ttl
        self.throttle = throttle or FailureThrottle()
        self._clock = clock
        self._secret = secrets.token_bytes(32)

    def _sign(self, issued: str) -> str:
        mac = hmac.new(self._secret, f"{issued}:{self.realm}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def new_nonce(self) -> str:
        """A fresh signed nonce."""
        issued = f"{self._clock():.3f}"
        return f"{issued}.{self._sign(issued)}"

    def challenge(self, *, stale: bool = False) -> str:
        """A WWW-Authenticate / Proxy-Authenticate header value."""
        value = (
            f'Digest realm="{self.realm}", nonce="{self.new_nonce()}", algorithm=MD5, qop="auth"'
        )
        return value + (", stale=true" if stale else "")

    def _nonce_state(self, nonce: str) -> AuthOutcome:
        issued, _, mac = nonce.rpartition(".")
        if not issued or not hmac.compare_digest(mac, self._sign(issued)):
            return AuthOutcome.FAILED
        try:
            age = self._clock() - float(issued)
        except ValueError:
            return AuthOutcome.FAILED
        # The timestamp is written to the millisecond, rounded: a phone that answers within
        # half a millisecond sees its nonce a little "from the future". The signature already
        # proved we issued it, so only staleness is judged here.
        return AuthOutcome.OK if -1.0 <= age <= self.nonce_ttl else AuthOutcome.STALE

    def verify(
        self, header: str | None, *, method: str, request_uri: SipUri, source: str
    ) -> AuthResult:
        """Check an Authorization (or Proxy-Authorization) value for this request."""
        if self.throttle.is_blocked(source):
            return AuthResult(AuthOutcome.BLOCKED)
        if header is None:
            return AuthResult(AuthOutcome.MISSING)
        try:
            fields = parse_digest(header)
        except MalformedMessage:
            return self._fail(source, None, "malformed credentials")
        username = fields.get("username", "")
        if fields.get("realm") != self.realm:
            # Credentials for another realm: challenge again rather than count a failure.
            return AuthResult(AuthOutcome.MISSING)
        uri_text = fields.get("uri", "")
        try:
            # Compared as URIs, not strings: some phones (pyVoIP) add ';transport=UDP'.
            if not SipUri.parse(uri_text).equivalent(request_uri):
                return self._fail(source, username, "digest uri differs from Request-URI")
        except MalformedMessage:
            return self._fail(source, username, "bad digest uri")
        algorithm = fields.get("algorithm", "MD5").upper()
        if algorithm != "MD5":
            return self._fail(source, username, f"unsupported algorithm {algorithm}")
        nonce = fields.get("nonce", "")
        nonce_state = self._nonce_state(nonce)
        if nonce_state is AuthOutcome.FAILED:
            return self._fail(source, username, "nonce not ours")
        password = self.credentials(username) if username else None
        qop = fields.get("qop")
        if qop is not None and qop != "auth":
            return self._fail(source, username, "unsupported qop")
        # Compute even for unknown users so timing does not reveal which names exist.
        expected = digest_response(
            username=username,
            realm=self.realm,
            password=password if password is not None else secrets.token_hex(8),
            method=method,
            uri=uri_text,
            nonce=nonce,
            qop=qop,
            nc=fields.get("nc", ""),
            cnonce=fields.get("cnonce", ""),
        )
        if password is None or not hmac.compare_digest(expected, fields.get("response", "")):
            return self._fail(source, username, "wrong credentials")
        if nonce_state is AuthOutcome.STALE:
            return AuthResult(AuthOutcome.STALE, username)
        self.throttle.record_success(source)
        return AuthResult(AuthOutcome.OK, username)

    def _fail(self, source: str, username: str | None, why: str) -> AuthResult:
        started = self.throttle.record_failure(source)
        # The user name is logged to trace attacks; passwords and digests never are.
        log.warning("digest authentication failed from %s for %r: %s", source, username, why)
        if started:
            log.warning(
                "blocking %s for %.0f s after repeated authentication failures",
                source,
                self.throttle.block_seconds,
            )
        return AuthResult(AuthOutcome.FAILED, username)
