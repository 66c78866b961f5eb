"""Where each dialog script runs: per queue on the agent desktop, per dialled number on the
phone, and on the public self-service page, with the start-up check of that placement.

The composition root fills a `ScriptPlacement` from the configuration and checks it with
`check_placement` against the loaded scripts, the business-object models, the registered
services and the configured queues, so that a script that cannot work where it is placed
stops the server at start with a clear message instead of failing on a customer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scripts_engine.errors import NoSuchScript
from scripts_engine.script import Channel, DialogScript, Transfer
from scripts_engine.validation import check_against_models, check_against_services

if TYPE_CHECKING:
    from scripts_engine.session import ScriptCatalog
    from storage import BusinessObjectModel


@dataclass(frozen=True, slots=True)
class ScriptPlacement:
    """Which script runs where. Ids name loaded scripts (their current version)."""

    #: Queue name -> the script the agent desktop runs for that queue's contacts.
    queues: Mapping[str, str] = field(default_factory=dict)
    #: Dialled number -> the script the phone runs instead of the IVR menu.
    numbers: Mapping[str, str] = field(default_factory=dict)
    #: Scripts anyone may run on the public self-service page.
    public: frozenset[str] = frozenset()

    def for_queue(self, queue: str | None) -> str | None:
        """The desktop script of a queue, or None."""
        return self.queues.get(queue) if queue is not None else None

    def for_number(self, dialed: str) -> str | None:
        """The phone script of a dialled number, or None (the IVR menu answers)."""
        return self.numbers.get(dialed)

    def is_public(self, script_id: str) -> bool:
        """Whether the public self-service page may run this script."""
        return script_id in self.public

    def uses(self) -> dict[str, dict[Channel, list[str]]]:
        """Script id -> each channel it is placed on -> where (config keys), for checks."""
        found: dict[str, dict[Channel, list[str]]] = {}
        for queue, script_id in self.queues.items():
            found.setdefault(script_id, {}).setdefault(Channel.AGENT, []).append(
                f"scripts.queues.{queue}"
            )
        for number, script_id in self.numbers.items():
            found.setdefault(script_id, {}).setdefault(Channel.PHONE, []).append(
                f"scripts.phone.{number}"
            )
        for script_id in sorted(self.public):
            found.setdefault(script_id, {}).setdefault(Channel.WEB, []).append("scripts.public")
        return found


@dataclass(frozen=True, slots=True)
class PlacementCheck:
    """The outcome of `check_placement`: errors stop the start, warnings are logged, and
    notes are findings on scripts placed nowhere (they matter once a script is placed)."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...] = ()


def transfer_queues(script: DialogScript) -> set[str]:
    """Every queue the script's `<transfer>` actions name."""
    return {
        action.queue
        for step in script.steps.values()
        for transition in step.transitions
        for action in transition.actions
        if isinstance(action, Transfer)
    }


def check_placement(
    catalog: ScriptCatalog,
    placement: ScriptPlacement,
    *,
    models: Iterable[BusinessObjectModel],
    services: Mapping[str, Collection[str]],
    queues: Collection[str],
) -> PlacementCheck:
    """Check every loaded script against what the server has, strictly for placed ones.

    Errors (placed scripts): the id is not loaded; the script does not declare the channel
    it is placed on; a phone script transfers to a queue that is not configured; a declared
    customer field does not match the business object; a registered service lacks a
    declared method. Warnings (placed scripts): the customer object is not in the models
    (customer fields stay empty), or a service is not registered yet (remote services
    register themselves at run time; until then the script takes its error branch).
    Notes: any of these on a script placed nowhere.
    """
    models = list(models)
    errors: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    placed = placement.uses()
    for script_id, channels in sorted(placed.items()):
        try:
            script = catalog.get(script_id)
        except NoSuchScript:
            where = ", ".join(k for keys in channels.values() for k in keys)
            errors.append(f"{where}: no dialog script {script_id!r} is loaded")
            continue
        for channel, keys in channels.items():
            if channel not in script.channels:
                offered = " ".join(sorted(c.value for c in script.channels))
                errors.append(
                    f"{', '.join(keys)}: script {script_id!r} does not run on the "
                    f"{channel.value} channel (channels=\"{offered}\" in {script.file})"
                )
        if Channel.PHONE in channels:
            for queue in sorted(transfer_queues(script) - set(queues)):
                errors.append(
                    f"{script.file}: phone script {script_id!r} transfers to queue {queue!r}, "
                    "which is not in [[queues]]"
                )
    for script in catalog:
        found, missing = _model_problems(script, models)
        service_found, service_missing = _service_problems(script, services)
        if script.id in placed:
            errors.extend(found + service_found)
            warnings.extend(missing + service_missing)
        else:
            notes.extend(found + service_found + missing + service_missing)
    return PlacementCheck(tuple(errors), tuple(warnings), tuple(notes))


def _model_problems(
    script: DialogScript, models: list[BusinessObjectModel]
) -> tuple[list[str], list[str]]:
    """(mismatched fields, a missing customer object) as messages."""
    if script.customer_object is None:
        return [], []
    known = {obj.name for model in models for obj in model.objects}
    if script.customer_object not in known:
        return [], [
            f"{script.file}:{script.line}: business object {script.customer_object!r} is not "
            "in the storage models: customer fields of this script stay empty"
        ]
    return [str(p) for p in check_against_models(script, models)], []


def _service_problems(
    script: DialogScript, services: Mapping[str, Collection[str]]
) -> tuple[list[str], list[str]]:
    """(missing methods of registered services, services not registered) as messages."""
    # Services not registered yet count as complete here: they are reported as warnings below.
    available = {
        name: services.get(name, declared.methods) for name, declared in script.services.items()
    }
    missing = [
        f"{script.file}:{service.line}: service {name!r} is not registered yet: calls to it "
        "take the script's error branch until it is"
        for name, service in script.services.items()
        if name not in services
    ]
    return [str(p) for p in check_against_services(script, available)], missing
