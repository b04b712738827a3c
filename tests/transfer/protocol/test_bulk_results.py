"""Bulk import of results and identity keeps exactly-once semantics, on PostgreSQL and SQLite.

Results are applied once with their request's final state and one history event; a result
too long for a line travels in parts and is joined again, one too large for any batch fails
its request with the reason; users and profile types never go back a version.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from request_network import models as rq
from request_network.services.exchange import import_batches
from response_network import models as rs
from tests.transfer.protocol.test_bulk_exchange import (
    BACKENDS,
    HASH,
    PROFILE,
    QUERY,
    count,
    make_gap,
    request_states,
    tx_factory,
)
from transfer.format import Record
from transfer.protocol.config import inbound_from


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


# -- results ---------------------------------------------------------------------------


def test_results_apply_once_with_their_final_state_and_one_event(gap):
    gap.limit(batch_max_records=4)
    ids = gap.seed(9)
    gap.export_requests()
    gap.import_requests()
    gap.add_results(ids[:7], failed=frozenset(ids[5:7]))
    exported = gap.export_results()
    assert exported.results == 7 and len(exported.batches) == 3  # an ack rides in each
    outcomes = gap.import_results()
    assert [o.status for o in outcomes] == ["imported"] * 3
    states = request_states(gap.rq)
    assert [states[rid] for rid in ids] == [rq.COMPLETED] * 5 + [rq.FAILED] * 2 + [rq.EXPORTED] * 2
    assert gap.rq.get(rq.Response, ids[5]).error == "boom"
    assert gap.rq.get(rq.Response, ids[0]).hits == [{"id": f"{ids[0]}-0", "n": 0}]
    first_batch = {rid: gap.rq.get(rq.Response, rid).batch_id for rid in ids[:7]}

    # The same results exported again (a resend under a new seq) next to two new ones.
    gap.rs.execute(update(rs.Result).values(batch_id=None))
    gap.rs.commit()
    gap.add_results(ids[7:])
    again = gap.export_results()
    assert again.results == 9
    outcomes = gap.import_results("results-*")  # the first three are in the outbox still
    assert sorted(o.status for o in outcomes) == ["duplicate"] * 3 + ["imported"] * 3
    states = dict(gap.rq.execute(select(rq.Request.id, rq.Request.status)).all())
    assert [states[rid] for rid in ids] == [rq.COMPLETED] * 5 + [rq.FAILED] * 2 + [rq.COMPLETED] * 2
    final_events = gap.rq.execute(
        select(rq.RequestEvent.request_id, func.count())
        .where(rq.RequestEvent.status.in_([rq.COMPLETED, rq.FAILED]))
        .group_by(rq.RequestEvent.request_id)
    ).all()
    assert sorted(final_events) == sorted((rid, 1) for rid in ids), "one final event each"
    assert {rid: gap.rq.get(rq.Response, rid).batch_id for rid in ids[:7]} == first_batch


def test_a_result_for_a_request_never_sent_quarantines_its_batch_whole(gap):
    ids = gap.seed(3)
    gap.export_requests()
    gap.import_requests()
    stranger = str(uuid.uuid4())
    gap.rs.add(
        rs.ImportedRequest(
            id=stranger,
            user_id="u-x",
            profile_type="articles",
            query=QUERY,
            submitted_at=datetime.now(UTC),
            batch_id=gap.rs.execute(select(rs.Batch.id)).scalars().first(),
        )
    )
    gap.rs.commit()
    gap.add_results([*ids, stranger])
    gap.export_results()
    (outcome,) = gap.import_results()
    assert outcome.status == "quarantined"
    assert any(stranger in r and "never sent" in r for r in outcome.reasons), outcome.reasons
    assert count(gap.rq, rq.Response) == 0
    assert list(request_states(gap.rq).values()).count(rq.EXPORTED) == 3


def _error_counts(session, model, direction: str) -> dict[int, int]:
    rows = session.execute(
        select(model.seq, model.error_count).where(
            model.stream == "results", model.direction == direction
        )
    ).all()
    return dict(rows)


def test_each_results_batch_counts_its_failed_results_on_both_networks(gap):
    gap.limit(batch_max_records=4)
    ids = gap.seed(7)
    gap.export_requests()
    gap.import_requests()
    failed = frozenset({ids[1], ids[4], ids[6]})
    gap.add_results(ids, failed=failed)
    exported = gap.export_results()
    assert len(exported.batches) == 3  # three results and an ack a batch
    expected = {b.seq: len(failed.intersection(b.record_ids)) for b in exported.batches}
    assert sum(expected.values()) == 3
    assert _error_counts(gap.rs, rs.Batch, "out") == expected
    assert [o.status for o in gap.import_results()] == ["imported"] * 3
    assert _error_counts(gap.rq, rq.Batch, "in") == expected


def test_a_result_longer_than_a_line_travels_in_parts_and_is_joined_again(gap):
    gap.limit(batch_max_line_bytes=2048)
    small, big = gap.seed(2)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([small], hits=2)
    gap.add_results([big], hits=120)  # ~7 KB as one record: parts of under 2 KiB
    exported = gap.export_results()
    assert exported.results == 2
    (batch,) = exported.batches
    lines = batch.path.read_bytes().splitlines()
    assert max(len(line) for line in lines) <= 2048
    parts = [line for line in lines if big.encode() in line]
    assert len(parts) > 2 and batch.count == len(lines) - 2  # (acks +) small + the parts
    (outcome,) = gap.import_results()
    assert outcome.status == "imported"
    response = gap.rq.get(rq.Response, big)
    assert response.hits == [{"id": f"{big}-{k}", "n": k} for k in range(120)]
    assert gap.rq.get(rq.Request, big).status == rq.COMPLETED
    assert len(gap.rq.get(rq.Response, small).hits) == 2


def test_a_result_larger_than_a_batch_spans_batches_and_is_joined_in_any_arrival_order(gap):
    gap.limit(batch_max_line_bytes=1024, batch_max_bytes=4096)
    ok, huge = gap.seed(2)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([ok])
    gap.add_results([huge], hits=400)  # ~12 KB of hits: parts over several 4 KiB batches
    exported = gap.export_results()
    assert exported.results == 2
    carrying = [b for b in exported.batches if huge in b.record_ids]
    assert len(carrying) >= 3
    assert all(b.bytes <= 4096 for b in exported.batches)

    # The last batch arrives first (a gap): its parts wait, nothing is stored yet.
    last = carrying[-1].path.name
    (early,) = gap.import_results(last + "*")
    assert early.status == "imported"
    assert gap.rq.get(rq.Response, huge) is None
    assert count(gap.rq, rq.ResponsePart) > 0
    assert request_states(gap.rq)[huge] == rq.EXPORTED

    outcomes = {o.file: o.status for o in gap.import_results()}  # the rest, and the last again
    assert outcomes.pop(last) == "duplicate"
    assert set(outcomes.values()) == {"imported"}
    response = gap.rq.get(rq.Response, huge)
    assert response.hits == [{"id": f"{huge}-{k}", "n": k} for k in range(400)]
    assert response.total == 400 and response.error is None
    assert request_states(gap.rq) == {ok: rq.COMPLETED, huge: rq.COMPLETED}
    assert count(gap.rq, rq.ResponsePart) == 0, "the parts are let go once joined"


def test_a_result_with_a_hit_longer_than_a_line_fails_its_request_with_the_reason(gap):
    gap.limit(batch_max_line_bytes=1024)
    ok, wide = gap.seed(2)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([ok])
    gap.rs.add(
        rs.Result(
            request_id=wide,
            status=rs.DONE,
            total=2,
            hits=[{"id": "small", "n": 1}, {"id": "wide", "text": "x" * 2000}],
            took_ms=3,
        )
    )
    gap.rs.commit()
    assert gap.export_results().results == 2
    outcomes = gap.import_results()
    assert {o.status for o in outcomes} == {"imported"}
    assert gap.rq.get(rq.Request, wide).status == rq.FAILED
    response = gap.rq.get(rq.Response, wide)
    assert response.hits == [] and "too large to carry" in response.error
    assert gap.rq.get(rq.Request, ok).status == rq.COMPLETED
    # The response network's own record of the search is left as it ran.
    assert gap.rs.get(rs.Result, wide).status == rs.DONE


RESULT = {
    "status": "DONE",
    "total": 3,
    "error": None,
    "executed_at": "2026-01-01T00:00:00Z",
    "took_ms": 1,
    "parts": 3,
}


def part(rid: str, k: int, **changes) -> Record:
    return Record("result", rid, 1, {**RESULT, "hits": [{"n": k}], "part": k, **changes})


def import_request_side(gap):
    return import_batches(inbound_from(gap.settings["request"]), tx_factory(gap.rq))


def test_parts_wait_for_the_missing_one_then_join(gap):
    (rid,) = gap.seed(1)
    gap.export_requests()
    first = gap.write_response_batch("results", 1, None, [part(rid, 2), part(rid, 0)])
    gap.deliver_to_request(first)
    (outcome,) = import_request_side(gap)
    assert outcome.status == "imported"
    assert count(gap.rq, rq.Response) == 0 and count(gap.rq, rq.ResponsePart) == 2

    gap.deliver_to_request(gap.write_response_batch("results", 2, first.digest, [part(rid, 1)]))
    (outcome,) = import_request_side(gap)
    assert outcome.status == "imported"
    assert gap.rq.get(rq.Response, rid).hits == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert count(gap.rq, rq.ResponsePart) == 0


@pytest.mark.parametrize(
    ("later", "reason"),
    [
        (lambda rid: part(rid, 0, hits=[{"n": "other"}]), "part 0 arrived twice with different"),
        (lambda rid: part(rid, 1, parts=4), "disagree on how many there are"),
        (lambda rid: part(rid, 1, total=9), "the parts of one result disagree"),
    ],
)
def test_parts_that_contradict_each_other_quarantine_the_batch(gap, later, reason):
    (rid,) = gap.seed(1)
    gap.export_requests()
    first = gap.write_response_batch("results", 1, None, [part(rid, 0), part(rid, 2)])
    gap.deliver_to_request(first)
    assert import_request_side(gap)[0].status == "imported"
    second = gap.write_response_batch("results", 2, first.digest, [later(rid)])
    gap.deliver_to_request(second)
    (outcome,) = import_request_side(gap)
    assert outcome.status == "quarantined"
    assert any(reason in r for r in outcome.reasons), outcome.reasons
    assert count(gap.rq, rq.Response) == 0 and count(gap.rq, rq.ResponsePart) == 2


# -- identity --------------------------------------------------------------------------


def user(uid: str, version: int, username: str) -> Record:
    data = {
        "username": username,
        "password_hash": HASH,
        "role": "user",
        "profile_type": "articles",
        "active": True,
    }
    return Record("user", uid, version, data)


def profile(version: int, max_size: int) -> Record:
    return Record("profile_type", "articles", version, {**PROFILE, "max_size": max_size})


def test_users_and_profile_types_never_go_back_a_version(gap):
    gap.seed(0)  # alice (u-alice) at version 1, the profile type at version 1
    first = gap.write_response_batch(
        "users", 1, None, [user("u-alice", 3, "alice3"), user("u-bob", 1, "bob1")]
    )
    gap.deliver_to_request(first)
    # In one batch: an older alice, then bob at 4, 2 and 4 again (the first 4 wins).
    second = gap.write_response_batch(
        "users",
        2,
        first.digest,
        [
            user("u-alice", 2, "alice2"),
            user("u-bob", 4, "bob4"),
            user("u-bob", 2, "bob2"),
            user("u-bob", 4, "bob4-again"),
            user("u-carol", 1, "carol"),
        ],
    )
    gap.deliver_to_request(second)
    types = gap.write_response_batch("profile_types", 1, None, [profile(2, 20), profile(1, 5)])
    gap.deliver_to_request(types)
    outcomes = import_batches(inbound_from(gap.settings["request"]), tx_factory(gap.rq))
    assert [o.status for o in outcomes] == ["imported"] * 3
    users = {u.id: (u.version, u.username) for u in gap.rq.execute(select(rq.User)).scalars()}
    assert users == {"u-alice": (3, "alice3"), "u-bob": (4, "bob4"), "u-carol": (1, "carol")}
    assert (
        gap.rq.get(rq.ProfileType, "articles").version,
        gap.rq.get(rq.ProfileType, "articles").max_size,
    ) == (2, 20)

    # The older users batch again, under a new seq: nothing changes.
    replay = gap.write_response_batch("users", 3, second.digest, [user("u-bob", 3, "bob3")])
    gap.deliver_to_request(replay)
    (outcome,) = import_batches(inbound_from(gap.settings["request"]), tx_factory(gap.rq))
    assert outcome.status == "imported"
    assert gap.rq.get(rq.User, "u-bob").username == "bob4"
