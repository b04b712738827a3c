"""The operator's carry: copy ready batches from an outbox to media, or from media to an inbox.

For each batch (oldest sequence first within each stream):

1. before: the file must match its `sha256sum` sidecar (a batch still without a sidecar is
   being written and is skipped);
2. a file of the same name at the destination is never overwritten: identical → skipped,
   different → refused;
3. the sidecar is written first, then the batch is copied to a hidden `.<name>.part`, fsynced,
   read back and checked against the digest (after), published under its final name without
   ever replacing a file (hard link, or a checked rename where links are not supported), and
   the directory is fsynced. The final name never shows a partial file;
4. from an outbox the original then moves to `<outbox>/carried/`, where it stays until the
   peer acknowledges it (see `transfer.protocol.archive`); media keep their files.

Re-running is safe: what is already there and identical is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transfer.format.digest import file_digest, sidecar_problems, sidecar_text
from transfer.format.fsutil import fsync_directory, publish, write_file_atomically
from transfer.format.names import parse_batch_filename, sidecar_name
from transfer.protocol.archive import CARRIED, move_pair

__all__ = ["CARRIED", "CarryReport", "carry", "is_outbox", "ready_batches"]

_CHUNK = 1024 * 1024
Progress = Callable[[int], None]  # called with the number of bytes just copied


@dataclass
class CarryReport:
    copied: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused

    def summary(self) -> dict[str, int]:
        return {
            "files": len(self.copied),
            "bytes": sum(c["bytes"] for c in self.copied),
            "skipped": len(self.skipped),
            "refused": len(self.refused),
            "archived": len(self.archived),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "copied": self.copied,
            "skipped": self.skipped,
            "refused": self.refused,
            "archived": self.archived,
            "summary": self.summary(),
        }


def is_outbox(directory: Path) -> bool:
    """An outbox keeps carried files (`carried/`); media and inboxes do not."""
    return directory.name == "outbox" or (directory / CARRIED).is_dir()


def ready_batches(source: Path) -> list[Path]:
    """Regular batch files (safe names, no symlinks) in `source`, oldest sequence first."""
    found = []
    for p in source.iterdir() if source.is_dir() else []:
        try:
            name = parse_batch_filename(p.name)
        except ValueError:
            continue
        if p.is_file() and not p.is_symlink():
            found.append((name.stream, name.source, name.seq, p))
    return [p for *_, p in sorted(found)]


def _copy_to_part(src: Path, part: Path, progress: Progress | None) -> str:
    """Copy into a fresh `.part` file, fsynced; return the digest of the bytes read."""
    with contextlib.suppress(FileNotFoundError):
        part.unlink()  # left over from an interrupted carry: it was never published
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(part, flags, 0o644)
    digest = hashlib.sha256()
    with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(chunk)
            digest.update(chunk)
            if progress:
                progress(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest()


def _place_sidecar(destination: Path, name: str, digest: str) -> str | None:
    """Write the sidecar at the destination; a reason if a different one is in the way."""
    path = destination / sidecar_name(name)
    if os.path.lexists(path):
        same = path.is_file() and path.read_bytes() == sidecar_text(digest, name)
        if path.is_symlink() or not same:
            return f"a different {path.name} is already at the destination"
        return None
    write_file_atomically(path, sidecar_text(digest, name))
    return None


def _carry_one(
    src: Path, destination: Path, report: CarryReport, progress: Progress | None
) -> bool:
    """Copy one batch; True if it is now at the destination (copied or already there)."""
    sidecar = src.with_name(sidecar_name(src.name))
    if not sidecar.is_file():
        report.skipped.append({"file": src.name, "reason": "no sidecar yet (still being written?)"})
        return False
    size = src.stat().st_size
    digest = file_digest(src)
    entry = {"file": src.name, "sha256": digest, "bytes": size}
    problems = sidecar_problems(src, digest)
    if problems:
        report.refused.append(entry | {"reason": "before the copy: " + "; ".join(problems)})
        return False
    dst = destination / src.name
    if os.path.lexists(dst):
        if dst.is_symlink() or not dst.is_file() or file_digest(dst) != digest:
            report.refused.append(entry | {"reason": "a different file of that name is there"})
            return False
        problem = _place_sidecar(destination, src.name, digest)
        if problem:
            report.refused.append(entry | {"reason": problem})
            return False
        report.skipped.append(entry | {"reason": "already there"})
        if progress:
            progress(size)
        return True
    problem = _place_sidecar(destination, src.name, digest)
    if problem:
        report.refused.append(entry | {"reason": problem})
        return False
    part = destination / f".{src.name}.part"
    try:
        read = _copy_to_part(src, part, progress)
        written = file_digest(part)
        if read != digest or written != digest:
            what = "the source changed during the copy" if read != digest else "the copy differs"
            report.refused.append(entry | {"reason": f"after the copy: {what}"})
            return False
        publish(part, dst)
    except FileExistsError:
        report.refused.append(entry | {"reason": "a file of that name appeared meanwhile"})
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    fsync_directory(destination)
    report.copied.append(entry)
    return True


def carry(
    source: Path,
    destination: Path,
    *,
    archive: bool | None = None,
    progress: Progress | None = None,
) -> CarryReport:
    """Copy every ready batch from `source` to `destination`.

    `archive`: move carried originals to `<source>/carried/`; by default only when `source`
    is an outbox (see :func:`is_outbox`).
    """
    if archive is None:
        archive = is_outbox(source)
    report = CarryReport()
    destination.mkdir(parents=True, exist_ok=True)
    for src in ready_batches(source):
        try:
            arrived = _carry_one(src, destination, report, progress)
        except FileNotFoundError:
            report.skipped.append({"file": src.name, "reason": "gone from the source meanwhile"})
            continue
        if arrived and archive:
            try:
                move_pair(src, source / CARRIED)
                report.archived.append(src.name)
            except FileNotFoundError:
                pass  # retired (acknowledged) or resent meanwhile: nothing left to archive
            except FileExistsError:
                report.refused.append(
                    {
                        "file": src.name,
                        "reason": f"copied, but a different file of that name is "
                        f"in {CARRIED}/; left in place",
                    }
                )
    return report


def total_bytes(source: Path) -> int:
    """Bytes a carry from `source` would read at most (for a progress bar)."""
    total = 0
    for p in ready_batches(source):
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total
