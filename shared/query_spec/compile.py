"""Compiling a checked query spec to an Elasticsearch search body."""

from __future__ import annotations

from typing import Any

from .errors import QuerySpecError
from .model import (
    AllNode,
    AnyNode,
    ExistsNode,
    MatchNode,
    Node,
    NoneNode,
    PrefixNode,
    ProfileRules,
    QuerySpec,
    RangeNode,
    TermNode,
    TermsNode,
)
from .profile import check_against_profile


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
