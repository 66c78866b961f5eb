"""The session API a channel uses: start a run, show its step, answer, step back, resume.

A channel (agent desktop, self-service web page, IVR) only renders a `StepView` and submits
answers. `ScriptRunner` owns everything else: the pure `ScriptEngine`, the actions edge,
the run store and the customer's business object. A change is stored before its effect is
carried out and again after, so a run resumes after a restart exactly where it stood; an
action interrupted by a crash is carried out again on resume (at least once).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from scripts_engine.actions import ActionExecutor, BusinessObjects
from scripts_engine.effects import ActionResult
from scripts_engine.engine import ActionDone, Progress, RunState, RunStatus, ScriptEngine, StepView
from scripts_engine.errors import NoSuchRun, NoSuchScript, Problem
from scripts_engine.loader import check_script
from scripts_engine.script import Channel, DialogScript
from scripts_engine.store import RunStore, StepStats
from storage import NotFound

log = logging.getLogger(__name__)

#: Actions one call may carry out before the run is stopped (a script cannot act forever).
MAX_ACTIONS_PER_CALL = 200
#: Open runs kept in memory; beyond this the least recently started idle ones are dropped
#: (they stay stored, and `resume` loads them again).
MAX_LIVE_RUNS = 10_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ScriptCatalog:
    """The loaded scripts, by id and version (a stored run names both)."""

    def __init__(self, scripts: Mapping[tuple[str, str], DialogScript] | None = None) -> None:
        self._scripts: dict[tuple[str, str], DialogScript] = dict(scripts or {})
        self._latest: dict[str, DialogScript] = {}
        for script in self._scripts.values():
            self._latest[script.id] = script

    def add(self, script: DialogScript) -> None:
        """Make a script available; the last one added is the current version of its id."""
        self._scripts[script.key] = script
        self._latest[script.id] = script

    def get(self, script_id: str, version: str | None = None) -> DialogScript:
        """The script of this id (current version unless one is given); NoSuchScript if absent."""
        found = (
            self._latest.get(script_id)
            if version is None
            else self._scripts.get((script_id, version))
        )
        if found is None:
            shown = script_id if version is None else f"{script_id} version {version}"
            raise NoSuchScript(
                f"no dialog script {shown} is loaded", script=script_id, version=version
            )
        return found

    def load_directory(self, folder: Path) -> list[Problem]:
        """Load every ``*.xml`` script of a folder; returns the problems of those refused."""
        problems: list[Problem] = []
        for path in sorted(folder.glob("*.xml")):
            check = check_script(path)
            if check.script is None:
                problems.extend(check.errors)
            else:
                self.add(check.script)
        return problems

    def __iter__(self) -> Iterator[DialogScript]:
        return iter(self._latest.values())

    def __len__(self) -> int:
        return len(self._latest)


class Run:
    """One live run of a script on a channel; answers to it are taken one at a time."""

    def __init__(
        self,
        runner: ScriptRunner,
        run_id: str,
        script: DialogScript,
        state: RunState,
    ) -> None:
        self.id = run_id
        self.script = script
        self._runner = runner
        self._engine = runner.engine_for(script)
        self._state = state
        self._lock = asyncio.Lock()
        #: Actions carried out through this object, in order (name and result).
        self.actions: list[tuple[str, ActionResult]] = []

    @property
    def state(self) -> RunState:
        """The run's current state (immutable)."""
        return self._state

    @property
    def status(self) -> RunStatus:
        """Where the run stands."""
        return self._state.status

    @property
    def busy(self) -> bool:
        """Whether an answer or action of this run is being processed right now."""
        return self._lock.locked()

    def view(self) -> StepView:
        """The current step as the channel should render it."""
        return self._engine.view(self._state, self._runner.clock())

    def assigned_fields(self) -> dict[str, object]:
        """Variables and the customer fields this run set (``vars.x``, ``customer.y``)."""
        return self._engine.assigned_fields(self._state)

    async def answer(self, step_id: str, value: object) -> StepView:
        """Answer the current step (None continues an information step); the next view.

        InvalidAnswer, NotCurrentStep or RunNotActive leave the run unchanged.
        """
        async with self._lock:
            progress = self._engine.answer(self._state, step_id, value, self._runner.clock())
            await self._commit(progress)
            await self._carry_out()
            return self.view()

    async def back(self) -> StepView:
        """Go back to the previous question or information step (CannotGoBack at the first)."""
        async with self._lock:
            await self._commit(self._engine.back(self._state, self._runner.clock()))
            return self.view()

    async def abandon(self) -> None:
        """End the run unfinished (the caller hung up, the agent closed the contact)."""
        async with self._lock:
            await self._commit(self._engine.abandon(self._state, self._runner.clock()))

    async def resume_actions(self) -> None:
        """Carry out an action a restart interrupted (a resumed run that was ACTING)."""
        async with self._lock:
            await self._carry_out()

    async def _commit(self, progress: Progress) -> None:
        await self._runner.persist(self.id, progress, created=False)
        self._state = progress.state
        for event in progress.events:
            if isinstance(event, ActionDone):
                self.actions.append((event.action, event.result))
        if not self._state.status.active:
            self._runner.forget(self.id)

    async def _carry_out(self) -> None:
        """Carry out effects until the run waits for the reader or ends."""
        done = 0
        while self._state.status is RunStatus.ACTING and self._state.effect is not None:
            done += 1
            if done > MAX_ACTIONS_PER_CALL:
                await self._commit(self._engine.abandon(self._state, self._runner.clock()))
                log.error(
                    "run %s stopped: more than %d actions in one step",
                    self.id,
                    MAX_ACTIONS_PER_CALL,
                )
                return
            effect = self._state.effect
            result = await self._runner.executor.execute(effect, run_id=self.id)
            await self._commit(self._engine.action_done(self._state, result, self._runner.clock()))


