"""The registry of known service interfaces: a Protocol plus a spec for each of its methods.

An interface is identified by name and version (`customer-directory/1`). Its spec says, per
method, the argument names and codecs, the result codec and whether the call is idempotent
(safe to retry). Dynamic calls from dialog scripts and every remote call go through it.
"""

from __future__ import annotations

import builtins
import inspect
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from service_manager.codecs import Codec, CodecError, JSONValue, codec_for
from service_manager.errors import InterfaceMismatch, InvalidArguments, UnknownInterface

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class ArgumentSpec:
    """One argument of a method: its name, codec and whether callers must give it."""

    name: str
    codec: Codec[Any]
    required: bool
    default: object = None


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One method of an interface: arguments, result codec and the idempotent flag."""

    name: str
    arguments: tuple[ArgumentSpec, ...]
    result: Codec[Any]
    idempotent: bool
    signature: inspect.Signature = field(compare=False, repr=False)
    doc: str = ""

    def bind(self, args: tuple[object, ...], kwargs: Mapping[str, object]) -> dict[str, object]:
        """Map a Python call's positional and keyword arguments onto argument names."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"{self.name}(): {exc}", method=self.name) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def decode_arguments(self, data: Mapping[str, object]) -> dict[str, object]:
        """Check JSON arguments (from a script or an HTTP body) and turn them into Python values."""
        known = {a.name for a in self.arguments}
        unknown = sorted(str(k) for k in data if k not in known)
        problems: dict[str, str] = dict.fromkeys(unknown, "unknown argument")
        values: dict[str, object] = {}
        for arg in self.arguments:
            if arg.name not in data:
                if arg.required:
                    problems[arg.name] = "missing"
                else:
                    values[arg.name] = arg.default
                continue
            try:
                values[arg.name] = arg.codec.decode(data[arg.name], arg.name)
            except CodecError as exc:
                problems[arg.name] = str(exc)
        if problems:
            listed = "; ".join(f"{k}: {v}" for k, v in problems.items())
            raise InvalidArguments(
                f"bad arguments for {self.name}(): {listed}", method=self.name, errors=problems
            )
        return values

    def encode_arguments(self, values: Mapping[str, object]) -> dict[str, JSONValue]:
        """Turn bound Python arguments into JSON-able data for the wire."""
        out: dict[str, JSONValue] = {}
        for arg in self.arguments:
            if arg.name in values:
                try:
                    out[arg.name] = arg.codec.encode(values[arg.name], arg.name)
                except CodecError as exc:
                    raise InvalidArguments(
                        f"bad arguments for {self.name}(): {exc}", method=self.name
                    ) from None
        return out

    def describe(self) -> dict[str, JSONValue]:
        """A JSON description of the method, for the API and the docs."""
        return {
            "name": self.name,
            "arguments": [
                {"name": a.name, "type": a.codec.description, "required": a.required}
                for a in self.arguments
            ],
            "result": self.result.description,
            "idempotent": self.idempotent,
        }


