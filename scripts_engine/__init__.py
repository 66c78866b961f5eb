"""Caruso's script engine: loads, validates and runs XML dialog scripts on every channel.

* `load_script` / `check_script`: hardened loading, DTD and semantic validation
  (``file:line: message`` for every problem).
* `ScriptEngine`: the pure core (state, answer and data in; next state, events and the
  effects to carry out out).
* `ScriptRunner` / `Run`: the session API channels use (start, view, answer, back, resume),
  with `ActionExecutor` carrying out e-mails, service calls, field updates and outcomes,
  and `StorageRunStore` keeping every run through the storage manager.
* `ScriptPlacement` / `check_placement`: which script runs for which queue, dialled number
  and public page, checked at start-up against models, services and queues;
  `DialogScripts` bundles the runner and the placement as one registered component.

The format is documented in docs/dialog-scripts.md; the DTD ships in `dialog_scripts`.
"""

from scripts_engine.actions import (
    ActionExecutor,
    BusinessObjects,
    Mailer,
    ServiceCaller,
    SmtpMailer,
    SmtpSettings,
    build_email,
)
from scripts_engine.effects import (
    ActionResult,
    CallbackRequested,
    Effect,
    ResultStatus,
    ScriptOutcome,
    TransferRequested,
)
from scripts_engine.engine import (
    Progress,
    RunEvent,
    RunState,
    RunStatus,
    ScriptEngine,
    StepView,
)
from scripts_engine.errors import (
    CannotGoBack,
    ChannelNotSupported,
    InvalidAnswer,
    InvalidScript,
    NoSuchRun,
    NoSuchScript,
    NotCurrentStep,
    Problem,
    RunNotActive,
    ScriptError,
    ScriptRuntimeError,
    Severity,
)
from scripts_engine.loader import ScriptCheck, check_script, load_script, load_script_bytes
from scripts_engine.placement import PlacementCheck, ScriptPlacement, check_placement
from scripts_engine.script import AnswerType, Channel, DialogScript, Step, StepKind
from scripts_engine.service import DialogScripts
from scripts_engine.session import Run, ScriptCatalog, ScriptRunner
from scripts_engine.store import (
    RunStore,
    StepStats,
    StorageBusinessObjects,
    StorageRunStore,
    runs_model,
)
from scripts_engine.values import answer_from_keys

__all__ = [
    "ActionExecutor",
    "ActionResult",
    "AnswerType",
    "BusinessObjects",
    "CallbackRequested",
    "CannotGoBack",
    "Channel",
    "ChannelNotSupported",
    "DialogScript",
    "DialogScripts",
    "Effect",
    "InvalidAnswer",
    "InvalidScript",
    "Mailer",
    "NoSuchRun",
    "NoSuchScript",
    "NotCurrentStep",
    "PlacementCheck",
    "Problem",
    "Progress",
    "ResultStatus",
    "Run",
    "RunEvent",
    "RunNotActive",
    "RunState",
    "RunStatus",
    "RunStore",
    "ScriptCatalog",
    "ScriptCheck",
    "ScriptEngine",
    "ScriptError",
    "ScriptOutcome",
    "ScriptPlacement",
    "ScriptRunner",
    "ScriptRuntimeError",
    "ServiceCaller",
    "Severity",
    "SmtpMailer",
    "SmtpSettings",
    "Step",
    "StepKind",
    "StepStats",
    "StepView",
    "StorageBusinessObjects",
    "StorageRunStore",
    "TransferRequested",
    "answer_from_keys",
    "build_email",
    "check_placement",
    "check_script",
    "load_script",
    "load_script_bytes",
    "runs_model",
]
