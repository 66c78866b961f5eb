"""Typed service keys: a name plus the interface type the service provides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, final

T = TypeVar("T")


@final
class ServiceKey(Generic[T]):
    """A typed key, like aiohttp's `AppKey`: `ServiceKey("customer-directory", CustomerDirectory)`.

    `manager.get(key)` is then typed as the interface, so callers never cast.
    """

    __slots__ = ("_interface", "_name")

    # `Callable[..., T]` rather than `type[T]`: mypy refuses Protocol classes where `type[T]` is
    # expected (its "type-abstract" rule), and interfaces are Protocols.
    def __init__(self, name: str, interface: Callable[..., T]) -> None:
        if not name:
            raise ValueError("a service key needs a non-empty name")
        if not isinstance(interface, type):
            raise TypeError(f"the interface of service key {name!r} must be a class (a Protocol)")
        self._name = name
        self._interface: type[Any] = interface

    @property
    def name(self) -> str:
        """The service name the key looks up."""
        return self._name

    @property
    def interface(self) -> type[Any]:
        """The interface (usually a Protocol class) the service implements."""
        return self._interface

    def __repr__(self) -> str:
        interface = f"{self._interface.__module__}.{self._interface.__qualname__}"
        return f"<ServiceKey({self._name!r}, {interface})>"
