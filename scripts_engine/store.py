"""Stored runs through the storage manager: resume after a restart, and per-step analytics.

A run is three kinds of record (see model.xml): the run itself, whose `state` column holds
the whole `RunState` as JSON (what a resume reads), one record per visit of a step (entered,
answered, answer, undone by a step back) and one per action with its request and result.
The run record is written last on every change, so it never claims more than is stored; a
visit or action record beyond it (a crash mid-write) is removed when the run is resumed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from scripts_engine.effects import Effect, effect_from_json, effect_to_json
from scripts_engine.engine import (
    ActionDone,
    Cursor,
    Frame,
    RunEvent,
    RunState,
    RunStatus,
    StepAnswered,
    StepEntered,
    SteppedBack,
)
from scripts_engine.script import Channel
from storage import (
    AttributeType,
    BusinessObject,
    BusinessObjectModel,
    Condition,
    NotFound,
    StorageManager,
    load_model,
)

MODEL_PATH = Path(__file__).resolve().parent / "model.xml"
#: Rows read per page when computing analytics; the total is capped by `max_rows`.
_PAGE = 2000


def runs_model() -> BusinessObjectModel:
    """The business-object model of stored runs (open the storage manager with it)."""
    return load_model(MODEL_PATH)


@dataclass(frozen=True, slots=True)
class ScriptRunRecord:
    """A stored run (object ScriptRun)."""

    id: str
    script_id: str
    script_version: str
    channel: str
    agent: str | None
    customer: str | None
    status: str
    current_step: str
    disposition: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    seq: int
    state: Any
    #: The contact (call, e-mail, web visit) the run belongs to, when there is one.
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class ScriptRunVisitRecord:
    """A stored visit of a step (object ScriptRunVisit)."""

    id: str
    run_id: str
    script_id: str
    script_version: str
    visit: int
    step_id: str
    kind: str
    entered_at: datetime
    answered_at: datetime | None
    answer: Any
    seconds: float | None
    undone: bool


@dataclass(frozen=True, slots=True)
class ScriptRunActionRecord:
    """A stored action with its result (object ScriptRunAction)."""

    id: str
    run_id: str
    script_id: str
    seq: int
    visit: int
    step_id: str
    action: str
    request: Any
    status: str
    result: Any
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class StepStats:
    """Per-step analytics of one script over a period."""

    step_id: str
    #: Runs that entered the step at least once.
    reached: int
    #: Entries into the step (a run stepping back and forth counts each time).
    visits: int
    #: Visits that got an answer (or a 'continue' on information steps).
    answered: int
    #: Runs that ended (abandoned or failed) while at this step.
    dropped: int
    #: Runs still open at this step.
    waiting: int
    #: Mean time from entering the step to answering it, in seconds (None: never answered).
    mean_seconds: float | None

    def to_json(self) -> dict[str, object]:
        """The figures as JSON (for the API and `caruso script stats --json`)."""
        return dataclasses.asdict(self)


class RunStore(Protocol):
    """Where runs are kept (`StorageRunStore` is the real one)."""

    async def create(
        self, run_id: str, state: RunState, events: Sequence[RunEvent], now: datetime
    ) -> None:
        """Store a new run and the events of its start."""
        ...

    async def save(
        self, run_id: str, state: RunState, events: Sequence[RunEvent], now: datetime
    ) -> None:
        """Store the events of one change and the run's new state (durable on return)."""
        ...

    async def load(self, run_id: str) -> RunState | None:
        """The stored state of a run, or None if there is no such run."""
        ...

    async def step_stats(
        self,
        script_id: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StepStats]:
        """Per-step analytics of a script's runs started in a period."""
        ...

    async def find_by_contact(self, contact_id: str, script_id: str | None = None) -> str | None:
        """The id of the newest run linked to a contact (of one script, if given), or None."""
        ...


# ---- the state as JSON ---------------------------------------------------------------------

