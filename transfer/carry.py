"""The operator's carry: copy ready batches from an outbox to a destination directory.

Each file is checked against its sidecar before the copy and again after it, written under
a `.part` name, fsynced and renamed; a file of the same name that differs is never
overwritten. Carried files move to `<outbox>/carried/` (kept there until acknowledged).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from transfer.digest import file_digest, sidecar_problems
from transfer.fsutil import fsync_directory
from transfer.names import parse_batch_filename, sidecar_name

CARRIED = "carried"


@dataclass
class CarryReport:
    copied: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused


def ready_batches(outbox: Path) -> list[Path]:
    """Batch files in the outbox with a matching sidecar, oldest sequence first."""
    found = []
    for p in outbox.glob("*.jsonl") if outbox.is_dir() else []:
        try:
            name = parse_batch_filename(p.name)
        except ValueError:
            continue
        if p.with_name(sidecar_name(p.name)).is_file() and not p.is_symlink():
            found.append((name.stream, name.source, name.seq, p))
    return [p for *_, p in sorted(found)]


def _copy(src: Path, dst: Path) -> None:
    part = dst.with_name("." + dst.name + ".part")
    with src.open("rb") as fin, part.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1024 * 1024)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(part, dst)


def carry(outbox: Path, destination: Path, *, archive: bool = True) -> CarryReport:
    report = CarryReport()
    destination.mkdir(parents=True, exist_ok=True)
    for src in ready_batches(outbox):
        digest = file_digest(src)
        problems = sidecar_problems(src, digest)
        entry = {"file": src.name, "sha256": digest, "bytes": src.stat().st_size}
        if problems:
            report.refused.append(entry | {"reason": "; ".join(problems)})
            continue
        dst = destination / src.name
        if dst.exists():
            if file_digest(dst) != digest:
                report.refused.append(entry | {"reason": "a different file of that name exists"})
                continue
            report.skipped.append(entry | {"reason": "already there"})
        else:
            _copy(src, dst)
            if file_digest(dst) != digest:
                dst.unlink()
                report.refused.append(entry | {"reason": "copy does not match the original"})
                continue
            _copy(src.with_name(sidecar_name(src.name)), destination / sidecar_name(src.name))
            fsync_directory(destination)
            report.copied.append(entry)
        if archive:
            kept = outbox / CARRIED
            kept.mkdir(exist_ok=True)
            for p in (src, src.with_name(sidecar_name(src.name))):
                os.replace(p, kept / p.name)
    return report
