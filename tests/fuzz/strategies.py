"""Hypothesis strategies for the fuzz suite: Kafka record values (valid envelopes of every event
type with random payloads, broken envelopes, raw bytes) and protobuf requests of any message
type, generated from the message's descriptor.

Strings lean towards what breaks code: the empty string, huge strings, odd unicode (NUL,
surrogate-free astral characters, right-to-left marks), JSON that is not an object, and the
names a service knows (tool names, profiles, session ids), so that random records also reach
the deep paths instead of all failing at the first check.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st
from pydantic import BaseModel

from keel_contracts import events
from keel_contracts.events import EventData

# Every payload type the contracts export: a new event is fuzzed without being listed here.
EVENT_TYPES: tuple[type[EventData], ...] = tuple(
    kind
    for name in events.__all__
    if isinstance(kind := getattr(events, name), type)
    and issubclass(kind, EventData)
    and kind is not EventData
)

# Names the services know: random records that use them get past the first lookups.
VOCABULARY = (
    "default",
    "restricted",
    "calculator",
    "send_email",
    "clock",
    "noop",
    "read_file",
    "write_file",
    "s1",
    "s2",
    "p1",
    "p1.a",
    "p1.b",
    "a",
    "b",
    "ap-1",
    "ap-2",
    "alice",
    "approved",
    "rejected",
    "modified",
    "timed_out",
    "agent",
    "plan",
    "succeeded",
    "failed",
    "2+2",
    "{deps.a}",
    "{plan.goal}",
    "semantic",
    "episodic",
)
ODD = (
    "",
    " ",
    "\x00",
    "\u202e\u202d",
    "\ufeff",
    "🦜" * 3,
    "\U0010ffff",
    "a" * 65,
    "../../etc/passwd",
    "${jndi:x}",
    "null",
    "{",
    "[]",
    '{"a": ',
    "NaN",
    "-1",
    "1e309",
)

# Drawn rarely (one field of some records), and cheap to draw: a repeated character.
HUGE = st.sampled_from([10_000, 100_000]).flatmap(
    lambda n: st.sampled_from("x🦜\x00 ").map(lambda c: c * n)
)


_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(VOCABULARY),
    st.sampled_from(ODD),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
)


def text() -> st.SearchStrategy[str]:
    """Mostly short strings, sometimes a known name or an odd one (huge ones: ``HUGE``)."""
    return _TEXT


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    text(),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(text(), inner, max_size=4)
    ),
    max_leaves=3,
)
JSON_OBJECTS = st.dictionaries(text(), JSON_VALUES, max_size=5)


def json_text() -> st.SearchStrategy[str]:
    """What a ``*_json`` field may carry: an object, another JSON value, or not JSON at all."""
    return _JSON_TEXT


_JSON_TEXT = st.one_of(
    JSON_OBJECTS.map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.sampled_from(ODD),
    text(),
    st.just('{"expression": "2+2"}'),
    st.just('{"a": ' * 2000 + "1" + "}" * 2000),  # deeply nested
)


# ---- event payloads: field by field from the model's annotations --------------------------


def _for_annotation(annotation: Any, depth: int) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is typing.Any:
        return JSON_VALUES
    if origin is typing.Literal:
        return st.one_of(st.sampled_from(args), text())
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_annotation(a, depth) for a in args))
    if annotation is type(None):
        return st.none()
    if origin is list:
        return st.lists(_for_annotation(args[0], depth + 1), max_size=4 if depth < 2 else 1)
    if origin is dict:
        return st.dictionaries(text(), _for_annotation(args[1], depth + 1), max_size=4)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_dict(annotation, depth + 1) if depth < 3 else st.just({})
    if annotation is str:
        return text()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.one_of(st.integers(min_value=-2, max_value=300), st.integers(min_value=-(2**70)))
    if annotation is float:
        return st.one_of(st.floats(), st.floats(min_value=0, max_value=10))
    return JSON_VALUES


@functools.cache
def model_dict(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A dict shaped like ``model``: every field from its annotation (often valid, sometimes
    not), with fields sometimes left out and an unknown one sometimes added."""
    fields = {
        name: _for_annotation(info.annotation, depth) for name, info in model.model_fields.items()
    }
    return st.fixed_dictionaries(
        {}, optional={**fields, "unexpected": JSON_VALUES}
    ) | st.fixed_dictionaries(fields)


# ---- Kafka record values -----------------------------------------------------------------


TRACES = st.one_of(
    st.just(""),
    st.just("00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
    st.sampled_from(["00-zz-zz-zz", "01-" + "0" * 32 + "-" + "0" * 16 + "-00"]),
    text(),
)


TYPE_NAMES = st.sampled_from([t.event_type for t in EVENT_TYPES])
IDS = st.one_of(st.uuids().map(lambda u: u.hex), text())
TIMES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    st.just("not a time"),
    st.integers(),
)
SESSION_IDS = st.one_of(st.sampled_from(["s1", "s2", "p1", "p1.a", ""]), text())
MUTATIONS = st.sampled_from(["none", "none", "none", "drop", "extra", "retype", "huge"])


