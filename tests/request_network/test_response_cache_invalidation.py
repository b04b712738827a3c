"""Cached responses go when they stop being true, through the real import path
(`request_network.jobs.import_inbox` on signed batches in the inbox): a newer result of a
request, a user turned inactive. And the race: a reader refilling the cache from the old row
while an import commits a newer result never leaves the old body in the cache once the import
has committed, whichever side of the commit the refill lands on."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from cache_helpers import (
    CACHE_REDIS_URL,
    FIRST_RUN,
    Carrier,
    cache_settings,
    clear_keys,
    login,
    response_url,
    result,
    user_record,
)
from fastapi.testclient import TestClient
from sqlalchemy import event

from request_network import jobs
from request_network.app import create_app
from request_network.models import COMPLETED, EXPORTED
from request_network.services import response_cache
from shared.db import get_engine, transaction

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

OLD = [{"_id": "o1", "_source": {"title": "the first run"}}]
NEW = [{"_id": "n1", "_source": {"title": "the second run"}}, {"_id": "n2", "_source": {}}]
WAIT_S = 30  # bound on every wait for the other thread


@pytest.fixture
def cache(api_db):
    client = redis.Redis.from_url(CACHE_REDIS_URL)
    clear_keys(client)
    yield client
    clear_keys(client)
    client.close()


@pytest.fixture
def client(api_db, cache):
    with TestClient(create_app(cache_settings(api_db))) as test_client:
        yield test_client


@pytest.fixture
def carrier(api_db, tmp_path, keys) -> Carrier:
    return Carrier(tmp_path, keys, api_db)


@pytest.fixture
def alice_id(seed) -> str:
    seed.profile_type()
    return seed.user("alice")


def import_all(carrier: Carrier) -> list[str]:
    return [f["status"] for f in jobs.import_inbox(carrier.settings)["files"]]


def read(client, request_id, headers):
    reply = client.get(response_url(request_id), headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.headers["x-cache"], reply.json()["hits"]


def test_a_newer_result_drops_the_cached_response_when_its_import_commits(
    client, seed, alice_id, carrier, cache
):
    request_id = seed.request(alice_id, status=EXPORTED)
    carrier.deliver("results", [result(request_id, executed_at=FIRST_RUN, hits=OLD)])
    assert import_all(carrier) == ["imported"]
    alice = login(client, "alice")
    assert read(client, request_id, alice) == ("MISS", OLD)
    first_tag = client.get(response_url(request_id), headers=alice).headers["etag"]
    assert read(client, request_id, alice) == ("HIT", OLD)

    rerun = FIRST_RUN + timedelta(hours=1)
    carrier.deliver("results", [result(request_id, executed_at=rerun, hits=NEW)])
    assert import_all(carrier) == ["imported"]

    assert cache.exists(f"resp:{request_id}", f"resp:meta:{request_id}") == 0
    reply = client.get(response_url(request_id), headers=alice)
    assert (reply.headers["x-cache"], reply.json()["hits"]) == ("MISS", NEW)
    assert reply.json()["executed_at"] == "2024-05-01T13:00:00Z"
    assert reply.headers["etag"] != first_tag
    assert read(client, request_id, alice) == ("HIT", NEW)
    history = client.get(f"/api/v1/requests/{request_id}", headers=alice).json()["history"]
    assert [e["detail"] for e in history if e["status"] == "COMPLETED"][-1] == "a newer result"
    assert cache.hget("resp:stats", "evicted_invalidated") == b"1"

    # The first result once more (a resend in a new batch): older, so it changes nothing.
    carrier.deliver("results", [result(request_id, executed_at=FIRST_RUN, hits=OLD)])
    assert import_all(carrier) == ["imported"]
    assert read(client, request_id, alice) == ("HIT", NEW)


def test_a_user_turned_inactive_loses_their_cached_responses(
    client, seed, alice_id, carrier, cache
):
    bob_id = seed.user("bob")
    mine = [seed.request(alice_id) for _ in range(2)]
    bobs = seed.request(bob_id)
    for request_id in [*mine, bobs]:
        seed.response(request_id, OLD)
    alice, bob = login(client, "alice"), login(client, "bob")
    for request_id in mine:
        read(client, request_id, alice)
    read(client, bobs, bob)
    assert cache.smembers(f"resp:user:{alice_id}") == {m.encode() for m in mine}

    carrier.deliver("users", [user_record(alice_id, "alice", active=False, version=2)])
    assert import_all(carrier) == ["imported"]

    for request_id in mine:
        assert cache.exists(f"resp:{request_id}", f"resp:meta:{request_id}") == 0
    assert cache.exists(f"resp:user:{alice_id}") == 0
    assert read(client, bobs, bob) == ("HIT", OLD), "another user's entries stay"
    assert client.get(response_url(mine[0]), headers=alice).status_code == 401


def test_a_refill_that_read_the_old_row_before_the_import_cannot_store_it_after(
    client, seed, alice_id, carrier, cache
):
    """The reader takes the generation and reads the old row; the import commits the newer
    result; only then does the reader try to store what it read: refused."""
    request_id = seed.request(alice_id, status=COMPLETED)  # answered: it has a response
    seed.response(request_id, OLD)
    carrier.deliver("results", [result(request_id, executed_at=FIRST_RUN + timedelta(1), hits=NEW)])
    alice = login(client, "alice")
    engine = get_engine(carrier.settings.database_url)
    read_old_row, imported = threading.Event(), threading.Event()
    armed = [True]

    def hold_the_reader(conn, cursor, statement, parameters, context, executemany):
        if armed[0] and statement.startswith("SELECT") and "FROM responses" in statement:
            armed[0] = False  # the reader's read of the response row, once
            read_old_row.set()
            assert imported.wait(WAIT_S), "the import never finished"

    event.listen(engine, "after_cursor_execute", hold_the_reader)
    try:
        with ThreadPoolExecutor(1) as pool:
            reader = pool.submit(client.get, response_url(request_id), headers=alice)
            assert read_old_row.wait(WAIT_S), "the reader never read the response row"
            assert import_all(carrier) == ["imported"]  # committed, and invalidated
            imported.set()
            reply = reader.result(timeout=WAIT_S)
    finally:
        event.remove(engine, "after_cursor_execute", hold_the_reader)

    assert (reply.headers["x-cache"], reply.json()["hits"]) == ("MISS", OLD), "read before"
    assert cache.get(f"resp:{request_id}") is None, "the old body was not stored after"
    assert read(client, request_id, alice) == ("MISS", NEW)
    assert read(client, request_id, alice) == ("HIT", NEW)


def test_a_refill_while_the_import_is_committing_cannot_store_the_old_row(
    client, seed, alice_id, carrier, cache
):
    """The import has written the newer result and is about to commit; a reader comes in,
    misses, reads the old row (still the committed one) and tries to store it: the import's
    fence refuses it, so once the commit lands no hit can serve the old body."""
    request_id = seed.request(alice_id, status=COMPLETED)  # answered: it has a response
    seed.response(request_id, OLD)
    carrier.deliver("results", [result(request_id, executed_at=FIRST_RUN + timedelta(1), hits=NEW)])
    alice = login(client, "alice")
    assert read(client, request_id, alice) == ("MISS", OLD)
    assert read(client, request_id, alice) == ("HIT", OLD)
    engine = get_engine(carrier.settings.database_url)
    at_commit, reader_done = threading.Event(), threading.Event()
    importer: list[threading.Thread] = []
    wrote: list[bool] = []

    def note_the_update(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread() in importer and statement.startswith("UPDATE responses"):
            wrote.append(True)

    def hold_the_commit(conn):
        if threading.current_thread() in importer and wrote and not at_commit.is_set():
            at_commit.set()
            assert reader_done.wait(WAIT_S), "the reader never finished"

    event.listen(engine, "after_cursor_execute", note_the_update)
    event.listen(engine, "commit", hold_the_commit)
    try:
        with ThreadPoolExecutor(1) as pool:
            importing = pool.submit(lambda: importer.append(threading.current_thread()))
            importing.result(timeout=WAIT_S)
            importing = pool.submit(import_all, carrier)
            assert at_commit.wait(WAIT_S), "the import never reached its commit"
            assert cache.exists(f"resp:{request_id}") == 0, "the entry went before the commit"
            during = client.get(response_url(request_id), headers=alice)
            assert cache.exists(f"resp:{request_id}") == 0, "the fence refused the refill"
            reader_done.set()
            assert importing.result(timeout=WAIT_S) == ["imported"]
    finally:
        event.remove(engine, "after_cursor_execute", note_the_update)
        event.remove(engine, "commit", hold_the_commit)

    assert (during.headers["x-cache"], during.json()["hits"]) == ("MISS", OLD)
    assert cache.get(f"resp:{request_id}") is None
    assert cache.exists(f"resp:fence:{request_id}") == 0, "the fence is lifted after the commit"
    assert read(client, request_id, alice) == ("MISS", NEW)
    assert read(client, request_id, alice) == ("HIT", NEW)


def test_a_quarantined_batch_leaves_the_cached_response_alone(
    client, seed, alice_id, carrier, cache
):
    request_id = seed.request(alice_id)
    seed.response(request_id, OLD)
    alice = login(client, "alice")
    read(client, request_id, alice)
    stranger = "00000000-0000-4000-8000-00000000beef"  # a request this network never sent
    rerun = FIRST_RUN + timedelta(hours=1)
    carrier.deliver(
        "results",
        [
            result(request_id, executed_at=rerun, hits=NEW),
            result(stranger, executed_at=rerun, hits=NEW),
        ],
    )

    assert import_all(carrier) == ["quarantined"]  # nothing of it committed

    assert read(client, request_id, alice) == ("HIT", OLD)
    assert cache.exists(f"resp:fence:{request_id}") == 0
    assert cache.hget("resp:stats", "evicted_invalidated") is None


def test_stale_entries_noted_in_a_transaction_go_at_its_commit_and_stay_on_rollback(
    client, seed, alice_id, cache, api_db
):
    """What a cancel (or any other change of a response) does: note the ids in the
    transaction that makes them stale; the entries go only if it commits."""
    kept, dropped = seed.request(alice_id), seed.request(alice_id)
    for request_id in (kept, dropped):
        seed.response(request_id, OLD)
    alice = login(client, "alice")
    for request_id in (kept, dropped):
        read(client, request_id, alice)

    with pytest.raises(RuntimeError), transaction(api_db) as session:
        response_cache.watch_commits(session, cache)
        response_cache.invalidate_on_commit(session, request_ids=[kept])
        raise RuntimeError("the change failed")
    with transaction(api_db) as session:
        response_cache.watch_commits(session, cache)
        response_cache.invalidate_on_commit(session, request_ids=[dropped])
        assert cache.exists(f"resp:{dropped}") == 1, "not before the commit"

    assert read(client, kept, alice) == ("HIT", OLD)
    assert read(client, dropped, alice) == ("MISS", OLD)
    assert cache.exists(f"resp:fence:{kept}", f"resp:fence:{dropped}") == 0
