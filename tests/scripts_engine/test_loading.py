"""Loading scripts: shipped scripts are valid, hostile or broken files get a clear file:line "
"error."""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

import pytest

from dialog_scripts import shipped_scripts
from scripts_engine import Channel, InvalidScript, Severity, StepKind, check_script, load_script
from scripts_engine.loader import MAX_BYTES, MAX_DEPTH
from scripts_engine.validation import check_against_models, check_against_services
from storage import load_model
from storage.examples import CUSTOMERS_MODEL
from tests.scripts_engine.helpers import HEADER, NOW, script_xml, write

SHIPPED = shipped_scripts()


def messages(tmp_path: Path, text: str) -> list[str]:
    """Every problem of a script as printed (``file:line: message``), file name removed."""
    path = write(tmp_path, text)
    check = check_script(path, today=NOW.date())
    return [str(p).removeprefix(str(path)) for p in check.problems]


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    check = check_script(path, today=NOW.date())
    return [str(p).removeprefix(str(path)) for p in check.errors]


def test_all_five_sample_scripts_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert names == {
        "meter-reading.xml",
        "move-in-out.xml",
        "billing-complaint.xml",
        "outage-report.xml",
        "sales-campaign.xml",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_script_validates_without_errors_or_warnings(path: Path) -> None:
    check = check_script(path)
    assert check.ok, "\n".join(str(p) for p in check.problems)
    assert check.problems == ()
    assert check.script is not None
    assert any(step.kind is StepKind.END for step in check.script.steps.values())


def test_phone_scripts_declare_the_phone_channel() -> None:
    phone = {load_script(p).id for p in SHIPPED if Channel.PHONE in load_script(p).channels}
    assert phone == {"meter-reading", "outage-report"}


def test_malformed_xml_names_the_line_of_the_fault(tmp_path: Path) -> None:
    text = (
        HEADER
        + '<script id="t" version="1" title="T">\n<question id="q" type="yesno">\n</script>\n'
    )
    found = errors_of(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith(":5: malformed XML:")
    assert "mismatch" in found[0]


def test_xxe_attempt_is_refused_before_parsing_and_reads_no_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    text = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE script [\n  <!ENTITY xxe SYSTEM "file://{secret}">\n]>\n'
        '<script id="t" version="1" title="&xxe;"><end id="e" disposition="x"/></script>\n'
    )
    with pytest.raises(InvalidScript) as caught:
        load_script(write(tmp_path, text))
    assert ":3: entity declarations (<!ENTITY ...>) are not allowed" in str(caught.value)
    assert "TOP-SECRET" not in str(caught.value)


def test_billion_laughs_is_refused_quickly_with_a_clear_message(tmp_path: Path) -> None:
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    text = (
        '<?xml version="1.0"?>\n<!DOCTYPE script [\n'
        + "\n".join(levels)
        + '\n]>\n<script id="t" version="1" title="t">&lol9;</script>\n'
    )
    started = time.monotonic()
    found = errors_of(tmp_path, text)
    assert time.monotonic() - started < 1.0
    assert found == [
        ":3: entity declarations (<!ENTITY ...>) are not allowed in dialog scripts: "
        "they can read local files or expand without limit"
    ]


def test_entities_hidden_in_utf16_are_still_refused(tmp_path: Path) -> None:
    # The byte scan cannot see UTF-16 text; the parsed document's DTD subset gives it away.
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE script [<!ENTITY a "b">]>\n'
        '<script id="t" version="1" title="&a;"><end id="e" disposition="x"/></script>\n'
    )
    path = tmp_path / "utf16.xml"
    path.write_bytes(text.encode("utf-16"))
    check = check_script(path)
    assert check.script is None
    assert "internal DTD subset is not allowed" in str(check.errors[0])


