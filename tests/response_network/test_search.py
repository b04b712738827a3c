"""The Elasticsearch backend against a real OpenSearch-compatible server (osmem-server)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch import Elasticsearch

from response_network.services.search import (
    BulkLoadError,
    PlainMediaTypeNode,
    SearchBackend,
    SearchOutcome,
    make_client,
    plain_media_types,
)
from shared.query_spec import ProfileRules, compile_query, validate_query

RULES = ProfileRules(
    name="library",
    index="books",
    fields={
        "title": "text",
        "genre": "keyword",
        "pages": "integer",
        "price": "float",
        "published": "date",
        "in_print": "boolean",
    },
    return_fields=["title", "pages"],
    max_size=50,
)
MAPPINGS = {
    "properties": {
        "id": {"type": "keyword"},
        "title": {"type": "text"},
        "genre": {"type": "keyword"},
        "pages": {"type": "integer"},
        "price": {"type": "float"},
        "published": {"type": "date"},
        "in_print": {"type": "boolean"},
        "owner": {"type": "keyword"},
    }
}
GENRES = ["sf", "crime", "poetry"]


def book(i: int) -> dict[str, Any]:
    return {
        "id": f"b{i:02d}",
        "title": f"volume {i} of the {'space' if i % 2 else 'harbour'} saga",
        "genre": GENRES[i % 3],
        "pages": 100 + i,
        "price": i * 2.5,
        "published": f"2020-01-{i + 1:02d}",
        "in_print": i % 4 == 0,
        "owner": "not for users",
    }


BOOKS = [book(i) for i in range(12)]


def search(raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(index, body) for a user's query spec, as the executor builds it."""
    return RULES.index, compile_query(validate_query(raw, RULES), RULES)


@pytest.fixture
def backend(osmem_clone: Any) -> Iterator[SearchBackend]:
    client = make_client(osmem_clone.url, compat_headers=False, timeout=10)
    client.indices.create(index=RULES.index, mappings=MAPPINGS)
    with SearchBackend(client) as backend:
        assert backend.bulk_load(RULES.index, iter(BOOKS)) == len(BOOKS)
        yield backend


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a localhost port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_server_url() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def ids(outcome: SearchOutcome) -> list[str]:
    return [hit["id"] for hit in outcome.hits]


# Media types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "plain"),
    [
        ("application/vnd.elasticsearch+json; compatible-with=8", "application/json"),
        ("application/vnd.elasticsearch+x-ndjson; compatible-with=8", "application/x-ndjson"),
        ("application/vnd.elasticsearch+json", "application/json"),
        ("text/plain", "text/plain"),
    ],
)
def test_vendor_media_types_become_plain(vendor: str, plain: str) -> None:
    headers = plain_media_types({"Accept": vendor, "Content-Type": vendor, "X-Other": vendor})
    assert (headers["accept"], headers["content-type"]) == (plain, plain)
    assert headers["x-other"] == vendor


def test_compat_headers_off_uses_the_plain_node() -> None:
    client = make_client("http://127.0.0.1:9", compat_headers=False)
    assert isinstance(client.transport.node_pool.get(), PlainMediaTypeNode)
    assert not isinstance(
        make_client("http://127.0.0.1:9").transport.node_pool.get(), PlainMediaTypeNode
    )


def test_compat_headers_on_is_refused_by_an_opensearch_compatible_server(
    backend: SearchBackend, osmem_clone: Any
) -> None:
    with SearchBackend(make_client(osmem_clone.url, compat_headers=True)) as vendor_backend:
        (outcome,) = vendor_backend.run_many([search({"query": {"exists": {"field": "genre"}}})])
        assert not outcome.ok
        assert "HTTP 406" in outcome.error and "compatible-with=8" in outcome.error
        with pytest.raises(BulkLoadError, match="HTTP 406"):
            vendor_backend.bulk_load(RULES.index, [book(99)])
    # The same search with plain media types works.
    (outcome,) = backend.run_many([search({"query": {"exists": {"field": "genre"}}})])
    assert outcome.ok and outcome.total == len(BOOKS)