@dataclass(frozen=True, slots=True)
class InterfaceSpec:
    """A versioned interface: its Protocol class and a spec for each method."""

    name: str
    version: int
    protocol: type[Any]
    methods: Mapping[str, MethodSpec]

    @property
    def id(self) -> str:
        """The interface reference used on the wire, e.g. `customer-directory/1`."""
        return f"{self.name}/{self.version}"

    @classmethod
    def from_protocol(
        cls,
        name: str,
        version: int,
        protocol: type[Any],
        *,
        idempotent: Iterable[str] = (),
    ) -> InterfaceSpec:
        """Derive the spec from a Protocol's async methods and their type hints.

        Only methods listed in `idempotent` are retried after a failure or timeout, so list
        only those that are safe to run twice (reads, or writes keyed by a caller's id).
        """
        if not _NAME.match(name):
            raise ValueError(f"interface name {name!r} must be lowercase kebab-case")
        if version < 1:
            raise ValueError(f"interface {name!r}: version must be a positive integer")
        retry_safe = set(idempotent)
        methods: dict[str, MethodSpec] = {}
        for attr, func in inspect.getmembers(protocol, inspect.isfunction):
            if attr.startswith("_"):
                continue
            where = f"{protocol.__qualname__}.{attr}"
            if not inspect.iscoroutinefunction(func):
                raise TypeError(f"{where} must be 'async def': service calls may cross a network")
            methods[attr] = _method_spec(where, attr, func, idempotent=attr in retry_safe)
        if not methods:
            raise TypeError(f"{protocol.__qualname__} has no public async methods")
        unknown = retry_safe - methods.keys()
        if unknown:
            raise ValueError(f"idempotent names unknown methods of {name}: {sorted(unknown)}")
        return cls(name, version, protocol, MappingProxyType(methods))

    def method(self, name: str) -> MethodSpec | None:
        """The spec of one method, or None."""
        return self.methods.get(name)

    def check_implementation(self, impl: object, *, service: str) -> None:
        """Refuse an implementation that lacks one of the interface's async methods."""
        missing = [
            m for m in self.methods if not inspect.iscoroutinefunction(getattr(impl, m, None))
        ]
        if missing:
            raise InterfaceMismatch(
                f"{type(impl).__qualname__} does not implement {self.id} for service {service!r}:"
                f" missing async method(s) {', '.join(missing)}",
                service=service,
                interface=self.id,
                missing=missing,
            )

    def describe(self) -> dict[str, JSONValue]:
        """A JSON description of the interface, for the API and the docs."""
        return {
            "id": self.id,
            "methods": [m.describe() for m in self.methods.values()],
        }


def _method_spec(where: str, name: str, func: Any, *, idempotent: bool) -> MethodSpec:
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func)
    params = list(signature.parameters.values())[1:]  # drop self
    arguments: list[ArgumentSpec] = []
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{where}: *args/**kwargs cannot be described on the wire")
        if param.name not in hints:
            raise TypeError(f"{where}: argument {param.name!r} needs a type annotation")
        try:
            codec = codec_for(hints[param.name])
        except TypeError as exc:
            raise TypeError(f"{where}: argument {param.name!r}: {exc}") from None
        required = param.default is inspect.Parameter.empty
        arguments.append(
            ArgumentSpec(param.name, codec, required, None if required else param.default)
        )
    if "return" not in hints:
        raise TypeError(f"{where}: needs a return annotation")
    try:
        result = codec_for(hints["return"])
    except TypeError as exc:
        raise TypeError(f"{where}: result: {exc}") from None
    return MethodSpec(
        name=name,
        arguments=tuple(arguments),
        result=result,
        idempotent=idempotent,
        signature=signature.replace(parameters=params),
        doc=inspect.getdoc(func) or "",
    )


class InterfaceRegistry:
    """Known interfaces by name and version; the composition root fills it at start-up."""

    def __init__(self, specs: Iterable[InterfaceSpec] = ()) -> None:
        self._by_id: dict[str, InterfaceSpec] = {}
        self._by_protocol: dict[type[Any], InterfaceSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: InterfaceSpec) -> None:
        """Make an interface known; adding the same spec again is a no-op."""
        existing = self._by_id.get(spec.id)
        if existing is not None:
            if existing is spec or existing.protocol is spec.protocol:
                return
            raise ValueError(f"interface {spec.id} is already registered with another Protocol")
        self._by_id[spec.id] = spec
        # The newest version wins a lookup by Protocol class.
        current = self._by_protocol.get(spec.protocol)
        if current is None or current.version < spec.version:
            self._by_protocol[spec.protocol] = spec

    def get(self, reference: str) -> InterfaceSpec:
        """Look up `name/version`, or a bare `name` for its newest version."""
        spec = self._by_id.get(reference)
        if spec is None and "/" not in reference:
            versions = [s for s in self._by_id.values() if s.name == reference]
            if versions:
                spec = max(versions, key=lambda s: s.version)
        if spec is None:
            raise UnknownInterface(
                f"unknown interface {reference!r};"
                f" known: {', '.join(sorted(self._by_id)) or 'none'}",
                interface=reference,
                known=sorted(self._by_id),
            )
        return spec

    def for_protocol(self, protocol: type[Any]) -> InterfaceSpec | None:
        """The (newest) spec registered for a Protocol class, if any."""
        return self._by_protocol.get(protocol)

    def list(self) -> builtins.list[InterfaceSpec]:
        """Every known interface, sorted by id."""
        return [self._by_id[k] for k in sorted(self._by_id)]