_DATETIME_TAG = "$datetime"


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: value.isoformat()}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict):
        if len(value) == 1 and _DATETIME_TAG in value:
            return datetime.fromisoformat(str(value[_DATETIME_TAG]))
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def state_to_json(state: RunState) -> dict[str, object]:
    """The whole run state as JSON (datetimes tagged, so they come back as datetimes)."""
    return {
        "format": 1,
        "script_id": state.script_id,
        "script_version": state.script_version,
        "channel": state.channel.value,
        "agent": state.agent,
        "customer_id": state.customer_id,
        "status": state.status.value,
        "step_id": state.step_id,
        "visit": state.visit,
        "answers": _encode(state.answers),
        "variables": _encode(state.variables),
        "fields": _encode(state.fields),
        "customer": _encode(state.customer),
        "call": _encode(state.call),
        "history": [
            {
                "step_id": f.step_id,
                "visit": f.visit,
                "answers": _encode(f.answers),
                "variables": _encode(f.variables),
                "fields": _encode(f.fields),
            }
            for f in state.history
        ],
        "path": list(state.path),
        "started_at": _encode(state.started_at),
        "entered_at": _encode(state.entered_at),
        "cursor": dataclasses.asdict(state.cursor) if state.cursor else None,
        "effect": _encode(effect_to_json(state.effect)) if state.effect else None,
        "error": _encode(state.error),
        "disposition": state.disposition,
        "prefill": _encode(state.prefill),
        "notes": list(state.notes),
        "actions_done": state.actions_done,
    }


def _mapping(value: object) -> dict[str, object]:
    decoded = _decode(value)
    return dict(decoded) if isinstance(decoded, dict) else {}


def state_from_json(data: Mapping[str, Any]) -> RunState:
    """The run state `state_to_json` wrote."""
    cursor = data.get("cursor")
    effect_data = data.get("effect")
    effect: Effect | None = effect_from_json(_mapping(effect_data)) if effect_data else None
    started = _decode(data["started_at"])
    entered = _decode(data["entered_at"])
    assert isinstance(started, datetime)
    assert isinstance(entered, datetime)
    return RunState(
        script_id=str(data["script_id"]),
        script_version=str(data["script_version"]),
        channel=Channel(data["channel"]),
        agent=data.get("agent"),
        customer_id=data.get("customer_id"),
        status=RunStatus(data["status"]),
        step_id=str(data["step_id"]),
        visit=int(data["visit"]),
        answers=_mapping(data.get("answers")),
        variables=_mapping(data.get("variables")),
        fields=_mapping(data.get("fields")),
        customer=_mapping(data.get("customer")),
        call=_mapping(data.get("call")),
        history=tuple(
            Frame(
                step_id=str(f["step_id"]),
                visit=int(f["visit"]),
                answers=_mapping(f.get("answers")),
                variables=_mapping(f.get("variables")),
                fields=_mapping(f.get("fields")),
            )
            for f in data.get("history", [])
        ),
        path=tuple(data.get("path", [])),
        started_at=started,
        entered_at=entered,
        cursor=Cursor(**cursor) if cursor else None,
        effect=effect,
        error=_mapping(data.get("error")),
        disposition=data.get("disposition"),
        prefill=_decode(data.get("prefill")),
        notes=tuple(data.get("notes", [])),
        actions_done=int(data.get("actions_done", 0)),
    )


# ---- the storage-backed store --------------------------------------------------------------


def _visit_id(run_id: str, visit: int) -> str:
    return f"{run_id}/v{visit:06d}"


def _action_id(run_id: str, seq: int) -> str:
    return f"{run_id}/a{seq:06d}"


