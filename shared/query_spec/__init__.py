"""The query spec: the only query language users have (DESIGN.md §5).

Users never send Elasticsearch DSL. They send a small JSON spec that is parsed here,
checked against a profile type's rules (which fields a query may use and return, and how
many hits it may ask for) and compiled to a search body. Every field name that reaches
Elasticsearch has passed the profile's allow-list.

The package is split by concern: `limits` (constants and operator names), `errors`
(`Problem`, `QuerySpecError`), `model` (the pydantic models), `parse` (`parse_query_spec`),
`profile` (`check_against_profile`, `validate_query`) and `compile` (`compile_query`).
Import from the package itself; it re-exports everything public.
"""

from __future__ import annotations

from .compile import compile_query
from .errors import Problem, QuerySpecError
from .limits import (
    GROUP_KINDS,
    LEAF_KINDS,
    MAX_CHILDREN,
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_SORT_KEYS,
    MAX_SPEC_BYTES,
    MAX_STRING_LENGTH,
    MAX_TERMS_VALUES,
    NODE_KINDS,
    FieldType,
    Loc,
    Scalar,
)
from .model import (
    AllNode,
    AnyNode,
    Children,
    ExistsClause,
    ExistsNode,
    FieldName,
    GroupNode,
    LeafNode,
    MatchNode,
    Node,
    NoneNode,
    PrefixNode,
    ProfileRules,
    QuerySpec,
    RangeBound,
    RangeClause,
    RangeNode,
    ScalarValue,
    SortKey,
    TermClause,
    TermNode,
    TermsClause,
    TermsNode,
    Text,
    TextClause,
    is_iso_date,
    node_kind,
)
from .parse import iter_nodes, parse_query_spec, structure_problems
from .profile import check_against_profile, validate_query, value_problem

__all__ = [
    "GROUP_KINDS",
    "LEAF_KINDS",
    "MAX_CHILDREN",
    "MAX_CLAUSES",
    "MAX_DEPTH",
    "MAX_SORT_KEYS",
    "MAX_SPEC_BYTES",
    "MAX_STRING_LENGTH",
    "MAX_TERMS_VALUES",
    "NODE_KINDS",
    "AllNode",
    "AnyNode",
    "Children",
    "ExistsClause",
    "ExistsNode",
    "FieldName",
    "FieldType",
    "GroupNode",
    "LeafNode",
    "Loc",
    "MatchNode",
    "Node",
    "NoneNode",
    "PrefixNode",
    "Problem",
    "ProfileRules",
    "QuerySpec",
    "QuerySpecError",
    "RangeBound",
    "RangeClause",
    "RangeNode",
    "Scalar",
    "ScalarValue",
    "SortKey",
    "TermClause",
    "TermNode",
    "TermsClause",
    "TermsNode",
    "Text",
    "TextClause",
    "check_against_profile",
    "compile_query",
    "is_iso_date",
    "iter_nodes",
    "node_kind",
    "parse_query_spec",
    "structure_problems",
    "validate_query",
    "value_problem",
]
