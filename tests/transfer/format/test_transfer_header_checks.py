"""Header, name and file checks: each breaks one rule under a valid signature."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from transfer_helpers import NOW, forge, header_of

from shared.jsonutil import canonical
from transfer.format import BatchRejected, open_batch


def _forge_header(path, key, **changes):
    header = header_of(path) | changes
    forge(path, key, header=header)


def test_wrong_destination_is_rejected(write, rejected):
    written = write(destination="elsewhere")

    assert rejected(written.path) == ["wrong destination: batch is for 'elsewhere', this is 'resp'"]


def test_stale_batch_is_rejected(write, rejected):
    written = write(ttl=timedelta(days=1))

    reasons = rejected(written.path, now=NOW + timedelta(days=1, seconds=1))

    assert reasons == ["stale: not_after 2025-06-02T12:00:00Z has passed"]


def test_batch_is_accepted_until_not_after(write, read):
    written = write(ttl=timedelta(days=1))

    assert len(read(written.path, now=NOW + timedelta(days=1))) == 3


def test_unknown_format_version_is_refused(write, rejected, signing_key):
    path = write().path
    _forge_header(path, signing_key, format_version=2)

    assert rejected(path) == ["header: unsupported format_version '2'"]


def test_unknown_format_name_is_refused(write, rejected, signing_key):
    path = write().path
    _forge_header(path, signing_key, format="other-batch")

    assert rejected(path) == ["header: unknown format 'other-batch'"]


def test_unknown_capability_is_refused(write, rejected, signing_key):
    path = write().path
    _forge_header(path, signing_key, capabilities=["acks", "compression"])

    assert rejected(path) == ["header: unknown capability 'compression'"]


def test_writer_refuses_unknown_capability(write):
    with pytest.raises(ValueError, match="unknown capabilities"):
        write(capabilities=["telepathy"])


def test_unexpected_and_missing_header_fields_are_refused(write, rejected, signing_key):
    path = write().path
    header = header_of(path)
    del header["prev_digest"]
    header["extra"] = 1
    forge(path, signing_key, header=header)

    reasons = rejected(path)

    assert "header: missing fields prev_digest" in reasons
    assert "header: unexpected fields extra" in reasons


def test_bad_header_values_are_each_reported(write, rejected, signing_key):
    path = write().path
    _forge_header(
        path,
        signing_key,
        seq=True,
        prev_digest="XYZ",
        created_at="yesterday",
        producer="other/1",
    )

    reasons = rejected(path)

    assert "header: seq must be an integer >= 1" in reasons
    assert "header: prev_digest must be null or a sha256 hex digest" in reasons
    assert "header: created_at is not an RFC 3339 UTC timestamp" in reasons
    assert "header: producer must look like 'ferry/<version>'" in reasons
    assert "file name seq does not match the header" in reasons


def test_duplicate_key_in_header_is_refused(write, rejected, signing_key):
    path = write().path
    line = canonical(header_of(path))
    forge(path, signing_key, header_line=line[:-1] + b',"seq":2}')

    assert "line 1: duplicate key 'seq'" in rejected(path)


def test_file_name_must_match_header(write, rejected):
    written = write(seq=3)
    renamed = written.path.with_name(written.path.name.replace("-00000003-", "-00000004-"))
    os.rename(written.path, renamed)

    assert rejected(renamed) == ["file name seq does not match the header"]


@pytest.mark.parametrize(
    "bad_name",
    [
        "batch.jsonl",
        "requests-req-00000001-{id}.jsonl.bak",
        "requests-req-1-{id}.jsonl",
        "Requests-req-00000001-{id}.jsonl",
        "requests-Req-00000001-{id}.jsonl",
        "unknown-req-00000001-{id}.jsonl",
        "requests-req-00000001-{id}.JSONL",
        ".requests-req-00000001-{id}.jsonl",
        "requests-req-00000001-{id}.jsonl\n",
        "requests-req-0000000\u0661-{id}.jsonl",
        "requests-req-00000000-{id}.jsonl",
        "requests-req-00000001-..jsonl",
        "requests-req-00000001-{ID}.jsonl",
    ],
)
def test_unsafe_file_names_are_refused(write, rejected, bad_name):
    written = write()
    name = bad_name.format(id=written.batch_id, ID=written.batch_id.upper())
    target = written.path.with_name(name)
    os.rename(written.path, target)

    reasons = rejected(target)

    assert reasons[0].startswith("unsafe or malformed file name ")


def test_symlink_is_refused(write, rejected, tmp_path):
    written = write()
    link = tmp_path / written.path.name
    link.symlink_to(written.path)

    assert rejected(link) == ["is a symlink; refusing to follow it"]


def test_directory_and_missing_file_are_refused(write, rejected, tmp_path):
    written = write()
    directory = tmp_path / written.path.name
    directory.mkdir()

    assert rejected(directory) == ["not a regular file"]
    assert rejected(tmp_path / "gone" / written.path.name) == ["file not found"]


def test_fifo_is_refused_without_blocking(write, rejected, tmp_path):
    written = write()
    fifo = tmp_path / written.path.name
    os.mkfifo(fifo)

    assert rejected(fifo) == ["not a regular file"]


def test_open_batch_raises_before_any_iteration(write, public_keys):
    written = write(destination="elsewhere")

    with pytest.raises(BatchRejected) as caught:
        open_batch(written.path, expected_destination="resp", public_keys=public_keys, now=NOW)

    assert caught.value.path == written.path
    assert "rejected" in str(caught.value)
