"""The query spec: parsing, profile checks and compiling to Elasticsearch DSL."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.query_spec import (
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_SPEC_BYTES,
    MAX_STRING_LENGTH,
    ProfileRules,
    QuerySpec,
    QuerySpecError,
    check_against_profile,
    compile_query,
    parse_query_spec,
    validate_query,
)

RULES = ProfileRules(
    name="library",
    index="books",
    fields={
        "title": "text",
        "tag": "keyword",
        "pages": "integer",
        "price": "float",
        "published": "date",
        "in_print": "boolean",
        "isbn": "keyword",
    },
    return_fields=["title", "tag", "pages", "published"],
    max_size=100,
)


def problems_of(raw: Any, rules: ProfileRules | None = None) -> dict[tuple, str]:
    """{path: msg} of every problem found with `raw`."""
    with pytest.raises(QuerySpecError) as caught:
        if rules is None:
            parse_query_spec(raw)
        else:
            validate_query(raw, rules)
    return {p.path: p.msg for p in caught.value.problems}


def exists(field: str = "tag") -> dict[str, Any]:
    return {"exists": {"field": field}}


def nested(depth: int) -> dict[str, Any]:
    """A query `depth` nodes deep: all-of-all-of-...-exists."""
    node = exists()
    for _ in range(depth - 1):
        node = {"all": [node]}
    return node


# Parsing --------------------------------------------------------------------------------

EVERY_NODE = [
    {"match": {"field": "title", "value": "dune"}},
    {"term": {"field": "tag", "value": "sf"}},
    {"term": {"field": "pages", "value": 412}},
    {"term": {"field": "in_print", "value": True}},
    {"terms": {"field": "pages", "values": [1, 2, 3]}},
    {"range": {"field": "price", "gt": 1.5, "lte": 20}},
    {"range": {"field": "published", "gte": "1965-08-01", "lt": "1970-01-01T00:00:00Z"}},
    {"prefix": {"field": "isbn", "value": "978-"}},
    {"exists": {"field": "tag"}},
    {"all": [exists(), exists("pages")]},
    {"any": [exists()]},
    {"none": [exists()]},
]


@pytest.mark.parametrize("node", EVERY_NODE, ids=lambda n: next(iter(n)))
def test_every_node_type_parses_and_round_trips(node: dict[str, Any]) -> None:
    spec = validate_query({"query": node}, RULES)
    assert spec.model_dump(exclude_none=True)["query"] == node


def test_defaults_and_optional_parts() -> None:
    spec = parse_query_spec({"query": exists()})
    assert (spec.size, spec.fields, spec.sort) == (10, None, None)
    spec = parse_query_spec(
        {"query": exists(), "size": 0, "fields": ["title"], "sort": [{"field": "pages"}]}
    )
    assert spec.size == 0 and spec.fields == ["title"] and spec.sort[0].order == "asc"


def test_json_bytes_and_text_are_accepted() -> None:
    raw = {"query": {"term": {"field": "pages", "value": 7}}}
    assert parse_query_spec(orjson.dumps(raw)) == parse_query_spec(raw)
    assert parse_query_spec(orjson.dumps(raw).decode()) == parse_query_spec(raw)
    assert "not valid JSON" in problems_of(b"{not json")[()]


def test_unknown_fields_are_refused_with_their_location() -> None:
    raw = {
        "query": {"all": [{"range": {"field": "pages", "gt": 1, "between": [1, 2]}}]},
        "from": 10,
    }
    found = problems_of(raw)
    assert found == {
        ("query", "all", 0, "range", "between"): "unknown field 'between'",
        ("from",): "unknown field 'from'",
    }


def test_unknown_operator_and_ambiguous_nodes_are_explained() -> None:
    found = problems_of(
        {"query": {"any": [{"bool": {"must": []}}, {"match": {}, "term": {}}, {}, "tag"]}}
    )
    assert "unknown query operator ('bool')" in found[("query", "any", 0)]
    assert "exactly one operator, got match, term" in found[("query", "any", 1)]
    assert "expected one of: match" in found[("query", "any", 2)]
    assert "must be an object" in found[("query", "any", 3)]


def test_an_extra_key_beside_an_operator_is_named() -> None:
    found = problems_of({"query": {"match": {"field": "title", "value": "x"}, "boost": 2}})
    assert found == {("query", "boost"): "unknown field 'boost'"}


def test_problems_carry_dotted_and_pointer_locations() -> None:
    with pytest.raises(QuerySpecError) as caught:
        parse_query_spec({"query": {"all": [{"range": {"field": 5, "gt": 1}}]}})
    (problem,) = caught.value.problems
    assert problem.path == ("query", "all", 0, "range", "field")
    assert problem.loc == "query.all.0.range.field"
    assert problem.pointer == "/query/all/0/range/field"
    assert str(problem).startswith("query.all.0.range.field: ")
    assert problem.to_dict()["path"] == ["query", "all", 0, "range", "field"]


@pytest.mark.parametrize(
    ("raw", "path", "needle"),
    [
        ({}, ("query",), "required"),
        ({"query": exists(), "size": -1}, ("size",), "greater than or equal to 0"),
        ({"query": {"range": {"field": "pages"}}}, ("query", "range"), "at least one"),
        ({"query": {"range": {"field": "d", "gt": "soon"}}}, ("query", "range", "gt"), "ISO"),
        ({"query": {"range": {"field": "d", "gt": True}}}, ("query", "range", "gt"), "number"),
        ({"query": {"terms": {"field": "tag", "values": []}}}, ("query", "terms", "values"), "1"),
        ({"query": {"term": {"field": "tag", "value": [1]}}}, ("query", "term", "value"), "str"),
        ({"query": {"term": {"field": "tag", "value": None}}}, ("query", "term", "value"), "str"),
        ({"query": {"match": {"field": "", "value": "x"}}}, ("query", "match", "field"), "1"),
        ({"query": {"all": []}}, ("query", "all"), "at least 1"),
        ({"query": exists(), "sort": [{"field": "x", "order": "up"}]}, ("sort", 0, "order"), ""),
    ],
)
def test_malformed_specs_are_refused(raw: Any, path: tuple, needle: str) -> None:
    found = problems_of(raw)
    assert path in found, found
    assert needle in found[path]


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems_of({"query": {"all": [{"match": {}}, {"exists": {"field": 1}}]}, "size": -1})
    assert set(found) == {
        ("query", "all", 0, "match", "field"),
        ("query", "all", 0, "match", "value"),
        ("query", "all", 1, "exists", "field"),
        ("size",),
    }


def test_nesting_up_to_the_limit_is_fine_and_one_more_is_refused() -> None:
    parse_query_spec({"query": nested(MAX_DEPTH)})
    found = problems_of({"query": nested(MAX_DEPTH + 1)})
    ((path, msg),) = found.items()
    assert msg == f"query nesting exceeds depth {MAX_DEPTH}"
    assert path == ("query",) + ("all", 0) * MAX_DEPTH


@pytest.mark.parametrize("depth", [MAX_DEPTH + 3, 400])
def test_absurd_nesting_is_refused_before_parsing(depth: int) -> None:
    found = problems_of({"query": nested(depth)})
    assert list(found.values()) == [f"query nesting exceeds depth {MAX_DEPTH}"]


def test_clause_count_is_limited() -> None:
    at_limit = {"any": [{"all": [exists()] * 98}, {"all": [exists()] * 99}]}
    parse_query_spec({"query": at_limit})  # 2 + 1 groups + 197 leaves = 200 clauses
    over = {"any": [{"all": [exists()] * 99}, {"all": [exists()] * 99}]}
    assert problems_of({"query": over}) == {
        ("query",): f"query has {MAX_CLAUSES + 1} clauses; at most {MAX_CLAUSES}"
    }


def test_strings_are_limited_in_length() -> None:
    long = "x" * (MAX_STRING_LENGTH + 1)
    found = problems_of(
        {
            "query": {
                "all": [
                    {"match": {"field": "title", "value": long}},
                    {"term": {"field": "tag", "value": long}},
                    {"exists": {"field": long}},
                ]
            }
        }
    )
    assert set(found) == {
        ("query", "all", 0, "match", "value"),
        ("query", "all", 1, "term", "value"),
        ("query", "all", 2, "exists", "field"),
    }
    parse_query_spec({"query": {"match": {"field": "title", "value": "x" * MAX_STRING_LENGTH}}})


def test_oversized_spec_is_refused_before_parsing() -> None:
    values = ["v" * 100] * 200  # valid piece by piece, too big as a whole
    raw = {"query": {"terms": {"field": "tag", "values": values}}}
    assert len(orjson.dumps(raw)) > MAX_SPEC_BYTES
    too_big = {(): f"query spec is larger than {MAX_SPEC_BYTES} bytes"}
    assert problems_of(raw) == too_big
    assert problems_of(orjson.dumps(raw)) == too_big
    assert problems_of(b" " * (MAX_SPEC_BYTES + 1)) == too_big


def test_non_json_values_are_refused() -> None:
    found = problems_of({"query": {"term": {"field": "tag", "value": float("nan")}}})
    assert "finite number" in found[("query", "term", "value")]
    assert "not plain JSON" in problems_of({"query": {"exists": {"field": object()}}})[()]


def test_the_spec_model_has_a_json_schema() -> None:
    schema = QuerySpec.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "query" in schema["required"]


# Profile checks -------------------------------------------------------------------------


def test_profile_rules_refuse_return_fields_that_are_not_fields() -> None:
    with pytest.raises(ValueError, match="not among fields: secret"):
        ProfileRules(
            name="p", index="i", fields={"a": "text"}, return_fields=["secret"], max_size=1
        )
    with pytest.raises(ValueError, match="extra"):
        ProfileRules.model_validate(
            {"name": "p", "index": "i", "fields": {}, "return_fields": [], "max_size": 1, "x": 1}
        )


def test_unknown_field_is_refused() -> None:
    found = problems_of({"query": {"term": {"field": "owner", "value": "me"}}}, RULES)
    assert found == {("query", "term", "field"): "field 'owner' is not queryable here"}


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({"match": {"field": "tag", "value": "x"}}, "tag"),
        ({"prefix": {"field": "pages", "value": "1"}}, "pages"),
        ({"range": {"field": "tag", "gte": 1}}, "tag"),
        ({"range": {"field": "in_print", "gte": 1}}, "in_print"),
        ({"term": {"field": "title", "value": "dune"}}, "title"),
        ({"terms": {"field": "title", "values": ["dune"]}}, "title"),
    ],
)
def test_operator_must_suit_the_field_type(node: dict[str, Any], field: str) -> None:
    kind = next(iter(node))
    found = problems_of({"query": node}, RULES)
    assert list(found) == [("query", kind, "field")]
    assert f"{kind!r} does not apply to" in found[("query", kind, "field")]


@pytest.mark.parametrize(
    ("node", "path"),
    [
        ({"term": {"field": "pages", "value": "12"}}, ("value",)),
        ({"term": {"field": "pages", "value": 1.5}}, ("value",)),
        ({"term": {"field": "pages", "value": 2**63}}, ("value",)),
        ({"term": {"field": "pages", "value": True}}, ("value",)),
        ({"term": {"field": "price", "value": "cheap"}}, ("value",)),
        ({"term": {"field": "in_print", "value": 1}}, ("value",)),
        ({"term": {"field": "tag", "value": 7}}, ("value",)),
        ({"term": {"field": "published", "value": "last week"}}, ("value",)),
        ({"term": {"field": "published", "value": "2024-02-30"}}, ("value",)),
        ({"terms": {"field": "pages", "values": [1, "two", 3]}}, ("values", 1)),
        ({"range": {"field": "pages", "gt": "2024-01-01"}}, ("gt",)),
        ({"range": {"field": "pages", "lt": 2.5}}, ("lt",)),
        ({"range": {"field": "published", "gte": 20240101}}, ("gte",)),
    ],
)
def test_values_must_suit_the_field_type(node: dict[str, Any], path: tuple) -> None:
    kind = next(iter(node))
    found = problems_of({"query": node}, RULES)
    assert list(found) == [("query", kind, *path)]


def test_values_that_suit_the_field_type_pass() -> None:
    validate_query(
        {
            "query": {
                "all": [
                    {"term": {"field": "price", "value": 3}},
                    {"range": {"field": "price", "gte": 0, "lt": 9.99}},
                    {"term": {"field": "published", "value": "2024-02-29T10:30:00.5+02:00"}},
                    {"terms": {"field": "in_print", "values": [True, False]}},
                    {"prefix": {"field": "title", "value": "du"}},
                ]
            }
        },
        RULES,
    )


def test_returned_fields_must_be_allowed() -> None:
    found = problems_of({"query": exists(), "fields": ["title", "isbn"]}, RULES)
    assert found == {("fields", 1): "field 'isbn' may not be returned"}


def test_size_is_limited_by_the_profile() -> None:
    validate_query({"query": exists(), "size": RULES.max_size}, RULES)
    found = problems_of({"query": exists(), "size": RULES.max_size + 1}, RULES)
    assert found == {("size",): "size 101 is over this profile's maximum of 100"}


def test_sort_must_use_known_non_text_fields() -> None:
    raw = {"query": exists(), "sort": [{"field": "title"}, {"field": "owner"}, {"field": "pages"}]}
    found = problems_of(raw, RULES)
    assert set(found) == {("sort", 0, "field"), ("sort", 1, "field")}
    assert "text" in found[("sort", 0, "field")]


def test_profile_problems_are_all_reported_in_one_error() -> None:
    raw = {
        "query": {"any": [{"match": {"field": "secret", "value": "x"}}, exists("nope")]},
        "fields": ["price"],
        "size": 1000,
    }
    assert len(problems_of(raw, RULES)) == 4
    assert check_against_profile(parse_query_spec(raw), RULES) != []


# Compiling ------------------------------------------------------------------------------


def body_for(node: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return compile_query(validate_query({"query": node, **extra}, RULES), RULES)


@pytest.mark.parametrize(
    ("node", "dsl"),
    [
        (
            {"match": {"field": "title", "value": "dune"}},
            {"match": {"title": {"query": "dune"}}},
        ),
        ({"term": {"field": "pages", "value": 412}}, {"term": {"pages": {"value": 412}}}),
        ({"terms": {"field": "tag", "values": ["a", "b"]}}, {"terms": {"tag": ["a", "b"]}}),
        (
            {"range": {"field": "published", "gte": "2020-01-01", "lt": "2021-01-01"}},
            {"range": {"published": {"gte": "2020-01-01", "lt": "2021-01-01"}}},
        ),
        ({"prefix": {"field": "isbn", "value": "978"}}, {"prefix": {"isbn": {"value": "978"}}}),
        ({"exists": {"field": "tag"}}, {"exists": {"field": "tag"}}),
        ({"all": [exists()]}, {"bool": {"must": [{"exists": {"field": "tag"}}]}}),
        (
            {"any": [exists(), exists("pages")]},
            {
                "bool": {
                    "should": [{"exists": {"field": "tag"}}, {"exists": {"field": "pages"}}],
                    "minimum_should_match": 1,
                }
            },
        ),
        ({"none": [exists()]}, {"bool": {"must_not": [{"exists": {"field": "tag"}}]}}),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_each_node_compiles_to_its_dsl(node: dict[str, Any], dsl: dict[str, Any]) -> None:
    assert body_for(node)["query"] == dsl


def test_compiled_body_carries_size_source_sort_and_total() -> None:
    body = body_for(exists(), size=5, fields=["title"], sort=[{"field": "pages", "order": "desc"}])
    assert body == {
        "query": {"exists": {"field": "tag"}},
        "size": 5,
        "_source": ["title"],
        "sort": [{"pages": {"order": "desc"}}],
        "track_total_hits": True,
    }


def test_source_defaults_to_the_profile_return_fields() -> None:
    body = body_for(exists())
    assert body["_source"] == RULES.return_fields
    assert "sort" not in body


def test_asking_for_no_fields_returns_no_source() -> None:
    # An empty include list would mean "every field" to Elasticsearch.
    assert body_for(exists(), fields=[])["_source"] is False


def test_compile_refuses_a_spec_the_profile_does_not_allow() -> None:
    spec = parse_query_spec({"query": exists("secret"), "fields": ["price"]})
    with pytest.raises(QuerySpecError) as caught:
        compile_query(spec, RULES)
    assert {p.path for p in caught.value.problems} == {("query", "exists", "field"), ("fields", 0)}


# Property: whatever valid spec a user builds, only allow-listed fields reach the engine ---

_SCALAR_FOR = {
    "keyword": st.text(max_size=20),
    "integer": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000),
    "boolean": st.booleans(),
    "date": st.dates().map(lambda d: d.isoformat()),
}
_BOUND_FOR = {"integer": _SCALAR_FOR["integer"], "float": _SCALAR_FOR["float"]}
_BOUND_FOR["date"] = _SCALAR_FOR["date"]


def _fields_of(*types: str) -> list[str]:
    return sorted(name for name, kind in RULES.fields.items() if kind in types)


@st.composite
def leaf_nodes(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["match", "term", "terms", "range", "prefix", "exists"]))
    if kind == "match":
        field = draw(st.sampled_from(_fields_of("text")))
        return {"match": {"field": field, "value": draw(st.text(max_size=30))}}
    if kind == "prefix":
        field = draw(st.sampled_from(_fields_of("text", "keyword")))
        return {"prefix": {"field": field, "value": draw(st.text(max_size=30))}}
    if kind == "exists":
        return {"exists": {"field": draw(st.sampled_from(sorted(RULES.fields)))}}
    if kind == "range":
        field = draw(st.sampled_from(_fields_of("integer", "float", "date")))
        ops = draw(st.sets(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1))
        bound = _BOUND_FOR[RULES.fields[field]]
        return {"range": {"field": field, **{op: draw(bound) for op in sorted(ops)}}}
    field = draw(st.sampled_from(_fields_of("keyword", "integer", "float", "boolean", "date")))
    value = _SCALAR_FOR[RULES.fields[field]]
    if kind == "term":
        return {"term": {"field": field, "value": draw(value)}}
    return {"terms": {"field": field, "values": draw(st.lists(value, min_size=1, max_size=5))}}


query_nodes = st.recursive(
    leaf_nodes(),
    lambda children: st.builds(
        lambda kind, nodes: {kind: nodes},
        st.sampled_from(["all", "any", "none"]),
        st.lists(children, min_size=1, max_size=4),
    ),
    max_leaves=25,
)

specs = st.fixed_dictionaries(
    {"query": query_nodes},
    optional={
        "size": st.integers(0, RULES.max_size),
        "fields": st.lists(st.sampled_from(RULES.return_fields), unique=True),
        "sort": st.lists(
            st.fixed_dictionaries(
                {"field": st.sampled_from(_fields_of("keyword", "integer", "float", "date"))},
                optional={"order": st.sampled_from(["asc", "desc"])},
            ),
            max_size=3,
        ),
    },
)


def node_depth(node: dict[str, Any]) -> int:
    ((kind, body),) = node.items()
    return 1 + max(map(node_depth, body)) if kind in ("all", "any", "none") else 1


def field_names_in(dsl: Any) -> set[str]:
    """Every field name a compiled query refers to."""
    names: set[str] = set()
    if isinstance(dsl, list):
        for item in dsl:
            names |= field_names_in(item)
    elif isinstance(dsl, dict):
        for key, value in dsl.items():
            if key in ("match", "term", "terms", "range", "prefix"):
                names |= set(value)
            elif key == "exists":
                names.add(value["field"])
            elif key == "bool":
                for clause in ("must", "should", "must_not"):
                    names |= field_names_in(value.get(clause, []))
            else:
                raise AssertionError(f"unexpected DSL key {key!r}")
    return names


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_any_valid_spec_compiles_to_allow_listed_fields_only(raw: dict[str, Any]) -> None:
    assume(node_depth(raw["query"]) <= MAX_DEPTH)
    spec = validate_query(raw, RULES)
    body = compile_query(spec, RULES)
    assert set(body) <= {"query", "size", "_source", "sort", "track_total_hits"}
    assert field_names_in(body["query"]) <= set(RULES.fields)
    assert body["_source"] is False or set(body["_source"]) <= set(RULES.return_fields)
    for key in body.get("sort", []):
        assert set(key) <= set(RULES.fields) and RULES.fields[next(iter(key))] != "text"
    assert body["size"] <= RULES.max_size