@st.composite
def envelope_dict(draw: st.DrawFn, types_: tuple[type[EventData], ...] = EVENT_TYPES) -> Any:
    """An envelope as JSON: of a real event type (payload from the model) or not, whole or
    with fields missing, extra or of the wrong type."""
    event = draw(st.sampled_from(types_))
    envelope: dict[str, Any] = {
        "id": draw(IDS),
        "type": event.event_type if draw(st.booleans()) else draw(TYPE_NAMES | text()),
        "source": draw(text()),
        "time": draw(TIMES),
        "session_id": draw(SESSION_IDS),
        "trace": draw(TRACES),
        "schema_version": draw(st.sampled_from([1, 1, 0, 2, -1])),
        "data": draw(model_dict(event)),
    }
    mutation = draw(MUTATIONS)
    if mutation == "huge":
        envelope["data"][draw(st.sampled_from(sorted(envelope["data"]) or ["goal"]))] = draw(HUGE)
    elif mutation == "drop":
        envelope.pop(draw(st.sampled_from(sorted(envelope))))
    elif mutation == "extra":
        envelope[draw(text())] = draw(JSON_VALUES)
    elif mutation == "retype":
        envelope[draw(st.sampled_from(sorted(envelope)))] = draw(JSON_VALUES)
    return envelope


def _variants(value: bytes, cut: int) -> list[bytes | None]:
    """One drawn record and three derived from it: cut short, a byte flipped, and its
    envelope with the data emptied. Four records for the price of one draw (drawing is the
    slow part of the suite)."""
    at = cut % (len(value) + 1)
    flipped = value[:at] + bytes([value[at] ^ 0x5A]) + value[at + 1 :] if at < len(value) else b""
    try:
        emptied = json.dumps({**json.loads(value), "data": {}}).encode()
    except (ValueError, TypeError):
        emptied = None
    return [value, value[:at], flipped, emptied]


def record_values(
    types_: tuple[type[EventData], ...] = EVENT_TYPES,
) -> st.SearchStrategy[list[bytes | None]]:
    """Four values of records on a topic (see ``_variants``), drawn from envelopes (of
    ``types_`` mostly), raw bytes, JSON that is not an envelope, empty values and tombstones."""
    drawn = st.one_of(
        envelope_dict(types_).map(lambda e: json.dumps(e).encode()),
        envelope_dict(types_).map(lambda e: json.dumps(e).encode()),
        envelope_dict(types_).map(lambda e: json.dumps(e).encode()),
        envelope_dict().map(lambda e: json.dumps(e).encode()),
        st.binary(max_size=64),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.sampled_from([b"", b"{}", b"null", b"\xff\xfe", b"{" * 5000]),
    )
    return st.builds(_variants, drawn, st.integers(min_value=0))


# ---- protobuf requests from their descriptors --------------------------------------------

SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    FieldDescriptor.TYPE_DOUBLE: st.floats(),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
}
SMALL_INTS = st.integers(-3, 300)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        plain = json_text() if field.name.endswith("_json") else text()
        return st.one_of(*[plain] * 7, HUGE)
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        # proto3 enums are open: an unknown number travels as is.
        return st.one_of(st.sampled_from(known), st.integers(-5, 1000))
    strategy = SCALARS[field.type]
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
        return st.one_of(SMALL_INTS, strategy)
    return strategy


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            entry = field.message_type.fields_by_name
            key, value = entry["key"], entry["value"]
            return st.dictionaries(_scalar(key), _field(value, depth + 1), max_size=3)
        inner = message_dict(field.message_type, depth + 1)
        if field.is_repeated:
            return st.lists(inner, max_size=3 if depth < 2 else 0)
        return inner
    if field.is_repeated:
        return st.lists(_scalar(field), max_size=4)
    return _scalar(field)


@functools.cache
def message_dict(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values of a message (every field optional: a missing context, a missing call)."""
    if depth > 3:
        return st.just({})
    fields = {f.name: _field(f, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields)


def _fill(message: Message, values: dict[str, Any]) -> Message:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if value_field.message_type is not None:
                    _fill(target[key], item)
                else:
                    target[key] = item
        elif field.message_type is not None and field.is_repeated:
            for item in value:
                _fill(target.add(), item)
        elif field.message_type is not None:
            _fill(target, value)
            target.SetInParent()
        elif field.is_repeated:
            target.extend(value)
        else:
            setattr(message, name, value)
    return message


def requests(message_type: type[Message]) -> st.SearchStrategy[Message]:
    """Requests of ``message_type`` with any field set or unset, to any value its wire type
    can carry."""
    return message_dict(message_type.DESCRIPTOR).map(lambda v: _fill(message_type(), v))
