"""`caruso script validate | graph | run | stats`, called the way a user types them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from commserver.cli import main
from dialog_scripts import PACKAGE_DIR, shipped_scripts
from storage.examples import CUSTOMERS_MODEL, seed_legacy_customers
from tests.scripts_engine.helpers import script_xml, write

METER = PACKAGE_DIR / "meter-reading.xml"


def test_validate_exits_zero_for_the_shipped_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["script", "validate", *map(str, shipped_scripts())])
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert f"{METER}: ok: meter-reading version 1, 14 steps" in out


def test_validate_exits_non_zero_with_file_line_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(
        tmp_path,
        script_xml('<question id="q" type="yesno"><text>?</text><next to="x"/></question>'),
        "bad.xml",
    )
    code = main(["script", "validate", str(METER), str(bad)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{bad}:5: step 'q': transition to 'x', which does not exist" in err
    assert "1 of 2 script(s) invalid" in err
    assert "meter-reading version 1" in out


def test_graph_writes_an_svg_with_every_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "meter.svg"
    assert main(["script", "graph", str(METER), "-o", str(target)]) == 0
    svg = etree.fromstring(target.read_bytes())
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    steps = svg.findall(".//{http://www.w3.org/2000/svg}g[@class='step']")
    assert len(steps) == 14
    assert {g.get("data-step") for g in steps} >= {"welcome", "reading", "recorded"}
    edges = svg.findall(".//{http://www.w3.org/2000/svg}g[@class='transition']")
    pairs = {(g.get("data-from"), g.get("data-to")) for g in edges}
    assert ("lower_than_before", "reading") in pairs  # the loop back is drawn
    assert ("meter_kind", "metering_down") in pairs  # and the error branch
    # Default: the SVG goes to stdout.
    capsys.readouterr()
    assert main(["script", "graph", str(METER)]) == 0
    assert capsys.readouterr().out.startswith("<svg ")


def test_graph_escapes_what_the_author_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (
        '<question id="q" type="yesno" title="&lt;script&gt;alert(1)&lt;/script&gt;"><text>?</text>'
        '<next to="e" when="answers.q &amp;&amp; call.queue != &quot;&lt;b&gt;&quot;"/><next '
        'to="e"/></question>'
        '<end id="e" disposition="x"/>'
    )
    path = write(tmp_path, script_xml(body))
    assert main(["script", "graph", str(path)]) == 0
    out = capsys.readouterr().out
    etree.fromstring(out.encode())  # well-formed
    assert "<script>" not in out
    assert "&lt;script&gt;" in out


def _answers(tmp_path: Path, answers: dict[str, object]) -> Path:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    return path


def test_headless_run_prints_exactly_path_actions_fields_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = _answers(
        tmp_path,
        {
            "meter_kind": "gas",
            "reading": [900, 1500],
            "lower_than_before": "no",
            "reading_date": datetime.now(UTC).date().isoformat(),
            "confirm": True,
        },
    )
    customer = tmp_path / "customer.json"
    customer.write_text(
        json.dumps({"id": 7, "name": "Ann", "account": "4711", "email": "ann@example.com"})
    )
    services = tmp_path / "services.json"
    services.write_text(
        json.dumps(
            {
                "metering.last_reading": {"result": {"value": 1000}},
                "metering.submit_reading": {"result": {"reference": "R-77"}},
            }
        )
    )
    code = main(
        [
            "script",
            "run",
            str(METER),
            "--answers",
            str(answers),
            "--customer-data",
            str(customer),
            "--service-results",
            str(services),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == ["path", "actions", "fields", "outcome"]
    assert result["path"] == [
        "welcome",
        "greet_known",
        "meter_kind",
        "reading",
        "lower_than_before",
        "reading",
        "reading_date",
        "confirm",
        "send_receipt",
        "recorded",
    ]
    assert result["actions"] == [
        {
            "name": "call-service metering.last_reading",
            "result": {"status": "ok", "value": {"value": 1000}},
        },
        {
            "name": "call-service metering.submit_reading",
            "result": {"status": "ok", "value": {"reference": "R-77"}},
        },
        {
            "name": "send-email reading_receipt",
            "result": {
                "status": "skipped",
                "code": "not-configured",
                "message": "no SMTP server is configured",
            },
        },
    ]
    assert result["fields"]["vars.consumption"] == 500
    assert result["fields"]["vars.attempts"] == 1
    assert result["outcome"] == "completed"


def test_headless_run_stops_at_the_first_step_without_an_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "script",
            "run",
            str(METER),
            "--answers",
            str(_answers(tmp_path, {"ask_account": 123456})),
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["path"] == ["welcome", "ask_account", "meter_kind"]
    assert result["outcome"] == "meter_kind"
    assert result["fields"]["vars.account"] == "123456"


def test_headless_run_without_service_results_takes_the_error_branch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = _answers(tmp_path, {"ask_account": 123456, "meter_kind": "gas"})
    assert main(["script", "run", str(METER), "--answers", str(answers), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["actions"][0]["result"]["code"] == "service-unavailable"
    assert result["actions"][1]["name"] == "schedule-callback metering"
    assert result["path"][-2:] == ["metering_down", "callback_planned"]
    assert result["outcome"] == "completed"


def test_headless_run_reports_a_refused_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = _answers(tmp_path, {"ask_account": 12})
    assert main(["script", "run", str(METER), "--answers", str(answers), "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["outcome"] == "ask_account"
    assert "step 'ask_account': answer 12 refused: the number must be at least 100000" in err


def test_headless_run_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "answers.json"
    broken.write_text("{not json")
    assert main(["script", "run", str(METER), "--answers", str(broken)]) == 2
    assert "not valid JSON (answers)" in capsys.readouterr().err
    assert (
        main(
            [
                "script",
                "run",
                str(METER),
                "--answers",
                str(_answers(tmp_path, {})),
                "--customer",
                "7",
            ]
        )
        == 2
    )
    assert "--customer loads the customer from storage" in capsys.readouterr().err


def test_headless_run_with_a_customer_from_the_database_then_stats(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    asyncio.run(seed_legacy_customers(sqlite_url))
    answers = _answers(tmp_path, {"meter_kind": "water"})
    code = main(
        [
            "script",
            "run",
            str(METER),
            "--answers",
            str(answers),
            "--customer",
            "10002",
            "--db",
            sqlite_url,
            "--model",
            str(CUSTOMERS_MODEL),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (
        "path:    welcome -> greet_known -> meter_kind -> metering_down -> callback_planned" in out
    )
    assert 'field:   vars.account = "DE-10002"' in out
    assert "outcome: completed" in out
    # The run was stored: statistics see it.
    assert main(["script", "stats", "meter-reading", "--db", sqlite_url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    reached = {row["step_id"]: row["reached"] for row in stats["steps"]}
    assert reached == {
        "welcome": 1,
        "greet_known": 1,
        "meter_kind": 1,
        "metering_down": 1,
        "callback_planned": 1,
    }
    assert main(["script", "stats", "meter-reading", "--db", sqlite_url]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "step",
        "reached",
        "visits",
        "answered",
        "dropped",
        "waiting",
        "mean",
        "s",
    ]
    assert (
        main(
            [
                "script",
                "run",
                str(METER),
                "--answers",
                str(answers),
                "--customer",
                "999",
                "--db",
                sqlite_url,
                "--model",
                str(CUSTOMERS_MODEL),
            ]
        )
        == 2
    )
    assert "no Customer with key '999'" in capsys.readouterr().err