# Searching ------------------------------------------------------------------------------


def test_run_many_runs_compiled_queries_in_chunks_keeping_order(backend: SearchBackend) -> None:
    searches = [
        search(
            {"query": {"term": {"field": "genre", "value": "sf"}}, "sort": [{"field": "pages"}]}
        ),
        search(
            {
                "query": {"range": {"field": "published", "gte": "2020-01-05", "lt": "2020-01-08"}},
                "fields": ["pages"],
                "sort": [{"field": "published", "order": "desc"}],
            }
        ),
        search({"query": {"match": {"field": "title", "value": "space"}}, "size": 2}),
        search(
            {
                "query": {
                    "all": [
                        {"terms": {"field": "pages", "values": [100, 101, 102, 103]}},
                        {"none": [{"term": {"field": "in_print", "value": True}}]},
                    ]
                },
                "sort": [{"field": "price", "order": "desc"}],
            }
        ),
        search(
            {
                "query": {
                    "any": [
                        {"prefix": {"field": "genre", "value": "poe"}},
                        {"range": {"field": "price", "gt": 25}},
                    ]
                },
                "sort": [{"field": "pages"}],
                "size": 0,
            }
        ),
    ]
    outcomes = backend.run_many(searches, chunk_size=2)

    assert [o.ok for o in outcomes] == [True] * 5
    assert all(o.error is None and o.took_ms is not None for o in outcomes)
    sf, by_date, space, first_four, poetry_or_dear = outcomes

    assert sf.total == 4 and ids(sf) == ["b00", "b03", "b06", "b09"]
    assert [hit["sort"] for hit in sf.hits] == [[100], [103], [106], [109]]
    assert all(set(hit["source"]) == {"title", "pages"} for hit in sf.hits)  # return_fields
    assert sf.hits[0]["index"] == "books"

    assert ids(by_date) == ["b06", "b05", "b04"]
    assert [hit["source"] for hit in by_date.hits] == [
        {"pages": 106},
        {"pages": 105},
        {"pages": 104},
    ]

    assert space.total == 6 and len(space.hits) == 2
    assert all("space" in hit["source"]["title"] for hit in space.hits)
    assert all(isinstance(hit["score"], float) for hit in space.hits)

    assert ids(first_four) == ["b03", "b02", "b01"]  # b00 is in print

    # poetry is b02, b05, b08, b11; price > 25 adds b12+ (none) and b11 already counted
    assert poetry_or_dear.total == 4 and poetry_or_dear.hits == []


def test_unknown_index_fails_only_its_own_search(backend: SearchBackend) -> None:
    good = search({"query": {"exists": {"field": "genre"}}, "size": 1})
    outcomes = backend.run_many([good, ("no-such-index", good[1]), good], chunk_size=3)
    assert [o.ok for o in outcomes] == [True, False, True]
    failed = outcomes[1]
    assert "index_not_found" in failed.error and "no-such-index" in failed.error
    assert (failed.total, failed.hits, failed.took_ms) == (None, [], None)
    assert outcomes[0].total == outcomes[2].total == len(BOOKS)


def test_a_failed_chunk_does_not_stop_the_others(osmem_clone: Any) -> None:
    class FirstMsearchFails(PlainMediaTypeNode):
        failures_left = 1

        def perform_request(self, method: str, target: str, *args: Any, **kw: Any) -> Any:
            if "_msearch" in target and FirstMsearchFails.failures_left:
                FirstMsearchFails.failures_left -= 1
                raise TransportConnectionError("connection reset by peer")
            return super().perform_request(method, target, *args, **kw)

    client = Elasticsearch(osmem_clone.url, node_class=FirstMsearchFails, max_retries=0)
    client.indices.create(index=RULES.index, mappings=MAPPINGS)
    with SearchBackend(client) as flaky:
        flaky.bulk_load(RULES.index, BOOKS)
        query = search({"query": {"exists": {"field": "genre"}}})
        outcomes = flaky.run_many([query] * 5, chunk_size=2)
    assert [o.ok for o in outcomes] == [False, False, True, True, True]
    assert [o.deferred for o in outcomes] == [True, True, False, False, False]  # run later
    assert outcomes[0].error == "could not reach Elasticsearch: connection reset by peer"
    assert outcomes[4].total == len(BOOKS)


