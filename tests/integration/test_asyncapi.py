"""docs/asyncapi.yaml through a real AsyncAPI parser (@asyncapi/parser, installed by
`bash dev/packaging/install-tools.sh asyncapi`, run by dev/packaging/asyncapi-validate.mjs).

The document must parse without errors, resolve to the four topics, and resolve each
event payload to exactly its committed schema file, so a schema that drifts from the
document fails here. Broken copies must be rejected, which shows the parser really runs
and really checks the payload schemas. Without node or the parser this skips locally and
fails in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest

from streamworker.contract.schema import HEALTH_FILE, RESULT_FILE, SUBMISSION_FILE
from streamworker.settings import Topics
from tests.conftest import REPO, need

pytestmark = [pytest.mark.integration, pytest.mark.no_runtime_images]

DOC = REPO / "docs" / "asyncapi.yaml"
VALIDATOR = REPO / "dev" / "packaging" / "asyncapi-validate.mjs"
PARSER_DIR = REPO / ".state" / "tools" / "asyncapi"
TOPICS = Topics()
SCHEMA_OF = {
    TOPICS.submissions: SUBMISSION_FILE,
    TOPICS.results: RESULT_FILE,
    TOPICS.docker_health: HEALTH_FILE,
}


@pytest.fixture(scope="module")
def node() -> str:
    binary = shutil.which("node")
    installed = (PARSER_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file()
    need(
        "node with @asyncapi/parser (bash dev/packaging/install-tools.sh asyncapi)",
        binary is not None and installed,
    )
    assert binary is not None
    return binary


def parse(node: str, doc: Path) -> tuple[int, dict[str, Any]]:
    """The validator's exit code and JSON report for `doc`."""
    proc = subprocess.run(
        [node, str(VALIDATOR), str(doc), str(PARSER_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"validator exited {proc.returncode} without a report:\n{proc.stderr}")
    return proc.returncode, report


def errors(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in report["diagnostics"] if d["severity"] == "error"]


@pytest.fixture(scope="module")
def parsed(node: str) -> dict[str, Any]:
    code, report = parse(node, DOC)
    for d in report["diagnostics"]:
        print(f"asyncapi {d['severity']}: {d['code']}: {d['message']} at {d['path']}")
    assert (code, errors(report)) == (0, []), "docs/asyncapi.yaml does not parse"
    assert report["valid"]
    return report


def messages_of(parsed: dict[str, Any], address: str) -> dict[str, Any]:
    (channel,) = [c for c in parsed["channels"].values() if c["address"] == address]
    messages: dict[str, Any] = channel["messages"]
    return messages


def without_parser_keys(value: Any) -> Any:
    """The parser's view minus what it adds (`x-parser-schema-id` and the like)."""
    if isinstance(value, dict):
        return {
            k: without_parser_keys(v) for k, v in value.items() if not k.startswith("x-parser-")
        }
    if isinstance(value, list):
        return [without_parser_keys(v) for v in value]
    return value


def inlined(value: Any, root: dict[str, Any]) -> Any:
    """`value` with each local `$ref` replaced by its target, as the parser resolves it."""
    if isinstance(value, dict):
        if set(value) == {"$ref"} and value["$ref"].startswith("#/"):
            target: Any = root
            for part in value["$ref"][2:].split("/"):
                target = target[part]
            return inlined(target, root)
        return {k: inlined(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [inlined(v, root) for v in value]
    return value


def schema_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO / "schemas" / name).read_text(encoding="utf-8"))
    return loaded


def test_the_document_parses_without_errors(parsed: dict[str, Any]) -> None:
    """Warnings and hints are allowed; the fixture prints them."""
    assert errors(parsed) == []


def test_the_parsed_channels_are_the_four_topics(parsed: dict[str, Any]) -> None:
    addresses = [c["address"] for c in parsed["channels"].values()]
    assert sorted(addresses) == sorted(astuple(TOPICS))


@pytest.mark.parametrize("topic", sorted(SCHEMA_OF))
def test_each_event_payload_resolves_to_its_schema_file(parsed: dict[str, Any], topic: str) -> None:
    (message,) = messages_of(parsed, topic).values()
    payload = without_parser_keys(message["payload"])
    assert payload["schemaFormat"] == "application/schema+json;version=draft-07"
    committed = schema_file(SCHEMA_OF[topic])
    assert payload["schema"] == inlined(committed, committed), (
        f"the parser's {topic} payload differs from schemas/{SCHEMA_OF[topic]}"
    )


def test_the_parsed_operations_are_the_workers(parsed: dict[str, Any]) -> None:
    seen = {(op["action"], tuple(op["channels"])) for op in parsed["operations"].values()}
    assert seen == {
        ("receive", (TOPICS.submissions,)),
        ("send", (TOPICS.results,)),
        ("send", (TOPICS.docker_health,)),
        ("send", (TOPICS.dlq,)),
    }
    (receive,) = [op for op in parsed["operations"].values() if op["action"] == "receive"]
    assert receive["reply"] == TOPICS.results
    assert parsed["servers"]["kafka-secure"]["security"] == ["scramSha512"]


def broken_copy(tmp_path: Path) -> tuple[Path, Path]:
    """The document and the schemas copied with their relative layout: (doc, schemas dir)."""
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / DOC.name
    shutil.copy(DOC, doc)
    schemas = shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    return doc, schemas


def test_the_unchanged_copy_parses(node: str, tmp_path: Path) -> None:
    """So the rejections below are due to the breakage alone."""
    doc, _ = broken_copy(tmp_path)
    code, report = parse(node, doc)
    assert (code, errors(report)) == (0, [])


def test_a_channel_with_an_undefined_message_is_rejected(node: str, tmp_path: Path) -> None:
    doc, _ = broken_copy(tmp_path)
    text = doc.read_text(encoding="utf-8")
    good = "$ref: '#/components/messages/submission'"
    assert text.count(good) == 1
    doc.write_text(text.replace(good, "$ref: '#/components/messages/nowhere'"), encoding="utf-8")
    code, report = parse(node, doc)
    assert code == 1 and not report["valid"]
    found = [(d["code"], d["message"]) for d in errors(report)]
    assert ("invalid-ref", "'#/components/messages/nowhere' does not exist") in found, found


def test_an_invalid_payload_schema_is_rejected(node: str, tmp_path: Path) -> None:
    """The draft-07 label makes the parser check the referenced schema files."""
    doc, schemas = broken_copy(tmp_path)
    schema = schema_file(SUBMISSION_FILE)
    schema["properties"]["language"]["maxLength"] = -1
    (schemas / SUBMISSION_FILE).write_text(json.dumps(schema), encoding="utf-8")
    code, report = parse(node, doc)
    assert code == 1 and not report["valid"]
    assert any("maxLength" in d["path"] for d in errors(report)), report["diagnostics"]
