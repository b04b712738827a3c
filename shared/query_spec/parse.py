"""Parsing a user's query spec: size and nesting checks, pydantic validation, and the
depth and clause-count limits, each failure reported as a `Problem`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from .errors import Problem, QuerySpecError
from .limits import (
    GROUP_KINDS,
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_SPEC_BYTES,
    NODE_KINDS,
    Loc,
)
from .model import GroupNode, Node, QuerySpec, node_kind

# A node at depth d is a JSON object at nesting level 2d; its clause adds up to two more.
_MAX_JSON_NESTING = 2 * MAX_DEPTH + 2


def _node_problem_msg(value: Any) -> str:
    expected = ", ".join(NODE_KINDS)
    if not isinstance(value, dict):
        return f"a query node must be an object with one of the keys: {expected}"
    known = [key for key in value if key in NODE_KINDS]
    if known:
        return f"a query node must have exactly one operator, got {', '.join(known)}"
    got = ", ".join(repr(str(k)[:64]) for k in value) or "no keys"
    return f"unknown query operator ({got}); expected one of: {expected}"


def _clean_loc(loc: tuple[str | int, ...]) -> Loc:
    """Drop the union tag pydantic puts after each node's location (``query, all, all, 0``)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        at_node = i == 1 or (i >= 3 and isinstance(loc[i - 1], int) and loc[i - 2] in GROUP_KINDS)
        if not (at_node and loc[0] == "query" and part in NODE_KINDS):
            out.append(part)
    return tuple(out)


def _problems_from(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        if err["type"] == "query_node":
            msg = _node_problem_msg(err["input"])
        elif err["type"] == "extra_forbidden":
            msg = f"unknown field {str(loc[-1])[:64]!r}" if loc else "unknown field"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append(Problem(loc, msg))
    return problems


def _nesting_problem(raw: Any) -> Problem | None:
    """Refuse absurd nesting before pydantic recurses into it."""
    stack: list[tuple[Any, Loc]] = [(raw, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) > _MAX_JSON_NESTING:  # report the first node past the limit
            return Problem(loc[: 2 * MAX_DEPTH + 1], f"query nesting exceeds depth {MAX_DEPTH}")
        if isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, (*loc, k)) for k, v in items)
    return None


def _decode(raw: Mapping[str, Any] | bytes | str) -> Any:
    """Size-check (and decode) the raw spec before any parsing work is done on it."""
    try:
        data = raw.encode() if isinstance(raw, str) else raw
        encoded = data if isinstance(data, bytes) else orjson.dumps(data)
        if len(encoded) > MAX_SPEC_BYTES:
            msg = f"query spec is larger than {MAX_SPEC_BYTES} bytes"
        else:
            return orjson.loads(encoded) if isinstance(data, bytes) else data
    except orjson.JSONDecodeError as exc:
        msg = f"query spec is not valid JSON: {exc}"
    except TypeError as exc:  # orjson.JSONEncodeError, also raised on runaway nesting
        deep = "recursion" in str(exc).lower()
        msg = f"query nesting exceeds depth {MAX_DEPTH}" if deep else f"not plain JSON: {exc}"
    raise QuerySpecError([Problem((), msg)])


def iter_nodes(node: Node, loc: Loc = ("query",), depth: int = 1) -> Iterator[tuple[Any, Loc, int]]:
    """Every node under `node` (itself first) with its location and depth (top level = 1)."""
    yield node, loc, depth
    if isinstance(node, GroupNode):
        kind = node_kind(node)
        for i, child in enumerate(getattr(node, kind)):
            yield from iter_nodes(child, (*loc, kind, i), depth + 1)


def structure_problems(spec: QuerySpec) -> list[Problem]:
    """Depth and clause-count limits, which pydantic cannot express."""
    problems: list[Problem] = []
    count = 0
    for _node, loc, depth in iter_nodes(spec.query):
        count += 1
        if depth > MAX_DEPTH and not problems:
            problems.append(Problem(loc, f"query nesting exceeds depth {MAX_DEPTH}"))
    if count > MAX_CLAUSES:
        problems.append(Problem(("query",), f"query has {count} clauses; at most {MAX_CLAUSES}"))
    return problems


def parse_query_spec(raw: Mapping[str, Any] | bytes | str) -> QuerySpec:
    """Parse a user's query spec (a decoded dict, or JSON bytes/text); no profile checks."""
    data = _decode(raw)
    if (nesting := _nesting_problem(data)) is not None:
        raise QuerySpecError([nesting])
    try:
        spec = QuerySpec.model_validate(data)
    except ValidationError as exc:
        raise QuerySpecError(_problems_from(exc)) from None
    if problems := structure_problems(spec):
        raise QuerySpecError(problems)
    return spec