def test_external_dtd_named_in_the_file_is_never_fetched(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    text = script_xml('<end id="e" disposition="done"/>').replace(
        '"dialog-script.dtd"', f'"http://127.0.0.1:{port}/evil.dtd"'
    )
    try:
        script = load_script(write(tmp_path, text))
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody came: the parser did not reach out
    finally:
        listener.close()
    assert script.start == "e"


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    padding = "<!-- " + "x" * MAX_BYTES + " -->"
    text = script_xml('<end id="e" disposition="done"/>' + padding)
    found = errors_of(tmp_path, text)
    assert found == [
        ":1: the file is larger than 1024 KiB, the limit for a dialog script; "
        "split it into several scripts"
    ]


def test_absurd_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    nested = "<a>" * (MAX_DEPTH + 5) + "</a>" * (MAX_DEPTH + 5)
    text = HEADER + f'<script id="t" version="1" title="t">\n{nested}\n</script>\n'
    found = errors_of(tmp_path, text)
    assert found == [f":4: elements are nested deeper than {MAX_DEPTH} levels"]


def test_empty_and_missing_files_get_clear_errors(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "  \n") == [":1: the file is empty"]
    check = check_script(tmp_path / "nope.xml")
    assert "cannot read the file" in str(check.errors[0])


def test_wrong_root_element(tmp_path: Path) -> None:
    assert errors_of(tmp_path, '<?xml version="1.0"?>\n<model/>\n') == [
        ":2: the root element must be <script>, not <model>"
    ]


def test_dtd_violations_are_explained_in_plain_words(tmp_path: Path) -> None:
    body = (
        '\n<question id="q" type="maybe" colour="red">\n<text>?</text>\n'
        '<next to="e"><frobnicate/></next>\n</question>\n<end disposition="x"/>'
    )
    found = errors_of(tmp_path, script_xml(body))
    assert ":6: unknown attribute 'colour' on <question>" in found
    assert (
        ":6: 'maybe' is not allowed for 'type' on <question>; allowed: choice, yesno, text, "
        "number, date" in found
    )
    assert any(
        m.startswith(":8: unknown action <frobnicate>; the actions are <set>, <set-field>")
        for m in found
    )
    assert ":10: <end> needs the attribute 'id'" in found
    assert [int(m.split(":")[1]) for m in found] == sorted(int(m.split(":")[1]) for m in found)


def test_script_whose_steps_are_fine_loads_into_a_graph(tmp_path: Path) -> None:
    body = """
<question id="q" type="yesno"><text>Ok?</text>
  <next to="good" when="answers.q"/>
  <next to="bad"/>
</question>
<end id="good" disposition="yes"/>
<end id="bad" disposition="no"/>"""
    path = write(tmp_path, script_xml(body, attrs='channels="agent web phone"'))
    script = load_script(path)
    assert script.start == "q"
    assert [t.to for t in script.steps["q"].transitions] == ["good", "bad"]
    assert script.channels == frozenset(Channel)
    assert script.steps["q"].line == 6


# ---- semantic checks -------------------------------------------------------------------

SEMANTIC_CASES: list[tuple[str, str, str, str]] = [
    (
        "dangling-target",
        '<question id="q" type="yesno"><text>?</text><next to="nowhere"/></question><end id="e" '
        'disposition="x"/>',
        "transition to 'nowhere', which does not exist",
        "",
    ),
    (
        "unreachable-step",
        '<information id="i"><text>hi</text><next to="e"/></information>'
        '<end id="e" disposition="x"/><end id="lost" disposition="y"/>',
        "step 'lost' is unreachable from the start step 'i'",
        "",
    ),
    (
        "no-way-out",
        '<question id="q" type="yesno"><text>?</text><next to="e" when="answers.q"/><next '
        'to="loop"/></question>'
        '<information id="loop"><text>again</text><next to="loop2"/></information>'
        '<information id="loop2"><text>again</text><next to="loop"/></information>'
        '<end id="e" disposition="x"/>',
        "step 'loop' can never reach an <end> step",
        "",
    ),
    (
        "silent-loop",
        '<information id="i"><text>hi</text><next to="b1"/></information>'
        '<branch id="b1"><next to="e" when="call.queue == \'x\'"/><next to="b2"/></branch>'
        '<branch id="b2"><next to="b1"/></branch><end id="e" disposition="x"/>',
        "branches loop without a question or information step: b1 -> b2 -> b1",
        "",
    ),
    (
        "no-default-transition",
        '<question id="q" type="yesno"><text>?</text><next to="e" when="answers.q"/></question>'
        '<end id="e" disposition="x"/>',
        'every transition has a condition, so a run could stop here; add a last <next to="..."/>',
        "",
    ),
    (
        "never-taken",
        '<question id="q" type="yesno"><text>?</text><next to="e"/><next to="e" when="answers.q"/>'
        "</question>"
        '<end id="e" disposition="x"/>',
        "the transition to 'e' is never taken: an earlier transition has no condition",
        "",
    ),
    (
        "unknown-name",
        '<question id="q" type="yesno"><text>?</text><next to="e" when="balance &gt; 3.0"/><next '
        'to="e"/></question>'
        '<end id="e" disposition="x"/>',
        "unknown name 'balance' in 'balance > 3.0'; names start with answers, customer, vars, "
        "call, now, error",
        "",
    ),
    (
        "unknown-question",
        '<question id="q" type="yesno"><text>?</text><next to="e" when="answers.qq"/><next '
        'to="e"/></question>'
        '<end id="e" disposition="x"/>',
        "answers.qq: there is no question 'qq'",
        "",
    ),
    (
        "answer-not-given-yet",
        '<question id="a" type="yesno"><text>?</text><next to="b" when="answers.a"/><next to="c"/>'
        "</question>"
        '<question id="b" type="yesno"><text>?</text><next to="c"/></question>'
        '<question id="c" type="yesno"><text>?</text><next to="e" when="answers.b"/><next to="e"/>'
        "</question>"
        '<end id="e" disposition="x"/>',
        "answers.b may not be answered yet: not every path to here passes question 'b'",
        "",
    ),
    (
        "unknown-customer-field",
        '<information id="i"><text>Hi {{ customer.nmae }}</text><next to="e"/></information>'
        '<end id="e" disposition="x"/>',
        "customer.nmae: no such customer field is declared",
        "",
    ),
    (
        "unknown-variable",
        '<information id="i"><text>hi</text><next to="e"><set var="nope" value="1"/></next>'
        "</information>"
        '<end id="e" disposition="x"/>',
        "variable 'nope' is not declared in <variables>",
        "",
    ),
    (
        "unknown-call-field",
        '<branch id="b"><next to="e" when="call.colour == \'red\'"/><next to="e"/></branch>'
        '<end id="e" disposition="x"/>',
        "call.colour: unknown; call has channel, agent, customer_id, caller",
        "",
    ),
    (
        "type-error-in-condition",
        '<question id="n" type="number"><text>?</text><next to="e" when="answers.n + 1 &gt; 2.0"/>'
        '<next to="e"/></question>'
        '<end id="e" disposition="x"/>',
        "'answers.n + 1 > 2.0':",
        "",
    ),
    (
        "type-error-hidden-behind-and",
        '<question id="y" type="yesno"><text>?</text><next to="e" when="!answers.y &amp;&amp; '
        'customer.name + 1 == 2"/>'
        '<next to="e"/></question><end id="e" disposition="x"/>',
        "in 'customer.name + 1 == 2':",
        "",
    ),
    (
        "condition-not-boolean",
        '<question id="t" type="choice"><text>?</text><choice value="a">A</choice><choice '
        'value="b">B</choice>'
        '<next to="e" when="answers.t"/><next to="e"/></question><end id="e" disposition="x"/>',
        "condition 'answers.t' must give true or false, not a string",
        "",
    ),
    (
        "misspelt-choice",
        '<question id="t" type="choice"><text>?</text><choice value="gas">Gas</choice><choice '
        'value="power">P</choice>'
        '<next to="e" when="answers.t == \'gaz\'"/><next to="e"/></question><end id="e" '
        'disposition="x"/>',
        "answers.t is compared with 'gaz', which is not one of its choices (gas, power)",
        "",
    ),
    (
        "variable-type",
        '<information id="i"><text>hi</text><next to="e"><set var="count" value="\'many\'"/>'
        "</next></information>"
        '<end id="e" disposition="x"/>',
        "\"'many'\" gives a string, but an integer is needed",
        '<variables><variable name="count" type="integer"/></variables>',
    ),
    (
        "undeclared-service",
        '<information id="i"><text>hi</text><next to="e"><call-service service="erp" '
        'method="update"/></next>'
        '</information><end id="e" disposition="x"/>',
        "service 'erp' is not declared in <services>",
        "",
    ),
    (
        "undeclared-method",
        '<information id="i"><text>hi</text><next to="e"><call-service service="erp" '
        'method="delete" on-error="e"/>'
        '</next></information><end id="e" disposition="x"/>',
        "service 'erp' has no declared method 'delete' (declared: update)",
        '<services><service name="erp" methods="update"/></services>',
    ),
    (
        "service-without-error-branch",
        '<information id="i"><text>hi</text><next to="e"><call-service service="erp" '
        'method="update"/></next>'
        '</information><end id="e" disposition="x"/>',
        'a service call can fail; give it on-error="step" or give the script an on-error step',
        '<services><service name="erp" methods="update"/></services>',
    ),
    (
        "unknown-template",
        '<information id="i"><text>hi</text><next to="e"><send-email template="nope" '
        'to="customer.email"/>'
        '</next></information><end id="e" disposition="x"/>',
        "no e-mail template 'nope'",
        "",
    ),
    (
        "set-undeclared-field",
        '<information id="i"><text>hi</text><next to="e"><set-field field="phone" value="\'1\'"/>'
        "</next>"
        '</information><end id="e" disposition="x"/>',
        "customer field 'phone' is not declared",
        "",
    ),
    (
        "syntax-error",
        '<question id="q" type="yesno"><text>?</text><next to="e" when="answers.q &amp;&amp;"/>'
        '<next to="e"/>'
        '</question><end id="e" disposition="x"/>',
        "when='answers.q &&': syntax error at column 13: the expression ends too early",
        "",
    ),
    (
        "duplicate-step",
        '<information id="i"><text>hi</text><next to="e"/></information><end id="e" '
        'disposition="x"/>'
        '<end id="e" disposition="y"/>',
        "duplicate step id 'e'",
        "",
    ),
    (
        "id-not-identifier",
        '<information id="the-start"><text>hi</text><next to="e"/></information><end id="e" '
        'disposition="x"/>',
        "step id 'the-start' must be an identifier",
        "",
    ),
    (
        "bad-pattern",
        '<question id="t" type="text" pattern="[0-9"><text>?</text><next to="e"/></question>'
        '<end id="e" disposition="x"/>',
        "pattern '[0-9' is not a valid regular expression",
        "",
    ),
    (
        "bad-date-limit",
        '<question id="d" type="date" min="yesterday"><text>?</text><next to="e"/></question>'
        '<end id="e" disposition="x"/>',
        "bad date limit 'yesterday': write YYYY-MM-DD, today, today+N or today-N",
        "",
    ),
    (
        "unclosed-placeholder",
        '<information id="i"><text>Hi {{ customer.name</text><next to="e"/></information><end '
        'id="e" disposition="x"/>',
        "'{{' without a closing '}}'",
        "",
    ),
]


@pytest.mark.parametrize(
    ("body", "expected", "declarations"),
    [case[1:] for case in SEMANTIC_CASES],
    ids=[case[0] for case in SEMANTIC_CASES],
)
def test_semantic_problem_is_reported_with_its_line(
    tmp_path: Path, body: str, expected: str, declarations: str
) -> None:
    # Each case keeps its steps on one line (line 5), so the line number is checked too.
    found = errors_of(tmp_path, script_xml(body, declarations=declarations))
    assert any(expected in message for message in found), found
    assert all(message.startswith(":") and message.split(":")[1].isdigit() for message in found)
    assert any(message.startswith((":4:", ":5:")) for message in found), found


def test_has_guard_allows_reading_an_answer_that_may_be_missing(tmp_path: Path) -> None:
    body = (
        '<question id="a" type="yesno"><text>?</text><next to="b" when="answers.a"/><next to="c"/>'
        "</question>"
        '<question id="b" type="yesno"><text>?</text><next to="c"/></question>'
        '<question id="c" type="yesno"><text>?</text>'
        '<next to="e" when="has(answers.b) &amp;&amp; answers.b"/><next to="e"/></question>'
        '<end id="e" disposition="x"/>'
    )
    assert errors_of(tmp_path, script_xml(body)) == []


def test_phone_channel_reports_steps_the_phone_cannot_render(tmp_path: Path) -> None:
    choices = "".join(f'<choice value="c{i}">C{i}</choice>' for i in range(11))
    body = (
        '\n<question id="free" type="text"><text>Tell me</text><next to="amount"/></question>'
        '\n<question id="amount" type="number"><text>How much?</text><next to="many"/></question>'
        f'\n<question id="many" type="choice"><text>Pick</text>{choices}<next to="e"/></question>'
        '\n<end id="e" disposition="x"/>'
    )
    found = errors_of(tmp_path, script_xml(body, attrs='channels="agent phone"'))
    assert any(
        m.startswith(":6: step 'free' is a free-text question, which the phone cannot take")
        for m in found
    )
    assert any(m.startswith(":7: step 'amount' takes a decimal number") for m in found)
    assert any(
        m.startswith(":8: step 'many' has 11 choices; a phone menu offers at most 10")
        for m in found
    )
    # The same script without the phone channel is fine (choice keys run out only on the phone).
    assert all("phone" not in m for m in errors_of(tmp_path, script_xml(body)))


def test_unused_declarations_are_warnings_not_errors(tmp_path: Path) -> None:
    text = script_xml(
        '<information id="i"><text>hi</text><next to="e"/></information><end id="e" '
        'disposition="x"/>',
        declarations='<variables><variable name="spare" type="string"/></variables>',
    )
    path = write(tmp_path, text)
    check = check_script(path)
    assert check.ok
    assert [p.severity for p in check.problems] == [Severity.WARNING]
    assert str(check.problems[0]).endswith(":5: warning: variable 'spare' is never used")


def test_invalid_script_error_lists_every_problem(tmp_path: Path) -> None:
    body = (
        '<question id="q" type="yesno"><text>?</text><next to="x"/></question>'
        '<end id="e" disposition="x"/>'
    )
    with pytest.raises(InvalidScript) as caught:
        load_script(write(tmp_path, script_xml(body)))
    error = caught.value
    assert error.code == "invalid-dialog-script"
    assert len(error.problems) >= 1
    assert all(str(p).startswith(str(tmp_path)) for p in error.problems)
    assert error.details["problems"]


def test_customer_fields_are_checked_against_the_storage_model(tmp_path: Path) -> None:
    model = load_model(CUSTOMERS_MODEL)
    for path in SHIPPED:
        assert check_against_models(load_script(path), [model]) == []
    script = load_script(
        write(
            tmp_path,
            script_xml('<end id="e" disposition="x"/>'),  # declares balance (float), vip, ...
        )
    )
    found = [p.message for p in check_against_models(script, [model])]
    assert found == [
        "customer field 'balance': Customer has no such attribute "
        "(it has id, name, phone, email, priority, account, vip)"
    ]
    wrong_type = load_script(
        write(
            tmp_path,
            script_xml('<end id="e" disposition="x"/>').replace(
                'name="vip" type="boolean"', 'name="vip" type="integer"'
            ),
        )
    )
    assert "customer field 'vip' is declared integer, but Customer.vip is boolean" in [
        p.message for p in check_against_models(wrong_type, [model])
    ]


def test_declared_services_are_checked_against_the_registered_ones() -> None:
    script = load_script(next(p for p in SHIPPED if p.stem == "sales-campaign"))
    registered = {"sales": ["quote", "create_order"], "campaigns": ["add_contacts"]}
    found = [(p.line, p.message) for p in check_against_services(script, registered)]
    assert found == [(25, "service 'campaigns' has no method 'do_not_call'")]
    assert [p.message for p in check_against_services(script, {})] == [
        "service 'sales' is not registered",
        "service 'campaigns' is not registered",
    ]


def test_validate_command_checks_fields_against_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from commserver.commands import script as command

    path = write(tmp_path, script_xml('<end id="e" disposition="x"/>'))
    parser = argparse.ArgumentParser()
    command.configure(parser)
    assert command.run(parser.parse_args(["validate", str(path)])) == 0
    args = parser.parse_args(["validate", str(path), "--model", str(CUSTOMERS_MODEL)])
    assert command.run(args) == 1
    assert f"{path}:4: customer field 'balance': Customer has no such attribute" in (
        capsys.readouterr().err
    )


def test_catalog_loads_a_folder_and_reports_the_scripts_it_refused(tmp_path: Path) -> None:
    from scripts_engine import NoSuchScript, ScriptCatalog

    catalog = ScriptCatalog()
    assert catalog.load_directory(SHIPPED[0].parent) == []
    assert len(catalog) == 5
    assert catalog.get("meter-reading").title == "Meter reading"
    assert catalog.get("meter-reading", "1").version == "1"
    with pytest.raises(NoSuchScript):
        catalog.get("meter-reading", "2")
    write(tmp_path, "<script/>", "broken.xml")
    problems = ScriptCatalog().load_directory(tmp_path)
    assert problems
    assert all(p.file.endswith("broken.xml") for p in problems)
