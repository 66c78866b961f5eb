"""Caller identification through the `customer-directory` service, whichever implements it.

The directory may be in-process (the legacy table), remote (an integrator's process that
registered itself) or absent; a slow or broken directory must never hold a caller up, so each
lookup is bounded and a failure means "unknown caller".
"""

from __future__ import annotations

import asyncio
import logging

from commserver.calls import Identity
from service_manager import ServiceError, ServiceManager
from service_manager.examples.customer_directory import CUSTOMER_DIRECTORY, Customer

log = logging.getLogger(__name__)


class DirectoryIdentification:
    """`CallerIdentification` over the registered customer directory."""

    def __init__(self, services: ServiceManager, *, timeout: float = 1.5) -> None:
        self._services = services
        self._timeout = timeout

    async def by_phone(self, phone: str) -> Identity | None:
        """The customer whose phone number this is, if the directory knows them."""
        return await self._lookup("find_by_phone", phone)

    async def by_customer_number(self, number: str) -> Identity | None:
        """The customer with this number (the directory's customer id)."""
        if not number.isdigit() or len(number) > 12:
            return None
        return await self._lookup("get", int(number))

    async def _lookup(self, method: str, value: object) -> Identity | None:
        if CUSTOMER_DIRECTORY.name not in self._services:
            return None
        directory = self._services.get(CUSTOMER_DIRECTORY)
        try:
            async with asyncio.timeout(self._timeout):
                if method == "get" and isinstance(value, int):
                    customer: Customer | None = await directory.get(value)
                else:
                    customer = await directory.find_by_phone(str(value))
        except (TimeoutError, ServiceError) as exc:
            log.warning("customer directory %s(%r) failed: %s", method, value, exc)
            return None
        if customer is None:
            return None
        priority = int(customer.priority or 0) + (1 if customer.vip else 0)
        return Identity(str(customer.id), priority, customer.name)
