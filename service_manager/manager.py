"""The service manager: Caruso's runtime registry of services, local and remote.

Everything is looked up through it by typed key. `get(key)` hands out a proxy that resolves
the current implementation at every call and counts in-flight calls per version, which is
what lets `replace()` swap a version while callers keep calling: new calls go to the new
version at once, the old one finishes what it has (bounded by a timeout), then it is closed.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp

from service_manager.codecs import CodecError
from service_manager.descriptors import DescriptorStore, ServiceDescriptor, parse_descriptor
from service_manager.errors import (
    DuplicateService,
    InterfaceMismatch,
    NoSuchMethod,
    NoSuchService,
    ServiceCallFailed,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    UnknownInterface,
)
from service_manager.info import DrainReport, ServiceInfo, ServiceKind, ServiceStatus
from service_manager.interfaces import InterfaceRegistry, InterfaceSpec
from service_manager.keys import ServiceKey
from service_manager.remote import RemoteService, RetryPolicy

if TYPE_CHECKING:
    from storage import StorageManager

T = TypeVar("T")
log = logging.getLogger(__name__)


class _Slot:
    """One version of one service: the implementation and its in-flight bookkeeping."""

    __slots__ = (
        "_start_lock",
        "closed",
        "detail",
        "draining",
        "idle",
        "impl",
        "in_flight",
        "kind",
        "remote",
        "start_error",
        "started",
        "status",
        "version",
    )

    def __init__(
        self, impl: object, version: str, kind: ServiceKind, remote: RemoteService | None = None
    ) -> None:
        self.impl = impl
        self.version = version
        self.kind = kind
        self.remote = remote
        self.in_flight = 0
        self.draining = False
        self.closed = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.started = _async_hook(impl, "start") is None or kind is ServiceKind.REMOTE
        self.start_error: str = ""
        self.status = ServiceStatus.UP
        self.detail = ""
        self._start_lock = asyncio.Lock()

    def acquire(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    async def ensure_started(self, name: str) -> None:
        """Run the implementation's `start()` once; concurrent callers wait for the same run."""
        if self.started:
            return
        async with self._start_lock:
            # Another caller may have finished the start while this one waited for the lock.
            if not self.started:
                await self._start(name)

    async def _start(self, name: str) -> None:
        start = _async_hook(self.impl, "start")
        if start is not None:
            try:
                await start()
            except Exception as exc:
                # A failed start is retried by the next call: the cause may be transient.
                self.start_error = f"start failed: {type(exc).__name__}: {exc}"
                self.status, self.detail = ServiceStatus.DOWN, self.start_error
                raise ServiceUnavailable(
                    f"service {name!r} (version {self.version}) failed to start: {exc}",
                    service=name, version=self.version,
                ) from exc
        self.started = True
        self.start_error = ""
        self.status, self.detail = ServiceStatus.UP, ""


class _Entry:
    """A registered service name: its interface and the version currently serving it."""

    __slots__ = ("current", "interface", "name", "spec")

    def __init__(
        self, name: str, interface: type[Any], spec: InterfaceSpec | None, current: _Slot
    ) -> None:
        self.name = name
        self.interface = interface
        self.spec = spec
        self.current = current

    @property
    def interface_label(self) -> str:
        if self.spec is not None:
            return self.spec.id
        return f"{self.interface.__module__}.{self.interface.__qualname__}"


class _ServiceProxy:
    """Stands in for a service: every call goes to whatever version is current at call time."""

    __slots__ = ("_key", "_manager")

    def __init__(self, manager: ServiceManager, key: ServiceKey[Any]) -> None:
        self._manager = manager
        self._key = key

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        target = getattr(self._manager._resolve(self._key).impl, attr)
        if inspect.iscoroutinefunction(target):
            return self._manager._async_caller(self._key, attr)
        if callable(target):
            return self._manager._sync_caller(self._key, attr)
        return target

    def __repr__(self) -> str:
        return f"<service proxy {self._key.name!r}>"


