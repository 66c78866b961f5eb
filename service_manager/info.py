"""What the service manager reports about its services: kinds, states and snapshots."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from service_manager.codecs import JSONValue


class ServiceKind(enum.Enum):
    """Where a service runs."""

    LOCAL = "local"
    REMOTE = "remote"


class ServiceStatus(enum.Enum):
    """A service version's state as last observed."""

    UP = "up"
    DRAINING = "draining"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A snapshot of one service version: what it is, where it runs and how it is doing."""

    name: str
    interface: str
    version: str
    kind: ServiceKind
    status: ServiceStatus
    in_flight: int
    detail: str = ""
    base_url: str | None = None

    def to_json(self) -> dict[str, JSONValue]:
        """The JSON form used by the REST API and `/api/health`."""
        return {
            "name": self.name,
            "interface": self.interface,
            "version": self.version,
            "kind": self.kind.value,
            "status": self.status.value,
            "in_flight": self.in_flight,
            "detail": self.detail,
            "base_url": self.base_url,
        }


@dataclass(frozen=True, slots=True)
class DrainReport:
    """How the retirement of an old version went (after `replace` or `remove`).

    `drained` is False when the drain timeout expired with `abandoned` calls still running;
    the old version was closed anyway.
    """

    name: str
    old_version: str
    new_version: str | None
    drained: bool
    abandoned: int
    waited: float
    close_error: str = ""
