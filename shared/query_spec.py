"""The query spec: the only query language users have (DESIGN.md §5).

Users never send Elasticsearch DSL. They send a small JSON spec that is parsed here,
checked against a profile type's rules (which fields a query may use and return, and how
many hits it may ask for) and compiled to a search body. Every field name that reaches
Elasticsearch has passed the profile's allow-list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)

MAX_DEPTH = 10
MAX_CLAUSES = 200
MAX_STRING_LENGTH = 1024
MAX_SPEC_BYTES = 16 * 1024
MAX_TERMS_VALUES = 1000
MAX_CHILDREN = 100
MAX_SORT_KEYS = 10
# A node at depth d is a JSON object at nesting level 2d; its clause adds up to two more.
_MAX_JSON_NESTING = 2 * MAX_DEPTH + 2
_INT64 = (-(2**63), 2**63 - 1)

FieldType = Literal["text", "keyword", "integer", "float", "date", "boolean"]
Loc = tuple[str | int, ...]
Scalar = str | int | float | bool

LEAF_KINDS = ("match", "term", "terms", "range", "prefix", "exists")
GROUP_KINDS = ("all", "any", "none")
NODE_KINDS = LEAF_KINDS + GROUP_KINDS

# The subset of ISO 8601 that Elasticsearch's default date format accepts.
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a query: where (`path` into the spec) and what (`msg`)."""

    path: Loc
    msg: str

    @property
    def loc(self) -> str:
        """The location as a dotted path, e.g. ``query.all.0.range.field`` ("" = whole spec)."""
        return ".".join(str(p) for p in self.path)

    @property
    def pointer(self) -> str:
        """The location as a JSON pointer, e.g. ``/query/all/0/range/field``."""
        return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in self.path)

    def __str__(self) -> str:
        return f"{self.loc or '(query spec)'}: {self.msg}"

    def to_dict(self) -> dict[str, Any]:
        return {"loc": self.loc, "path": list(self.path), "msg": self.msg}


