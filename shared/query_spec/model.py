"""The parsed form of a query spec: pydantic models for nodes, clauses, the spec itself
and a profile type's rules. Structure only; limits that pydantic cannot express are checked
in `parse`, and a profile's allow-lists in `profile`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    model_validator,
)

from .limits import (
    MAX_CHILDREN,
    MAX_SORT_KEYS,
    MAX_STRING_LENGTH,
    MAX_TERMS_VALUES,
    NODE_KINDS,
    FieldType,
    Scalar,
)

# The subset of ISO 8601 that Elasticsearch's default date format accepts.
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)


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
