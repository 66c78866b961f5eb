"""Running a script without a channel: answers from a JSON file, results as one JSON object.

`caruso script run FILE --answers ANSWERS.json` uses this to let an author test a script
end to end. ANSWERS.json maps step ids to answers; a list gives the answers of successive
visits of the same step (a step asked again after a loop). Information steps are
continued on their own. Service results can be given too (`ScriptedServices`), since a
headless run has no service manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from scripts_engine.engine import RunStatus
from scripts_engine.errors import InvalidAnswer, ScriptError
from scripts_engine.script import Channel, DialogScript, StepKind
from scripts_engine.session import Run, ScriptRunner
from scripts_engine.values import json_value

#: Most answers one headless run takes before it stops (a script asking in circles).
MAX_ANSWERS = 10_000


class HeadlessServiceError(Exception):
    """A service failure as written in a service-results file (it has a `code`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ScriptedServices:
    """A `ServiceCaller` answering from a mapping ``"service.method"`` -> outcome(s).

    An outcome is ``{"result": value}`` or ``{"error": {"code": ..., "message": ...}}``; a
    list gives the outcomes of successive calls (the last one repeats). A call with no
    outcome fails as ``service-unavailable``: a headless run has no service manager.
    """

    unavailable: ClassVar[str] = "service-unavailable"

    def __init__(self, outcomes: Mapping[str, object]) -> None:
        self._outcomes = {
            name: list(v) if isinstance(v, list) else [v] for name, v in outcomes.items()
        }
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    async def call(
        self, name: str, method: str, args: Mapping[str, object], *, timeout: float
    ) -> object:
        """The scripted outcome of `name.method` (raising a coded error for a failure)."""
        self.calls.append((name, method, dict(args)))
        queue = self._outcomes.get(f"{name}.{method}")
        if not queue:
            raise HeadlessServiceError(
                self.unavailable,
                f"headless run: no outcome given for {name}.{method} (see --service-results)",
            )
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, Mapping) and "error" in outcome:
            error = outcome["error"]
            if isinstance(error, Mapping):
                return_code = str(error.get("code", "service-error"))
                raise HeadlessServiceError(return_code, str(error.get("message", return_code)))
            raise HeadlessServiceError("service-error", str(error))
        if isinstance(outcome, Mapping) and "result" in outcome:
            return outcome["result"]
        return outcome


@dataclass(slots=True)
class HeadlessResult:
    """What `caruso script run --json` prints."""

    run: Run
    #: An answer from the file that its question refused (the run waits at that step).
    refused: str | None = None
    #: Steps continued or answered.
    answered: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """``completed``, the step waiting for an answer, or ``failed``/``abandoned``."""
        state = self.run.state
        if state.status is RunStatus.COMPLETED:
            return "completed"
        if state.status.active:
            return state.step_id
        return str(state.status.value)

    def to_json(self) -> dict[str, object]:
        """Exactly the object the issue defines: path, actions, fields, outcome."""
        run = self.run
        return {
            "path": list(run.state.path),
            "actions": [{"name": name, "result": result.to_json()} for name, result in run.actions],
            "fields": {key: json_value(value) for key, value in run.assigned_fields().items()},
            "outcome": self.outcome,
        }


def answer_queues(answers: Mapping[str, object]) -> dict[str, list[object]]:
    """The answers file as a queue of answers per step (a scalar is asked for once)."""
    return {str(k): list(v) if isinstance(v, list) else [v] for k, v in answers.items()}


async def run_headless(
    runner: ScriptRunner,
    script: DialogScript,
    answers: Mapping[str, object],
    *,
    channel: Channel = Channel.AGENT,
    customer: str | None = None,
    customer_data: Mapping[str, object] | None = None,
) -> HeadlessResult:
    """Run `script` with `answers` until it ends or waits for an answer the file lacks."""
    run = await runner.start(script, channel, None, customer, customer_data=customer_data)
    result = HeadlessResult(run)
    queues = answer_queues(answers)
    while run.status is RunStatus.WAITING and result.answered < MAX_ANSWERS:
        step = script.step(run.state.step_id)
        if step.kind is StepKind.INFORMATION:
            await run.answer(step.id, None)
            result.answered += 1
            continue
        queue = queues.get(step.id)
        if not queue:
            break
        value = queue.pop(0)
        try:
            await run.answer(step.id, value)
        except InvalidAnswer as exc:
            result.refused = f"step {step.id!r}: answer {value!r} refused: {exc.message}"
            break
        except ScriptError as exc:
            result.refused = f"step {step.id!r}: {exc.message}"
            break
        result.answered += 1
    if result.answered >= MAX_ANSWERS and run.status.active:
        result.notes.append(f"stopped after {MAX_ANSWERS} answers: the script keeps asking")
    return result
