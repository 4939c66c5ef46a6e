"""Fuzzing the frame parser: hostile values in every field of every frame type.

Whatever a client sends, `parse_frame` returns a typed frame whose strings are valid Unicode
and whose integers fit SQLite, or raises ProtocolError with a code of the documented error
table; nothing else may escape (it would reach the visitor as `internal`). The strategies are
shared with tests/integration/test_fuzz_inputs.py, which sends them over a real socket.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.protocol import (
    Identity,
    PingFrame,
    ProtocolError,
    ResumeFrame,
    StartFrame,
    hash_token,
    identity_verified,
    load_json,
    parse_frame,
    parse_offline,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
INT64 = 2**63


def documented_codes() -> set[str]:
    """The codes of docs/protocol.md's "Error codes" table: the only ones a client may see."""
    section = DOCS.read_text(encoding="utf-8").split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))


DOCUMENTED = documented_codes()

# Each frame type's fields with a valid value; the value's type says what a field takes
# (an object-valued field lists its own fields).
FIELDS: dict[str, dict[str, Any]] = {
    "start": {"visitor": {"name": "Ann", "email": "ann@example.com"}, "topic": "support",
              "lang": "en-GB", "page": {"url": "https://shop.example.com/", "title": "Shop",
                                        "referrer": ""},
              "identity": {"id": "u-1", "name": "Ann", "email": "ann@example.com",
                           "hash": "0" * 64}},
    "resume": {"token": "A" * 32, "after": 0},
    "message": {"client_id": "m-1", "text": "Hello"},
    "typing": {"active": True, "draft": "Hel"},
    "read": {"seq": 1},
    "end": {},
    "ping": {},
    "leave_message": {},
    "extend": {},
    "draft": {"text": "I have a q"},
    "survey": {"rating": 5, "comment": "Quick."},
    "transcript": {"email": "ann@example.com"},
    "callback": {"phone": "+44 20 7946 0958", "time": "after 5 pm"},
    "edit": {"seq": 3, "text": "Hello again"},
    "delete": {"seq": 3},
}
OFFLINE_FIELDS: dict[str, Any] = {"name": "Ann", "email": "ann@example.com",
                                  "topic": "support", "text": "Please call me."}

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
controls = st.sampled_from(["\x00", "\x1b", "\x7f", "\u202e", "\u2028", "\ufeff", "\r", "\t"])
hostile_chars = st.one_of(st.characters(), surrogates, controls)
hostile_strings = st.one_of(
    st.text(hostile_chars, max_size=40),
    st.sampled_from(["", " ", "a@b.co", "+44 20 7946 0958", "en-GB", "support", "ä" * 64,
                     "\ud800", "x\udfff@example.com", "0123456789abcdef" * 4]),
    # Long runs: just over the limits, and near the 64 KiB frame limit.
    st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "é", "\ud83d", "😀", "\x00"]),
              st.sampled_from([65, 81, 129, 255, 1001, 2049, 4001, 20_000])),
)
hostile_ints = st.one_of(
    st.integers(-5, 10),
    st.integers(),
    st.sampled_from([INT64 - 1, INT64, -INT64 - 1, 2**64, 10**30]),
)
scalars = st.one_of(st.none(), st.booleans(), hostile_ints, st.floats(), hostile_strings)
containers = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(hostile_strings, inner, max_size=4)),
    max_leaves=12,
)


def dumped(value: Any) -> str:
    # allow_nan: NaN and Infinity are not JSON, but a client can send them all the same.
    return json.dumps(value, allow_nan=True)


# JSON text that json.dumps never makes: deep nesting, non-JSON literals, giant numbers.
raw_fragments = st.one_of(
    st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1.0", "1E2", "true"]),
    st.integers(19, 6000).map(lambda n: "9" * n),
    st.integers(19, 6000).map(lambda n: "-" + "1" * n),
    st.integers(1, 400).map(lambda n: "0." + "1" * n + "e-99999"),
)
values = st.one_of(scalars.map(dumped), containers.map(dumped), raw_fragments)


