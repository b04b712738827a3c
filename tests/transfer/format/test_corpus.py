"""Corruption corpus: every damaged form of a real batch is refused, quarantined, imports nothing.

Each case is one *attempt*, as an importer makes it: open the arriving file, iterate
every record, and on :class:`BatchRejected` move the file to quarantine with its reasons.
For every damaged file the tests check that it was refused (``records()`` never finished
normally, so nothing can be committed), that the ``.reason.json`` beside it in quarantine
holds exactly the reader's reasons, and that those reasons name the right kind of damage
(digest, signature, truncated, name, …) — every reason must fall in some category.

The reader alone cannot tell a fork (two different valid batches with the same seq) or
an exact replay from a fresh batch: those are the ledger's (see test_ledger.py). What the
reader can catch — a file renamed to pose as another seq or batch — is tested here.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from transfer_helpers import DESTINATION, NOW, SOURCE, forge, new_signing_key, request_records

import transfer.format.lines
from shared.jsonutil import canonical
from shared.records import validate_record
from transfer.format import (
    BatchRejected,
    Record,
    WrittenBatch,
    open_batch,
    parse_batch_filename,
    verify_file,
    write_batch,
)
from transfer.format.keys import SigningKey
from transfer.protocol.quarantine import REASON_SUFFIX, quarantine

# -- what a reason is about -----------------------------------------------------------

# Every reason the reader gives falls in at least one of these (matched with re.search).
CATEGORIES: dict[str, str] = {
    "truncated": r"truncated|^missing trailer: |^empty file$",
    "digest": r"^line \d+ \(trailer\): record (digest|count|byte count) mismatch"
    r"|^sidecar: sha256 does not match the file$",
    "signature": r"^signature does not verify for key |^unknown signing key id "
    r"|^trailer: signature must be ",
    "name": r"^unsafe or malformed file name |^file name \w+ does not match the header$",
    "destination": r"^wrong destination: ",
    "stale": r"^stale: not_after ",
    "header": r"^line 1: |^header: ",
    "trailer": r"^last line: |^trailer: ",
    "json": r"^line \d+: (invalid JSON at column |invalid UTF-8 at offset |duplicate key "
    r"|NaN is not allowed|-?Infinity is not allowed|number .* is out of range"
    r"|integer is out of the 64-bit range|JSON nested deeper than |not a JSON object"
    r"|invalid \\u escape|unknown line kind |second header$|trailer before the end"
    r"|longer than \d+ bytes$)",
    "schema": r"^line \d+: (record |request |result |user |setting |profile_type |ack )",
    "limits": r"^line \d+: more than \d+ records$|^trailer: count \d+ exceeds the limit"
    r"|^file is \d+ bytes, over the ",
    "file": r"^is a symlink; refusing to follow it$|^not a regular file$|^file not found$"
    r"|^file was replaced while being opened$|^file changed while being read$",
}
_COMPILED = {name: re.compile(pattern) for name, pattern in CATEGORIES.items()}


def categories_of(reason: str) -> set[str]:
    return {name for name, pattern in _COMPILED.items() if pattern.search(reason)}


# -- the batch ----------------------------------------------------------------------


def realistic_records() -> list[Record]:
    """Three requests as the request network exports them, and the ack riding along."""
    return [
        Record(
            "request",
            "0190a5da-c967-74bb-8cce-b302099a8057",
            1,
            {
                "user_id": "u-17",
                "profile_type": "people",
                "query": {
                    "query": {"bool": {"must": [{"match": {"name": "Zoë Brontë"}}]}},
                    "size": 25,
                },
                "submitted_at": "2025-06-01T11:58:03Z",
            },
        ),
        Record(
            "request",
            "0190a5da-c968-7a01-9d2e-4b1c0f5e6a77",
            1,
            {
                "user_id": "u-4",
                "profile_type": "articles",
                "query": {
                    "query": {"range": {"published": {"gte": "2024-01-01", "lt": "2025-01-01"}}},
                    "size": 10,
                    "sort": [{"published": "desc"}],
                },
                "submitted_at": "2025-06-01T11:59:41+00:00",
            },
        ),
        Record(
            "request",
            "0190a5da-c969-7c3d-8e4f-5a6b7c8d9e0f",
            2,
            {
                "user_id": "u-17",
                "profile_type": "people",
                "query": {"query": {"term": {"city": "Łódź"}}, "size": 1},
                "submitted_at": "2025-06-01T11:59:59Z",
            },
        ),
        Record(
            "ack",
            "results",
            41,
            {"stream": "results", "through_seq": 41, "missing": [39], "rejected": []},
        ),
    ]


def write_real_batch(directory: Path, key: SigningKey, **overrides: Any) -> WrittenBatch:
    arguments: dict[str, Any] = {
        "stream": "requests",
        "source": SOURCE,
        "destination": DESTINATION,
        "seq": 7,
        "prev_digest": "5" * 64,
        "signing_key": key,
        "records": realistic_records(),
        "now": NOW,
        "capabilities": ["acks"],
    } | overrides
    directory.mkdir(parents=True, exist_ok=True)
    return write_batch(directory, **arguments)


@dataclass(frozen=True)
class Batch:
    name: str
    data: bytes

    @property
    def lines(self) -> list[bytes]:
        """The file's lines, each with its newline."""
        return self.data.splitlines(keepends=True)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, signing_key: SigningKey) -> Batch:
    written = write_real_batch(tmp_path_factory.mktemp("original"), signing_key)
    return Batch(written.path.name, written.path.read_bytes())


