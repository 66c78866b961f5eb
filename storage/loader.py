"""Reads business-object model files: hardened XML, our own DTD, then semantic checks.

A model file comes from an integrator, so it is treated as untrusted input: entities are
never expanded, nothing is fetched from the network, the file's own DOCTYPE is ignored in
favour of the DTD shipped with this package, and the size is capped. Every problem becomes
a `ModelError` whose message starts with ``file:line:``.
"""

from __future__ import annotations

import functools
import io
import keyword
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from lxml import etree

from storage.errors import ModelError
from storage.model import (
    KEY_TYPES,
    AttributeSpec,
    AttributeType,
    BusinessObject,
    BusinessObjectModel,
    IndexSpec,
)

#: Larger model files are refused before parsing; real models are a few kilobytes.
MAX_MODEL_BYTES = 1024 * 1024

#: Longest identifier every supported backend accepts (PostgreSQL's limit is 63).
MAX_IDENTIFIER = 63

#: A VARCHAR longer than this does not fit MariaDB's row limit in utf8mb4; use ``text``.
MAX_STRING_LENGTH = 16383

#: The DTD every model is validated against, shipped inside this package.
DTD_PATH = Path(__file__).with_name("business-objects.dtd")

_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]*$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@functools.lru_cache(maxsize=1)
def _business_objects_dtd() -> etree.DTD:
    """Our DTD, loaded once from the package (never the one a model file points at)."""
    return etree.DTD(io.BytesIO(DTD_PATH.read_bytes()))


