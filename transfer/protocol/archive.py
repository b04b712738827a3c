"""The sender's archive: every batch is kept until the peer acknowledges it.

    outbox/            written by the export, waiting to be carried
    outbox/carried/    carried (moved here by `ferry transfer carry`), waiting for an ack
    outbox/acked/      acknowledged (with acked_batches="keep"; "delete" removes them)

Files only ever move between these directories under their own names, never overwriting a
different file; a resend copies a kept file back into `outbox/` byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from transfer.format.digest import file_digest, sidecar_text
from transfer.format.fsutil import create_temp, fsync_directory, publish, write_file_atomically
from transfer.format.names import parse_batch_filename, sidecar_name

CARRIED = "carried"
ACKED = "acked"


def kept_dirs(outbox: Path) -> tuple[Path, Path, Path]:
    return outbox, outbox / CARRIED, outbox / ACKED


def batch_files(directory: Path) -> list[Path]:
    """Batch files (by their safe names) in one directory, symlinks left out."""
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        try:
            parse_batch_filename(p.name)
        except ValueError:
            continue
        if p.is_file() and not p.is_symlink():
            found.append(p)
    return sorted(found)


def locate(outbox: Path, name: str) -> Path | None:
    """Where a batch this network wrote is kept now, if anywhere."""
    for directory in kept_dirs(outbox):
        path = directory / name
        if path.is_file() and not path.is_symlink():
            return path
    return None


def _move_no_clobber(src: Path, target: Path) -> None:
    """Rename `src` to `target`; if `target` exists, drop `src` when identical, else refuse."""
    try:
        publish(src, target)  # hard link + unlink (or checked rename): never replaces
    except FileExistsError:
        if file_digest(target) != file_digest(src):
            raise FileExistsError(f"{target} exists and differs from {src}") from None
        src.unlink()


def move_pair(src: Path, directory: Path) -> Path:
    """Move a batch and its sidecar into `directory`; never replaces a different file.

    If an identical file is already there the source is dropped instead. Raises
    `FileExistsError` if a different file holds the name (the source stays where it was).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / src.name
    _move_no_clobber(src, target)
    side_src, side_dst = src.with_name(sidecar_name(src.name)), directory / sidecar_name(src.name)
    if side_src.exists():
        try:
            _move_no_clobber(side_src, side_dst)
        except FileExistsError:
            side_src.unlink()  # the batch itself is identical; its sidecar is derived from it
    fsync_directory(directory)
    return target


def retire(outbox: Path, names: Iterable[str], *, delete: bool) -> list[str]:
    """Acknowledged batches leave `outbox/` and `outbox/carried/`: to `acked/` or deleted."""
    retired = []
    for name in names:
        for directory in (outbox / CARRIED, outbox):
            path = directory / name
            if not path.is_file():
                continue
            try:
                if delete:
                    path.unlink()
                    path.with_name(sidecar_name(name)).unlink(missing_ok=True)
                else:
                    move_pair(path, outbox / ACKED)
            except FileNotFoundError:
                continue  # moved meanwhile (a carry archiving it)
            except FileExistsError:
                continue  # a different file holds the name in acked/: left in place
            if name not in retired:
                retired.append(name)
    return retired


@dataclass(frozen=True)
class Restored:
    """Outcome of bringing one kept batch back into the outbox."""

    file: str
    status: str  # "restored", "waiting" (already in the outbox), "missing", "damaged"
    sha256: str | None
    source: str | None = None
    reason: str = ""


def _copy_exact(src: Path, final: Path) -> str:
    """Copy `src` to `final` via a hidden temp file; return the digest of what was written."""
    temp, fd = create_temp(final)
    try:
        with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
            fout.flush()
            os.fsync(fout.fileno())
        digest = file_digest(temp)
        publish(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return digest


def restore(outbox: Path, name: str, digest: str) -> Restored:
    """Put the kept copy of batch `name` back into `outbox/`, byte-identical (checked)."""
    waiting = outbox / name
    if waiting.is_file():
        actual = file_digest(waiting)
        if actual != digest:
            return Restored(name, "damaged", actual, "outbox", "the copy in outbox/ differs")
        return Restored(name, "waiting", actual, "outbox")
    for directory in kept_dirs(outbox)[1:]:
        kept = directory / name
        if not kept.is_file() or kept.is_symlink():
            continue
        if file_digest(kept) != digest:
            return Restored(
                name, "damaged", None, directory.name, f"the kept copy in {directory} differs"
            )
        outbox.mkdir(parents=True, exist_ok=True)
        written = _copy_exact(kept, waiting)
        if written != digest:  # pragma: no cover - the disk changed the bytes under us
            waiting.unlink()
            return Restored(name, "damaged", written, directory.name, "the copy differs")
        side = outbox / sidecar_name(name)
        if not side.exists():
            write_file_atomically(side, sidecar_text(digest, name))
        fsync_directory(outbox)
        return Restored(name, "restored", written, directory.name)
    where = ", ".join(f"{d}/" for d in kept_dirs(outbox))
    return Restored(name, "missing", None, None, f"no kept copy in {where}")
