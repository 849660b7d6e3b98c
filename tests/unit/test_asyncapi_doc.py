"""docs/asyncapi.yaml against the code it describes, without node: topics, payload and key
references, dead-letter headers, servers, operations and the consumer group — so a change
on either side fails here. The document labels the 2020-12 schema files draft-07 (the
JSON Schema version AsyncAPI 3.0's parser validates); the last tests keep that label
true. The parser's own verdict is tests/integration/test_asyncapi.py.
"""

from __future__ import annotations

import json
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from streamworker.contract.schema import HEALTH_FILE, RESULT_FILE, SUBMISSION_FILE
from streamworker.contract.status import SCHEMA_VERSION
from streamworker.errors import InvalidEvent
from streamworker.pipeline import MAX_ERROR_HEADER_CHARS, MAX_KEY_BYTES, Source, dead_letter
from streamworker.settings import Settings, Topics

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "asyncapi.yaml"
SCHEMAS = REPO / "schemas"
DRAFT_07 = "application/schema+json;version=draft-07"
TOPICS = Topics()
# topic -> (schema file of its JSON events, the event field that is the record key)
JSON_TOPICS = {
    TOPICS.submissions: (SUBMISSION_FILE, "submission_id"),
    TOPICS.results: (RESULT_FILE, "submission_id"),
    TOPICS.docker_health: (HEALTH_FILE, "worker_id"),
}
# Keywords the schema files may use: each means the same in draft-07 and 2020-12.
# (`$defs` is only a container there; refs reach it by JSON pointer, which both read.)
SAME_IN_DRAFT_07 = {
    "$schema", "$id", "$ref", "$defs", "title", "description", "default", "examples",
    "type", "enum", "const", "properties", "patternProperties", "required",
    "additionalProperties", "propertyNames", "minProperties", "maxProperties",
    "items", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern",
    "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
}  # fmt: skip
SCHEMA_MAPS = {"properties", "patternProperties", "$defs"}
SCHEMA_LISTS = {"allOf", "anyOf", "oneOf"}
SCHEMA_VALUES = {"items", "not", "if", "then", "else", "additionalProperties", "propertyNames"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    return loaded


def deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its local `$ref` (`#/a/b`) points at, followed to the end."""
    while "$ref" in node and str(node["$ref"]).startswith("#/"):
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = dict(target)
    return node


def channel(doc: dict[str, Any], address: str) -> dict[str, Any]:
    (found,) = [c for c in doc["channels"].values() if c["address"] == address]
    return dict(found)


def only_message(doc: dict[str, Any], address: str) -> dict[str, Any]:
    (message,) = channel(doc, address)["messages"].values()
    return deref(doc, message)


def test_the_channels_are_exactly_the_topics(doc: dict[str, Any]) -> None:
    addresses = [c["address"] for c in doc["channels"].values()]
    assert sorted(addresses) == sorted(astuple(TOPICS))


def test_the_version_is_the_contracts_schema_version(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == str(SCHEMA_VERSION)


@pytest.mark.parametrize("topic", sorted(JSON_TOPICS))
def test_json_payloads_and_keys_reference_the_committed_schemas(
    doc: dict[str, Any], topic: str
) -> None:
    """One source of truth: the document points at schemas/, it holds no copy."""
    name, key_field = JSON_TOPICS[topic]
    message = only_message(doc, topic)
    assert message["contentType"] == "application/json"
    assert message["payload"] == {
        "schemaFormat": DRAFT_07,
        "schema": {"$ref": f"../schemas/{name}"},
    }
    key = message["bindings"]["kafka"]["key"]
    assert key["allOf"] == [{"$ref": f"../schemas/{name}#/properties/{key_field}"}]
    assert key_field in json.loads((SCHEMAS / name).read_text(encoding="utf-8"))["properties"]


def test_dead_letter_headers_are_what_the_pipeline_writes(doc: dict[str, Any]) -> None:
    message = only_message(doc, TOPICS.dlq)
    headers = message["headers"]
    source = Source(TOPICS.submissions, 3, 1234, b"job-1")
    always = dead_letter(b"{}", source, InvalidEvent("boom", field="language"), 100)
    cut = dead_letter(b"x" * 200, source, InvalidEvent("boom"), 100)
    assert sorted(headers["required"]) == sorted(name for name, _ in always.headers)
    assert sorted(headers["properties"]) == sorted(name for name, _ in cut.headers)
    assert (
        dict(cut.headers)["value_truncated"].decode()
        == headers["properties"]["value_truncated"]["const"]
    )
    assert headers["properties"]["error"]["maxLength"] == MAX_ERROR_HEADER_CHARS
    assert message["contentType"] == "application/octet-stream"
    assert f"longer than {MAX_KEY_BYTES} bytes" in message["bindings"]["kafka"]["key"][
        "description"
    ].replace("\n", " ")


def test_servers_are_the_local_stack_and_the_secure_listener(doc: dict[str, Any]) -> None:
    servers = doc["servers"]
    assert set(servers) == {"local", "kafka-secure"}
    assert servers["local"]["host"] == Settings().kafka_bootstrap
    assert servers["local"]["protocol"] == "kafka"
    assert "security" not in servers["local"]
    secure = servers["kafka-secure"]
    assert (secure["host"], secure["protocol"]) == ("127.0.0.1:9094", "kafka-secure")
    assert [deref(doc, s)["type"] for s in secure["security"]] == ["scramSha512"]


def test_operations_are_the_workers_side(doc: dict[str, Any]) -> None:
    """The worker receives submissions (in its consumer group) and sends the rest."""
    seen = {
        (op["action"], deref(doc, op["channel"])["address"]) for op in doc["operations"].values()
    }
    assert seen == {
        ("receive", TOPICS.submissions),
        ("send", TOPICS.results),
        ("send", TOPICS.docker_health),
        ("send", TOPICS.dlq),
    }
    (receive,) = [op for op in doc["operations"].values() if op["action"] == "receive"]
    assert receive["bindings"]["kafka"]["groupId"]["enum"] == [Settings().app_id]
    assert deref(doc, receive["reply"]["channel"])["address"] == TOPICS.results


def schema_keywords(schema: dict[str, Any], where: str = "#") -> dict[str, set[str]]:
    """Keyword -> where it is used, walking only positions that hold schemas."""
    found: dict[str, set[str]] = {}
    for key, value in schema.items():
        found.setdefault(key, set()).add(where)
        children: list[tuple[str, Any]] = []
        if key in SCHEMA_MAPS:
            children = [(f"{where}/{key}/{k}", v) for k, v in value.items()]
        elif key in SCHEMA_LISTS:
            children = [(f"{where}/{key}/{i}", v) for i, v in enumerate(value)]
        elif key in SCHEMA_VALUES and isinstance(value, dict):
            children = [(f"{where}/{key}", value)]
        for path, child in children:
            for k, paths in schema_keywords(child, path).items():
                found.setdefault(k, set()).update(paths)
    return found


@pytest.mark.parametrize("name", [SUBMISSION_FILE, RESULT_FILE, HEALTH_FILE])
def test_the_schema_files_mean_the_same_under_draft_07(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    used = schema_keywords(schema)
    assert not set(used) - SAME_IN_DRAFT_07, {k: used[k] for k in set(used) - SAME_IN_DRAFT_07}
    # Draft-07 ignores a `$ref`'s siblings, 2020-12 applies them: allow none.
    with_siblings = [p for p in used.get("$ref", ()) if set(_at(schema, p)) != {"$ref"}]
    assert not with_siblings
    assert used.get("$defs", {"#"}) == {"#"}


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = schema
    for part in path.split("/")[1:]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return dict(node)


def test_the_keyword_walk_sees_nested_refs_and_foreign_keywords() -> None:
    """The draft-07 check above can fail: it finds keywords deep inside a schema."""
    schema = {
        "properties": {"a": {"anyOf": [{"$ref": "#/$defs/x", "type": "object"}]}},
        "$defs": {"x": {"prefixItems": [{}]}},
    }
    used = schema_keywords(schema)
    assert used["prefixItems"] == {"#/$defs/x"}
    assert set(_at(schema, "#/properties/a/anyOf/0")) == {"$ref", "type"}
