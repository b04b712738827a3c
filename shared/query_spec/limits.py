"""Limits, operator names and basic types of the query spec (DESIGN.md §5)."""

from __future__ import annotations

from typing import Literal

MAX_DEPTH = 10
MAX_CLAUSES = 200
MAX_STRING_LENGTH = 1024
MAX_SPEC_BYTES = 16 * 1024
MAX_TERMS_VALUES = 1000
MAX_CHILDREN = 100
MAX_SORT_KEYS = 10

FieldType = Literal["text", "keyword", "integer", "float", "date", "boolean"]
Loc = tuple[str | int, ...]
Scalar = str | int | float | bool

LEAF_KINDS = ("match", "term", "terms", "range", "prefix", "exists")
GROUP_KINDS = ("all", "any", "none")
NODE_KINDS = LEAF_KINDS + GROUP_KINDS