class ServiceManager:
    """The runtime service registry (an async context manager that closes services on exit).

    Services may implement `async start()`, `async aclose()` and `async health()`. Remote
    descriptors persist through `storage` when one is given (open it with
    `load_service_model()` among its models).
    """

    def __init__(
        self,
        *,
        interfaces: InterfaceRegistry | None = None,
        storage: StorageManager | None = None,
        drain_timeout: float = 30.0,
        close_timeout: float = 10.0,
        call_timeout: float = 5.0,
        health_timeout: float = 2.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.interfaces = interfaces if interfaces is not None else InterfaceRegistry()
        self.drain_timeout = drain_timeout
        self.close_timeout = close_timeout
        self.call_timeout = call_timeout
        self.health_timeout = health_timeout
        self.retry = retry or RetryPolicy()
        self._store = DescriptorStore(storage) if storage is not None else None
        self._entries: dict[str, _Entry] = {}
        self._proxies: dict[str, _ServiceProxy] = {}
        # Old versions still finishing their calls, shown as "draining" in listings.
        self._retiring: list[tuple[_Entry, _Slot]] = []
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running = False
        self._closed = False
        self._session_closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ServiceManager:
        self._check_open()
        try:
            for entry in builtins.list(self._entries.values()):
                await entry.current.ensure_started(entry.name)
        except BaseException:
            await self.aclose()
            raise
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        except ExceptionGroup:
            if exc is None:
                raise
            # Already unwinding from another error: the close errors were logged.

    async def aclose(self) -> None:
        """Shut down: in reverse registration order, let each service finish its in-flight
        calls (one drain deadline for all), then close it. Close errors are logged and raised
        together at the end.

        Services later in the order are closed first, so a service still finishing a call can
        use the services it depends on (registered before it) until it is done.
        """
        if self._closed:
            return
        self._closed = True  # refuses registrations; lookups work until each service closes
        self._running = False
        for task in builtins.list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        deadline = asyncio.get_running_loop().time() + self.drain_timeout
        errors: list[Exception] = []
        retiring = [(e.name, s) for e, s in reversed(self._retiring)]
        for entry in reversed(builtins.list(self._entries.values())):
            error = await self._drain_and_close(entry.name, entry.current, deadline)
            if self._entries.get(entry.name) is entry:
                del self._entries[entry.name]
            self._proxies.pop(entry.name, None)
            if error is not None:
                errors.append(error)
        for name, slot in retiring:
            error = await self._drain_and_close(name, slot, deadline)
            if error is not None:
                errors.append(error)
        self._session_closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
        if errors:
            raise ExceptionGroup("errors while closing services", errors)

    async def _drain_and_close(self, name: str, slot: _Slot, deadline: float) -> Exception | None:
        slot.draining = True
        if slot.in_flight:
            try:
                async with asyncio.timeout_at(deadline):
                    await slot.idle.wait()
            except TimeoutError:
                log.warning("service %r (version %s): closing with %d call(s) still running",
                            name, slot.version, slot.in_flight)
        return await self._close_slot(name, slot)

    # -- registration and lookup -------------------------------------------------------------

    def register(self, key: ServiceKey[T], impl: T, *, version: str = "1") -> None:
        """Register an in-process implementation under `key`.

        If the implementation has `async start()`, it runs when the manager is entered, or
        at once in the background when it is already running (calls wait for it).
        """
        self._check_open()
        if key.name in self._entries:
            raise DuplicateService(
                f"a service named {key.name!r} is already registered; use replace() for a new"
                " version", service=key.name,
            )
        spec = self._check_implementation(key, impl)
        slot = _Slot(impl, version, ServiceKind.LOCAL)
        self._entries[key.name] = _Entry(key.name, key.interface, spec, slot)
        log.info("service %r registered (version %s)", key.name, version)
        if self._running and not slot.started:
            self._spawn(slot.ensure_started(key.name), name=f"start service {key.name}")

    def get(self, key: ServiceKey[T]) -> T:
        """A proxy typed as the interface; it follows replacements transparently."""
        self._resolve(key)
        proxy = self._proxies.get(key.name)
        if proxy is None or proxy._key.interface is not key.interface:
            proxy = self._proxies[key.name] = _ServiceProxy(self, key)
        return cast(T, proxy)

    def __contains__(self, key: ServiceKey[Any] | str) -> bool:
        name = key if isinstance(key, str) else key.name
        return name in self._entries

    async def replace(
        self,
        key: ServiceKey[T],
        new_impl: T,
        *,
        version: str,
        drain_timeout: float | None = None,
    ) -> DrainReport:
        """Serve `key` from `new_impl` from now on; drain, then close, the old version.

        The new version is started before the swap, so a failing `start()` leaves the old
        version in place. Returns how the drain went (timed out or not).
        """
        self._check_open()
        self._resolve(key)
        spec = self._check_implementation(key, new_impl)
        new_slot = _Slot(new_impl, version, ServiceKind.LOCAL)
        await new_slot.ensure_started(key.name)
        # The start awaited: the service may have been removed or replaced meanwhile.
        entry = self._entries.get(key.name)
        if entry is None or self._closed:
            await self._close_slot(key.name, new_slot)
            raise NoSuchService(key.name)
        old = entry.current
        entry.current = new_slot
        entry.spec = spec
        log.info("service %r: version %s replaces %s", key.name, version, old.version)
        if old.kind is ServiceKind.REMOTE and self._store is not None:
            # Replaced by a local version: the remote one must not come back after a restart.
            await self._store.delete(key.name)
        return await self._retire(entry, old, version, drain_timeout)

    async def remove(
        self, key: ServiceKey[Any] | str, *, drain_timeout: float | None = None
    ) -> DrainReport:
        """Unregister a service: new calls fail with `NoSuchService`, in-flight ones finish,
        then it is closed. A remote service's descriptor is deleted from storage."""
        self._check_open()
        name = key if isinstance(key, str) else key.name
        entry = self._entries.get(name)
        if entry is None:
            raise NoSuchService(name)
        if entry.current.kind is ServiceKind.REMOTE and self._store is not None:
            # Delete first: if storage fails the service stays, consistent with what persists.
            await self._store.delete(name)
        if self._entries.get(name) is not entry:
            raise NoSuchService(name)
        del self._entries[name]
        self._proxies.pop(name, None)
        log.info("service %r removed", name)
        return await self._retire(entry, entry.current, None, drain_timeout)

    def kind_of(self, name: str) -> ServiceKind:
        """Whether the named service is local or remote (`NoSuchService` if absent)."""
        entry = self._entries.get(name)
        if entry is None:
            raise NoSuchService(name)
        return entry.current.kind

    # -- remote services ---------------------------------------------------------------------

    async def register_remote(self, descriptor: ServiceDescriptor) -> tuple[ServiceInfo, bool]:
        """Register (or re-register) a remote service; persist its descriptor.

        Re-registering a remote name replaces the old registration (a remote process that
        restarts registers again); a name held by an in-process service is refused.
        Returns the service's info and whether it was newly created.
        """
        self._check_open()
        descriptor = parse_descriptor(
            {
                "name": descriptor.name,
                "interface": descriptor.interface,
                "base_url": descriptor.base_url,
                "version": descriptor.version,
            }
        )
        spec = self.interfaces.get(descriptor.interface)
        descriptor.interface = spec.id
        self._check_remote_name(descriptor.name, spec)
        client = self._remote_client(descriptor, spec)
        await client.check_health()
        descriptor.registered_at = dt.datetime.now(dt.UTC)
        if self._store is not None:
            await self._store.save(descriptor)
        try:
            self._check_remote_name(descriptor.name, spec)
        except ServiceError:
            if self._store is not None:
                await self._store.delete(descriptor.name)
            raise
        slot = _Slot(client.stub, descriptor.version, ServiceKind.REMOTE, client)
        entry = self._entries.get(descriptor.name)
        if entry is None:
            entry = _Entry(descriptor.name, spec.protocol, spec, slot)
            self._entries[descriptor.name] = entry
            log.info("remote service %r registered at %s (%s, version %s)", descriptor.name,
                     descriptor.base_url, spec.id, descriptor.version)
            return self._info(entry, slot), True
        old = entry.current
        entry.current = slot
        entry.spec = spec
        log.info("remote service %r re-registered at %s (version %s replaces %s)",
                 descriptor.name, descriptor.base_url, descriptor.version, old.version)
        await self._retire(entry, old, descriptor.version, None)
        return self._info(entry, slot), False

    async def restore(self) -> builtins.list[ServiceInfo]:
        """Re-register the remote services persisted in storage (call once at start-up).

        Unreachable ones come back as `down`; descriptors that no longer fit (unknown
        interface, name now taken by an in-process service) are skipped with a warning.
        """
        self._check_open()
        if self._store is None:
            return []
        restored: builtins.list[_Entry] = []
        for stored in await self._store.load_all():
            try:
                descriptor = parse_descriptor(
                    {
                        "name": stored.name,
                        "interface": stored.interface,
                        "base_url": stored.base_url,
                        "version": stored.version,
                    }
                )
                spec = self.interfaces.get(descriptor.interface)
                self._check_remote_name(descriptor.name, spec)
                if descriptor.name in self._entries:
                    raise DuplicateService(f"{descriptor.name!r} is already registered")
            except ServiceError as exc:
                log.warning("stored remote service %r not restored: %s", stored.name, exc.message)
                continue
            client = self._remote_client(descriptor, spec)
            slot = _Slot(client.stub, descriptor.version, ServiceKind.REMOTE, client)
            entry = _Entry(descriptor.name, spec.protocol, spec, slot)
            self._entries[descriptor.name] = entry
            restored.append(entry)
        await asyncio.gather(
            *(e.current.remote.check_health() for e in restored if e.current.remote is not None)
        )
        for entry in restored:
            info = self._info(entry, entry.current)
            log.info("remote service %r restored at %s: %s %s", info.name, info.base_url,
                     info.status.value, info.detail)
        return [self._info(e, e.current) for e in restored]

    def _check_remote_name(self, name: str, spec: InterfaceSpec) -> None:
        entry = self._entries.get(name)
        if entry is None:
            return
        if entry.current.kind is ServiceKind.LOCAL:
            raise DuplicateService(
                f"service {name!r} is an in-process service; a remote service cannot take"
                " its name", service=name,
            )
        if entry.interface is not spec.protocol:
            raise DuplicateService(
                f"service {name!r} is registered with interface {entry.interface_label};"
                f" remove it before registering {spec.id}", service=name,
            )

    def _remote_client(self, descriptor: ServiceDescriptor, spec: InterfaceSpec) -> RemoteService:
        return RemoteService(
            name=descriptor.name,
            spec=spec,
            base_url=descriptor.base_url,
            session=self._client_session,
            call_timeout=self.call_timeout,
            health_timeout=self.health_timeout,
            retry=self.retry,
        )

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session_closed:
            raise ServiceUnavailable("the service manager is shut down")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "caruso-service-manager"},
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    # -- status ------------------------------------------------------------------------------

    def list(self) -> builtins.list[ServiceInfo]:
        """Every service (and every old version still draining), as last observed."""
        infos = [self._info(e, e.current) for e in self._entries.values()]
        infos += [self._info(e, s) for e, s in self._retiring]
        return infos

    async def health(self) -> builtins.list[ServiceInfo]:
        """Ping remote services and ask local ones with `health()`; then list them."""
        entries = builtins.list(self._entries.values())
        await asyncio.gather(*(self._check_slot(e.name, e.current) for e in entries))
        return self.list()

    async def _check_slot(self, name: str, slot: _Slot) -> None:
        if slot.remote is not None:
            await slot.remote.check_health()
            return
        if not slot.started:
            if slot.start_error:
                slot.status, slot.detail = ServiceStatus.DOWN, slot.start_error
            return
        probe = _async_hook(slot.impl, "health")
        if probe is None:
            return
        try:
            async with asyncio.timeout(self.health_timeout):
                verdict = await probe()
        except TimeoutError:
            slot.status = ServiceStatus.DOWN
            slot.detail = f"health check timed out after {self.health_timeout:g} s"
            return
        except Exception as exc:
            slot.status, slot.detail = ServiceStatus.DOWN, f"{type(exc).__name__}: {exc}"[:200]
            return
        if verdict is False:
            slot.status, slot.detail = ServiceStatus.DOWN, "reports itself down"
        else:
            slot.status = ServiceStatus.UP
            slot.detail = verdict[:200] if isinstance(verdict, str) else ""

    def _info(self, entry: _Entry, slot: _Slot) -> ServiceInfo:
        if slot.draining:
            status, detail = ServiceStatus.DRAINING, f"finishing {slot.in_flight} call(s)"
        elif slot.remote is not None:
            status, detail = slot.remote.status, slot.remote.detail
        else:
            status, detail = slot.status, slot.detail
        return ServiceInfo(
            name=entry.name,
            interface=entry.interface_label,
            version=slot.version,
            kind=slot.kind,
            status=status,
            in_flight=slot.in_flight,
            detail=detail,
            base_url=slot.remote.base_url if slot.remote is not None else None,
        )

    # -- dynamic calls -----------------------------------------------------------------------

    async def call(
        self, name: str, method: str, args: Mapping[str, object], *, timeout: float
    ) -> object:
        """Call a service method by name with JSON arguments, as a dialog-script action does.

        Returns the result in its JSON form (what a remote service would send), so local and
        remote services look the same to scripts.
        """
        entry = self._entries.get(name)
        if entry is None:
            if self._closed:
                raise ServiceUnavailable(
                    f"service {name!r}: the service manager is shut down", service=name
                )
            raise NoSuchService(name)
        spec = entry.spec
        if spec is None:
            raise UnknownInterface(
                f"service {name!r} implements {entry.interface_label}, which is not a registered"
                " interface, so it cannot be called by name", service=name,
            )
        method_spec = spec.method(method)
        if method_spec is None:
            raise NoSuchMethod(
                f"service {name!r} ({spec.id}) has no method {method!r};"
                f" it has {', '.join(sorted(spec.methods))}",
                service=name, method=method, methods=sorted(spec.methods),
            )
        values = method_spec.decode_arguments(args)
        slot = entry.current
        slot.acquire()
        try:
            async with asyncio.timeout(timeout):
                await slot.ensure_started(name)
                result = await getattr(slot.impl, method)(**values)
        except TimeoutError:
            raise ServiceTimeout(
                f"service {name!r} did not complete {method} within {timeout:g} s",
                service=name, method=method, timeout=timeout,
            ) from None
        except ServiceError:
            raise
        except Exception as exc:
            raise ServiceCallFailed(
                f"service {name!r} failed in {method}: {type(exc).__name__}: {exc}",
                service=name, method=method,
            ) from exc
        finally:
            slot.release()
        try:
            return method_spec.result.encode(result, "result")
        except CodecError as exc:
            raise ServiceCallFailed(
                f"service {name!r} returned from {method} a result that does not match"
                f" {spec.id}: {exc}", service=name, method=method,
            ) from None

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailable("the service manager is shut down")

    def _check_implementation(self, key: ServiceKey[Any], impl: object) -> InterfaceSpec | None:
        spec = self.interfaces.for_protocol(key.interface)
        if spec is not None:
            spec.check_implementation(impl, service=key.name)
            return spec
        missing = [
            attr for attr, member in inspect.getmembers(key.interface, inspect.isfunction)
            if not attr.startswith("_") and not callable(getattr(impl, attr, None))
        ]
        if missing:
            raise InterfaceMismatch(
                f"{type(impl).__qualname__} does not implement {key.interface.__qualname__} for"
                f" service {key.name!r}: missing {', '.join(missing)}",
                service=key.name, missing=missing,
            )
        return None

    def _resolve(self, key: ServiceKey[Any]) -> _Slot:
        entry = self._entries.get(key.name)
        if entry is None:
            if self._closed:
                raise ServiceUnavailable(
                    f"service {key.name!r}: the service manager is shut down", service=key.name
                )
            raise NoSuchService(key.name)
        if entry.interface is not key.interface:
            raise InterfaceMismatch(
                f"service {key.name!r} implements {entry.interface_label}, not"
                f" {key.interface.__qualname__}",
                service=key.name,
            )
        return entry.current

    def _async_caller(
        self, key: ServiceKey[Any], attr: str
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            # Resolve and count in one synchronous step: no await between them, so a swap
            # can never slip in and leave a call counted against the wrong version.
            slot = self._resolve(key)
            slot.acquire()
            try:
                if not slot.started:
                    await slot.ensure_started(key.name)
                return await getattr(slot.impl, attr)(*args, **kwargs)
            finally:
                slot.release()

        call.__name__ = attr
        call.__qualname__ = f"{key.name}.{attr}"
        return call

    def _sync_caller(self, key: ServiceKey[Any], attr: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            slot = self._resolve(key)
            slot.acquire()
            try:
                return getattr(slot.impl, attr)(*args, **kwargs)
            finally:
                slot.release()

        call.__name__ = attr
        call.__qualname__ = f"{key.name}.{attr}"
        return call

    async def _retire(
        self, entry: _Entry, slot: _Slot, new_version: str | None, drain_timeout: float | None
    ) -> DrainReport:
        timeout = self.drain_timeout if drain_timeout is None else drain_timeout
        slot.draining = True
        self._retiring.append((entry, slot))
        began = time.monotonic()
        drained = True
        try:
            if slot.in_flight:
                try:
                    async with asyncio.timeout(timeout):
                        await slot.idle.wait()
                except TimeoutError:
                    drained = False
            abandoned = slot.in_flight
            if not drained:
                log.warning("service %r version %s: drain timed out after %g s with %d call(s)"
                            " still running; closing it anyway", entry.name, slot.version,
                            timeout, abandoned)
            error = await self._close_slot(entry.name, slot)
        finally:
            if (entry, slot) in self._retiring:
                self._retiring.remove((entry, slot))
        return DrainReport(
            name=entry.name,
            old_version=slot.version,
            new_version=new_version,
            drained=drained,
            abandoned=abandoned,
            waited=time.monotonic() - began,
            close_error="" if error is None else f"{type(error).__name__}: {error}",
        )

    async def _close_slot(self, name: str, slot: _Slot) -> Exception | None:
        if slot.closed:
            return None
        slot.closed = True
        if slot.kind is ServiceKind.REMOTE or not slot.started:
            return None
        close = _async_hook(slot.impl, "aclose")
        if close is None:
            return None
        try:
            async with asyncio.timeout(self.close_timeout):
                await close()
        except Exception as exc:
            log.error("service %r version %s failed to close", name, slot.version, exc_info=exc)
            return exc
        return None

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())


def _async_hook(impl: object, name: str) -> Callable[[], Coroutine[Any, Any, Any]] | None:
    """The optional lifecycle method `name` of an implementation, if it is a coroutine."""
    hook = getattr(impl, name, None)
    if hook is not None and inspect.iscoroutinefunction(hook):
        return cast(Callable[[], Coroutine[Any, Any, Any]], hook)
    return None

