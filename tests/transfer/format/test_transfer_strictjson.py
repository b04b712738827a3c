"""The strict JSON line parser."""

from __future__ import annotations

import pytest

from transfer.format.strictjson import StrictJSONError, json_depth_exceeds, strict_loads


def test_plain_json_parses():
    assert strict_loads(b'{"a":[1,2.5,"x",null,true],"b":{"c":"\\u00e9"}}', max_depth=32) == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": "é"},
    }


def test_valid_surrogate_pair_is_fine():
    assert strict_loads(b'"\\ud83d\\ude00"', max_depth=4) == "\U0001f600"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a":1,"a":1}', "duplicate key 'a'"),
        (b'[{"x":{"k":1,"k":2}}]', "duplicate key 'k'"),
        (b"NaN", "NaN is not allowed"),
        (b"[Infinity]", "Infinity is not allowed"),
        (b"-1e999", "out of range"),
        (b"18446744073709551616", "64-bit range"),
        (b"-9223372036854775809", "64-bit range"),
        (b'"\\udc00"', "lone surrogate"),
        (b'"\xc3\x28"', "invalid UTF-8 at offset 1"),
        (b"[" * 33 + b"]" * 33, "nested deeper than 32"),
        (b'{"a":', "invalid JSON at column 6"),
        (b'"\x01"', "invalid JSON"),
    ],
)
def test_hostile_input_is_refused(raw, message):
    with pytest.raises(StrictJSONError, match=message.replace("(", r"\(")):
        strict_loads(raw, max_depth=32)


def test_exact_depth_limit_is_allowed():
    assert strict_loads(b"[" * 32 + b"]" * 32, max_depth=32) is not None


def test_integer_range_edges_are_allowed():
    assert strict_loads(b"[18446744073709551615,-9223372036854775808]", max_depth=2) == [
        2**64 - 1,
        -(2**63),
    ]


def test_depth_prescan_ignores_brackets_in_strings():
    assert not json_depth_exceeds(b'["[[[[[[", "\\"[[[[[[[[", {"a": "{{{{{{{{"}]', 3)
    assert json_depth_exceeds(b'[[[["]"]]]]', 3)
