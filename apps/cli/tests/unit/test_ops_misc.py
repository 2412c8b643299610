"""Parsing of operator arguments, dead-letter rendering and the AsyncAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.structs import ConsumerRecord

from keel_cli.asyncapi import build_document, render
from keel_cli.main import build_parser
from keel_cli.ops_dlq import detail, summary
from keel_cli.ops_read import parse_location
from keel_contracts import events
from keel_contracts.events import EventData
from keel_contracts.topics import all_specs

REPO = Path(__file__).resolve().parents[4]


def test_locations_are_partition_colon_offset() -> None:
    assert parse_location("2:117") == (2, 117)
    for bad in ("2", "a:1", "1:-3", ""):
        with pytest.raises(ValueError, match="partition"):
            parse_location(bad)


def test_a_dead_letter_shows_where_it_came_from_and_why() -> None:
    headers = [
        ("keel-dlq-reason", b"undecodable envelope: bad json"),
        ("keel-dlq-topic", b"keel.tasks"),
        ("keel-dlq-partition", b"1"),
        ("keel-dlq-offset", b"9"),
        ("keel-dlq-trace", b"Traceback...\nValueError"),
    ]
    record = ConsumerRecord("keel.tasks.dlq", 0, 4, 0, 0, b"s1", b"{x", None, 2, 2, headers)
    assert summary(record).startswith("0:4 ")
    assert "from keel.tasks@1:9  key=s1  undecodable envelope" in summary(record)
    assert "value: {x" in detail(record)
    assert "    ValueError" in detail(record)


def test_operator_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["approvals", "modify", "a1", "--reviewer", "r", "--args", "{}"])
    assert (args.approval_id, args.reviewer, args.args, args.token) == ("a1", "r", "{}", "")
    args = parser.parse_args(["dlq", "replay", "0:3", "--to", "t"])
    assert (args.location, args.topic, args.to) == ("0:3", "keel.tasks.dlq", "t")
    assert parser.parse_args(["audit", "verify"]).topic == "keel.audit"


def test_the_checked_in_asyncapi_document_is_current() -> None:
    checked_in = (REPO / "docs" / "asyncapi.yaml").read_text()
    assert checked_in == render(), "stale: run `keel asyncapi > docs/asyncapi.yaml`"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_covers_every_topic_and_event_type_and_its_refs_resolve() -> None:
    doc = yaml.safe_load(render())
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {s.name for s in all_specs()}
    payloads = [
        cls
        for name in events.__all__
        if isinstance(cls := getattr(events, name), type)
        and issubclass(cls, EventData)
        and hasattr(cls, "event_type")
    ]
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert {p.event_type for p in payloads} <= names
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref
    assert build_document()["components"]["schemas"]["Envelope"]["required"]
