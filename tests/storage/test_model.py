"""The model file format: what a valid model means, and every way a bad one is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storage import AttributeType, ModelError, load_model, parse_model
from storage.examples import CUSTOMERS_MODEL
from storage.loader import MAX_MODEL_BYTES

MINIMAL = """<model name="m">
  <object name="{name}">
    <attribute name="id" type="integer" key="true"/>
  </object>
</model>
"""


def refused(text: str) -> ModelError:
    """The ModelError a model text gets (the test fails if it is accepted)."""
    with pytest.raises(ModelError) as caught:
        parse_model(text, source="bad.xml")
    return caught.value


def test_valid_model_gets_defaults_for_table_column_and_nullability() -> None:
    model = parse_model(
        """<?xml version="1.0"?>
<!DOCTYPE model SYSTEM "business-objects.dtd">
<model name="calls">
  <object name="CallRecord">
    <description>One finished call.</description>
    <attribute name="id" type="integer" key="true" generated="true"/>
    <attribute name="queue" type="string"/>
    <attribute name="caller" column="CALLER_NO" type="string" length="40" nullable="false"/>
    <index attributes="queue caller" unique="true"/>
  </object>
</model>""",
        source="calls.xml",
    )
    (record,) = model.objects
    assert (model.name, record.name, record.table, record.managed) == (
        "calls",
        "CallRecord",
        "call_record",
        True,
    )
    key, queue, caller = record.attributes
    assert key.key
    assert key.generated
    assert not key.nullable
    assert key.type is AttributeType.INTEGER
    assert (queue.column, queue.nullable, queue.effective_length) == ("queue", True, 255)
    assert (caller.column, caller.nullable, caller.length) == ("CALLER_NO", False, 40)
    assert record.indexes[0].name == "ix_call_record_queue_caller"
    assert record.indexes[0].unique
    assert record.description == "One finished call."
    assert (record.file, record.line, caller.line) == ("calls.xml", 4, 8)


def test_example_legacy_model_maps_customer_onto_kunden_stamm() -> None:
    model = load_model(CUSTOMERS_MODEL)
    customer = model.object("Customer")
    assert (customer.table, customer.managed) == ("KUNDEN_STAMM", False)
    columns = {attribute.name: attribute.column for attribute in customer.attributes}
    assert columns["id"] == "KDNR"
    assert columns["phone"] == "TELEFON"
    assert set(columns) == {"id", "name", "phone", "email", "priority", "account", "vip"}


def test_malformed_xml_names_file_and_line() -> None:
    error = refused('<model name="m">\n  <object name="A">\n    <attribute name="id"\n</model>')
    assert str(error).startswith("bad.xml:4: not well-formed XML")
    assert (error.file, error.line) == ("bad.xml", 4)


def test_dtd_violation_names_file_and_line() -> None:
    error = refused(
        '<model name="m">\n  <object name="A">\n'
        '    <attribute name="id" type="integer" key="true" colum="X"/>\n'
        "  </object>\n</model>"
    )
    assert str(error).startswith("bad.xml:3: invalid model:")
    assert "colum" in str(error)


def test_unknown_element_is_a_dtd_violation() -> None:
    error = refused(
        '<model name="m">\n  <object name="A">\n'
        '    <attribute name="id" type="integer" key="true"/>\n'
        '    <trigger name="x"/>\n  </object>\n</model>'
    )
    assert error.line is not None
    assert error.line >= 2
    assert "trigger" in str(error)


def test_external_entity_is_refused_and_the_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    error = refused(
        f'<?xml version="1.0"?>\n<!DOCTYPE model [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        '<model name="m"><object name="A">'
        '<description>&xxe;</description>'
        '<attribute name="id" type="integer" key="true"/></object></model>'
    )
    assert "TOP-SECRET-CONTENT" not in str(error)
    assert str(error).startswith("bad.xml:2:")


@pytest.mark.parametrize("place", ["content", "attribute"])
def test_billion_laughs_is_refused_quickly(place: str) -> None:
    entities = '<!ENTITY lol0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    name = "&lol9;" if place == "attribute" else "m"
    description = "<description>&lol9;</description>" if place == "content" else ""
    started = time.monotonic()
    error = refused(
        f'<?xml version="1.0"?>\n<!DOCTYPE model [{entities}]>\n'
        f'<model name="{name}">{description}<object name="A">'
        '<attribute name="id" type="integer" key="true"/></object></model>'
    )
    assert time.monotonic() - started < 2.0
    # Refused either by our no-declarations rule or by libxml2's amplification guard.
    assert str(error).startswith("bad.xml:")
    assert "declares entities" in str(error) or "amplification" in str(error)
    assert len(str(error)) < 400


def test_doctype_pointing_at_another_dtd_is_ignored_in_favour_of_ours(tmp_path: Path) -> None:
    # A DTD that would make "colour" legal must not be consulted: ours is the only one.
    (tmp_path / "evil.dtd").write_text('<!ATTLIST object colour CDATA #IMPLIED>')
    model_file = tmp_path / "m.xml"
    model_file.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE model SYSTEM "evil.dtd">\n'
        '<model name="m">\n<object name="A" colour="red">\n'
        '<attribute name="id" type="integer" key="true"/></object></model>'
    )
    with pytest.raises(ModelError) as caught:
        load_model(model_file)
    assert str(caught.value).startswith(f"{model_file}:4: invalid model:")


def test_duplicate_attribute_names_its_line() -> None:
    error = refused(
        '<model name="m">\n<object name="A">\n'
        '<attribute name="id" type="integer" key="true"/>\n'
        '<attribute name="id" type="string"/>\n</object>\n</model>'
    )
    assert str(error) == "bad.xml:4: object A: attribute id is defined twice"


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<attribute name="b" column="ID" type="string"/>',
            4,
            "column ID is used by attributes id and b",
        ),
        ('<attribute name="id" type="integer"/>', 2, "exactly one key attribute (found: none)"),
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<attribute name="b" type="integer" key="true"/>',
            2,
            "exactly one key attribute (found: id, b)",
        ),
        ('<attribute name="id" type="integr" key="true"/>', 3, "unknown type 'integr'"),
        ('<attribute name="id" type="text" key="true"/>', 3, "key must be of type integer or"),
        (
            '<attribute name="id" type="integer" key="true" nullable="true"/>',
            3,
            "a key attribute cannot be nullable",
        ),
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<attribute name="n" type="integer" generated="true"/>',
            4,
            "only the key attribute can be generated",
        ),
        ('<attribute name="id" type="string" key="true" generated="true"/>', 3, "integer key"),
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<attribute name="n" type="integer" length="4"/>',
            4,
            "length applies only to string",
        ),
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<attribute name="n" type="string" length="-1"/>',
            4,
            "length must be a whole number",
        ),
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<attribute name="class" type="string"/>',
            4,
            "must be a Python identifier",
        ),
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<attribute name="n" column="bad name" type="string"/>',
            4,
            "column name 'bad name'",
        ),
        (
            '<attribute name="id" type="integer" key="true"/>\n'
            '<index attributes="nope"/>',
            4,
            "index names unknown attribute 'nope'",
        ),
    ],
)
def test_semantic_errors_name_file_line_and_problem(body: str, line: int, fragment: str) -> None:
    error = refused(f'<model name="m">\n<object name="A">\n{body}\n</object>\n</model>')
    assert str(error).startswith(f"bad.xml:{line}: ")
    assert fragment in str(error)


def test_duplicate_object_and_duplicate_table_are_refused() -> None:
    twice = MINIMAL.replace("</model>", MINIMAL.split("\n", 1)[1].split("</model>")[0] + "</model>")
    error = refused(twice.format(name="A"))
    assert "object A is defined twice" in str(error)
    same_table = (
        '<model name="m">\n<object name="A" table="t">'
        '<attribute name="id" type="integer" key="true"/></object>\n'
        '<object name="B" table="T"><attribute name="id" type="integer" key="true"/></object>\n'
        "</model>"
    )
    assert "already used by object A" in str(refused(same_table))


def test_oversized_model_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(b"<model name='m'>" + b" " * MAX_MODEL_BYTES + b"</model>")
    with pytest.raises(ModelError, match=r"big\.xml:1: model file is too large"):
        load_model(big)


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read model file"):
        load_model(tmp_path / "absent.xml")
