"""Remote service descriptors: what an integrator registers, validated and persisted.

A descriptor is a business object (`ServiceDescriptor` in `model.xml`), stored through the
storage manager so remote services come back after a restart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from service_manager.errors import DescriptorPersistenceError, InvalidServiceDescriptor
from storage import BusinessObjectModel, StorageError, StorageManager, load_model

MODEL_PATH = Path(__file__).with_name("model.xml")

SERVICE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,98}[a-z0-9])?$")
SERVICE_VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,38}[A-Za-z0-9])?$")
_INTERFACE_REF = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?:/[1-9][0-9]{0,5})?$")
_MAX_URL = 2000
_FIELDS = ("name", "interface", "base_url", "version")


def load_service_model() -> BusinessObjectModel:
    """The service manager's business-object model, for `StorageManager.open(models=[...])`."""
    return load_model(MODEL_PATH)


@dataclass(slots=True)
class ServiceDescriptor:
    """A remote service as registered: name, interface reference, base URL and version."""

    name: str
    interface: str
    base_url: str
    version: str
    registered_at: dt.datetime | None = None


def parse_descriptor(data: object) -> ServiceDescriptor:
    """Validate a registration body; `InvalidServiceDescriptor` lists every problem by field."""
    if not isinstance(data, Mapping):
        raise InvalidServiceDescriptor(
            "invalid service descriptor: body: expected a JSON object with name, interface,"
            " base_url and version",
            errors={"body": "expected a JSON object"},
        )
    problems: dict[str, str] = {}
    for key in data:
        if key not in _FIELDS:
            problems[str(key)[:50]] = "unknown field"
    values: dict[str, str] = {}
    for key in _FIELDS:
        value = data.get(key, "1" if key == "version" else None)
        if value is None:
            problems[key] = "missing"
        elif not isinstance(value, str):
            problems[key] = "must be a string"
        else:
            values[key] = value.strip()
    if "name" in values and not SERVICE_NAME.match(values["name"]):
        problems["name"] = (
            "must be 1-100 lowercase letters, digits, '.', '_' or '-',"
            " starting and ending with a letter or digit"
        )
    if "version" in values and not SERVICE_VERSION.match(values["version"]):
        problems["version"] = "must be 1-40 letters, digits, '.', '_', '+' or '-'"
    if "interface" in values and not _INTERFACE_REF.match(values["interface"]):
        problems["interface"] = "must look like 'customer-directory/1' (name/version)"
    if "base_url" in values:
        try:
            values["base_url"] = normalize_base_url(values["base_url"])
        except ValueError as exc:
            problems["base_url"] = str(exc)
    if problems:
        listed = "; ".join(f"{k}: {v}" for k, v in problems.items())
        raise InvalidServiceDescriptor(f"invalid service descriptor: {listed}", errors=problems)
    return ServiceDescriptor(
        name=values["name"],
        interface=values["interface"],
        base_url=values["base_url"],
        version=values["version"],
    )


def normalize_base_url(url: str) -> str:
    """Check a remote service's base URL (http/https, a host, nothing secret) and tidy it."""
    if len(url) > _MAX_URL:
        raise ValueError(f"longer than {_MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    # Credentials in the URL would be persisted and shown in listings.
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@)")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    if port == 0:
        raise ValueError("port 0 is not a valid destination")
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$", host):
            raise ValueError(f"host {host!r} is not a valid host name") from None
    return url.rstrip("/")


class DescriptorStore:
    """Reads and writes `ServiceDescriptor` business objects through the storage manager."""

    def __init__(self, storage: StorageManager) -> None:
        self._storage = storage
        # Fails at once (ModelError) if storage was opened without the service model.
        storage.bind(ServiceDescriptor, "ServiceDescriptor")

    async def save(self, descriptor: ServiceDescriptor) -> None:
        """Insert or update the descriptor under its name."""
        try:
            existing = await self._storage.get(ServiceDescriptor, descriptor.name)
            if existing is None:
                await self._storage.insert(descriptor)
            else:
                await self._storage.update(descriptor)
        except StorageError as exc:
            raise DescriptorPersistenceError(
                f"could not save the descriptor of service {descriptor.name!r}: {exc}",
                service=descriptor.name,
            ) from exc

    async def delete(self, name: str) -> bool:
        """Delete the descriptor of a service; False if there was none."""
        try:
            return await self._storage.delete(ServiceDescriptor, name)
        except StorageError as exc:
            raise DescriptorPersistenceError(
                f"could not delete the descriptor of service {name!r}: {exc}", service=name
            ) from exc

    async def load_all(self) -> list[ServiceDescriptor]:
        """Every persisted descriptor, by name."""
        try:
            return await self._storage.query(ServiceDescriptor, order_by=["name"])
        except StorageError as exc:
            raise DescriptorPersistenceError(
                f"could not read the service descriptors: {exc}"
            ) from exc
