"""A DTMF menu as a pure state machine: the caller's input in, the next thing to do out.

The telephony side plays and collects; this module only decides, so every path (a valid
choice, an invalid key, silence, retries exhausted) is testable without a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Menu:
    """A menu: what to say, which key leads to which queue, and how patient to be."""

    prompt: str
    choices: Mapping[str, str]
    timeout: float = 5.0
    retries: int = 2
    default_queue: str = ""
    invalid_prompt: str = "Sorry, that is not a valid choice."
    no_input_prompt: str = "Sorry, I did not hear a choice."
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlayAndCollect:
    """Say these prompts, then wait up to `timeout` seconds for one key."""

    prompts: tuple[str, ...]
    timeout: float
    max_digits: int = 1


@dataclass(frozen=True, slots=True)
class Route:
    """The menu is done: the contact goes to this queue."""

    queue: str
    digit: str
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No usable choice after every retry and no default queue."""

    reason: str


class MenuRun:
    """One caller's way through a menu."""

    def __init__(self, menu: Menu) -> None:
        self.menu = menu
        self.attempts = 0

    def start(self) -> PlayAndCollect:
        """The first thing to do: play the menu and wait for a key."""
        self.attempts = 1
        return PlayAndCollect((self.menu.prompt,), self.menu.timeout)

    def on_input(self, digits: str) -> PlayAndCollect | Route | GiveUp:
        """What to do after the caller keyed `digits` ('' means nothing before the timeout)."""
        if digits:
            queue = self.menu.choices.get(digits[0])
            if queue is not None:
                return Route(queue, digits[0], f"caller chose {digits[0]}")
            apology = self.menu.invalid_prompt
        else:
            apology = self.menu.no_input_prompt
        if self.attempts > self.menu.retries:
            if self.menu.default_queue:
                return Route(self.menu.default_queue, "", "no valid choice: default queue")
            return GiveUp("no valid choice after every retry")
        self.attempts += 1
        return PlayAndCollect((apology, self.menu.prompt), self.menu.timeout)