def field_value(valid: Any) -> st.SearchStrategy[str]:
    """A JSON fragment for one field: valid, hostile of the right JSON type, or anything."""
    if isinstance(valid, dict):
        return weighted((4, json_object(valid)), (1, values))
    if isinstance(valid, bool):
        typed: st.SearchStrategy[Any] = st.booleans()
    elif isinstance(valid, int):
        typed = hostile_ints
    else:
        typed = hostile_strings
    # Mostly a bad field or two among good ones, so frames get past the first checks.
    return weighted((3, st.just(valid).map(dumped)), (2, typed.map(dumped)), (1, values))


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    # st.one_of draws its branches evenly (and merges equal ones): pick a branch first.
    return st.sampled_from([s for n, s in choices for _ in range(n)]).flatmap(lambda s: s)


def frame_fields(spec: dict[str, Any]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """The fields of `spec`, each maybe missing, each a JSON fragment."""
    parts = []
    for key, valid in spec.items():
        present = field_value(valid).map(lambda v, k=key: (k, v))
        parts.append(weighted((1, st.none()), (4, present)))
    return st.tuples(*parts).map(lambda pairs: [p for p in pairs if p is not None])


def json_object(spec: dict[str, Any], head: str = "") -> st.SearchStrategy[str]:
    def render(pairs: list[tuple[str, str]]) -> str:
        items = [f"{json.dumps(k)}:{v}" for k, v in pairs]
        return "{" + ",".join([head, *items] if head else items) + "}"

    return frame_fields(spec).map(render)


def frame_of(kind: str) -> st.SearchStrategy[str]:
    return json_object(FIELDS[kind], head=f'"type":{json.dumps(kind)}')


# Every frame type with hostile fields, plus hostile `type` values and non-object frames.
hostile_frames = st.one_of(
    st.sampled_from(sorted(FIELDS)).flatmap(frame_of),
    values.map(lambda v: '{"type":' + v + "}"),
    values,
    st.text(hostile_chars, max_size=60),
)
hostile_offline_bodies = st.one_of(json_object(OFFLINE_FIELDS), values)


def assert_clean(value: Any, where: str = "frame") -> None:
    """A parsed frame holds only UTF-8-encodable strings and 64-bit integers."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            assert_clean(getattr(value, field.name), f"{where}.{field.name}")
    elif isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        assert -INT64 <= value < INT64, where
    else:
        raise AssertionError(f"{where}: unexpected {type(value).__name__}")


def check_frame(raw: str) -> None:
    try:
        frame = parse_frame(raw, max_text=4000, user_agent="Mozilla/5.0 \ud800")
    except ProtocolError as exc:
        assert exc.code in DOCUMENTED, (exc.code, raw[:200])
        assert exc.code != "internal"
        exc.message.encode("utf-8")
        if exc.client_id is not None:
            exc.client_id.encode("ascii")
        return
    assert_clean(frame)
    # What the hub does next with the raw-ish fields must not raise either.
    if isinstance(frame, ResumeFrame):
        hash_token(frame.token)
    if isinstance(frame, StartFrame) and frame.identity is not None:
        assert identity_verified("secret", frame.identity) in (True, False)


# No example database: the repository stays clean; each run draws new examples.
FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(hostile_frames)
def test_parse_frame_returns_a_frame_or_a_documented_error(raw: str) -> None:
    check_frame(raw)


@FUZZ
@given(st.sampled_from(sorted(FIELDS)).flatmap(frame_of))
def test_every_frame_type_with_hostile_fields(raw: str) -> None:
    check_frame(raw)


@FUZZ
@given(hostile_offline_bodies)
def test_offline_bodies_give_a_message_or_a_documented_error(raw: str) -> None:
    try:
        message = parse_offline(load_json(raw), max_text=4000)
    except ProtocolError as exc:
        assert exc.code in DOCUMENTED, (exc.code, raw[:200])
        return
    assert_clean(message)


@FUZZ
@given(st.text(hostile_chars, max_size=200), st.text(hostile_chars, max_size=40))
def test_identity_check_never_raises(hash_value: str, user_id: str) -> None:
    identity = Identity(id=user_id, name="", email="", hash=hash_value)
    assert identity_verified("secret", identity) in (True, False)


def test_the_documented_table_is_read() -> None:
    assert {"bad_json", "bad_frame", "bad_field", "too_long", "internal"} <= DOCUMENTED


# Regression cases found by the fuzzers above, pinned down.
@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[" * 5000 + "]" * 5000, "bad_frame"),  # beyond Python's recursion limit
        ('{"type":"ping","x":' + '{"a":' * 3000 + "1" + "}" * 3000 + "}", "bad_frame"),
        ('{"type":"ping","x":' + "[" * 40 + "]" * 40 + "}", "bad_frame"),  # over 32 levels
        ('{"type":"read","seq":NaN}', "bad_json"),
        ('{"type":"read","seq":Infinity}', "bad_json"),
        ('{"type":"read","seq":-Infinity}', "bad_json"),
        ('{"type":"read","seq":' + "9" * 5000 + "}", "bad_field"),  # over 4300 digits
        ('{"type":"resume","token":"t","after":9223372036854775808}', "bad_field"),
        ('{"type":"read","seq":-9223372036854775809}', "bad_field"),
        ('{"type":"survey","rating":' + "1" * 40 + "}", "bad_field"),
        ('{"type":"read","seq":1e3}', "bad_field"),
        ('{"type":"resume","token":"\\ud800abc"}', "bad_token"),
        ('{"type":"start","visitor":{"name":"A","email":"a@b.co"},"topic":"s\\udfff"}',
         "unknown_topic"),
        ('{"type":' + "[" * 30 + "]" * 30 + "}", "unknown_type"),
    ],
)
def test_hostile_json_gets_a_documented_code(raw: str, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(raw, max_text=100)
    assert info.value.code == code


def test_integers_up_to_64_bits_are_taken() -> None:
    frame = parse_frame(json.dumps({"type": "resume", "token": "t", "after": 2**63 - 1}),
                        max_text=100)
    assert isinstance(frame, ResumeFrame) and frame.after == 2**63 - 1


def test_nesting_up_to_32_levels_in_an_unknown_field_is_ignored() -> None:
    raw = '{"type":"ping","x":' + "[" * 31 + "]" * 31 + "}"
    assert isinstance(parse_frame(raw, max_text=100), PingFrame)


def test_unknown_type_message_stays_short() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(json.dumps({"type": "x" * 60_000}), max_text=100)
    assert len(info.value.message) < 100


@pytest.mark.parametrize("bad_hash", ["é" * 64, "\u0660" * 64, "\ud800", "ＡＢ", ""])
def test_a_hash_that_is_not_hex_is_just_wrong(bad_hash: str) -> None:
    identity = Identity(id="u-1", name="", email="", hash=bad_hash)
    assert identity_verified("secret", identity) is False


def test_a_non_ascii_identity_hash_starts_unverified() -> None:
    raw = json.dumps({"type": "start", "identity": {"id": "u-1", "name": "Ann",
                                                    "email": "ann@example.com",
                                                    "hash": "ä" * 64}})
    frame = parse_frame(raw, max_text=100)
    assert isinstance(frame, StartFrame) and frame.identity is not None
    assert identity_verified("secret", frame.identity) is False


def test_hash_token_takes_undecodable_header_values() -> None:
    # aiohttp decodes header bytes with surrogateescape: \xff arrives as \udcff.
    assert len(hash_token("ab\udcff")) == 64


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\xfe{}", "bad_json"),
        (b'{"name": "A", "email": "a@b.co", "text": NaN}', "bad_json"),
        (b"[" * 60_000, "bad_frame"),
        (b'{"name": "A", "email": "a@b.co", "text": "hi", "topic": "\\ud800"}',
         "unknown_topic"),
    ],
)
def test_hostile_offline_bodies_get_a_documented_code(body: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_offline(load_json(body, what="the body"), max_text=100)
    assert info.value.code == code
