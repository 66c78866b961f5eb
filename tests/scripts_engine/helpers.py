"""Helpers shared by the script-engine tests: small scripts, a clock, fake services."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from scripts_engine import DialogScript, load_script

#: A fixed "now" for pure-core tests (date limits such as today-30 depend on it).
NOW = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE script SYSTEM "dialog-script.dtd">\n'


def script_xml(body: str, *, attrs: str = "", declarations: str = "") -> str:
    """A whole script document around `body` (its steps) with a customer and a variable."""
    return (
        HEADER
        + f'<script id="t" version="1" title="Test" {attrs}>\n'
        + '<customer object="Customer"><field name="name" type="string"/>'
        + '<field name="email" type="string"/><field name="vip" type="boolean"/>'
        + '<field name="balance" type="float"/></customer>\n'
        + declarations
        + body
        + "\n</script>\n"
    )


def write(tmp_path: Path, text: str, name: str = "script.xml") -> Path:
    """Write `text` to a file in `tmp_path` and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> DialogScript:
    """Load a script written to a temporary file (InvalidScript if it is not valid)."""
    return load_script(write(tmp_path, text), today=NOW.date())


class ServiceFailure(Exception):
    """A failure the way the service manager raises them: with a kebab-case code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeServices:
    """A ServiceCaller answering from a table; an Exception value is raised, a float delays."""

    def __init__(self, answers: Mapping[str, object], *, delay: float = 0.0) -> None:
        self.answers = dict(answers)
        self.delay = delay
        self.calls: list[tuple[str, str, dict[str, object], float]] = []
        #: Set on the first call (tests wait for it instead of polling).
        self.called = asyncio.Event()

    async def call(
        self, name: str, method: str, args: Mapping[str, object], *, timeout: float
    ) -> object:
        """Record the call, wait `delay`, then answer or raise."""
        self.calls.append((name, method, dict(args), timeout))
        self.called.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.get(f"{name}.{method}")
        if isinstance(answer, Exception):
            raise answer
        if answer is None and f"{name}.{method}" not in self.answers:
            raise ServiceFailure("no-such-service", f"no service named {name!r}")
        return answer
