"""Any change to a written batch is rejected before the reader finishes normally."""

from __future__ import annotations

from dataclasses import replace

import pytest
from transfer_helpers import DESTINATION, NOW, forge, new_signing_key

from transfer.format import BatchRejected, open_batch


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _reads_to_completion(read, path) -> bool:
    try:
        read(path)
    except BatchRejected:
        return False
    return True


@pytest.fixture
def small_batch(write):
    """A 3-record batch without its sidecar, so only the file's own checks can catch damage."""
    written = write()
    written.sidecar.unlink()
    return written.path, written.path.read_bytes()


def test_every_single_byte_flip_is_rejected(small_batch, read):
    path, original = small_batch
    accepted = []
    for index in range(len(original)):
        damaged = bytearray(original)
        damaged[index] ^= 0x01
        path.write_bytes(bytes(damaged))
        if _reads_to_completion(read, path):
            accepted.append(index)

    assert accepted == [], f"flips at byte offsets {accepted} were accepted"


def test_every_single_byte_flip_is_rejected_by_verify_file(small_batch, verify):
    path, original = small_batch
    accepted = []
    for index in range(0, len(original), 7):
        damaged = bytearray(original)
        damaged[index] ^= 0x80
        path.write_bytes(bytes(damaged))
        if verify(path).ok:
            accepted.append(index)

    assert accepted == []


def test_truncation_at_every_line_boundary_is_rejected(small_batch, read):
    path, original = small_batch
    boundaries = [0] + [i + 1 for i, byte in enumerate(original[:-1]) if byte == ord("\n")]
    for cut in boundaries:
        path.write_bytes(original[:cut])
        assert not _reads_to_completion(read, path), f"truncated at {cut} was accepted"


@pytest.mark.parametrize("cut_from_end", [1, 2, 10, 100, 300])
def test_truncation_inside_a_line_is_rejected(small_batch, rejected, cut_from_end):
    path, original = small_batch
    path.write_bytes(original[:-cut_from_end])

    reasons = rejected(path)

    assert any("truncated" in reason or "not a trailer" in reason for reason in reasons)


def test_truncated_after_header_reports_missing_trailer(small_batch, rejected):
    path, original = small_batch
    path.write_bytes(_join(_lines(original)[:1]))

    assert "missing trailer: nothing follows the header" in rejected(path)


def test_reordered_records_are_rejected(small_batch, rejected):
    path, original = small_batch
    lines = _lines(original)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(_join(lines))

    assert "line 5 (trailer): record digest mismatch" in rejected(path)


def test_swapped_header_and_trailer_are_rejected(small_batch, rejected):
    path, original = small_batch
    lines = _lines(original)
    lines[0], lines[-1] = lines[-1], lines[0]
    path.write_bytes(_join(lines))

    reasons = rejected(path)

    assert "line 1: not a header" in reasons
    assert "last line: not a trailer (missing trailer or truncated)" in reasons


def test_dropped_record_line_is_rejected(small_batch, rejected):
    path, original = small_batch
    lines = _lines(original)
    del lines[2]
    path.write_bytes(_join(lines))

    reasons = rejected(path)

    assert "line 4 (trailer): record count mismatch: trailer says 3, file has 2" in reasons
    assert "line 4 (trailer): record digest mismatch" in reasons


def test_duplicated_record_line_is_rejected(small_batch, rejected):
    path, original = small_batch
    lines = _lines(original)
    lines.insert(2, lines[2])
    path.write_bytes(_join(lines))

    reasons = rejected(path)

    assert "line 6 (trailer): record count mismatch: trailer says 3, file has 4" in reasons


def test_extra_line_after_trailer_is_rejected(small_batch, rejected):
    path, original = small_batch
    lines = _lines(original)
    path.write_bytes(_join([*lines, lines[1]]))

    reasons = rejected(path)

    assert "line 5: trailer before the end of the file" in reasons
    assert "last line: not a trailer (missing trailer or truncated)" in reasons


def test_second_header_is_rejected(small_batch, rejected, signing_key):
    path, original = small_batch
    lines = _lines(original)
    forge(path, signing_key, lines=[lines[1], lines[0], lines[2]])

    assert "line 3: second header" in rejected(path)


def test_missing_trailer_is_rejected(small_batch, rejected):
    path, original = small_batch
    path.write_bytes(_join(_lines(original)[:-1]))

    assert "last line: not a trailer (missing trailer or truncated)" in rejected(path)


def test_batch_signed_by_a_foreign_key_is_rejected(write, rejected):
    written = write(signing_key=new_signing_key())

    reasons = rejected(written.path)

    assert any(reason.startswith("unknown signing key id ") for reason in reasons)


def test_forged_signature_under_our_key_id_is_rejected(write, rejected, signing_key):
    impostor = replace(new_signing_key(), key_id=signing_key.key_id)
    written = write(signing_key=impostor)

    assert rejected(written.path) == [f"signature does not verify for key {signing_key.key_id}"]


def test_re_signing_with_a_foreign_key_after_editing_is_rejected(small_batch, rejected):
    path, _ = small_batch
    forge(path, new_signing_key(), header_line=path.read_bytes().split(b"\n", 1)[0])

    assert any("signature does not verify" in reason for reason in rejected(path))


def test_sidecar_mismatch_is_rejected(write, rejected):
    written = write()
    written.sidecar.write_text(f"{'0' * 64}  {written.path.name}\n")

    assert rejected(written.path) == ["sidecar: sha256 does not match the file"]


def test_nothing_is_yielded_after_a_bad_record(small_batch, public_keys):
    path, original = small_batch
    lines = _lines(original)
    lines[2] = lines[2].replace(b'"version":1', b'"version":-1')
    path.write_bytes(_join(lines))

    seen = []
    with pytest.raises(BatchRejected) as caught:
        batch = open_batch(path, expected_destination=DESTINATION, public_keys=public_keys, now=NOW)
        for record in batch.records():
            seen.append(record)

    assert len(seen) <= 1  # the record before the bad line may be yielded; the caller rolls back
    assert "line 3: record version must be an integer >= 0" in caught.value.reasons
