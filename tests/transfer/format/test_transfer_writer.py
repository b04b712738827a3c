"""The writer: atomic publication, limits, refusal to overwrite, chunking."""

from __future__ import annotations

import os

import pytest
from transfer_helpers import request_record, request_records

from transfer.format import BatchLimitExceeded, Limits, Record, chunk_records, write_batch


def _failing_records(after: int):
    yield from request_records(after)
    raise RuntimeError("database went away")


def test_nothing_is_left_when_the_records_iterable_raises(write, outbox):
    with pytest.raises(RuntimeError, match="database went away"):
        write(records=_failing_records(2))

    assert os.listdir(outbox) == []


def test_nothing_is_left_when_a_limit_is_hit_midway(write, outbox):
    with pytest.raises(BatchLimitExceeded):
        write(records=request_records(10), limits=Limits(max_records=4))

    assert os.listdir(outbox) == []


def test_only_the_batch_and_its_sidecar_appear(write, outbox):
    written = write()

    assert sorted(os.listdir(outbox)) == sorted([written.path.name, written.sidecar.name])


def test_final_name_never_holds_a_partial_file(write, outbox):
    seen_during_write = []

    def watching_records():
        for record in request_records(3):
            seen_during_write.append(sorted(os.listdir(outbox)))
            yield record

    written = write(records=watching_records())

    assert all(written.path.name not in names for names in seen_during_write)
    assert all(name.startswith(".") for names in seen_during_write for name in names)


def test_refuses_to_overwrite_an_existing_batch(write):
    first = write(batch_id="01890a5d-ac96-774b-bcce-b302099a8057")
    before = first.path.read_bytes()

    with pytest.raises(FileExistsError):
        write(batch_id="01890a5d-ac96-774b-bcce-b302099a8057", records=request_records(1))

    assert first.path.read_bytes() == before


def test_record_line_over_the_limit_is_refused(write):
    big = Record("request", "00000000-0000-0000-0000-000000000001", 1, {"x": "y" * 2000})

    with pytest.raises(BatchLimitExceeded, match="max_line_bytes"):
        write(records=[big], limits=Limits(max_line_bytes=1000))


def test_batch_bytes_over_the_limit_are_refused(write):
    with pytest.raises(BatchLimitExceeded, match="max_batch_bytes"):
        write(records=request_records(50), limits=Limits(max_batch_bytes=4096))


def test_record_count_over_the_limit_is_refused(write):
    with pytest.raises(BatchLimitExceeded, match="max_records"):
        write(records=request_records(3), limits=Limits(max_records=2))


def test_exactly_at_the_record_limit_is_fine(write, read):
    written = write(records=request_records(2), limits=Limits(max_records=2))

    assert len(read(written.path, limits=Limits(max_records=2))) == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"stream": "nope"}, "unknown stream"),
        ({"source": "Req"}, "source must match"),
        ({"destination": "a-b"}, "destination must match"),
        ({"seq": 0}, "seq must be"),
        ({"prev_digest": "abc"}, "prev_digest"),
        ({"records": [Record("request", "", 1, {})]}, "record id"),
        ({"records": [Record("request", "a", -1, {})]}, "version"),
        ({"records": [Record("Bad Type", "a", 1, {})]}, "record type"),
    ],
)
def test_invalid_arguments_are_refused(write, outbox, override, message):
    with pytest.raises(ValueError, match=message):
        write(**override)

    assert os.listdir(outbox) == []


def test_naive_now_is_refused(write, outbox):
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        write(now=datetime(2025, 1, 1))


def test_chunk_records_respects_every_limit():
    limits = Limits(max_batch_bytes=3000, max_records=4)
    records = request_records(30)

    chunks = list(chunk_records(records, limits))

    assert [record for chunk in chunks for record in chunk] == records
    assert all(1 <= len(chunk) <= 4 for chunk in chunks)


def test_chunks_always_fit_the_writer(outbox, signing_key):
    limits = Limits(max_batch_bytes=2500, max_records=100)
    records = [request_record(n) for n in range(40)]

    for seq, chunk in enumerate(chunk_records(records, limits), start=1):
        written = write_batch(
            outbox,
            stream="requests",
            source="req",
            destination="resp",
            seq=seq,
            prev_digest=None,
            signing_key=signing_key,
            records=chunk,
            limits=limits,
            capabilities=["acks"],
        )
        assert written.path.stat().st_size <= 2500


def test_chunk_records_refuses_a_record_that_can_never_fit():
    big = Record("request", "00000000-0000-0000-0000-000000000001", 1, {"x": "y" * 5000})

    with pytest.raises(BatchLimitExceeded):
        list(chunk_records([big], Limits(max_line_bytes=1000)))


def test_chunk_records_of_nothing_is_nothing():
    assert list(chunk_records([])) == []
