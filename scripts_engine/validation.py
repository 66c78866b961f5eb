"""Semantic checks of a dialog script, beyond what the DTD can say.

Every check reports ``file:line: message`` for the element at fault: dangling targets,
unreachable steps, steps from which no end can be reached, silent loops, unknown names in
expressions, answers read before they can have been given, type errors in expressions,
unknown services, templates, variables and fields, and steps the phone cannot render.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scripts_engine.errors import Problem, Severity
from scripts_engine.expressions import (
    ROOTS,
    Expression,
    ExpressionFailed,
    Template,
    compile_expression,
    top_level_operands,
)
from scripts_engine.script import (
    Action,
    AnswerType,
    CallService,
    Channel,
    DialogScript,
    ScheduleCallback,
    SendEmail,
    SetField,
    SetVariable,
    Step,
    StepKind,
    Transfer,
    ValueType,
)
from scripts_engine.values import SAMPLE_TIME, matches_type, sample_answer, sample_value

if TYPE_CHECKING:
    from storage import BusinessObjectModel

#: The members of `call` in expressions, with the type of each.
CALL_FIELDS: Mapping[str, ValueType] = {
    "channel": ValueType.STRING,
    "agent": ValueType.STRING,
    "customer_id": ValueType.STRING,
    "caller": ValueType.STRING,
    "called": ValueType.STRING,
    "queue": ValueType.STRING,
    "contact_id": ValueType.STRING,
    "language": ValueType.STRING,
    "wait_seconds": ValueType.INTEGER,
}
#: The members of `error` (the last failed action).
ERROR_FIELDS = ("code", "message", "action")
#: Most choices a phone menu offers (one key each).
MAX_PHONE_CHOICES = 10


@dataclass(frozen=True, slots=True)
class _Use:
    """An expression, where it sits, and which answers are surely given when it runs."""

    expression: Expression
    where: str
    step: Step | None
    #: Whether the step's own answer is available (transitions out of a question).
    after_answer: bool
    #: The type the value must have, or None for a condition (bool) / any.
    expected: ValueType | None
    condition: bool = False


class _Validator:
    def __init__(self, script: DialogScript) -> None:
        self.script = script
        self.problems: list[Problem] = []
        self._samples: dict[str, object] | None = None

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.script.file, line, message))

    def warning(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.script.file, line, message, Severity.WARNING))

    # ---- the graph ---------------------------------------------------------------------

    def edges(self, step: Step) -> Iterator[str]:
        """Steps a run can go to from `step`: transition targets and error branches."""
        for transition in step.transitions:
            yield transition.to
            for action in transition.actions:
                target = self.error_target(action)
                if target is not None:
                    yield target

    def error_target(self, action: Action) -> str | None:
        if action.on_error is not None:
            return action.on_error
        if isinstance(action, CallService):
            return self.script.on_error
        return None

    def run(self) -> list[Problem]:
        script = self.script
        steps = script.steps
        if not steps:
            self.error(script.line, "the script has no steps")
            return self.problems
        if script.start not in steps:
            self.error(script.line, f"start step {script.start!r} does not exist")
            return self.problems
        if script.on_error is not None and script.on_error not in steps:
            self.error(script.line, f"on-error step {script.on_error!r} does not exist")
        self.check_targets()
        if any(p.severity is Severity.ERROR for p in self.problems):
            return self.problems  # the graph checks below assume every target exists
        reachable = self.check_reachability()
        self.check_ends(reachable)
        self.check_silent_loops()
        dominators = self.dominators(reachable)
        self.check_expressions(dominators)
        self.check_actions()
        self.check_channels()
        self.check_unused()
        return self.problems

    def check_targets(self) -> None:
        steps = self.script.steps
        for step in steps.values():
            where = f"step {step.id!r}"
            if step.kind is not StepKind.END and not step.transitions:
                self.error(step.line, f"{where} has no <next>")
            default_seen = False
            for transition in step.transitions:
                if transition.to not in steps:
                    self.error(
                        transition.line,
                        f"{where}: transition to {transition.to!r}, which does not exist",
                    )
                if default_seen:
                    self.error(
                        transition.line,
                        f"{where}: the transition to {transition.to!r} is never taken: "
                        "an earlier transition has no condition",
                    )
                if transition.when is None:
                    default_seen = True
                for action in transition.actions:
                    if action.on_error is not None and action.on_error not in steps:
                        self.error(
                            action.line,
                            f"{where}: <{action.name}> on-error step {action.on_error!r} does not "
                            f"exist",
                        )
            if step.transitions and not default_seen:
                self.error(
                    step.transitions[-1].line,
                    f"{where}: every transition has a condition, so a run could stop here; "
                    'add a last <next to="..."/> without "when"',
                )

    def check_reachability(self) -> set[str]:
        seen = {self.script.start}
        pending = [self.script.start]
        while pending:
            for target in self.edges(self.script.steps[pending.pop()]):
                if target not in seen:
                    seen.add(target)
                    pending.append(target)
        for step in self.script.steps.values():
            if step.id not in seen:
                self.error(
                    step.line,
                    f"step {step.id!r} is unreachable from the start step {self.script.start!r}",
                )
        return seen

    def check_ends(self, reachable: set[str]) -> None:
        steps = self.script.steps
        reverse: dict[str, set[str]] = {step_id: set() for step_id in steps}
        for step in steps.values():
            for target in self.edges(step):
                reverse[target].add(step.id)
        finishing = {s.id for s in steps.values() if s.kind is StepKind.END}
        if not finishing:
            self.error(self.script.line, "the script has no <end> step")
            return
        pending = list(finishing)
        while pending:
            for source in reverse[pending.pop()]:
                if source not in finishing:
                    finishing.add(source)
                    pending.append(source)
        for step_id in sorted(reachable - finishing, key=lambda s: steps[s].line):
            self.error(
                steps[step_id].line,
                f"step {step_id!r} can never reach an <end> step (a loop with no way out)",
            )

    def check_silent_loops(self) -> None:
        """Branches that lead back to themselves without asking anything would spin forever."""
        steps = self.script.steps
        branches = {s.id for s in steps.values() if s.kind is StepKind.BRANCH}
        state: dict[str, int] = {}  # 1 = on the walk's stack, 2 = done
        for root in (s for s in steps if s in branches):  # file order: stable messages
            if root in state:
                continue
            # An explicit stack, not recursion: scripts may chain hundreds of branches.
            stack: list[tuple[str, list[str]]] = [
                (root, [t for t in self.edges(steps[root]) if t in branches])
            ]
            trail = [root]
            state[root] = 1
            while stack:
                node, pending = stack[-1]
                if not pending:
                    state[node] = 2
                    stack.pop()
                    trail.pop()
                    continue
                target = pending.pop(0)
                if state.get(target) == 1:
                    loop = [*trail[trail.index(target) :], target]
                    self.error(
                        steps[target].line,
                        "branches loop without a question or information step: "
                        + " -> ".join(loop),
                    )
                elif target not in state:
                    state[target] = 1
                    trail.append(target)
                    stack.append((target, [t for t in self.edges(steps[target]) if t in branches]))

    def dominators(self, reachable: set[str]) -> dict[str, set[str]]:
        """For each step, the steps every path from the start passes through (itself included)."""
        steps = self.script.steps
        order = [s for s in steps if s in reachable]
        predecessors: dict[str, set[str]] = {s: set() for s in order}
        for step_id in order:
            for target in self.edges(steps[step_id]):
                if target in predecessors:
                    predecessors[target].add(step_id)
        everything = set(order)
        dom = {s: set(everything) for s in order}
        dom[self.script.start] = {self.script.start}
        changed = True
        while changed:
            changed = False
            for step_id in order:
                if step_id == self.script.start:
                    continue
                preds = predecessors[step_id]
                new = set.intersection(*(dom[p] for p in preds)) if preds else set()
                new = new | {step_id}
                if new != dom[step_id]:
                    dom[step_id] = new
                    changed = True
        return dom

    # ---- expressions -------------------------------------------------------------------

    def uses(self) -> Iterator[_Use]:
        script = self.script
        for template in script.templates.values():
            where = f"e-mail template {template.id!r}"
            for expr in (*template.subject.expressions, *template.body.expressions):
                yield _Use(expr, where, None, True, None)
        for step in script.steps.values():
            where = f"step {step.id!r}"
            for text in (step.text, step.phone_text, step.hint):
                if text is not None:
                    for expr in text.expressions:
                        yield _Use(expr, f"{where} text", step, False, None)
            for transition in step.transitions:
                here = f"{where}, transition to {transition.to!r}"
                if transition.when is not None:
                    yield _Use(transition.when, here, step, True, None, condition=True)
                for action in transition.actions:
                    yield from self.action_uses(action, f"{here}, <{action.name}>", step)

    def action_uses(self, action: Action, where: str, step: Step) -> Iterator[_Use]:
        if isinstance(action, SetVariable):
            declared = self.script.variables.get(action.var)
            yield _Use(action.value, where, step, True, declared.type if declared else None)
        elif isinstance(action, SetField):
            field = self.script.customer_fields.get(action.field)
            yield _Use(action.value, where, step, True, field.type if field else None)
        elif isinstance(action, SendEmail):
            yield _Use(action.to, f"{where} to", step, True, ValueType.STRING)
        elif isinstance(action, CallService):
            for name, value in action.args:
                yield _Use(value, f"{where} argument {name!r}", step, True, None)
        elif isinstance(action, ScheduleCallback):
            yield _Use(action.at, f"{where} at", step, True, ValueType.DATETIME)
            if action.number is not None:
                yield _Use(action.number, f"{where} number", step, True, ValueType.STRING)
            yield from self.template_uses(action.note, where, step)
        elif isinstance(action, Transfer):
            yield from self.template_uses(action.note, where, step)

    def template_uses(self, template: Template | None, where: str, step: Step) -> Iterator[_Use]:
        if template is not None:
            for expr in template.expressions:
                yield _Use(expr, f"{where} note", step, True, None)

    def check_expressions(self, dominators: dict[str, set[str]]) -> None:
        for use in self.uses():
            if self.check_names(use, dominators):
                self.check_types(use)

    def check_names(self, use: _Use, dominators: dict[str, set[str]]) -> bool:
        """Report unknown names; True when every name is known (so types can be checked)."""
        script = self.script
        expr = use.expression
        ok = True
        # `has(answers.x) && answers.x ...`: one has() test guards every read of that answer.
        guarded = {ref.member for ref in expr.references if ref.root == "answers" and ref.guarded}
        for root in expr.unknown_roots:
            names = ", ".join(f"{r}" for r in ROOTS)
            self.error(
                expr.line,
                f"{use.where}: unknown name {root!r} in {expr.source!r}; names start with {names}",
            )
            ok = False
        for ref in expr.references:
            member = ref.member
            if ref.root not in ROOTS or member is None:
                continue
            if ref.root == "answers":
                step = script.steps.get(member)
                if step is None or step.kind is not StepKind.QUESTION:
                    self.error(
                        expr.line, f"{use.where}: answers.{member}: there is no question {member!r}"
                    )
                    ok = False
                elif use.step is not None and member not in guarded:
                    given = dominators.get(use.step.id, set())
                    if not use.after_answer:
                        given = given - {use.step.id}
                    if member not in given:
                        self.error(
                            expr.line,
                            f"{use.where}: answers.{member} may not be answered yet: not every "
                            f"path "
                            f"to here passes question {member!r} (test it with "
                            f"has(answers.{member}))",
                        )
                        ok = False
            elif ref.root == "customer":
                if script.customer_object is None:
                    self.error(
                        expr.line,
                        f"{use.where}: customer.{member}: the script declares no <customer>",
                    )
                    ok = False
                elif member not in script.customer_fields:
                    self.error(
                        expr.line,
                        f"{use.where}: customer.{member}: no such customer field is declared",
                    )
                    ok = False
            elif ref.root == "vars":
                if member not in script.variables:
                    self.error(
                        expr.line, f"{use.where}: vars.{member}: no such variable is declared"
                    )
                    ok = False
            elif ref.root == "call":
                if member not in CALL_FIELDS:
                    known = ", ".join(CALL_FIELDS)
                    self.error(expr.line, f"{use.where}: call.{member}: unknown; call has {known}")
                    ok = False
            elif ref.root == "error":
                if member not in ERROR_FIELDS:
                    self.error(
                        expr.line,
                        f"{use.where}: error.{member}: unknown; "
                        f"error has {', '.join(ERROR_FIELDS)}",
                    )
                    ok = False
            elif ref.root == "now":
                self.error(
                    expr.line, f"{use.where}: now.{member}: now is a timestamp and has no fields"
                )
                ok = False
        for question, literal in expr.comparisons:
            step = script.steps.get(question)
            if step is not None and step.answer_type is AnswerType.CHOICE:
                values = [c.value for c in step.choices]
                if literal not in values:
                    self.error(
                        expr.line,
                        f"{use.where}: answers.{question} is compared with {literal!r}, which is "
                        f"not "
                        f"one of its choices ({', '.join(values)})",
                    )
                    ok = False
        return ok

    def sample_context(self) -> dict[str, object]:
        if self._samples is None:
            self._samples = self._sample_context()
        return self._samples

    def _sample_context(self) -> dict[str, object]:
        script = self.script
        answers = {
            s.id: sample_answer(s) for s in script.steps.values() if s.kind is StepKind.QUESTION
        }
        return {
            "answers": answers,
            "customer": {name: sample_value(f.type) for name, f in script.customer_fields.items()},
            "vars": {name: sample_value(v.type) for name, v in script.variables.items()},
            "call": {name: sample_value(t) for name, t in CALL_FIELDS.items()},
            "now": SAMPLE_TIME,
            "error": {"code": "sample", "message": "sample", "action": "sample"},
        }

    def untyped(self, expr: Expression) -> bool:
        """Whether the expression reads a json value, whose shape only a run knows."""
        script = self.script
        for ref in expr.references:
            field = script.customer_fields.get(ref.member or "") if ref.root == "customer" else None
            if field is not None and field.type is ValueType.JSON:
                return True
            variable = script.variables.get(ref.member or "") if ref.root == "vars" else None
            if variable is not None and variable.type is ValueType.JSON:
                return True
            if ref.member is None and ref.root in ("answers", "customer", "vars", "call"):
                return True  # indexed access (answers["x"]) cannot be followed statically
        return False

    def check_types(self, use: _Use) -> None:
        expr = use.expression
        if self.untyped(expr):
            return
        context = self.sample_context()
        try:
            value = expr.evaluate(context)
        except ExpressionFailed as exc:
            self.error(expr.line, f"{use.where}: {expr.source!r}: {exc}")
            return
        if use.condition:
            if not isinstance(value, bool):
                self.error(
                    expr.line,
                    f"{use.where}: condition {expr.source!r} must give true or false, "
                    f"not {_article(_cel_type(value))}",
                )
                return
            for operand in top_level_operands(expr.source):
                try:
                    compile_expression(operand, expr.line).evaluate(context)
                except ExpressionFailed as exc:
                    self.error(expr.line, f"{use.where}: in {operand!r}: {exc}")
                except ValueError:
                    continue  # not an expression on its own; the whole one compiled fine
        elif use.expected is not None and not matches_type(value, use.expected):
            self.error(
                expr.line,
                f"{use.where}: {expr.source!r} gives {_article(_cel_type(value))}, "
                f"but {_article(use.expected.value)} is needed",
            )

    # ---- actions -------------------------------------------------------------------------

    def check_actions(self) -> None:
        script = self.script
        for step in script.steps.values():
            for transition in step.transitions:
                for action in transition.actions:
                    where = f"step {step.id!r}, <{action.name}>"
                    self.check_action(action, where)

    def check_action(self, action: Action, where: str) -> None:
        script = self.script
        if isinstance(action, SetVariable) and action.var not in script.variables:
            self.error(
                action.line, f"{where}: variable {action.var!r} is not declared in <variables>"
            )
        elif isinstance(action, SetField):
            if script.customer_object is None:
                self.error(
                    action.line, f"{where}: the script declares no <customer> to set a field of"
                )
            elif action.field not in script.customer_fields:
                self.error(action.line, f"{where}: customer field {action.field!r} is not declared")
        elif isinstance(action, SendEmail):
            if action.template not in script.templates:
                self.error(action.line, f"{where}: no e-mail template {action.template!r}")
        elif isinstance(action, CallService):
            declared = script.services.get(action.service)
            methods = declared.methods if declared is not None else None
            if methods is None:
                self.error(
                    action.line,
                    f"{where}: service {action.service!r} is not declared in <services>",
                )
            elif action.method not in methods:
                self.error(
                    action.line,
                    f"{where}: service {action.service!r} has no declared method {action.method!r} "
                    f"(declared: {', '.join(sorted(methods))})",
                )
            if action.result is not None and action.result not in script.variables:
                self.error(
                    action.line, f"{where}: result variable {action.result!r} is not declared"
                )
            if action.on_error is None and script.on_error is None:
                self.error(
                    action.line,
                    f'{where}: a service call can fail; give it on-error="step" or give the '
                    "script an on-error step",
                )

    # ---- channels ----------------------------------------------------------------------

    def check_channels(self) -> None:
        if Channel.PHONE not in self.script.channels:
            return
        for step in self.script.steps.values():
            where = f"step {step.id!r}"
            if step.answer_type is AnswerType.TEXT:
                self.error(
                    step.line,
                    f"{where} is a free-text question, which the phone cannot take (keys only); "
                    "use a choice, number or date question, or remove 'phone' from the script's "
                    "channels",
                )
            elif step.answer_type is AnswerType.NUMBER and not step.rules.integer:
                self.error(
                    step.line,
                    f"{where} takes a decimal number, which the phone keypad cannot type; "
                    "add integer=\"yes\" or remove 'phone' from the script's channels",
                )
            elif step.answer_type is AnswerType.CHOICE and len(step.choices) > MAX_PHONE_CHOICES:
                self.error(
                    step.line,
                    f"{where} has {len(step.choices)} choices; a phone menu offers at most "
                    f"{MAX_PHONE_CHOICES} (one key each)",
                )

    # ---- declarations nobody uses ------------------------------------------------------

    def check_unused(self) -> None:
        script = self.script
        read: set[tuple[str, str]] = set()
        for use in self.uses():
            for ref in use.expression.references:
                if ref.member is not None:
                    read.add((ref.root, ref.member))
        written: set[str] = set()
        called: set[str] = set()
        mailed: set[str] = set()
        for step in script.steps.values():
            for transition in step.transitions:
                for action in transition.actions:
                    if isinstance(action, SetVariable):
                        written.add(action.var)
                    elif isinstance(action, CallService):
                        called.add(action.service)
                        if action.result:
                            written.add(action.result)
                    elif isinstance(action, SendEmail):
                        mailed.add(action.template)
        for name, variable in script.variables.items():
            if ("vars", name) not in read and name not in written:
                self.warning(variable.line, f"variable {name!r} is never used")
        for template_id, template in script.templates.items():
            if template_id not in mailed:
                self.warning(template.line, f"e-mail template {template_id!r} is never sent")
        for service in script.services.values():
            if service.name not in called:
                self.warning(service.line, f"service {service.name!r} is declared but never called")


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _cel_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def validate(script: DialogScript) -> list[Problem]:
    """Every semantic problem of `script` (errors and warnings), in file order."""
    problems = _Validator(script).run()
    return sorted(dict.fromkeys(problems), key=lambda p: p.line)


def check_against_models(
    script: DialogScript, models: Iterable[BusinessObjectModel]
) -> list[Problem]:
    """Problems between a script's <customer> declaration and the business-object models.

    The object must exist, and every declared field must be one of its attributes with a
    compatible type (string and text are interchangeable).
    """
    if script.customer_object is None:
        return []
    found = None
    for model in models:
        for candidate in model.objects:
            if candidate.name == script.customer_object:
                found = candidate
    if found is None:
        return [
            Problem(
                script.file,
                script.line,
                f"<customer object={script.customer_object!r}>: no such business object "
                "in the storage models",
            )
        ]
    problems: list[Problem] = []
    texts = {"string", "text"}
    for field in script.customer_fields.values():
        attribute = found.attribute(field.name)
        if attribute is None:
            known = ", ".join(a.name for a in found.attributes)
            problems.append(
                Problem(
                    script.file,
                    field.line,
                    f"customer field {field.name!r}: {found.name} has no such attribute "
                    f"(it has {known})",
                )
            )
            continue
        declared, stored = field.type.value, attribute.type.value
        if declared != stored and not {declared, stored} <= texts:
            problems.append(
                Problem(
                    script.file,
                    field.line,
                    f"customer field {field.name!r} is declared {declared}, but "
                    f"{found.name}.{field.name} is {stored}",
                )
            )
    return problems


def check_against_services(
    script: DialogScript, available: Mapping[str, Collection[str]]
) -> list[Problem]:
    """Problems between the services a script declares and those actually registered
    (`available`: service name -> its method names), for the server to check at load time."""
    problems: list[Problem] = []
    for name, service in script.services.items():
        registered = available.get(name)
        if registered is None:
            problems.append(
                Problem(script.file, service.line, f"service {name!r} is not registered")
            )
            continue
        for method in sorted(service.methods - set(registered)):
            problems.append(
                Problem(script.file, service.line, f"service {name!r} has no method {method!r}")
            )
    return problems