class QuerySpecError(ValueError):
    """A query spec was refused; `problems` lists every reason, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def is_iso_date(value: str) -> bool:
    """True for dates like ``2024-05-01`` or ``2024-05-01T12:30:00Z`` that exist."""
    if not _ISO_DATE.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _scalar(value: Any) -> Scalar:
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ValueError(f"string longer than {MAX_STRING_LENGTH} characters")
        return value
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return value
    raise ValueError("must be a string, a finite number or a boolean")


def _range_bound(value: Any) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a range bound must be a number or an ISO date string")
    if isinstance(value, str) and not is_iso_date(value):
        raise ValueError(f"{value[:64]!r} is not an ISO date (e.g. 2024-05-01T12:00:00Z)")
    return _scalar(value)  # type: ignore[return-value]


FieldName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STRING_LENGTH)]
Text = Annotated[str, StringConstraints(max_length=MAX_STRING_LENGTH)]
ScalarValue = Annotated[Scalar, PlainValidator(_scalar, json_schema_input_type=Scalar)]
RangeBound = Annotated[
    int | float | str, PlainValidator(_range_bound, json_schema_input_type=int | float | str)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfileRules(_Strict):
    """What a profile type allows: its index, queryable fields, returnable fields, size."""

    name: Annotated[str, StringConstraints(min_length=1)]
    index: Annotated[str, StringConstraints(min_length=1)]
    fields: dict[str, FieldType]
    return_fields: list[str]
    max_size: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _return_fields_are_fields(self) -> ProfileRules:
        unknown = [f for f in self.return_fields if f not in self.fields]
        if unknown:
            raise ValueError(f"return_fields not among fields: {', '.join(unknown)}")
        return self


# Leaf clauses -------------------------------------------------------------------------


class ExistsClause(_Strict):
    field: FieldName


class TextClause(ExistsClause):
    """The clause of ``match`` and ``prefix``."""

    value: Text


class TermClause(ExistsClause):
    value: ScalarValue


class TermsClause(ExistsClause):
    values: Annotated[list[ScalarValue], Field(min_length=1, max_length=MAX_TERMS_VALUES)]


class RangeClause(ExistsClause):
    gt: RangeBound | None = None
    gte: RangeBound | None = None
    lt: RangeBound | None = None
    lte: RangeBound | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> RangeClause:
        if not self.bounds():
            raise ValueError("a range needs at least one of gt, gte, lt, lte")
        return self

    def bounds(self) -> dict[str, int | float | str]:
        pairs = (("gt", self.gt), ("gte", self.gte), ("lt", self.lt), ("lte", self.lte))
        return {op: v for op, v in pairs if v is not None}


# Nodes: each is an object with exactly one key naming its operator -------------------


class MatchNode(_Strict):
    match: TextClause


class TermNode(_Strict):
    term: TermClause


class TermsNode(_Strict):
    terms: TermsClause


class RangeNode(_Strict):
    range: RangeClause


class PrefixNode(_Strict):
    prefix: TextClause


class ExistsNode(_Strict):
    exists: ExistsClause


Children = Annotated[list["Node"], Field(min_length=1, max_length=MAX_CHILDREN)]


class AllNode(_Strict):
    all: Children


class AnyNode(_Strict):
    any: Children


class NoneNode(_Strict):
    none: Children


LeafNode = MatchNode | TermNode | TermsNode | RangeNode | PrefixNode | ExistsNode
GroupNode = AllNode | AnyNode | NoneNode


def node_kind(node: BaseModel) -> str:
    """The operator of a parsed node: the name of its one field."""
    return next(iter(type(node).model_fields))


def _node_kind(value: Any) -> str | None:
    """The operator of a raw node: its one known key (unknown extra keys are reported later)."""
    if isinstance(value, BaseModel):
        return node_kind(value)
    if isinstance(value, dict):
        known = [key for key in value if key in NODE_KINDS]
        return known[0] if len(known) == 1 else None
    return None


Node = Annotated[
    Union[  # noqa: UP007 - Tag annotations need the Union spelling
        Annotated[MatchNode, Tag("match")],
        Annotated[TermNode, Tag("term")],
        Annotated[TermsNode, Tag("terms")],
        Annotated[RangeNode, Tag("range")],
        Annotated[PrefixNode, Tag("prefix")],
        Annotated[ExistsNode, Tag("exists")],
        Annotated[AllNode, Tag("all")],
        Annotated[AnyNode, Tag("any")],
        Annotated[NoneNode, Tag("none")],
    ],
    Discriminator(_node_kind, custom_error_type="query_node", custom_error_message="bad node"),
]


class SortKey(_Strict):
    field: FieldName
    order: Literal["asc", "desc"] = "asc"


class QuerySpec(_Strict):
    query: Node
    size: Annotated[int, Field(ge=0)] = 10
    fields: list[FieldName] | None = None
    sort: Annotated[list[SortKey], Field(max_length=MAX_SORT_KEYS)] | None = None


for _model in (AllNode, AnyNode, NoneNode, QuerySpec):
    _model.model_rebuild()


# Parsing ------------------------------------------------------------------------------


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


# Profile checks -----------------------------------------------------------------------

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


# Compiling ----------------------------------------------------------------------------


def _compile_node(node: Node) -> dict[str, Any]:
    match node:
        case MatchNode(match=c):
            return {"match": {c.field: {"query": c.value}}}
        case TermNode(term=c):
            return {"term": {c.field: {"value": c.value}}}
        case TermsNode(terms=c):
            return {"terms": {c.field: list(c.values)}}
        case RangeNode(range=c):
            return {"range": {c.field: c.bounds()}}
        case PrefixNode(prefix=c):
            return {"prefix": {c.field: {"value": c.value}}}
        case ExistsNode(exists=c):
            return {"exists": {"field": c.field}}
        case AllNode(all=children):
            return {"bool": {"must": [_compile_node(c) for c in children]}}
        case AnyNode(any=children):
            should = [_compile_node(c) for c in children]
            return {"bool": {"should": should, "minimum_should_match": 1}}
        case NoneNode(none=children):
            return {"bool": {"must_not": [_compile_node(c) for c in children]}}
    raise TypeError(f"not a query node: {type(node).__name__}")


def compile_query(spec: QuerySpec, rules: ProfileRules) -> dict[str, Any]:
    """The Elasticsearch search body for `spec`; re-checks the profile so nothing slips by."""
    if problems := check_against_profile(spec, rules):
        raise QuerySpecError(problems)
    returned = list(spec.fields) if spec.fields is not None else list(rules.return_fields)
    body: dict[str, Any] = {
        "query": _compile_node(spec.query),
        "size": spec.size,
        # An empty include list means "everything" to Elasticsearch, so say False instead.
        "_source": returned or False,
        "track_total_hits": True,
    }
    if spec.sort:
        body["sort"] = [{key.field: {"order": key.order}} for key in spec.sort]
    return body