# -- one import attempt ---------------------------------------------------------------


@dataclass
class Outcome:
    accepted: bool
    yielded: int
    reasons: list[str] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)
    quarantined: Path | None = None


@dataclass
class Importer:
    """Attempts imports in a scratch directory; each refused file gets its own quarantine."""

    root: Path
    public_keys: dict[str, Any]
    numbers: itertools.count = field(default_factory=itertools.count)

    def attempt(self, data: bytes, name: str, **reader_options: Any) -> Outcome:
        inbox = self.root / f"inbox-{next(self.numbers)}"
        inbox.mkdir(parents=True)
        path = inbox / name
        path.write_bytes(data)
        return self.attempt_path(path, **reader_options)

    def attempt_path(self, path: Path, **reader_options: Any) -> Outcome:
        options: dict[str, Any] = {
            "expected_destination": DESTINATION,
            "public_keys": self.public_keys,
            "now": NOW,
            "validate_record": validate_record,
        } | reader_options
        yielded = 0
        try:
            with open_batch(path, **options) as reader:
                for _ in reader.records():
                    yielded += 1
        except BatchRejected as rejection:
            reasons = rejection.reasons
        else:
            return Outcome(accepted=True, yielded=yielded)
        quarantine_dir = self.root / f"quarantine-{next(self.numbers)}"
        moved = quarantine(path, quarantine_dir, reasons, now=NOW)
        report = json.loads((quarantine_dir / (moved.name + REASON_SUFFIX)).read_text())
        assert report["reasons"] == reasons, f"{path.name}: .reason.json differs from the reasons"
        assert not os.path.lexists(path), f"{path.name}: still in the inbox after quarantine"
        unclassified = [reason for reason in reasons if not categories_of(reason)]
        assert not unclassified, f"reasons in no category (imprecise?): {unclassified}"
        found = set().union(*(categories_of(reason) for reason in reasons))
        return Outcome(False, yielded, reasons, found, moved)


@pytest.fixture
def importer(tmp_path: Path, public_keys: dict[str, Any]) -> Importer:
    return Importer(tmp_path, public_keys)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability is not under test here, and thousands of fsyncs crawl on a busy disk."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def describe(failures: list[tuple[Any, Outcome]], limit: int = 12) -> str:
    shown = "\n".join(
        f"  {where}: accepted={outcome.accepted} categories={sorted(outcome.categories)} "
        f"reasons={outcome.reasons}"
        for where, outcome in failures[:limit]
    )
    more = f"\n  ... and {len(failures) - limit} more" if len(failures) > limit else ""
    return f"{len(failures)} case(s) not refused with the expected reason:\n{shown}{more}"


def refused_with(outcome: Outcome, *any_of: str) -> bool:
    return not outcome.accepted and bool(outcome.categories & set(any_of))


# -- the corpus -----------------------------------------------------------------------


def test_the_undamaged_batch_imports(importer, batch):
    outcome = importer.attempt(batch.data, batch.name)

    assert outcome.accepted and outcome.yielded == len(realistic_records())


