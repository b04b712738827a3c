"""Canonical JSON: the one encoding used wherever bytes are hashed, signed or compared."""

from __future__ import annotations

from typing import Any

import orjson


def canonical(obj: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys; identical input always gives identical bytes."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
