"""OpenAPI descriptions of the dialog-script routes (`monitor/scripts_api.py`).

Those handlers belong to the scripts pane and the self-service page; until they carry their
own `@operation(...)` this module describes them, and only fills in what is missing, so a
description written next to a handler always wins.
"""

from __future__ import annotations

from aiohttp import web

from monitor.apidoc import (
    BOOLEAN,
    INTEGER,
    STRING,
    Operation,
    Param,
    array,
    described,
    nullable,
    obj,
)

RUN = obj(["run", "view"], run={"type": "object"}, view={"type": "object"},
          actions=array({"type": "object"}))
PUBLIC_RUN = obj(["script", "run", "view"], script=obj(["id", "title"], id=STRING, title=STRING),
                 run=nullable({"type": "object"}), view=nullable({"type": "object"}))
ANSWER = obj(["step"], step=STRING, value={"type": ["string", "number", "boolean", "null"]})
SCRIPT = obj(["id", "version", "title", "channels", "queues", "numbers", "public", "steps"],
             id=STRING, version=STRING, title=STRING, channels=array(STRING),
             queues=array(STRING), numbers=array(STRING), public=BOOLEAN, steps=INTEGER)
SCRIPT_ERRORS = (404, 409, 503)
PUBLIC_ERRORS = (404, 409, 429, 503)

DESCRIPTIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/api/scripts/contacts/{contact_id}"): Operation(
        "Start (or resume) the queue's dialog script for one's current contact",
        ("scripts",), path={"contact_id": "the contact on one's desktop"}, returns=RUN,
        errors=SCRIPT_ERRORS,
    ),
    ("GET", "/api/scripts/runs/{run_id}"): Operation(
        "A script run and its current step", ("scripts",), path={"run_id": "the run"},
        returns=RUN, errors=SCRIPT_ERRORS,
    ),
    ("POST", "/api/scripts/runs/{run_id}/answer"): Operation(
        "Answer the run's current step", ("scripts",), path={"run_id": "the run"},
        body=ANSWER, returns=RUN, errors=SCRIPT_ERRORS,
    ),
    ("POST", "/api/scripts/runs/{run_id}/back"): Operation(
        "Go back to the previous step", ("scripts",), path={"run_id": "the run"},
        returns=RUN, errors=SCRIPT_ERRORS,
    ),
    ("GET", "/api/scripts"): Operation(
        "The loaded dialog scripts and where each runs", ("scripts",),
        returns=obj(["scripts"], scripts=array(SCRIPT)), errors=(503,),
    ),
    ("GET", "/api/scripts/{script_id}/stats"): Operation(
        "Per-step analytics of a script (drop-off, time per step)", ("scripts",),
        path={"script_id": "the script"},
        query=(Param("since", {"type": "string", "format": "date"}, "first day"),
               Param("until", {"type": "string", "format": "date"}, "day after the last"),
               Param("version", STRING, "one version of the script")),
        returns=obj(["script", "version", "since", "until", "steps"], script=STRING,
                    version=nullable(STRING), since=nullable(STRING), until=nullable(STRING),
                    steps=array({"type": "object"})),
        errors=SCRIPT_ERRORS,
    ),
    ("GET", "/api/self-service/{script_id}"): Operation(
        "A public self-service script and the visitor's run, if any", ("self-service",),
        path={"script_id": "a public web script"}, returns=PUBLIC_RUN, errors=PUBLIC_ERRORS,
    ),
    ("POST", "/api/self-service/{script_id}/start"): Operation(
        "Start a self-service run (sets the visitor's run cookie)", ("self-service",),
        path={"script_id": "a public web script"}, returns=PUBLIC_RUN, errors=PUBLIC_ERRORS,
    ),
    ("POST", "/api/self-service/{script_id}/answer"): Operation(
        "Answer the visitor's current step", ("self-service",),
        path={"script_id": "a public web script"}, body=ANSWER, returns=PUBLIC_RUN,
        errors=PUBLIC_ERRORS,
    ),
    ("POST", "/api/self-service/{script_id}/back"): Operation(
        "Go back to the visitor's previous step", ("self-service",),
        path={"script_id": "a public web script"}, returns=PUBLIC_RUN, errors=PUBLIC_ERRORS,
    ),
}


def describe_script_routes(app: web.Application) -> None:
    """Attach a description to every script route whose handler has none of its own."""
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        op = DESCRIPTIONS.get((route.method, resource.canonical))
        if op is not None and described(route.handler) is None:
            route.handler.__openapi__ = op  # type: ignore[attr-defined]