def _expected_for_offset(batch: Batch, offset: int) -> tuple[str, ...]:
    """Which kinds of reason a change at ``offset`` must produce (any one of them)."""
    lines = batch.lines
    header_end = len(lines[0])  # just past the header's newline
    trailer_start = len(batch.data) - len(lines[-1])
    if offset < header_end:  # the header, or its newline (then line 1 is unparseable)
        return ("signature", "header")
    if offset < trailer_start - 1:  # record bytes: the trailer's digest no longer matches
        return ("digest",)
    if offset == trailer_start - 1:  # the last record's newline: record and trailer merge
        return ("trailer",)
    if offset < len(batch.data) - 1:  # the trailer's fields or its signature
        return ("trailer", "signature", "digest")
    return ("truncated",)  # the final newline


@pytest.mark.parametrize("mask", [0x01, 0x80], ids=["xor01", "xor80"])
def test_every_single_byte_change_is_refused_and_quarantined(importer, batch, mask):
    failures = []
    for offset in range(len(batch.data)):
        damaged = bytearray(batch.data)
        damaged[offset] ^= mask
        outcome = importer.attempt(bytes(damaged), batch.name)
        expected = _expected_for_offset(batch, offset)
        if not refused_with(outcome, *expected):
            failures.append((f"offset {offset} (want {'/'.join(expected)})", outcome))

    assert not failures, describe(failures)


def test_every_truncation_is_refused_as_truncated(importer, batch):
    failures = []
    for length in range(len(batch.data)):
        outcome = importer.attempt(batch.data[:length], batch.name)
        if not refused_with(outcome, "truncated"):
            failures.append((f"cut to {length} bytes", outcome))

    assert not failures, describe(failures)


def _line_count(batch: Batch) -> int:
    return len(batch.lines)


def _expected_for_line(batch: Batch, index: int) -> tuple[str, ...]:
    last = len(batch.lines) - 1
    return ("header",) if index == 0 else ("truncated",) if index == last else ("digest",)


def test_each_dropped_line_is_refused(importer, batch):
    failures = []
    for index in range(_line_count(batch)):
        lines = batch.lines
        del lines[index]
        outcome = importer.attempt(b"".join(lines), batch.name)
        expected = _expected_for_line(batch, index)
        if not refused_with(outcome, *expected):
            failures.append((f"line {index + 1} dropped (want {expected})", outcome))

    assert not failures, describe(failures)


def test_each_duplicated_line_is_refused(importer, batch):
    failures = []
    last = _line_count(batch) - 1
    for index in range(last + 1):
        lines = batch.lines
        lines.insert(index, lines[index])
        outcome = importer.attempt(b"".join(lines), batch.name)
        # a second header or an early trailer is named, and the records no longer hash right
        expected = ("json",) if index in (0, last) else ("digest",)
        if not (refused_with(outcome, *expected) and "digest" in outcome.categories):
            failures.append((f"line {index + 1} duplicated (want {expected})", outcome))

    assert not failures, describe(failures)


def test_each_swap_of_adjacent_lines_is_refused(importer, batch):
    failures = []
    last = _line_count(batch) - 1
    for index in range(last):
        lines = batch.lines
        lines[index], lines[index + 1] = lines[index + 1], lines[index]
        outcome = importer.attempt(b"".join(lines), batch.name)
        if index == 0:
            expected: tuple[str, ...] = ("header",)  # line 1 is not a header
        elif index + 1 == last:
            expected = ("truncated",)  # the last line is not a trailer
        else:
            expected = ("digest",)
        if not refused_with(outcome, *expected):
            failures.append((f"lines {index + 1} and {index + 2} swapped", outcome))

    assert not failures, describe(failures)


