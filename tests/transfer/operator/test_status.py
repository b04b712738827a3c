"""`transfer.operator.status` on real PostgreSQL: what each side has sent and received, gaps,
unacked batches with their age and kept copy, quarantined files, and files waiting to move."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from ledger_support import Gap, deliver, seed_request_side
from sqlalchemy import update

from request_network import models as rq
from response_network import models as rs
from shared.db import utcnow
from tests.conftest import network_settings
from transfer.operator.carry import carry
from transfer.operator.status import render_text, transfer_status

pytestmark = pytest.mark.postgres


@pytest.fixture
def net(tmp_path, keys, pg_urls):
    return {
        "request": network_settings("request", tmp_path, keys, database_url=pg_urls["request"]),
        "response": network_settings("response", tmp_path, keys, database_url=pg_urls["response"]),
    }


def status_of(settings, session, model):
    return transfer_status(
        session,
        model,
        network_id=settings.network_id,
        peer=settings.peer_network_id,
        inbox=settings.inbox,
        outbox=settings.outbox,
        quarantine_dir=settings.quarantine_dir,
    )


@pytest.fixture
def scene(net, rq_session, rs_session, tmp_path):
    """Requests 1-3 carried, 2 lost on the way; 4 waiting; a damaged file quarantined."""
    gap = Gap(net, rq_session, rs_session)
    rq_out, rs_in = net["request"], net["response"]
    names = []
    for n in range(3):
        seed_request_side(rq_session, 1, username=f"user{n}")
        gap.request_exports()
    media = tmp_path / "media"
    carry(rq_out.outbox, media)
    names = sorted(p.name for p in media.glob("*.jsonl"))
    for name in (names[0], names[2]):
        deliver(media / name, rs_in.inbox)
    gap.response_imports()
    assert gap.response_exports() == ["acks"]
    gap.carry_to_request()
    gap.request_imports()
    rq_session.execute(
        update(rq.Batch)
        .where(rq.Batch.filename == names[1])
        .values(created_at=utcnow() - timedelta(hours=3))
    )
    rq_session.commit()
    junk = rq_out.inbox / names[0].replace("requests-request", "results-response")
    junk.write_bytes(b"not a batch\n")
    gap.request_imports()
    seed_request_side(rq_session, 1, username="late")
    gap.request_exports()
    deliver(next((rs_in.outbox / "carried").glob("acks-*.jsonl")), rq_out.inbox)  # not imported
    return names


def test_the_sender_sees_what_is_unacknowledged_and_where_it_is(scene, net, rq_session):
    status = status_of(net["request"], rq_session, rq.Batch)
    (requests,) = [s for s in status.sent if s.stream == "requests"]
    assert (requests.last_seq, requests.acked_through, requests.unacked) == (4, 1, 2)
    assert [(u.seq, u.kept_in, u.peer_rejected) for u in status.unacked] == [
        (2, "carried", False),
        (4, "outbox", False),
    ]
    assert status.unacked[0].age_seconds >= 3 * 3600 - 60
    assert [(r.stream, r.last_seq, r.gaps) for r in status.received] == [("acks", 1, [])]
    (held,) = status.quarantined
    assert held["file"].startswith("results-response-") and held["reasons"]
    assert len(status.inbox) == 1 and status.inbox[0].startswith("acks-response-")
    assert len(status.outbox) == 1 and status.outbox[0].startswith("requests-request-00000004")
    assert scene[1] in status.carried
    assert not status.healthy, "a quarantined file needs the operator"


def test_the_receiver_sees_its_gaps(scene, net, rs_session):
    status = status_of(net["response"], rs_session, rs.Batch)
    assert [(r.stream, r.last_seq, r.gaps) for r in status.received] == [("requests", 3, [2])]
    assert status.gaps == {"requests": [2]}
    assert [(s.stream, s.last_seq) for s in status.sent] == [("acks", 1)]
    assert status.unacked == [], "acks batches are never waited for"


def test_text_and_json_say_the_same(scene, net, rq_session):
    status = status_of(net["request"], rq_session, rq.Batch)
    text = render_text(status)
    for needle in (
        "network request (peer response)",
        "requests",
        "unacked batches: 2",
        "kept in carried/",
        "age 3.0h",
        "quarantined files: 1",
        "inbox (waiting to import): 1",
        "outbox (waiting to be carried): 1",
    ):
        assert needle in text, f"{needle!r} not in:\n{text}"
    data = orjson.loads(orjson.dumps(status.as_dict()))
    assert data["network"] == "request" and data["healthy"] is False
    assert [u["seq"] for u in data["unacked"]] == [2, 4]
    assert data["quarantined"][0]["reasons"] == status.quarantined[0]["reasons"]
    assert data["outbox"] == status.outbox and data["inbox"] == status.inbox
    assert {s["stream"]: s["last_seq"] for s in data["sent"]}["requests"] == 4
