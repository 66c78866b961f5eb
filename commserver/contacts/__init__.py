"""Contacts: the call/contact model, its state machine, its events and its stored record."""

from commserver.contacts.events import ContactStateChanged
from commserver.contacts.model import Channel, Contact, ContactState, Direction, Outcome
from commserver.contacts.records import CallRecord

__all__ = [
    "CallRecord",
    "Channel",
    "Contact",
    "ContactState",
    "ContactStateChanged",
    "Direction",
    "Outcome",
]