def test_the_read_size_never_changes_the_verdict(batch, tmp_path, public_keys, monkeypatch):
    """The reader reads in large blocks and splits lines itself; a line cut by a block edge
    must get exactly the verdict it gets in one read."""
    path = tmp_path / batch.name
    newlines = [i for i, byte in enumerate(batch.data) if byte == ord("\n")]
    near_newlines = {i + d for i in newlines for d in (-1, 0, 1)} & set(range(len(batch.data)))

    def flipped(offset: int) -> bytes:
        return batch.data[:offset] + bytes([batch.data[offset] ^ 1]) + batch.data[offset + 1 :]

    offsets = sorted(near_newlines | set(range(0, len(batch.data), 8)))
    files = [batch.data] + [flipped(offset) for offset in offsets]

    def verdicts() -> list[tuple[bool, list[str], str | None]]:
        results = []
        for data in files:
            path.write_bytes(data)
            report = verify_file(
                path,
                expected_destination=DESTINATION,
                public_keys=public_keys,
                now=NOW,
                validate_record=validate_record,
            )
            results.append((report.ok, report.reasons, report.digest))
        return results

    in_one_read = verdicts()
    for chunk in (7, 64, 301):
        monkeypatch.setattr(transfer.format.lines, "_CHUNK", chunk)
        assert verdicts() == in_one_read, f"verdicts differ with {chunk}-byte reads"


# -- signatures and keys ------------------------------------------------------------


def test_batch_signed_by_an_unknown_key_is_refused(importer, tmp_path):
    written = write_real_batch(tmp_path, new_signing_key())

    outcome = importer.attempt_path(written.path)

    assert outcome.reasons == [f"unknown signing key id {written.header['key_id']}"]
    assert outcome.categories == {"signature"}


def test_unknown_key_claiming_our_key_id_is_refused(importer, tmp_path, signing_key):
    impostor = replace(new_signing_key(), key_id=signing_key.key_id)
    written = write_real_batch(tmp_path, impostor)

    outcome = importer.attempt_path(written.path)

    assert outcome.reasons == [f"signature does not verify for key {signing_key.key_id}"]


def test_known_key_claiming_another_known_key_id_is_refused(tmp_path, signing_key):
    """Both keys are trusted, but the header names the one that did not sign."""
    other = new_signing_key()
    trusted = {signing_key.key_id: signing_key.public_key, other.key_id: other.public_key}
    written = write_real_batch(tmp_path, replace(other, key_id=signing_key.key_id))

    outcome = Importer(tmp_path / "run", trusted).attempt_path(written.path)

    assert outcome.reasons == [f"signature does not verify for key {signing_key.key_id}"]


def test_edited_and_re_signed_with_a_foreign_key_is_refused(importer, tmp_path, signing_key):
    """An attacker without our key changes a query, recomputes digests, signs with theirs."""
    written = write_real_batch(tmp_path, signing_key)
    lines = written.path.read_bytes().split(b"\n")[1:-2]
    lines[0] = lines[0].replace("Zoë Brontë".encode(), b"*")
    impostor = replace(new_signing_key(), key_id=signing_key.key_id)
    forge(written.path, impostor, header=written.header, lines=lines)

    outcome = importer.attempt_path(written.path)

    assert outcome.reasons == [f"signature does not verify for key {signing_key.key_id}"]


# -- wrong place, wrong time, wrong name ---------------------------------------------


def test_batch_for_another_destination_is_refused(importer, tmp_path, signing_key):
    written = write_real_batch(tmp_path, signing_key, destination="elsewhere")

    outcome = importer.attempt_path(written.path)

    assert outcome.reasons == ["wrong destination: batch is for 'elsewhere', this is 'resp'"]
    assert outcome.yielded == 0


def test_destination_edited_without_re_signing_is_refused(importer, batch):
    damaged = batch.data.replace(b'"destination":"resp"', b'"destination":"rest"', 1)

    outcome = importer.attempt(damaged, batch.name)

    assert {"destination", "signature"} <= outcome.categories


def _renamed(name: str, **parts: Any) -> str:
    stream, source, seq, batch_id = parse_batch_filename(name)
    fields = {"stream": stream, "source": source, "seq": seq, "batch_id": batch_id} | parts
    return f"{fields['stream']}-{fields['source']}-{fields['seq']:08d}-{fields['batch_id']}.jsonl"


@pytest.mark.parametrize(
    ("parts", "field_name"),
    [
        ({"seq": 8}, "seq"),  # an old batch carried again as if it were the next one
        ({"seq": 6}, "seq"),
        ({"batch_id": "01972b5c-ee00-7dbd-a145-740874c68b11"}, "batch_id"),
        ({"source": "other"}, "source"),
        ({"stream": "results"}, "stream"),
    ],
)
def test_replayed_batch_under_another_name_is_refused(importer, batch, parts, field_name):
    outcome = importer.attempt(batch.data, _renamed(batch.name, **parts))

    assert outcome.reasons == [f"file name {field_name} does not match the header"]
    assert outcome.categories == {"name"}


