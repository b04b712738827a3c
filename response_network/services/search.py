"""The Elasticsearch backend: a configured client, chunked msearch and bulk loading.

Queries arrive here already compiled from a user's query spec (see shared.query_spec);
this module only runs them. It talks to Elasticsearch 8 in production and to any
OpenSearch-compatible server (osmem-server in the demo and tests) when the client is
made with ``compat_headers=False`` (DESIGN.md §6).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, HttpHeaders, TransportError, Urllib3HttpNode
from elastic_transport._node import NodeApiResponse  # the node API's return type
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.helpers import streaming_bulk

from shared.breaker import CircuitBreaker, CircuitOpen, breaker
from shared.metrics import SEARCH_SECONDS

log = logging.getLogger(__name__)

_VENDOR_MEDIA_TYPE = re.compile(
    r"application/vnd\.elasticsearch\+([\w-]+)(?:;\s*compatible-with=\d+)?"
)
_MEDIA_HEADERS = ("accept", "content-type")
_SERVER_TIMEOUT_SHARE = 0.9  # of a chunk's client-side timeout, given to each search


def plain_media_types(headers: Mapping[str, str]) -> HttpHeaders:
    """A copy of `headers` with Elasticsearch's compatibility media types made plain."""
    out = HttpHeaders(headers)
    for name in _MEDIA_HEADERS:
        if name in out:
            out[name] = _VENDOR_MEDIA_TYPE.sub(r"application/\1", out[name])
    return out


class PlainMediaTypeNode(Urllib3HttpNode):
    """An HTTP node that sends ``application/json`` where the client says
    ``application/vnd.elasticsearch+json; compatible-with=8``.

    The client rewrites those headers on every request, so the only place to undo it is
    the transport node. OpenSearch-compatible servers answer the vendor types with 406.
    """

    def perform_request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: HttpHeaders | None = None,
        request_timeout: DefaultType | float | None = DEFAULT,
    ) -> NodeApiResponse:
        if headers:
            headers = plain_media_types(headers)
        return super().perform_request(
            method, target, body=body, headers=headers, request_timeout=request_timeout
        )


