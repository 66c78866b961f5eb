"""Digest authentication, nonce expiry, throttling, and bindings with expiry."""

from __future__ import annotations

import asyncio

from commserver.sip import RegistrationState
from commserver.sip.auth import (
    AuthOutcome,
    DigestAuthenticator,
    FailureThrottle,
    digest_response,
    parse_digest,
)
from commserver.sip.message import SipRequest, SipResponse, SipUri, parse_message
from commserver.sip.registrar import Registrar
from tests.sip.sip_harness import EndpointFactory, UdpPeer


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


URI = SipUri("127.0.0.1", port=5060)


def _authorization(challenge: str, user: str, password: str, *, nc: str = "00000001") -> str:
    fields = parse_digest(challenge)
    response = digest_response(
        username=user,
        realm=fields["realm"],
        password=password,
        method="REGISTER",
        uri=str(URI),
        nonce=fields["nonce"],
        qop="auth",
        nc=nc,
        cnonce="c0ffee",
    )
    return (
        f'Digest username="{user}", realm="{fields["realm"]}", nonce="{fields["nonce"]}", '
        f'uri="{URI}", response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="c0ffee"'
    )


def _register(
    contact: str = "<sip:2001@127.0.0.1:5070>",
    authorization: str | None = None,
    expires: int = 600,
    cseq: int = 1,
) -> SipRequest:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    message = parse_message(
        (
            f"REGISTER {URI} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-reg\r\n"
            "From: <sip:2001@127.0.0.1>;tag=r1\r\nTo: <sip:2001@127.0.0.1>\r\n"
            f"Call-ID: reg@test\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n"
            f"Expires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(message, SipRequest)
    return message


def _registrar(clock: Clock) -> Registrar:
    authenticator = DigestAuthenticator(
        "caruso",
        {"2001": "pw2001"}.get,
        nonce_ttl=30,
        throttle=FailureThrottle(3, 60, 300, clock=clock),
        clock=clock,
    )
    return Registrar(authenticator, min_expires=60, max_expires=3600, clock=clock)


def _challenge(registrar: Registrar) -> str:
    response, _ = registrar.handle(_register(), ("127.0.0.1", 5070))
    assert response.status == 401
    value = response.headers.get("WWW-Authenticate")
    assert value is not None
    return value


def test_register_is_challenged_then_accepted_and_the_binding_expires() -> None:
    clock = Clock()
    registrar = _registrar(clock)
    challenge = _challenge(registrar)
    assert 'qop="auth"' in challenge
    response, changes = registrar.handle(
        _register(authorization=_authorization(challenge, "2001", "pw2001")), ("127.0.0.1", 5070)
    )
    assert response.status == 200
    assert response.headers.get("Contact") == "<sip:2001@127.0.0.1:5070>;expires=600"
    assert [c.state for c in changes] == [RegistrationState.REGISTERED]
    assert [b.contact.port for b in registrar.lookup("2001")] == [5070]
    clock.now += 601
    assert registrar.lookup("2001") == []
    assert [c.state for c in registrar.expire()] == [RegistrationState.EXPIRED]


def test_refresh_is_not_news_but_unregister_is() -> None:
    clock = Clock()
    registrar = _registrar(clock)
    auth = _authorization(_challenge(registrar), "2001", "pw2001")
    _, first = registrar.handle(_register(authorization=auth), ("127.0.0.1", 5070))
    _, refresh = registrar.handle(_register(authorization=auth, cseq=2), ("127.0.0.1", 5070))
    assert len(first) == 1
    assert refresh == []
    response, removed = registrar.handle(
        _register(contact="*", authorization=auth, expires=0, cseq=3), ("127.0.0.1", 5070)
    )
    assert response.status == 200
    assert [c.state for c in removed] == [RegistrationState.UNREGISTERED]
    assert registrar.lookup("2001") == []


def test_wrong_password_unknown_user_and_foreign_aor_are_forbidden() -> None:
    clock = Clock()
    registrar = _registrar(clock)
    challenge = _challenge(registrar)
    bad, _ = registrar.handle(
        _register(authorization=_authorization(challenge, "2001", "guess")), ("127.0.0.2", 1)
    )
    assert bad.status == 403
    unknown, _ = registrar.handle(
        _register(authorization=_authorization(challenge, "9999", "x")), ("127.0.0.3", 1)
    )
    assert unknown.status == 403
    # 2002's valid credentials cannot register 2001's extension.
    registrar.authenticator.credentials = {"2001": "pw2001", "2002": "pw2002"}.get
    foreign, _ = registrar.handle(
        _register(authorization=_authorization(challenge, "2002", "pw2002")), ("127.0.0.4", 1)
    )
    assert foreign.status == 403
    assert registrar.lookup("2001") == []


def test_expired_nonce_gets_a_stale_challenge_not_a_failure() -> None:
    clock = Clock()
    registrar = _registrar(clock)
    challenge = _challenge(registrar)
    clock.now += 31
    response, _ = registrar.handle(
        _register(authorization=_authorization(challenge, "2001", "pw2001")), ("127.0.0.1", 5070)
    )
    assert response.status == 401
    assert "stale=true" in (response.headers.get("WWW-Authenticate") or "")
    assert not registrar.authenticator.throttle.is_blocked("127.0.0.1")


def test_repeated_failures_block_the_source_even_for_the_right_password() -> None:
    clock = Clock()
    registrar = _registrar(clock)
    challenge = _challenge(registrar)
    source = ("198.51.100.9", 5060)
    for _ in range(3):
        response, _ = registrar.handle(
            _register(authorization=_authorization(challenge, "2001", "guess")), source
        )
        assert response.status == 403
    right = _register(authorization=_authorization(challenge, "2001", "pw2001"))
    blocked, _ = registrar.handle(right, source)
    assert blocked.status == 403
    assert "too many" in blocked.reason
    # Another source is not affected, and the block runs out.
    ok, _ = registrar.handle(right, ("198.51.100.10", 5060))
    assert ok.status == 200
    clock.now += 301
    fresh = _register(authorization=_authorization(_challenge(registrar), "2001", "pw2001"))
    ok_again, _ = registrar.handle(fresh, source)
    assert ok_again.status == 200


def test_too_brief_expiry_gets_423() -> None:
    clock = Clock()
    registrar = _registrar(clock)
    auth = _authorization(_challenge(registrar), "2001", "pw2001")
    response, _ = registrar.handle(_register(authorization=auth, expires=10), ("127.0.0.1", 1))
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"


def test_forged_nonce_is_a_failure() -> None:
    clock = Clock()
    authenticator = DigestAuthenticator("caruso", {"2001": "pw2001"}.get, clock=clock)
    forged = 'Digest realm="caruso", nonce="1000.000", qop="auth"'
    result = authenticator.verify(
        _authorization(forged, "2001", "pw2001"), method="REGISTER", request_uri=URI, source="x"
    )
    assert result.outcome is AuthOutcome.FAILED


async def test_invite_to_protected_destination_needs_proxy_auth(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    from tests.sip.sip_harness import invite

    # Calls to numbers of 5 digits or more (outside numbers) need an authenticated caller.
    endpoint, handler = await make_endpoint(
        invite_requires_auth=lambda request: len(request.uri.user or "") >= 5
    )
    peer.send(invite(endpoint.address, peer.port, user="0033123456789"), endpoint.address)
    challenge = await peer.recv_response(407)
    assert "Digest" in (challenge.headers.get("Proxy-Authenticate") or "")
    await asyncio.sleep(0.05)
    assert handler.offered == []
    peer.send(
        invite(endpoint.address, peer.port, user="100", call_id="c2@test", branch="z9hG4bK-2"),
        endpoint.address,
    )
    ok = await peer.recv_response(200)
    assert isinstance(ok, SipResponse)
    assert handler.offered[0].authenticated_user is None


def test_an_answer_within_the_same_millisecond_as_its_challenge_is_accepted() -> None:
    # Found under load: the nonce's timestamp is rounded to the millisecond, so a phone that
    # answers at once could present a nonce issued "in the future" and was told it was stale.
    clock = Clock()
    clock.now = 1000.0007  # written as 1000.001
    registrar = _registrar(clock)
    challenge = _challenge(registrar)
    response, changes = registrar.handle(
        _register(authorization=_authorization(challenge, "2001", "pw2001")), ("127.0.0.1", 5070)
    )
    assert response.status == 200
    assert [c.aor for c in changes] == ["2001"]
