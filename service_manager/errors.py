"""Errors of the service manager: a stable kebab-case `code` and structured `details` each.

They know nothing of HTTP; the web edge (`monitor/services_api.py`) maps them to statuses.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """Base of the service manager's errors."""

    code: ClassVar[str] = "service-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class NoSuchService(ServiceError):
    """No service is registered under this name."""

    code: ClassVar[str] = "no-such-service"

    def __init__(self, name: str) -> None:
        super().__init__(f"no service named {name!r} is registered", service=name)


class NoSuchMethod(ServiceError):
    """The service's interface has no method of this name."""

    code: ClassVar[str] = "no-such-method"


class InvalidArguments(ServiceError):
    """The arguments of a call do not match the method's specification."""

    code: ClassVar[str] = "invalid-service-arguments"


class DuplicateService(ServiceError):
    """A service with this name is already registered."""

    code: ClassVar[str] = "duplicate-service"


class UnknownInterface(ServiceError):
    """The interface is not in the registry of known interfaces."""

    code: ClassVar[str] = "unknown-interface"


class InterfaceMismatch(ServiceError):
    """A key's or an implementation's interface does not match the registered service."""

    code: ClassVar[str] = "service-interface-mismatch"


class InvalidServiceDescriptor(ServiceError):
    """A remote service descriptor is malformed (bad name, version, interface or URL)."""

    code: ClassVar[str] = "invalid-service-descriptor"


class ServiceUnavailable(ServiceError):
    """The service cannot be reached or failed to start; the message names it and its URL."""

    code: ClassVar[str] = "service-unavailable"


class ServiceTimeout(ServiceError):
    """The service did not answer in time."""

    code: ClassVar[str] = "service-timeout"


class ServiceCallFailed(ServiceError):
    """An in-process service raised an unexpected exception during a dynamic call."""

    code: ClassVar[str] = "service-call-failed"


class RemoteServiceError(ServiceError):
    """A remote service answered a call with an error of its own (`details["remote_code"]`)."""

    code: ClassVar[str] = "remote-service-error"


class RemoteProtocolError(ServiceError):
    """A remote service answered something that is not the Caruso service protocol."""

    code: ClassVar[str] = "remote-protocol-error"


class ServiceNotRemovable(ServiceError):
    """The operation is refused for this kind of service (e.g. an in-process one over HTTP)."""

    code: ClassVar[str] = "service-not-removable"


class DescriptorPersistenceError(ServiceError):
    """A remote service descriptor could not be saved to or deleted from storage."""

    code: ClassVar[str] = "service-descriptor-not-saved"