def test_replayed_batch_past_not_after_is_refused_as_stale(importer, batch):
    outcome = importer.attempt(batch.data, batch.name, now=NOW + timedelta(days=8))

    assert outcome.reasons == ["stale: not_after 2025-06-08T12:00:00Z has passed"]


def test_exact_replay_is_left_to_the_ledger(importer, batch):
    """Byte-identical under its own name, the reader cannot know it was seen before; the
    ledger's (batch_id, digest) record turns it into a no-op duplicate (test_ledger.py)."""
    assert importer.attempt(batch.data, batch.name).accepted


def test_forked_sequence_posing_under_the_other_batch_name_is_refused(
    importer, tmp_path, signing_key
):
    """Two valid batches with the same seq: each alone is acceptable to the reader (the
    ledger sees the fork), but one posing under the other's file name is caught here."""
    first = write_real_batch(tmp_path / "a", signing_key)
    second = write_real_batch(tmp_path / "b", signing_key, records=realistic_records()[:2])
    assert first.header["seq"] == second.header["seq"]

    outcome = importer.attempt(second.path.read_bytes(), first.path.name)

    assert outcome.reasons == ["file name batch_id does not match the header"]


def test_forked_sequence_by_editing_the_seq_is_refused(importer, tmp_path, signing_key):
    """Renumbering another batch to collide with a seq breaks the name and the signature."""
    written = write_real_batch(tmp_path, signing_key, seq=9)
    data = written.path.read_bytes().replace(b'"seq":9,', b'"seq":7,', 1)

    outcome = importer.attempt(data, _renamed(written.path.name, seq=7))

    assert outcome.reasons == [f"signature does not verify for key {signing_key.key_id}"]


def test_a_sidecar_that_disagrees_is_refused(importer, tmp_path, signing_key):
    written = write_real_batch(tmp_path, signing_key)
    written.sidecar.write_text(f"{'0' * 64}  {written.path.name}\n")

    outcome = importer.attempt_path(written.path)

    assert outcome.reasons == ["sidecar: sha256 does not match the file"]
    assert (outcome.quarantined.parent / written.sidecar.name).exists()  # moved along


def test_header_only_canonical_form_matters_to_the_signature(importer, batch, signing_key):
    """Re-encoding the header (same JSON value, other bytes) is a change like any other."""
    lines = batch.lines
    header = json.loads(lines[0])
    lines[0] = json.dumps(header, sort_keys=True).encode() + b"\n"  # with spaces
    assert canonical(header) + b"\n" != lines[0]

    outcome = importer.attempt(b"".join(lines), batch.name)

    assert outcome.reasons == [f"signature does not verify for key {signing_key.key_id}"]


# -- a file that changes while it is read ----------------------------------------------


def _change_after_open(path: Path, public_keys: dict[str, Any], change) -> list[str]:
    reader = open_batch(
        path,
        expected_destination=DESTINATION,
        public_keys=public_keys,
        now=NOW,
        validate_record=validate_record,
    )
    change(path)
    with pytest.raises(BatchRejected) as caught, reader:
        for _ in reader.records():
            pass
    return caught.value.reasons


def _rewrite(edit):
    def change(path: Path) -> None:
        with open(path, "r+b") as handle:  # same inode, as a copy still in progress would
            data = edit(handle.read())
            handle.seek(0)
            handle.truncate()
            handle.write(data)

    return change


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda data: data[: len(data) // 2], "file changed while being read"),
        (lambda data: data[:-1], "file changed while being read"),
        (lambda data: data + b"more\n", "file changed while being read"),
        (lambda data: data[:-400] + data[-400:].replace(b"smith", b"smyth", 1), "digest"),
    ],
    ids=["cut-in-half", "last-byte-gone", "grown", "edited"],
)
def test_file_changed_after_the_checks_is_refused(
    tmp_path, public_keys, signing_key, edit, expected
):
    """Changed in place after open_batch checked it (past what the first read buffered)."""
    written = write_real_batch(tmp_path, signing_key, records=request_records(300))
    written.sidecar.unlink()

    reasons = _change_after_open(written.path, public_keys, _rewrite(edit))

    if expected == "digest":
        assert any(categories_of(reason) == {"digest"} for reason in reasons), reasons
    else:
        assert expected in reasons
