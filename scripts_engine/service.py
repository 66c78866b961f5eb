"""The script engine as one registered component: the runner and where each script runs.

The composition root registers a `DialogScripts` under its typed key; the web front and the
phone channel find the `ScriptRunner` (the session API) and the `ScriptPlacement` through it.
The runner itself is not registered directly: its `start(script, channel)` is the session
API, and a service's `start()` is the service manager's start-up hook.
"""

from __future__ import annotations

from dataclasses import dataclass

from scripts_engine.placement import ScriptPlacement
from scripts_engine.session import ScriptRunner


@dataclass(frozen=True, slots=True, eq=False)
class DialogScripts:
    """The running script engine: its runner and its placement on queues, numbers and web."""

    runner: ScriptRunner
    placement: ScriptPlacement
