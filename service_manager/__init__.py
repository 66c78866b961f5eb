"""Caruso's service manager: the runtime registry of local and remote services.

The composition root builds each component, registers it under a typed `ServiceKey` and hands
out `manager.get(key)` proxies; services can be replaced by a new version and removed while
the server runs; integrators' remote services register themselves over HTTP.
"""

from service_manager.codecs import Codec, CodecError, codec_for
from service_manager.descriptors import (
    MODEL_PATH,
    DescriptorStore,
    ServiceDescriptor,
    load_service_model,
    parse_descriptor,
)
from service_manager.errors import (
    DescriptorPersistenceError,
    DuplicateService,
    InterfaceMismatch,
    InvalidArguments,
    InvalidServiceDescriptor,
    NoSuchMethod,
    NoSuchService,
    RemoteProtocolError,
    RemoteServiceError,
    ServiceCallFailed,
    ServiceError,
    ServiceNotRemovable,
    ServiceTimeout,
    ServiceUnavailable,
    UnknownInterface,
)
from service_manager.info import DrainReport, ServiceInfo, ServiceKind, ServiceStatus
from service_manager.interfaces import ArgumentSpec, InterfaceRegistry, InterfaceSpec, MethodSpec
from service_manager.keys import ServiceKey
from service_manager.manager import ServiceManager
from service_manager.remote import RemoteService, RetryPolicy

__all__ = [
    "MODEL_PATH",
    "ArgumentSpec",
    "Codec",
    "CodecError",
    "DescriptorPersistenceError",
    "DescriptorStore",
    "DrainReport",
    "DuplicateService",
    "InterfaceMismatch",
    "InterfaceRegistry",
    "InterfaceSpec",
    "InvalidArguments",
    "InvalidServiceDescriptor",
    "MethodSpec",
    "NoSuchMethod",
    "NoSuchService",
    "RemoteProtocolError",
    "RemoteService",
    "RemoteServiceError",
    "RetryPolicy",
    "ServiceCallFailed",
    "ServiceDescriptor",
    "ServiceError",
    "ServiceInfo",
    "ServiceKey",
    "ServiceKind",
    "ServiceManager",
    "ServiceNotRemovable",
    "ServiceStatus",
    "ServiceTimeout",
    "ServiceUnavailable",
    "UnknownInterface",
    "codec_for",
    "load_service_model",
    "parse_descriptor",
]
