"""`caruso bench scripts`: step transitions per second of the pure engine core, and the time
to load and validate a generated 500-step script (hardened parse, DTD, semantic checks).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime

HELP = "dialog-script engine: transitions/s and load+validate time of a 500-step script"


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the benchmark."""
    parser.add_argument(
        "--steps", type=int, default=500, help="steps in the generated script (default 500)"
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="time spent driving runs (default 3)"
    )
    parser.add_argument(
        "--loads", type=int, default=20, help="load+validate repetitions (default 20)"
    )


def generate_script(steps: int) -> bytes:
    """A valid script of `steps` steps: choice, number, yes/no, branch and information steps
    in turn, each with a condition on its own answer and a variable update, then an end."""
    if steps < 2:
        raise ValueError("a script needs at least two steps")
    body: list[str] = []
    for i in range(steps - 1):
        here, following = f"s{i}", f"s{i + 1}" if i + 1 < steps - 1 else "done"
        kind = i % 5
        if kind == 0:
            body.append(
                f'<question id="{here}" type="choice">'
                f"<text>Choice {i} for {{{{ customer.name }}}}</text>"
                '<choice value="a">A</choice><choice value="b">B</choice><choice value="c">'
                "C</choice>"
                f'<next to="{following}" when="answers.{here} == \'a\'"><set var="count" '
                f'value="vars.count + 1"/></next>'
                f'<next to="{following}"/></question>'
            )
        elif kind == 1:
            body.append(
                f'<question id="{here}" type="number" integer="yes" min="0" max="1000"><text>'
                f"Number {i}</text>"
                f'<next to="{following}" when="answers.{here} &gt; 50 &amp;&amp; customer.vip">'
                f'<set var="total" value="vars.total + answers.{here}"/></next>'
                f'<next to="{following}"/></question>'
            )
        elif kind == 2:
            body.append(
                f'<question id="{here}" type="yesno"><text>Yes or no {i}?</text>'
                f'<next to="{following}" when="answers.{here}"><set var="flag" '
                f'value="!vars.flag"/></next>'
                f'<next to="{following}"/></question>'
            )
        elif kind == 3:
            body.append(
                f'<branch id="{here}"><next to="{following}" when="vars.count &gt; 3 || '
                f'vars.total &gt; 100"/>'
                f'<next to="{following}"/></branch>'
            )
        else:
            body.append(
                f'<information id="{here}"><text>Step {i}: {{{{ vars.count }}}} so far.</text>'
                f'<next to="{following}"/></information>'
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<script id="bench" version="1" title="Generated {steps}-step script" channels="agent '
        f'web phone">'
        '<customer object="Customer"><field name="name" type="string"/><field name="vip" '
        'type="boolean"/></customer>'
        '<variables><variable name="count" type="integer"/><variable name="total" type="integer"/>'
        '<variable name="flag" type="boolean"/></variables>\n'
        + "\n".join(body)
        + '\n<end id="done" disposition="benchmark"/></script>\n'
    ).encode()


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Load+validate timings, then drive runs through the pure core for `--seconds`."""
    from scripts_engine.engine import RunStatus, ScriptEngine
    from scripts_engine.loader import load_script_bytes
    from scripts_engine.script import AnswerType, Channel, StepKind

    data = generate_script(args.steps)
    print(f"generated a {args.steps}-step script ({len(data)} bytes)", file=sys.stderr)
    timings: list[float] = []
    script = None
    for _ in range(max(1, args.loads)):
        started = time.perf_counter()
        script = load_script_bytes(data, "bench.xml")
        timings.append(time.perf_counter() - started)
    assert script is not None
    print(f"load+validate: median {statistics.median(timings) * 1000:.1f} ms", file=sys.stderr)

    engine = ScriptEngine(script)
    answers: dict[str, object] = {}
    for step in script.steps.values():
        if step.answer_type is AnswerType.CHOICE:
            answers[step.id] = "a"
        elif step.answer_type is AnswerType.NUMBER:
            answers[step.id] = 60
        elif step.answer_type is AnswerType.YESNO:
            answers[step.id] = True
    now = datetime.now(UTC)
    customer = {"name": "Bench Customer", "vip": True}
    transitions = 0
    answered = 0
    runs = 0
    deadline = time.perf_counter() + args.seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline and runs < 100_000:
        progress = engine.start(channel=Channel.AGENT, now=now, customer_id="1", customer=customer)
        state = progress.state
        transitions += len(progress.events)
        while state.status is RunStatus.WAITING:
            step = script.steps[state.step_id]
            value = None if step.kind is StepKind.INFORMATION else answers[step.id]
            progress = engine.answer(state, step.id, value, now)
            state = progress.state
            answered += 1
            transitions += sum(1 for e in progress.events if type(e).__name__ == "StepEntered")
        if state.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"benchmark run did not complete: {state.status} at {state.step_id}")
        runs += 1
    elapsed = time.perf_counter() - started
    print(f"{runs} runs, {transitions} transitions in {elapsed:.2f} s", file=sys.stderr)
    return {
        "script_steps": len(script.steps),
        "script_bytes": len(data),
        "load_validate_ms_median": round(statistics.median(timings) * 1000, 2),
        "load_validate_ms_min": round(min(timings) * 1000, 2),
        "runs": runs,
        "transitions": transitions,
        "answers": answered,
        "seconds": round(elapsed, 3),
        "transitions_per_second": round(transitions / elapsed),
        "answers_per_second": round(answered / elapsed),
        "microseconds_per_transition": round(elapsed / transitions * 1e6, 2)
        if transitions
        else None,
    }