def make_client(
    url: str,
    *,
    compat_headers: bool = True,
    timeout: float = 30.0,
    api_key: str | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> Elasticsearch:
    """An Elasticsearch client for `url`.

    ``compat_headers=False`` makes it send plain ``application/json`` and
    ``application/x-ndjson`` (needed for OpenSearch-compatible servers).
    """
    options: dict[str, Any] = {"request_timeout": timeout}
    if api_key is not None:
        options["api_key"] = api_key
    if basic_auth is not None:
        options["basic_auth"] = basic_auth
    if not compat_headers:
        options["node_class"] = PlainMediaTypeNode
    return Elasticsearch(url, **options)


@dataclass
class SearchOutcome:
    """The result of one search: hits on success, a readable `error` otherwise.

    `timed_out` is True when the server stopped the search early, so `hits` and `total`
    may be incomplete even though `ok` is True.
    """

    ok: bool
    total: int | None
    hits: list[dict[str, Any]]
    took_ms: int | None
    error: str | None
    timed_out: bool = field(default=False)
    # Not run: the cluster could not be reached or its breaker is open. Not the search's
    # fault: the executor queues it again instead of failing it.
    deferred: bool = field(default=False)

    @classmethod
    def failed(cls, error: str) -> SearchOutcome:
        return cls(ok=False, total=None, hits=[], took_ms=None, error=error)

    @classmethod
    def later(cls, reason: str) -> SearchOutcome:
        return cls(ok=False, total=None, hits=[], took_ms=None, error=reason, deferred=True)


#: This process's circuit breaker around the search cluster (`shared.breaker`).
BREAKER = "search"
#: Answers that say the cluster is unwell (overloaded, or a proxy in front of it).
_UNWELL_STATUS = frozenset({429, 502, 503, 504})


def _unwell(exc: Exception) -> bool:
    """Whether a failed call counts against the cluster (not against the search)."""
    if isinstance(exc, ApiError):
        return exc.status_code in _UNWELL_STATUS
    return isinstance(exc, TransportError)


class BulkLoadError(RuntimeError):
    """Loading documents failed; the message names the first document that failed."""


def _describe_error(error: Any) -> str:
    """``type: reason`` from an Elasticsearch error object (or whatever it sent)."""
    if isinstance(error, Mapping):
        kind, reason = error.get("type"), error.get("reason")
        if kind or reason:
            return f"{kind or 'error'}: {reason or 'no reason given'}"
    return str(error)


def _describe_exception(exc: Exception, timeout_s: float | None = None) -> str:
    if isinstance(exc, ConnectionTimeout):
        within = f" within {timeout_s:g} s" if timeout_s is not None else " in time"
        return f"Elasticsearch did not answer{within}"
    if isinstance(exc, TransportConnectionError):
        return f"could not reach Elasticsearch: {exc.message}"
    if isinstance(exc, ApiError):
        return f"Elasticsearch refused the request (HTTP {exc.status_code}): {_api_reason(exc)}"
    return f"Elasticsearch request failed: {exc}"


def _api_reason(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, Mapping) and "error" in body:
        return _describe_error(body["error"])
    return str(exc.message)


def _hit(raw: Mapping[str, Any]) -> dict[str, Any]:
    hit = {
        "id": raw.get("_id"),
        "index": raw.get("_index"),
        "score": raw.get("_score"),
        "source": raw.get("_source", {}),
    }
    if "sort" in raw:
        hit["sort"] = raw["sort"]
    return hit


def _outcome(response: Mapping[str, Any]) -> SearchOutcome:
    """One msearch response item as a SearchOutcome."""
    if "error" in response or response.get("status", 200) >= 400:
        error = _describe_error(response.get("error", "unknown error"))
        return SearchOutcome.failed(f"search failed (HTTP {response.get('status')}): {error}")
    hits = response.get("hits", {})
    total = hits.get("total")
    if isinstance(total, Mapping):
        total = total.get("value")
    return SearchOutcome(
        ok=True,
        total=total,
        hits=[_hit(h) for h in hits.get("hits", [])],
        took_ms=response.get("took"),
        error=None,
        timed_out=bool(response.get("timed_out", False)),
    )


class SearchBackend:
    """Runs compiled searches and loads documents through one Elasticsearch client."""

    def __init__(self, client: Elasticsearch) -> None:
        self.client = client

    def run_many(
        self,
        searches: Sequence[tuple[str, dict[str, Any]]],
        *,
        chunk_size: int = 50,
        timeout_s: float = 30.0,
    ) -> list[SearchOutcome]:
        """Run `(index, body)` searches with msearch, `chunk_size` at a time.

        Never raises for search failures: a failing search gets an outcome with `error`;
        a chunk that fails as a whole (timeout, refused request) fails each of its
        searches and the remaining chunks still run. A chunk the cluster could not be
        reached for, or met with the search breaker open, is not run: its outcomes are
        `deferred`. The result has one outcome per search, in input order.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        guard = breaker(BREAKER)
        outcomes: list[SearchOutcome] = []
        for start in range(0, len(searches), chunk_size):
            chunk = searches[start : start + chunk_size]
            try:
                guard.before()
            except CircuitOpen as exc:
                outcomes.extend(SearchOutcome.later(str(exc)) for _ in chunk)
                continue
            outcomes.extend(self._run_chunk(chunk, timeout_s, guard))
        return outcomes

    def _run_chunk(
        self,
        chunk: Sequence[tuple[str, dict[str, Any]]],
        timeout_s: float,
        guard: CircuitBreaker,
    ) -> list[SearchOutcome]:
        # Ask the server to stop each search a little before the client gives up on the
        # whole request, so a slow search comes back partial instead of losing the chunk.
        server_timeout = f"{max(1, int(timeout_s * 1000 * _SERVER_TIMEOUT_SHARE))}ms"
        lines: list[dict[str, Any]] = []
        for index, body in chunk:
            lines.append({"index": index})
            lines.append({"timeout": server_timeout, **body})
        started = time.perf_counter()
        try:
            response = self.client.options(request_timeout=timeout_s).msearch(searches=lines)
        except (ApiError, TransportError) as exc:
            SEARCH_SECONDS.labels("failed").observe(time.perf_counter() - started)
            if _unwell(exc):
                guard.failure()
            else:
                guard.success()  # the cluster answered: the request was at fault
            message = _describe_exception(exc, timeout_s)
            log.warning("msearch of %d searches failed: %s", len(chunk), message)
            if isinstance(exc, TransportConnectionError):  # never reached: run them later
                return [SearchOutcome.later(message) for _ in chunk]
            return [SearchOutcome.failed(message) for _ in chunk]
        guard.success()
        SEARCH_SECONDS.labels("ok").observe(time.perf_counter() - started)
        items = response.body.get("responses", [])
        if len(items) != len(chunk):
            message = f"Elasticsearch sent {len(items)} responses for {len(chunk)} searches"
            return [SearchOutcome.failed(message) for _ in chunk]
        return [_outcome(item) for item in items]

    def bulk_load(
        self,
        index: str,
        docs: Iterable[dict[str, Any]],
        *,
        id_field: str | None = "id",
        refresh: bool = True,
    ) -> int:
        """Index `docs` into `index` (streamed, not held in memory); returns how many.

        With `id_field`, each document's value of that field is its ``_id``; with `refresh`,
        the index is refreshed once at the end so the documents are searchable. The first
        document Elasticsearch rejects stops the load with a BulkLoadError naming it
        (documents sent before it stay indexed).
        """
        loaded = 0
        try:
            results = streaming_bulk(
                self.client, _actions(index, docs, id_field), raise_on_error=False
            )
            for position, (ok, item) in enumerate(results):
                if not ok:
                    raise BulkLoadError(_bulk_failure(index, position, item))
                loaded += 1
            if refresh:
                self.client.indices.refresh(index=index)
        except (ApiError, TransportError) as exc:
            message = _describe_exception(exc)
            raise BulkLoadError(
                f"bulk load into {index!r} failed after {loaded} documents: {message}"
            ) from exc
        return loaded

    def ping(self) -> bool:
        """True when the server answers."""
        try:
            return bool(self.client.ping())
        except (ApiError, TransportError):
            return False

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SearchBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _actions(
    index: str, docs: Iterable[dict[str, Any]], id_field: str | None
) -> Iterator[dict[str, Any]]:
    for position, doc in enumerate(docs):
        action: dict[str, Any] = {"_index": index, "_source": doc}
        if id_field is not None:
            if doc.get(id_field) is None:
                raise BulkLoadError(
                    f"bulk load into {index!r}: document #{position} has no {id_field!r} field"
                )
            action["_id"] = str(doc[id_field])
        yield action


def _bulk_failure(index: str, position: int, item: Mapping[str, Any]) -> str:
    op, result = next(iter(item.items()))
    doc_id = result.get("_id")
    error = _describe_error(result.get("error", f"status {result.get('status')}"))
    return f"bulk load into {index!r} failed at document #{position} (id {doc_id!r}, {op}): {error}"