class StorageRunStore:
    """Runs kept through the storage manager (open it with `runs_model()` among its models)."""

    def __init__(self, storage: StorageManager) -> None:
        self.storage = storage
        storage.bind(ScriptRunRecord, "ScriptRun")
        storage.bind(ScriptRunVisitRecord, "ScriptRunVisit")
        storage.bind(ScriptRunActionRecord, "ScriptRunAction")

    def _record(self, run_id: str, state: RunState, now: datetime) -> ScriptRunRecord:
        ended = now if not state.status.active else None
        # Grows with every change (a step back is a new visit too): shows how far a run got.
        seq = state.visit + state.actions_done
        contact = state.call.get("contact_id")
        return ScriptRunRecord(
            id=run_id,
            script_id=state.script_id,
            script_version=state.script_version,
            channel=state.channel.value,
            agent=state.agent,
            customer=state.customer_id,
            status=state.status.value,
            current_step=state.step_id,
            disposition=state.disposition,
            started_at=state.started_at,
            updated_at=now,
            ended_at=ended,
            seq=seq,
            state=state_to_json(state),
            contact=str(contact)[:100] if contact else None,
        )

    async def create(
        self, run_id: str, state: RunState, events: Sequence[RunEvent], now: datetime
    ) -> None:
        """Store a new run: its record first (a resume finds it), then its events, then its "
        "state."""
        await self.storage.insert(self._record(run_id, state, now))
        await self.save(run_id, state, events, now)

    async def save(
        self, run_id: str, state: RunState, events: Sequence[RunEvent], now: datetime
    ) -> None:
        """Store the events of one change, then the run record with the new state."""
        await self._write_events(run_id, state, events)
        await self.storage.update(self._record(run_id, state, now))

    async def _write_events(self, run_id: str, state: RunState, events: Sequence[RunEvent]) -> None:
        storage = self.storage
        new_visits: list[ScriptRunVisitRecord] = []
        new_actions: list[ScriptRunActionRecord] = []
        for event in events:
            if isinstance(event, StepEntered):
                new_visits.append(
                    ScriptRunVisitRecord(
                        id=_visit_id(run_id, event.visit),
                        run_id=run_id,
                        script_id=state.script_id,
                        script_version=state.script_version,
                        visit=event.visit,
                        step_id=event.step_id,
                        kind=event.kind.value,
                        entered_at=event.at,
                        answered_at=None,
                        answer=None,
                        seconds=None,
                        undone=False,
                    )
                )
            elif isinstance(event, StepAnswered | SteppedBack):
                # The visit may be in this very batch (not stored yet) or an earlier one.
                pending = next((v for v in new_visits if v.visit == event.visit), None)
                if pending is not None:
                    new_visits[new_visits.index(pending)] = _visit_change(pending, event)
                    continue
                stored = await storage.get(ScriptRunVisitRecord, _visit_id(run_id, event.visit))
                if stored is not None:
                    await storage.update(_visit_change(stored, event))
            elif isinstance(event, ActionDone):
                new_actions.append(
                    ScriptRunActionRecord(
                        id=_action_id(run_id, event.seq),
                        run_id=run_id,
                        script_id=state.script_id,
                        seq=event.seq,
                        visit=event.visit,
                        step_id=event.step_id,
                        action=event.action[:200],
                        request=_encode(effect_to_json(event.request)) if event.request else None,
                        status=event.result.status.value,
                        result=event.result.to_json(),
                        finished_at=event.at,
                    )
                )
        if new_visits:
            await storage.insert_many(new_visits)
        if new_actions:
            await storage.insert_many(new_actions)

    async def load(self, run_id: str) -> RunState | None:
        """The stored state of a run; records a crash left beyond it are removed first."""
        record = await self.storage.get(ScriptRunRecord, run_id)
        if record is None:
            return None
        state = state_from_json(record.state)
        await self._discard_beyond(run_id, state)
        return state

    async def _discard_beyond(self, run_id: str, state: RunState) -> None:
        storage = self.storage
        for visit in await storage.query(
            ScriptRunVisitRecord,
            where={"run_id": run_id},
            filters=[Condition("visit", ">", state.visit)],
        ):
            await storage.delete(ScriptRunVisitRecord, visit.id)
        for action in await storage.query(
            ScriptRunActionRecord,
            where={"run_id": run_id},
            filters=[Condition("seq", ">", state.actions_done)],
        ):
            await storage.delete(ScriptRunActionRecord, action.id)

    async def record(self, run_id: str) -> ScriptRunRecord | None:
        """The stored run record (who, which script, status, timestamps)."""
        return await self.storage.get(ScriptRunRecord, run_id)

    async def visits(self, run_id: str) -> list[ScriptRunVisitRecord]:
        """A run's visits in order."""
        return await self.storage.query(
            ScriptRunVisitRecord, where={"run_id": run_id}, order_by=["visit"]
        )

    async def actions(self, run_id: str) -> list[ScriptRunActionRecord]:
        """A run's actions in order."""
        return await self.storage.query(
            ScriptRunActionRecord, where={"run_id": run_id}, order_by=["seq"]
        )

    async def find_by_contact(self, contact_id: str, script_id: str | None = None) -> str | None:
        """The id of the newest run linked to a contact (of one script, if given), or None."""
        found = await self.find_runs(script_id=script_id, contact=contact_id, limit=1)
        return found[0].id if found else None

    async def find_runs(
        self,
        *,
        script_id: str | None = None,
        agent: str | None = None,
        customer: str | None = None,
        contact: str | None = None,
        open_only: bool = False,
        limit: int = 100,
    ) -> list[ScriptRunRecord]:
        """Runs by script, agent, customer or contact, newest first (open ones only if asked)."""
        where: dict[str, object] = {}
        if script_id is not None:
            where["script_id"] = script_id
        if agent is not None:
            where["agent"] = agent
        if customer is not None:
            where["customer"] = customer
        if contact is not None:
            where["contact"] = contact
        filters = (
            [Condition("status", "in", [RunStatus.WAITING.value, RunStatus.ACTING.value])]
            if open_only
            else []
        )
        return await self.storage.query(
            ScriptRunRecord, where=where, filters=filters, order_by=["-started_at"], limit=limit
        )

    async def step_stats(
        self,
        script_id: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_rows: int = 1_000_000,
    ) -> list[StepStats]:
        """Reached, answered, dropped and mean time per step of a script's runs in a period."""
        where: dict[str, object] = {"script_id": script_id}
        if version is not None:
            where["script_version"] = version
        filters: list[Condition] = []
        if since is not None:
            filters.append(Condition("entered_at", ">=", since))
        if until is not None:
            filters.append(Condition("entered_at", "<", until))
        runs_at: dict[str, set[str]] = defaultdict(set)
        visits: dict[str, int] = defaultdict(int)
        answered: dict[str, int] = defaultdict(int)
        seconds: dict[str, float] = defaultdict(float)
        order: dict[str, tuple[int, int]] = {}
        offset = 0
        while offset < max_rows:
            page = await self.storage.query(
                ScriptRunVisitRecord,
                where=where,
                filters=filters,
                order_by=["id"],
                limit=_PAGE,
                offset=offset,
            )
            for visit in page:
                runs_at[visit.step_id].add(visit.run_id)
                visits[visit.step_id] += 1
                order.setdefault(visit.step_id, (visit.visit, len(order)))
                if visit.answered_at is not None and visit.seconds is not None:
                    answered[visit.step_id] += 1
                    seconds[visit.step_id] += visit.seconds
            if len(page) < _PAGE:
                break
            offset += _PAGE
        dropped: dict[str, int] = defaultdict(int)
        waiting: dict[str, int] = defaultdict(int)
        run_filters: list[Condition] = [
            Condition("status", "in", [s.value for s in RunStatus if s is not RunStatus.COMPLETED])
        ]
        if since is not None:
            run_filters.append(Condition("started_at", ">=", since))
        if until is not None:
            run_filters.append(Condition("started_at", "<", until))
        run_where: dict[str, object] = {"script_id": script_id}
        if version is not None:
            run_where["script_version"] = version
        offset = 0
        while offset < max_rows:
            runs = await self.storage.query(
                ScriptRunRecord,
                where=run_where,
                filters=run_filters,
                order_by=["id"],
                limit=_PAGE,
                offset=offset,
            )
            for run in runs:
                if RunStatus(run.status).active:
                    waiting[run.current_step] += 1
                else:
                    dropped[run.current_step] += 1
            if len(runs) < _PAGE:
                break
            offset += _PAGE
        steps = sorted(runs_at, key=lambda s: order[s])
        return [
            StepStats(
                step_id=step,
                reached=len(runs_at[step]),
                visits=visits[step],
                answered=answered[step],
                dropped=dropped.get(step, 0),
                waiting=waiting.get(step, 0),
                mean_seconds=round(seconds[step] / answered[step], 3) if answered[step] else None,
            )
            for step in steps
        ]