def test_unreachable_server_gives_deferred_outcomes_not_an_exception(closed_port_url: str) -> None:
    with SearchBackend(make_client(closed_port_url, compat_headers=False, timeout=2)) as gone:
        assert gone.ping() is False
        outcomes = gone.run_many(
            [search({"query": {"exists": {"field": "genre"}}})] * 3, chunk_size=2
        )
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert not outcome.ok and outcome.deferred  # not the searches' fault: run them later
        assert outcome.error.startswith("could not reach Elasticsearch")
        assert "refused" in outcome.error.lower()


def test_a_server_that_never_answers_times_out_per_chunk(silent_server_url: str) -> None:
    with SearchBackend(make_client(silent_server_url, compat_headers=False)) as silent:
        query = search({"query": {"exists": {"field": "genre"}}})
        outcomes = silent.run_many([query] * 3, chunk_size=2, timeout_s=0.2)
    assert [o.error for o in outcomes] == ["Elasticsearch did not answer within 0.2 s"] * 3
    assert not any(o.deferred for o in outcomes)  # a timeout may be the search's own doing


def test_run_many_with_nothing_to_do_and_bad_arguments(backend: SearchBackend) -> None:
    assert backend.run_many([]) == []
    with pytest.raises(ValueError, match="chunk_size"):
        backend.run_many([], chunk_size=0)
    with pytest.raises(ValueError, match="timeout_s"):
        backend.run_many([], timeout_s=0)


# Loading --------------------------------------------------------------------------------


def test_bulk_load_uses_the_id_field_and_refreshes(backend: SearchBackend) -> None:
    doc = backend.client.get(index=RULES.index, id="b07")
    assert doc["_source"] == BOOKS[7]
    assert backend.client.count(index=RULES.index)["count"] == len(BOOKS)


def test_bulk_load_without_an_id_field_lets_the_server_pick_ids(backend: SearchBackend) -> None:
    assert backend.bulk_load("notes", [{"text": "a"}, {"text": "b"}], id_field=None) == 2
    assert backend.client.count(index="notes")["count"] == 2


def test_bulk_load_names_the_first_document_that_fails(backend: SearchBackend) -> None:
    docs = [book(20), book(21), {**book(22), "pages": "many"}, {**book(23), "pages": "lots"}]
    with pytest.raises(BulkLoadError) as caught:
        backend.bulk_load(RULES.index, docs)
    message = str(caught.value)
    assert "document #2" in message and "'b22'" in message and "pages" in message
    assert "b23" not in message


def test_bulk_load_refuses_a_document_without_its_id(backend: SearchBackend) -> None:
    with pytest.raises(BulkLoadError, match="document #1 has no 'id' field"):
        backend.bulk_load(RULES.index, [book(30), {"title": "anonymous"}])


def test_bulk_load_streams_its_input(backend: SearchBackend) -> None:
    consumed = 0

    def many_books() -> Iterator[dict[str, Any]]:
        nonlocal consumed
        for i in range(100_000):
            consumed += 1
            yield {**book(i), "id": f"s{i}", "pages": "bad" if i == 3 else i}

    with pytest.raises(BulkLoadError, match="document #3"):
        backend.bulk_load(RULES.index, many_books())
    assert consumed < 100_000  # stopped after the first chunk instead of reading everything


def test_bulk_load_against_an_unreachable_server_raises_clearly(closed_port_url: str) -> None:
    gone = SearchBackend(make_client(closed_port_url, compat_headers=False))
    with gone, pytest.raises(BulkLoadError, match="could not reach Elasticsearch"):
        gone.bulk_load("books", BOOKS)


def test_ping(backend: SearchBackend) -> None:
    assert backend.ping() is True
