"""Checking a parsed query spec against a profile type's rules: which fields it may query,
return and sort on, what values fit those fields, and how many hits it may ask for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import Problem, QuerySpecError
from .limits import FieldType, Loc
from .model import (
    LeafNode,
    ProfileRules,
    QuerySpec,
    RangeClause,
    TermClause,
    TermsClause,
    is_iso_date,
    node_kind,
)
from .parse import iter_nodes, parse_query_spec, structure_problems

_INT64 = (-(2**63), 2**63 - 1)

_OPERATOR_TYPES: dict[str, tuple[FieldType, ...]] = {
    "match": ("text",),
    "prefix": ("text", "keyword"),
    "range": ("integer", "float", "date"),
    "term": ("keyword", "integer", "float", "boolean", "date"),
    "terms": ("keyword", "integer", "float", "boolean", "date"),
    "exists": ("text", "keyword", "integer", "float", "date", "boolean"),
}


def value_problem(value: Any, field_type: FieldType) -> str | None:
    """Why `value` cannot be compared with a field of `field_type`, or None if it can."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if field_type == "integer" and not (is_int and _INT64[0] <= value <= _INT64[1]):
        return f"{value!r} is not a 64-bit integer"
    if field_type == "float" and not (is_int or isinstance(value, float)):
        return f"{value!r} is not a number"
    if field_type == "boolean" and not isinstance(value, bool):
        return f"{value!r} is not a boolean"
    if field_type == "date" and not (isinstance(value, str) and is_iso_date(value)):
        return f"{value!r} is not an ISO date (e.g. 2024-05-01T12:00:00Z)"
    if field_type in ("keyword", "text") and not isinstance(value, str):
        return f"{value!r} is not a string"
    return None


def _leaf_problems(node: LeafNode, loc: Loc, rules: ProfileRules) -> list[Problem]:
    kind = node_kind(node)
    clause = getattr(node, kind)
    at = (*loc, kind)
    field_type = rules.fields.get(clause.field)
    if field_type is None:
        return [Problem((*at, "field"), f"field {clause.field!r} is not queryable here")]
    allowed = _OPERATOR_TYPES[kind]
    if field_type not in allowed:
        msg = f"{kind!r} does not apply to {field_type} field {clause.field!r}"
        return [Problem((*at, "field"), f"{msg} (it needs {' or '.join(allowed)})")]
    if isinstance(clause, TermClause):
        checks: list[tuple[Loc, Any]] = [((*at, "value"), clause.value)]
    elif isinstance(clause, TermsClause):
        checks = [((*at, "values", i), v) for i, v in enumerate(clause.values)]
    elif isinstance(clause, RangeClause):
        checks = [((*at, op), v) for op, v in clause.bounds().items()]
    else:
        checks = []
    return [
        Problem(value_loc, msg)
        for value_loc, value in checks
        if (msg := value_problem(value, field_type)) is not None
    ]


def check_against_profile(spec: QuerySpec, rules: ProfileRules) -> list[Problem]:
    """Every way `spec` oversteps what the profile allows (empty when it is fine)."""
    problems = structure_problems(spec)
    for node, loc, _depth in iter_nodes(spec.query):
        if isinstance(node, LeafNode):
            problems.extend(_leaf_problems(node, loc, rules))
    for i, name in enumerate(spec.fields or ()):
        if name not in rules.return_fields:
            problems.append(Problem(("fields", i), f"field {name!r} may not be returned"))
    for i, key in enumerate(spec.sort or ()):
        field_type = rules.fields.get(key.field)
        if field_type is None:
            problems.append(Problem(("sort", i, "field"), f"cannot sort on {key.field!r}"))
        elif field_type == "text":
            problems.append(Problem(("sort", i, "field"), f"cannot sort on text {key.field!r}"))
    if spec.size > rules.max_size:
        msg = f"size {spec.size} is over this profile's maximum of {rules.max_size}"
        problems.append(Problem(("size",), msg))
    return problems


def validate_query(raw: Mapping[str, Any] | bytes | str, rules: ProfileRules) -> QuerySpec:
    """Parse `raw` and check it against `rules`, raising QuerySpecError with every problem."""
    spec = parse_query_spec(raw)
    if problems := check_against_profile(spec, rules):
        raise QuerySpecError(problems)
    return spec