class ScriptRunner:
    """Starts and resumes runs; the one object channels and the API talk to."""

    def __init__(
        self,
        catalog: ScriptCatalog,
        *,
        executor: ActionExecutor | None = None,
        store: RunStore | None = None,
        objects: BusinessObjects | None = None,
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.catalog = catalog
        self.executor = executor or ActionExecutor(objects=objects)
        self.store = store
        self.objects = objects
        self.clock = clock
        self._new_id = new_id
        self._engines: dict[tuple[str, str], ScriptEngine] = {}
        self._live: dict[str, Run] = {}
        #: Contact id -> id of the run started for it in this process (bounded, oldest out).
        self._by_contact: OrderedDict[str, str] = OrderedDict()
        #: One lock per contact being started, with the number of its users.
        self._contact_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._missing_objects: set[str] = set()

    def engine_for(self, script: DialogScript) -> ScriptEngine:
        """The (cached) engine of a script version."""
        engine = self._engines.get(script.key)
        if engine is None or engine.script is not script:
            engine = ScriptEngine(script)
            self._engines[script.key] = engine
        return engine

    async def start(
        self,
        script: DialogScript | str,
        channel: Channel,
        agent: str | None = None,
        customer: str | None = None,
        *,
        call: Mapping[str, object] | None = None,
        customer_data: Mapping[str, object] | None = None,
    ) -> Run:
        """Start a run of `script` (an id: its current version) for a customer on a channel.

        The customer's fields come from `customer_data` if given, else from storage.
        """
        if isinstance(script, str):
            script = self.catalog.get(script)
        data = customer_data
        if data is None and customer is not None and script.customer_object and self.objects:
            data = await self._load_customer(script.customer_object, customer)
        engine = self.engine_for(script)
        progress = engine.start(
            channel=channel,
            now=self.clock(),
            agent=agent,
            customer_id=customer,
            customer=data,
            call=call,
        )
        run_id = self._new_id()
        await self.persist(run_id, progress, created=True)
        run = Run(self, run_id, script, progress.state)
        if progress.state.status.active:
            self._keep(run)
        for event in progress.events:
            if isinstance(event, ActionDone):
                run.actions.append((event.action, event.result))
        await run.resume_actions()
        return run

    async def _load_customer(self, object_name: str, key: str) -> Mapping[str, object] | None:
        """The customer's fields; None (an unknown customer) when the storage models have no
        such business object, so a site without a customer table still runs its scripts."""
        assert self.objects is not None
        try:
            return await self.objects.load(object_name, key)
        except NotFound as exc:
            if object_name not in self._missing_objects:
                self._missing_objects.add(object_name)
                log.warning("customer fields of scripts stay empty: %s", exc)
            return None

    async def for_contact(
        self,
        script: DialogScript | str,
        channel: Channel,
        contact_id: str,
        *,
        agent: str | None = None,
        customer: str | None = None,
        call: Mapping[str, object] | None = None,
    ) -> tuple[Run, bool]:
        """The run of `script` linked to a contact, resumed, or else a new one started for it.

        Returns the run and whether it was started now. A contact has one run per script:
        asking again (a reload of the desktop, a second tab) gives the same run, even when
        it has ended. Concurrent asks for one contact start only one run.
        """
        if isinstance(script, str):
            script = self.catalog.get(script)
        async with self._contact_lock(contact_id):
            run_id = self._by_contact.get(contact_id)
            if run_id is None and self.store is not None:
                run_id = await self.store.find_by_contact(contact_id, script.id)
            if run_id is not None:
                try:
                    found = await self.resume(run_id)
                except NoSuchRun:
                    found = None
                if found is not None and found.script.id == script.id:
                    return found, False
            run = await self.start(
                script,
                channel,
                agent,
                customer,
                call={**(call or {}), "contact_id": contact_id},
            )
            self._by_contact[contact_id] = run.id
            self._by_contact.move_to_end(contact_id)
            while len(self._by_contact) > MAX_LIVE_RUNS:
                self._by_contact.popitem(last=False)
            return run, True

    @asynccontextmanager
    async def _contact_lock(self, contact_id: str) -> AsyncIterator[None]:
        lock, users = self._contact_locks.get(contact_id, (asyncio.Lock(), 0))
        self._contact_locks[contact_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._contact_locks[contact_id]
            if users <= 1:
                del self._contact_locks[contact_id]
            else:
                self._contact_locks[contact_id] = (lock, users - 1)

    async def resume(self, run_id: str) -> Run:
        """The run with this id, as stored (or live in this process); NoSuchRun if unknown."""
        live = self._live.get(run_id)
        if live is not None:
            return live
        if self.store is None:
            raise NoSuchRun(f"no run {run_id!r} (runs are not stored)", run=run_id)
        state = await self.store.load(run_id)
        if state is None:
            raise NoSuchRun(f"no run {run_id!r}", run=run_id)
        script = self.catalog.get(state.script_id, state.script_version)
        run = Run(self, run_id, script, state)
        if state.status.active:
            self._keep(run)
        await run.resume_actions()
        return run

    async def persist(self, run_id: str, progress: Progress, *, created: bool) -> None:
        """Store a change of a run (nothing when the runner has no store)."""
        if self.store is None:
            return
        now = self.clock()
        if created:
            await self.store.create(run_id, progress.state, progress.events, now)
        else:
            await self.store.save(run_id, progress.state, progress.events, now)

    async def step_stats(
        self,
        script_id: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StepStats]:
        """Per-step analytics (reached, dropped, mean time) for the API; [] without a store."""
        if self.store is None:
            return []
        return await self.store.step_stats(script_id, version=version, since=since, until=until)

    def _keep(self, run: Run) -> None:
        """Hold an open run in memory, so that every caller shares one object (one lock)."""
        self._live[run.id] = run
        if len(self._live) > MAX_LIVE_RUNS and self.store is not None:
            # Runs left open (a closed browser): drop the oldest idle ones; they stay stored.
            for run_id, held in list(self._live.items()):
                if len(self._live) <= MAX_LIVE_RUNS:
                    break
                if not held.busy:
                    del self._live[run_id]

    def forget(self, run_id: str) -> None:
        """Drop an ended run from the live runs."""
        self._live.pop(run_id, None)

    @property
    def live_runs(self) -> int:
        """How many runs this process holds open."""
        return len(self._live)
