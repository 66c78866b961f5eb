"""The example customer-directory service: the interface and two implementations.

`LegacyCustomerDirectory` reads a company's existing customer table (`KUNDEN_STAMM`, mapped by
`storage/examples/customers-legacy.xml`) through the storage manager; `InMemoryCustomerDirectory`
serves a fixed list and backs the example remote process (`remote_directory.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from service_manager.interfaces import InterfaceSpec
from service_manager.keys import ServiceKey
from storage import Condition, StorageManager

MAX_SEARCH_RESULTS = 100


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as the contact center sees it (a business object `Customer`)."""

    id: int
    name: str
    phone: str | None = None
    email: str | None = None
    priority: int | None = 0
    account: str | None = None
    vip: bool | None = False


class CustomerDirectory(Protocol):
    """Finds customers: by caller number for the screen pop, by id, or by free text."""

    async def find_by_phone(self, phone: str) -> Customer | None:
        """The customer whose phone number matches `phone` (formatting ignored), or None."""
        ...

    async def get(self, customer_id: int) -> Customer | None:
        """The customer with this id, or None."""
        ...

    async def search(self, text: str, limit: int = 20) -> list[Customer]:
        """Customers whose name, e-mail, account or phone contain `text` (at most `limit`)."""
        ...


#: Version 1 of the interface; every method only reads, so all are safe to retry.
CUSTOMER_DIRECTORY_V1 = InterfaceSpec.from_protocol(
    "customer-directory", 1, CustomerDirectory, idempotent={"find_by_phone", "get", "search"}
)

#: The key the composition root registers the directory under.
CUSTOMER_DIRECTORY = ServiceKey("customer-directory", CustomerDirectory)


def phone_digits(phone: str) -> str:
    """The digits of a phone number, with an international `00` prefix read as `+`."""
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("00") or (digits.startswith("00") and not phone.startswith("+")):
        digits = digits[2:]
    return digits


def same_phone(a: str, b: str) -> bool:
    """Whether two numbers name the same line, whatever their formatting.

    Caller ids arrive as `+4930...`, `030...` or `4930...`; trunk zeros are dropped and one
    number may end with the other (country code present on one side only), provided at least
    seven digits agree so that short numbers never match by accident.
    """
    da, db = phone_digits(a).lstrip("0"), phone_digits(b).lstrip("0")
    if not da or not db:
        return False
    if da == db:
        return True
    shorter, longer = sorted((da, db), key=len)
    return len(shorter) >= 7 and longer.endswith(shorter)


def _clean_search_text(text: str) -> str:
    # LIKE wildcards in the caller's text are dropped rather than escaped: escaping syntax
    # differs between databases and a directory search never needs them.
    return re.sub(r"[%_\\]", "", text).strip()[:100]


class LegacyCustomerDirectory:
    """The customer directory over the legacy `Customer` business object (read only)."""

    def __init__(self, storage: StorageManager) -> None:
        self._storage = storage
        storage.bind(Customer, "Customer")

    async def find_by_phone(self, phone: str) -> Customer | None:
        """The customer whose phone number matches `phone`, formatting ignored."""
        digits = phone_digits(phone).lstrip("0")
        if len(digits) < 3:
            return None
        exact = await self._storage.query(Customer, where={"phone": phone}, limit=1)
        if exact:
            return exact[0]
        # Stored numbers carry spaces, dashes or a trunk zero: let LIKE find candidates with
        # anything between the last seven digits, then compare properly in Python.
        tail = digits[-7:]
        pattern = "%" + "%".join(tail)
        candidates = await self._storage.query(
            Customer, filters=[Condition("phone", "like", pattern)], order_by=["id"], limit=200
        )
        return next((c for c in candidates if c.phone and same_phone(c.phone, phone)), None)

    async def get(self, customer_id: int) -> Customer | None:
        """The customer with this id, or None."""
        return await self._storage.get(Customer, customer_id)

    async def search(self, text: str, limit: int = 20) -> list[Customer]:
        """Customers whose name, e-mail, account or phone contain `text`."""
        needle = _clean_search_text(text)
        limit = max(1, min(limit, MAX_SEARCH_RESULTS))
        if not needle:
            return []
        found: dict[int, Customer] = {}
        for attribute in ("name", "email", "account", "phone"):
            rows = await self._storage.query(
                Customer,
                filters=[Condition(attribute, "like", f"%{needle}%")],
                order_by=["name", "id"],
                limit=limit,
            )
            for row in rows:
                found.setdefault(row.id, row)
        return sorted(found.values(), key=lambda c: (c.name, c.id))[:limit]

    async def health(self) -> str:
        """Up when the legacy table answers a count."""
        return f"{await self._storage.count(Customer)} customers"


class InMemoryCustomerDirectory:
    """The customer directory over a fixed list (the example remote process serves one)."""

    def __init__(self, customers: Iterable[Customer]) -> None:
        self._customers = {c.id: c for c in customers}

    async def find_by_phone(self, phone: str) -> Customer | None:
        """The customer whose phone number matches `phone`, formatting ignored."""
        return next(
            (c for c in self._customers.values() if c.phone and same_phone(c.phone, phone)), None
        )

    async def get(self, customer_id: int) -> Customer | None:
        """The customer with this id, or None."""
        return self._customers.get(customer_id)

    async def search(self, text: str, limit: int = 20) -> list[Customer]:
        """Customers whose name, e-mail, account or phone contain `text` (case-insensitive)."""
        needle = _clean_search_text(text).casefold()
        limit = max(1, min(limit, MAX_SEARCH_RESULTS))
        if not needle:
            return []
        hits = [
            c for c in self._customers.values()
            if any(needle in (v or "").casefold() for v in (c.name, c.email, c.account, c.phone))
        ]
        return sorted(hits, key=lambda c: (c.name, c.id))[:limit]


#: Sample data for the remote example: a utility company's customers.
SAMPLE_CUSTOMERS = (
    Customer(1001, "Anna Schmidt", "+49 30 1234567", "anna.schmidt@example.org", 1, "EW-1001"),
    Customer(1002, "Bernd Müller", "+49 89 7654321", "b.mueller@example.org", 0, "EW-1002", False),
    Customer(1003, "Clara Weber", "+49 40 5550123", "clara@example.net", 2, "EW-1003", True),
    Customer(1004, "Dieter Fischer", "+49 221 998877", "dieter.f@example.com", 0, "EW-1004", False),
    Customer(1005, "Eva Wagner", "+49 69 3141592", None, 1, "EW-1005", False),
)