def _visit_change(visit: ScriptRunVisitRecord, event: RunEvent) -> ScriptRunVisitRecord:
    if isinstance(event, StepAnswered):
        return dataclasses.replace(
            visit,
            answered_at=event.at,
            answer=_encode(event.value),
            seconds=round(event.seconds, 3),
        )
    return dataclasses.replace(visit, undone=True)


# ---- customers' business objects -----------------------------------------------------------


class StorageBusinessObjects:
    """Reads and updates business objects (the customer) through the storage manager.

    The customer object belongs to the company's model (often a legacy table); this
    adapter builds a dataclass for it from the model, so scripts need no Python class.
    """

    def __init__(self, storage: StorageManager) -> None:
        self.storage = storage
        self._classes: dict[str, tuple[type[Any], BusinessObject]] = {}

    def _bound(self, object_name: str) -> tuple[type[Any], BusinessObject]:
        found = self._classes.get(object_name)
        if found is not None:
            return found
        spec = None
        for model in self.storage.models:
            for candidate in model.objects:
                if candidate.name == object_name:
                    spec = candidate
        if spec is None:
            raise NotFound(
                f"the storage model has no business object {object_name!r}", object=object_name
            )
        cls = dataclasses.make_dataclass(
            f"ScriptObject_{object_name}",
            [(attribute.name, Any) for attribute in spec.attributes],
            frozen=True,
        )
        self.storage.bind(cls, object_name)
        self._classes[object_name] = (cls, spec)
        return cls, spec

    async def load(self, object_name: str, key: str) -> Mapping[str, object] | None:
        """The object's attributes, or None if none has this key."""
        cls, spec = self._bound(object_name)
        typed_key = _key_value(spec, key)
        if typed_key is None:
            return None
        obj = await self.storage.get(cls, typed_key)
        if obj is None:
            return None
        return {attribute.name: getattr(obj, attribute.name) for attribute in spec.attributes}

    async def update(self, object_name: str, key: str, values: Mapping[str, object]) -> None:
        """Set attributes of one object; NotFound if no object has this key."""
        cls, spec = self._bound(object_name)
        typed_key = _key_value(spec, key)
        obj = await self.storage.get(cls, typed_key) if typed_key is not None else None
        if obj is None:
            raise NotFound(f"no {object_name} with key {key!r}", object=object_name, key=key)
        changes = {}
        for name, value in values.items():
            attribute = spec.attribute(name)
            if attribute is None:
                raise NotFound(f"{object_name} has no attribute {name!r}", object=object_name)
            changes[name] = _attribute_value(attribute.type, value)
        await self.storage.update(dataclasses.replace(obj, **changes))


def _key_value(spec: BusinessObject, key: str) -> object:
    if spec.key.type is AttributeType.INTEGER:
        try:
            return int(key)
        except ValueError:
            return None
    return key


def _attribute_value(type_: AttributeType, value: object) -> object:
    """A script value as the attribute stores it (scripts hold dates as ISO text)."""
    if isinstance(value, str) and type_ is AttributeType.DATE:
        return date.fromisoformat(value[:10])
    if isinstance(value, str) and type_ is AttributeType.DATETIME:
        return datetime.fromisoformat(value)
    if isinstance(value, int) and not isinstance(value, bool) and type_ is AttributeType.FLOAT:
        return float(value)
    return value


__all__ = [
    "MODEL_PATH",
    "RunStore",
    "ScriptRunActionRecord",
    "ScriptRunRecord",
    "ScriptRunVisitRecord",
    "StepStats",
    "StorageBusinessObjects",
    "StorageRunStore",
    "runs_model",
    "state_from_json",
    "state_to_json",
]
