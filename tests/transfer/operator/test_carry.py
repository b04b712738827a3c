"""The operator's carry: digests before and after, `.part` then rename, never overwriting,
idempotent re-runs, and the outbox's `carried/` archive (media keep their files)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from transfer.format.digest import file_digest
from transfer.operator import carry as carry_module
from transfer.operator.carry import carry, is_outbox


@pytest.fixture
def two(write):
    return [write(seq=1), write(seq=2, prev_digest=None)]


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_carry_copies_checks_and_archives_the_originals(outbox, two, tmp_path):
    media = tmp_path / "media"
    report = carry(outbox, media)
    assert [c["file"] for c in report.copied] == [b.path.name for b in two]
    assert [c["sha256"] for c in report.copied] == [b.digest for b in two]
    assert report.summary() == {
        "files": 2,
        "bytes": sum((media / b.path.name).stat().st_size for b in two),
        "skipped": 0,
        "refused": 0,
        "archived": 2,
    }
    assert names(media) == sorted(n for b in two for n in (b.path.name, b.path.name + ".sha256"))
    checked = subprocess.run(
        ["sha256sum", "-c", *(p.name for p in media.glob("*.sha256"))],
        cwd=media,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert names(outbox) == ["carried"], "carried originals wait in carried/ for their ack"
    assert names(outbox / "carried") == names(media)


def test_running_it_again_is_safe(outbox, two, tmp_path):
    media = tmp_path / "media"
    first = carry(outbox, media, archive=False)
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in media.iterdir()}
    second = carry(outbox, media, archive=False)
    assert len(first.copied) == 2 and second.copied == []
    assert [s["reason"] for s in second.skipped] == ["already there"] * 2
    assert {p.name: (p.stat().st_ino, p.read_bytes()) for p in media.iterdir()} == before
    third = carry(outbox, media)  # now archive: the identical copies are there already
    assert third.ok and len(third.archived) == 2
    assert carry(outbox, media).summary()["files"] == 0


def test_a_different_file_of_the_same_name_is_never_overwritten(outbox, write, tmp_path):
    batch = write(seq=1)
    media = tmp_path / "media"
    media.mkdir()
    (media / batch.path.name).write_bytes(b"somebody else's file\n")
    report = carry(outbox, media)
    assert [r["reason"] for r in report.refused] == ["a different file of that name is there"]
    assert (media / batch.path.name).read_bytes() == b"somebody else's file\n"
    assert batch.path.exists(), "a refused batch stays in the outbox"


def test_the_final_name_never_shows_a_partial_file(outbox, write, tmp_path):
    batch = write(seq=1)
    media = tmp_path / "media"
    seen = []

    def progress(n: int) -> None:
        seen.append(
            (n, (media / batch.path.name).exists(), (media / f".{batch.path.name}.part").exists())
        )

    report = carry(outbox, media, progress=progress)
    assert report.ok and seen, "progress is reported while copying"
    assert all(not final and part for _, final, part in seen), seen
    assert sum(n for n, _, _ in seen) == (media / batch.path.name).stat().st_size
    assert not list(media.glob(".*")), "no .part file is left behind"


def test_a_copy_that_does_not_match_is_refused_and_removed(outbox, write, tmp_path, monkeypatch):
    batch = write(seq=1)
    media = tmp_path / "media"
    real = carry_module._copy_to_part

    def corrupting(src, part, progress):
        digest = real(src, part, progress)
        part.write_bytes(part.read_bytes().replace(b"smith", b"smyth", 1))
        return digest

    monkeypatch.setattr(carry_module, "_copy_to_part", corrupting)
    report = carry(outbox, media)
    assert [r["reason"] for r in report.refused] == ["after the copy: the copy differs"]
    assert not (media / batch.path.name).exists()
    assert not list(media.glob(".*.part"))
    assert batch.path.exists(), "nothing is archived that did not arrive"


def test_a_source_that_does_not_match_its_sidecar_is_refused(outbox, write, tmp_path):
    batch = write(seq=1)
    batch.path.write_bytes(batch.path.read_bytes().replace(b"smith", b"smyth", 1))
    media = tmp_path / "media"
    report = carry(outbox, media)
    assert report.refused[0]["reason"].startswith("before the copy: sidecar")
    assert names(media) == []


def test_from_media_to_an_inbox_the_media_keep_their_files(outbox, two, tmp_path):
    media, inbox = tmp_path / "media", tmp_path / "inbox"
    carry(outbox, media)
    assert not is_outbox(media) and is_outbox(outbox)
    report = carry(media, inbox)
    assert len(report.copied) == 2 and report.archived == []
    assert names(media) == names(inbox)


def test_a_batch_still_without_its_sidecar_waits(outbox, write, tmp_path):
    batch = write(seq=1)
    batch.sidecar.unlink()
    report = carry(outbox, tmp_path / "media")
    assert report.ok and report.copied == []
    assert report.skipped[0]["reason"].startswith("no sidecar yet")


def test_the_archive_never_replaces_a_different_kept_file(outbox, write, tmp_path):
    batch = write(seq=1)
    (outbox / "carried").mkdir()
    (outbox / "carried" / batch.path.name).write_bytes(b"an older, different file\n")
    report = carry(outbox, tmp_path / "media")
    assert len(report.copied) == 1
    assert "carried/" in report.refused[0]["reason"]
    assert batch.path.exists()
    assert (outbox / "carried" / batch.path.name).read_bytes() == b"an older, different file\n"


def test_symlinks_and_foreign_names_are_not_carried(outbox, write, tmp_path):
    batch = write(seq=1)
    os.symlink(batch.path, outbox / batch.path.name.replace("00000001", "00000009"))
    (outbox / "notes.txt").write_text("hello")
    report = carry(outbox, tmp_path / "media", archive=False)
    assert [c["file"] for c in report.copied] == [batch.path.name]
    assert file_digest(tmp_path / "media" / batch.path.name) == batch.digest
