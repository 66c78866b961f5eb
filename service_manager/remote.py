"""The client side of a remote service: Caruso calling an integrator's process over HTTP/JSON.

Protocol (see docs/services.md): `POST {base_url}/{method}` with `{"args": {...}}` answers
`{"result": ...}` or `{"error": {"code", "message"}}`; `GET {base_url}/health` answers 200 when
the service is up. Only idempotent methods are retried, and only after a connection error, an
HTTP 5xx or a timeout: anything else could run a non-repeatable action twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from service_manager.errors import (
    NoSuchMethod,
    RemoteProtocolError,
    RemoteServiceError,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
)
from service_manager.info import ServiceStatus
from service_manager.interfaces import InterfaceSpec, MethodSpec

log = logging.getLogger(__name__)

_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently an idempotent remote call is retried."""

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, failed: int) -> float:
        """Backoff before the attempt after `failed` failures (exponential, jittered)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (failed - 1))
        # Jitter spreads out the retries of many callers hitting the same outage.
        return ceiling * random.uniform(0.5, 1.0)


class _Retriable(Exception):
    """An attempt failed in a way that is safe to retry for an idempotent method."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.message)
        self.error = error


class RemoteService:
    """Calls one remote service; tracks whether it was last seen up or down."""

    def __init__(
        self,
        *,
        name: str,
        spec: InterfaceSpec,
        base_url: str,
        session: Callable[[], aiohttp.ClientSession],
        call_timeout: float = 5.0,
        health_timeout: float = 2.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.call_timeout = call_timeout
        self.health_timeout = health_timeout
        self.retry = retry or RetryPolicy()
        self.status = ServiceStatus.UP
        self.detail = "not checked yet"
        self.checked_at: float | None = None
        self.stub = RemoteStub(self)

    def _mark(self, status: ServiceStatus, detail: str) -> None:
        if status is not self.status:
            log.info("remote service %r at %s is now %s: %s", self.name, self.base_url,
                     status.value, detail)
        self.status = status
        self.detail = detail
        self.checked_at = time.monotonic()

    async def invoke(self, method: str, arguments: Mapping[str, object]) -> object:
        """Call `method` with bound Python arguments; returns the decoded result."""
        spec = self.spec.method(method)
        if spec is None:
            raise NoSuchMethod(
                f"interface {self.spec.id} of service {self.name!r} has no method {method!r}",
                service=self.name, method=method,
            )
        payload = {"args": spec.encode_arguments(arguments)}
        attempts = max(1, self.retry.attempts) if spec.idempotent else 1
        failed = 0
        while True:
            try:
                data = await self._post_once(spec, payload)
            except _Retriable as exc:
                failed += 1
                if failed >= attempts:
                    self._mark(ServiceStatus.DOWN, exc.error.message)
                    raise exc.error from None
                delay = self.retry.delay(failed)
                log.warning("%s (attempt %d of %d); retrying in %.2f s",
                            exc.error.message, failed, attempts, delay)
                await asyncio.sleep(delay)
                continue
            self._mark(ServiceStatus.UP, "answered")
            try:
                return spec.result.decode(data, "result")
            except ValueError as exc:
                raise RemoteProtocolError(
                    f"service {self.name!r} at {self.base_url} answered {method} with a result"
                    f" that does not match {self.spec.id}: {exc}",
                    service=self.name, url=self.base_url, method=method,
                ) from None

    async def _post_once(self, spec: MethodSpec, payload: dict[str, Any]) -> object:
        url = f"{self.base_url}/{spec.name}"
        where = f"service {self.name!r} at {self.base_url}"
        try:
            async with asyncio.timeout(self.call_timeout):
                # No redirects: calls go only to the URL the integrator registered.
                async with self._session().post(
                    url, json=payload, allow_redirects=False
                ) as response:
                    status = response.status
                    body = await _read_limited(response)
        except TimeoutError:
            raise _Retriable(ServiceTimeout(
                f"{where} did not answer {spec.name} within {self.call_timeout:g} s",
                service=self.name, url=self.base_url, method=spec.name,
                timeout=self.call_timeout,
            )) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Retriable(ServiceUnavailable(
                f"{where} is unavailable: {_describe(exc)}",
                service=self.name, url=self.base_url, method=spec.name,
            )) from None
        if status >= 500:
            raise _Retriable(ServiceUnavailable(
                f"{where} is unavailable: {spec.name} answered HTTP {status}",
                service=self.name, url=self.base_url, method=spec.name, status=status,
            ))
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
            code = str(error.get("code") or "error")[:100]
            message = str(error.get("message") or code)[:500]
            raise RemoteServiceError(
                f"{where} refused {spec.name}: {message} ({code})",
                service=self.name, url=self.base_url, method=spec.name,
                remote_code=code, status=status,
            )
        if status != 200 or not isinstance(data, dict) or "result" not in data:
            raise RemoteProtocolError(
                f"{where} answered {spec.name} with HTTP {status} but no"
                " {\"result\": ...} or {\"error\": ...} JSON object",
                service=self.name, url=self.base_url, method=spec.name, status=status,
            )
        return data["result"]

    async def check_health(self) -> None:
        """`GET {base_url}/health`; updates `status` and `detail` instead of raising."""
        try:
            async with asyncio.timeout(self.health_timeout):
                async with self._session().get(
                    f"{self.base_url}/health", allow_redirects=False
                ) as response:
                    status = response.status
                    body = await _read_limited(response)
        except TimeoutError:
            self._mark(ServiceStatus.DOWN,
                       f"health check timed out after {self.health_timeout:g} s")
            return
        except (aiohttp.ClientError, OSError) as exc:
            self._mark(ServiceStatus.DOWN, f"unreachable: {_describe(exc)}")
            return
        if status != 200:
            self._mark(ServiceStatus.DOWN, f"health answered HTTP {status}")
            return
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        reported = data.get("status") if isinstance(data, dict) else None
        detail = str(data.get("detail", "")) if isinstance(data, dict) else ""
        if reported == ServiceStatus.DOWN.value:
            self._mark(ServiceStatus.DOWN, detail[:200] or "reports itself down")
        else:
            self._mark(ServiceStatus.UP, detail[:200] or "healthy")


class RemoteStub:
    """The object the manager serves for a remote service: one async method per spec method.

    It has no public attributes of its own, so an interface method called `health` or `name`
    reaches the remote service and never collides with the client's bookkeeping.
    """

    __slots__ = ("_client",)

    def __init__(self, client: RemoteService) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, object]]:
        client = self._client
        spec = client.spec.method(name)
        if spec is None:
            raise AttributeError(f"interface {client.spec.id} has no method {name!r}")

        async def call(*args: object, **kwargs: object) -> object:
            return await client.invoke(name, spec.bind(args, kwargs))

        call.__name__ = name
        call.__qualname__ = f"RemoteStub.{name}"
        return call

    def __repr__(self) -> str:
        return f"<remote {self._client.spec.id} {self._client.name!r} at {self._client.base_url}>"


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    # A misbehaving remote must not make Caruso buffer an unbounded answer.
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > _MAX_RESPONSE_BYTES:
            raise aiohttp.ClientPayloadError(
                f"answer larger than {_MAX_RESPONSE_BYTES // (1024 * 1024)} MiB"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