def hardened_parser(*, keep_comments: bool = False) -> etree.XMLParser:
    """A parser that expands no entity, loads no DTD, touches no network, caps tree size.

    Every XML file Caruso reads (business-object models, dialog scripts) goes through it.
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=not keep_comments,
        remove_pis=not keep_comments,
    )


def snake_case(name: str) -> str:
    """``CallRecord`` -> ``call_record``: the default table name of a managed object."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def load_model(path: Path | str) -> BusinessObjectModel:
    """Read and check the model file at `path`; ModelError("file:line: message") if it is bad."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelError(
                f"model file is too large ({size} bytes; the limit is {MAX_MODEL_BYTES})",
                file=source,
                line=1,
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file: {exc.strerror or exc}", file=source) from exc
    return parse_model(data, source=source)


def parse_model(data: bytes | str, *, source: str = "<model>") -> BusinessObjectModel:
    """Check a model given as text; `source` names it in error messages."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_MODEL_BYTES:
        raise ModelError(
            f"model is too large ({len(raw)} bytes; the limit is {MAX_MODEL_BYTES})",
            file=source,
            line=1,
        )
    try:
        tree = etree.parse(io.BytesIO(raw), hardened_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else 1
        raise ModelError(f"not well-formed XML: {exc.msg}", file=source, line=line) from exc
    _refuse_declarations(tree, source, _line_of(raw, b"<!DOCTYPE"))
    root = tree.getroot()
    dtd = _business_objects_dtd()
    if not dtd.validate(root):
        errors: list[Any] = list(cast("Iterable[Any]", dtd.error_log))
        first = errors[0] if errors else None
        message = first.message if first is not None else "does not match the model DTD"
        error_line = first.line if first is not None and first.line else _line(root)
        raise ModelError(
            f"invalid model: {message}",
            file=source,
            line=error_line,
            problems=[f"{source}:{error.line}: {error.message}" for error in errors],
        )
    return _ModelReader(source).read(root)


def _line_of(raw: bytes, needle: bytes) -> int:
    """The 1-based line where `needle` first occurs in `raw` (1 if absent)."""
    position = raw.find(needle)
    return raw.count(b"\n", 0, position) + 1 if position >= 0 else 1


def _refuse_declarations(tree: etree._ElementTree, source: str, doctype_line: int) -> None:
    """Refuse an internal DTD subset and entity references: no XXE, no billion laughs."""
    internal: Any = tree.docinfo.internalDTD
    if internal is not None and (
        any(True for _ in internal.iterentities()) or any(True for _ in internal.iterelements())
    ):
        raise ModelError(
            "the model declares entities or elements in its DOCTYPE; declarations are not "
            "allowed (the model is checked against Caruso's own business-objects.dtd)",
            file=source,
            line=doctype_line,
        )
    for node in tree.iter():
        if isinstance(node, etree._Entity):
            raise ModelError(
                f"entity reference {node.text} is not allowed in a model",
                file=source,
                line=_line(node),
            )


def _line(element: etree._Element) -> int | None:
    """The element's line in its file (lxml may not know it)."""
    line: object = element.sourceline  # lxml-stubs mistype it; it is int or None
    return line if isinstance(line, int) else None


def _flag(element: etree._Element, name: str, default: bool) -> bool:
    """A true/false attribute (the DTD already restricted its values)."""
    value = element.get(name)
    return default if value is None else value == "true"


class _ModelReader:
    """Turns a DTD-valid element tree into a BusinessObjectModel, checking what the DTD can't."""

    def __init__(self, source: str) -> None:
        self._source = source

    def _error(self, element: etree._Element, message: str, **details: object) -> ModelError:
        return ModelError(message, file=self._source, line=_line(element), **details)

    def read(self, root: etree._Element) -> BusinessObjectModel:
        """The model of a DTD-valid root element; ModelError on the first semantic problem."""
        name = (root.get("name") or "").strip()
        if not name:
            raise self._error(root, "the model needs a non-empty name")
        objects: list[BusinessObject] = []
        object_names: set[str] = set()
        tables: dict[tuple[str, str], str] = {}
        index_names: dict[str, str] = {}
        for element in root.iterchildren("object"):
            business_object = self._read_object(element)
            if business_object.name in object_names:
                raise self._error(element, f"object {business_object.name} is defined twice")
            object_names.add(business_object.name)
            table_id = ((business_object.schema or "").lower(), business_object.table.lower())
            if table_id in tables:
                raise self._error(
                    element,
                    f"object {business_object.name} uses table {business_object.table}, "
                    f"already used by object {tables[table_id]}",
                )
            tables[table_id] = business_object.name
            for index in business_object.indexes:
                if index.name.lower() in index_names:
                    raise ModelError(
                        f"index name {index.name} is used twice "
                        f"(objects {index_names[index.name.lower()]} and {business_object.name})",
                        file=self._source,
                        line=index.line,
                    )
                index_names[index.name.lower()] = business_object.name
            objects.append(business_object)
        return BusinessObjectModel(name=name, objects=tuple(objects), file=self._source)

    def _read_object(self, element: etree._Element) -> BusinessObject:
        name = element.get("name", "")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise self._error(element, f"object name {name!r} must be an identifier")
        managed = _flag(element, "managed", True)
        table = element.get("table") or snake_case(name)
        self._check_sql_name(element, table, f"table name of object {name}")
        schema = element.get("schema")
        if schema is not None:
            self._check_sql_name(element, schema, f"schema name of object {name}")
        attributes: list[AttributeSpec] = []
        attribute_names: set[str] = set()
        columns: dict[str, str] = {}
        for child in element.iterchildren("attribute"):
            attribute = self._read_attribute(child, name)
            if attribute.name in attribute_names:
                raise self._error(
                    child, f"object {name}: attribute {attribute.name} is defined twice"
                )
            attribute_names.add(attribute.name)
            if attribute.column.lower() in columns:
                raise self._error(
                    child,
                    f"object {name}: column {attribute.column} is used by attributes "
                    f"{columns[attribute.column.lower()]} and {attribute.name}",
                )
            columns[attribute.column.lower()] = attribute.name
            attributes.append(attribute)
        keys = [attribute for attribute in attributes if attribute.key]
        if len(keys) != 1:
            found = ", ".join(attribute.name for attribute in keys) or "none"
            raise self._error(
                element, f"object {name} needs exactly one key attribute (found: {found})"
            )
        indexes = tuple(
            self._read_index(child, name, table, attribute_names)
            for child in element.iterchildren("index")
        )
        description = element.findtext("description")
        return BusinessObject(
            name=name,
            table=table,
            schema=schema,
            managed=managed,
            attributes=tuple(attributes),
            indexes=indexes,
            description=description.strip() if description else None,
            file=self._source,
            line=_line(element),
        )

    def _read_attribute(self, element: etree._Element, object_name: str) -> AttributeSpec:
        name = element.get("name", "")
        where = f"object {object_name}: attribute {name!r}"
        if not name.isidentifier() or keyword.iskeyword(name):
            raise self._error(element, f"{where}: the name must be a Python identifier")
        column = element.get("column") or name
        self._check_sql_name(element, column, f"{where}: column name")
        type_name = element.get("type", "")
        try:
            attribute_type = AttributeType(type_name)
        except ValueError:
            known = ", ".join(member.value for member in AttributeType)
            raise self._error(
                element, f"{where}: unknown type {type_name!r} (known types: {known})"
            ) from None
        length = self._read_length(element, where, attribute_type)
        key = _flag(element, "key", False)
        generated = _flag(element, "generated", False)
        nullable_given = element.get("nullable")
        nullable = _flag(element, "nullable", not key)
        if key:
            if nullable_given == "true":
                raise self._error(element, f"{where}: a key attribute cannot be nullable")
            if attribute_type not in KEY_TYPES:
                raise self._error(
                    element,
                    f"{where}: a key must be of type integer or string, not {type_name}",
                )
            nullable = False
        if generated and not key:
            raise self._error(element, f"{where}: only the key attribute can be generated")
        if generated and attribute_type is not AttributeType.INTEGER:
            raise self._error(element, f"{where}: only an integer key can be generated")
        description = element.findtext("description")
        return AttributeSpec(
            name=name,
            column=column,
            type=attribute_type,
            length=length,
            nullable=nullable,
            key=key,
            generated=generated,
            description=description.strip() if description else None,
            line=_line(element),
        )

    def _read_length(
        self, element: etree._Element, where: str, attribute_type: AttributeType
    ) -> int | None:
        raw = element.get("length")
        if raw is None:
            return None
        if attribute_type is not AttributeType.STRING:
            raise self._error(element, f"{where}: length applies only to string attributes")
        if not raw.strip().isdigit() or not 0 < int(raw) <= MAX_STRING_LENGTH:
            raise self._error(
                element,
                f"{where}: length must be a whole number from 1 to {MAX_STRING_LENGTH} "
                f"(use type text for longer values), not {raw!r}",
            )
        return int(raw)

    def _read_index(
        self,
        element: etree._Element,
        object_name: str,
        table: str,
        attribute_names: set[str],
    ) -> IndexSpec:
        names = tuple(element.get("attributes", "").split())
        if not names:
            raise self._error(element, f"object {object_name}: an index needs attributes")
        for name in names:
            if name not in attribute_names:
                raise self._error(
                    element, f"object {object_name}: index names unknown attribute {name!r}"
                )
        if len(set(names)) != len(names):
            raise self._error(element, f"object {object_name}: index repeats an attribute")
        index_name = element.get("name") or f"ix_{table}_{'_'.join(names)}"[:MAX_IDENTIFIER]
        self._check_sql_name(element, index_name, f"object {object_name}: index name")
        return IndexSpec(
            name=index_name,
            attributes=names,
            unique=_flag(element, "unique", False),
            line=_line(element),
        )

    def _check_sql_name(self, element: etree._Element, value: str, what: str) -> None:
        if not _SQL_NAME.match(value) or len(value) > MAX_IDENTIFIER:
            raise self._error(
                element,
                f"{what} {value!r} must start with a letter or _, contain only letters, "
                f"digits, _, $ or #, and be at most {MAX_IDENTIFIER} characters long",
            )
