"""Quarantine: rejected files move aside with a reason, and nothing is ever overwritten."""

from __future__ import annotations

import json
import os

from transfer_helpers import NOW

from transfer.format import file_digest
from transfer.protocol.quarantine import list_quarantine, quarantine


def test_moves_file_and_sidecar_and_writes_reason(write, tmp_path):
    written = write()
    digest = file_digest(written.path)
    quarantine_dir = tmp_path / "quarantine"

    moved = quarantine(written.path, quarantine_dir, ["line 3: bad", "stale"], now=NOW)

    assert moved == quarantine_dir / written.path.name
    assert not written.path.exists() and not written.sidecar.exists()
    assert moved.exists() and (quarantine_dir / written.sidecar.name).exists()
    reason = json.loads((quarantine_dir / f"{written.path.name}.reason.json").read_text())
    assert reason["file"] == written.path.name
    assert reason["reasons"] == ["line 3: bad", "stale"]
    assert reason["quarantined_at"] == "2025-06-01T12:00:00Z"
    assert reason["sha256"] == digest


def test_never_overwrites_a_file_already_in_quarantine(write, tmp_path, outbox):
    quarantine_dir = tmp_path / "quarantine"
    first = write(batch_id="01890a5d-ac96-774b-bcce-b302099a8057")
    first_bytes = first.path.read_bytes()
    quarantine(first.path, quarantine_dir, ["first"])
    second = write(batch_id="01890a5d-ac96-774b-bcce-b302099a8057", records=[])

    moved = quarantine(second.path, quarantine_dir, ["second"])

    assert moved != quarantine_dir / first.path.name
    assert (quarantine_dir / first.path.name).read_bytes() == first_bytes
    entries = list_quarantine(quarantine_dir)
    assert sorted(entry["reasons"][0] for entry in entries) == ["first", "second"]
    assert {entry["quarantined_as"] for entry in entries} == {first.path.name, moved.name}
    assert (quarantine_dir / (moved.name + ".sha256")).exists()


def test_file_without_sidecar(write, tmp_path):
    written = write()
    written.sidecar.unlink()

    moved = quarantine(written.path, tmp_path / "q", ["x"])

    assert sorted(os.listdir(tmp_path / "q")) == [moved.name, moved.name + ".reason.json"]


def test_symlink_is_moved_not_followed(write, tmp_path):
    written = write()
    link = tmp_path / "inbox" / written.path.name
    link.parent.mkdir()
    link.symlink_to(written.path)

    moved = quarantine(link, tmp_path / "q", ["is a symlink"])

    assert moved.is_symlink()
    assert written.path.exists()
    assert list_quarantine(tmp_path / "q")[0]["sha256"] is None


def test_unsafe_name_is_stored_under_a_safe_one(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bad = inbox / ".hidden name;rm -rf.jsonl"
    bad.write_bytes(b"junk\n")

    moved = quarantine(bad, tmp_path / "q", ["unsafe or malformed file name"])

    assert moved.name == "_.hidden_name_rm_-rf.jsonl"
    entry = list_quarantine(tmp_path / "q")[0]
    assert entry["file"] == ".hidden name;rm -rf.jsonl"
    assert entry["reason_file"] == moved.name + ".reason.json"


def test_list_quarantine_of_missing_directory_is_empty(tmp_path):
    assert list_quarantine(tmp_path / "nothing") == []


def test_list_quarantine_survives_a_broken_reason_file(tmp_path):
    (tmp_path / "x.jsonl.reason.json").write_text("{not json")

    assert list_quarantine(tmp_path) == [
        {"file": "x.jsonl", "reasons": ["unreadable"], "reason_file": "x.jsonl.reason.json"}
    ]
