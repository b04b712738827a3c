"""The request network's importers each take their streams from the inbox: `users_importer`
users and profile types, `settings_importer` settings, `import_results` the rest (results,
acks, and anything unexpected, which it quarantines). A former catch-all import remains."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from request_network import models as rq
from request_network.jobs import IDENTITY_STREAMS, SETTINGS_STREAMS
from request_network.services.exchange import import_batches
from response_network import models as rs
from response_network.services.identity import export_identity
from tests.transfer.protocol.test_bulk_exchange import BACKENDS, carry, make_gap, tx_factory
from transfer.protocol.config import inbound_from, outbound_from


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


def test_each_importer_takes_its_streams(gap):
    rid, *_ = gap.seed(1)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([rid])
    gap.rs.add(
        rs.User(
            id="u-bob",
            username="bob",
            role="user",
            profile_type="articles",
            password_hash="$2b$12$" + "b" * 53,
            active=True,
            version=1,
        )
    )
    gap.rs.commit()
    identity = export_identity(outbound_from(gap.settings["response"]), session=gap.rs)
    gap.rs.commit()
    assert [b.stream for b in identity] == ["users"]
    gap.export_results()
    request_settings = gap.settings["request"]
    carry(gap.settings["response"].outbox, request_settings.inbox)
    inbound, tx = inbound_from(request_settings), tx_factory(gap.rq)

    assert import_batches(inbound, tx, streams=SETTINGS_STREAMS) == []
    users = import_batches(inbound, tx, streams=IDENTITY_STREAMS)
    assert [(o.stream, o.status) for o in users] == [("users", "imported")]
    assert gap.rq.scalars(select(rq.User.username).where(rq.User.id == "u-bob")).all() == ["bob"]
    assert gap.rq.get(rq.Response, rid) is None, "results wait for their own importer"

    rest = import_batches(inbound, tx, other_streams=(*IDENTITY_STREAMS, *SETTINGS_STREAMS))
    assert [(o.stream, o.status) for o in rest] == [("results", "imported")]
    assert gap.rq.get(rq.Response, rid) is not None
    assert import_batches(inbound, tx) == [], "nothing is left for the catch-all import"


def test_a_file_whose_name_does_not_parse_goes_to_the_catch_all_imports(gap):
    inbox = gap.settings["request"].inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "not-a-batch.jsonl").write_text("{}\n")
    inbound, tx = inbound_from(gap.settings["request"]), tx_factory(gap.rq)
    assert import_batches(inbound, tx, streams=IDENTITY_STREAMS) == []
    (outcome,) = import_batches(inbound, tx, other_streams=IDENTITY_STREAMS)
    assert outcome.status == "quarantined"
