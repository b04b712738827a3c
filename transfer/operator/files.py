"""What an operator does to batch files over HTTP: download from the outbox, upload into the
inbox (verified before it is accepted), inspect, release or delete quarantined files.

Every name is checked against the batch-name format before it touches the file system, so a
request can never reach outside the transfer directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson

from transfer.format.digest import file_digest, sidecar_text
from transfer.format.fsutil import fsync_directory
from transfer.format.names import parse_batch_filename, sidecar_name
from transfer.format.reader import VerifyReport
from transfer.protocol.quarantine import REASON_SUFFIX, list_quarantine

UPLOADS = ".uploads"


class OperatorError(Exception):
    """Refused with an HTTP-like status and a reason an operator can act on."""

    def __init__(self, status: int, detail: str, reasons: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.reasons = status, detail, reasons or []


def _batch_name(name: str) -> str:
    try:
        parse_batch_filename(name)
    except ValueError as exc:
        raise OperatorError(400, str(exc)) from None
    return name


def _regular_file(path: Path) -> Path:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise OperatorError(404, f"no batch named {path.name}") from None
    if not stat.S_ISREG(mode):
        raise OperatorError(409, f"{path.name} is not a regular file")
    return path


def describe(path: Path) -> dict[str, Any]:
    name = parse_batch_filename(path.name)
    info = path.stat()
    return {
        "file": path.name,
        "stream": name.stream,
        "source": name.source,
        "seq": name.seq,
        "batch_id": name.batch_id,
        "bytes": info.st_size,
        "sha256": file_digest(path),
        "modified_at": info.st_mtime,
    }


def outbox_batches(outbox: Path) -> list[dict[str, Any]]:
    """Batches waiting in the outbox to be carried, oldest sequence first."""
    found = []
    for path in outbox.glob("*.jsonl") if outbox.is_dir() else []:
        try:
            found.append(describe(_regular_file(path)))
        except (OperatorError, ValueError):
            continue
    return sorted(found, key=lambda b: (b["stream"], b["seq"]))


def outbox_file(outbox: Path, name: str) -> Path:
    return _regular_file(outbox / _batch_name(name))


@dataclass(frozen=True)
class Upload:
    file: str
    sha256: str
    bytes: int
    status: str  # "accepted" or "already there"


async def accept_upload(
    inbox: Path,
    name: str,
    chunks: AsyncIterator[bytes],
    *,
    max_bytes: int,
    verify: Callable[[Path], VerifyReport],
) -> Upload:
    """Stream an upload to a staging file, verify it, then move it into the inbox.

    Nothing reaches the inbox unless every check passes; a refused upload leaves no file.
    """
    _batch_name(name)
    staging = inbox.parent / UPLOADS / secrets.token_hex(8)
    staging.mkdir(parents=True)
    staged = staging / name
    try:
        size = 0
        with staged.open("xb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise OperatorError(413, f"upload is larger than {max_bytes} bytes")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        report = await anyio.to_thread.run_sync(verify, staged)  # CPU work: off the event loop
        if not report.ok:
            raise OperatorError(422, f"{name} failed verification", report.reasons)
        digest = file_digest(staged)
        target = inbox / name
        inbox.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(target):
            if file_digest(_regular_file(target)) != digest:
                raise OperatorError(409, f"a different file named {name} is already in the inbox")
            return Upload(name, digest, size, "already there")
        (staging / sidecar_name(name)).write_bytes(sidecar_text(digest, name))
        os.replace(staging / sidecar_name(name), inbox / sidecar_name(name))
        os.replace(staged, target)
        fsync_directory(inbox)
        return Upload(name, digest, size, "accepted")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def quarantined(quarantine_dir: Path) -> list[dict[str, Any]]:
    return list_quarantine(quarantine_dir)


def _quarantine_entry(quarantine_dir: Path, name: str) -> dict[str, Any]:
    if "/" in name or name.startswith(".") or not name:
        raise OperatorError(400, "unsafe file name")
    reason_file = quarantine_dir / (name + REASON_SUFFIX)
    try:
        entry = orjson.loads(reason_file.read_bytes())
    except FileNotFoundError:
        raise OperatorError(404, f"nothing quarantined as {name}") from None
    return entry


def inspect_quarantined(quarantine_dir: Path, name: str, *, head_bytes: int = 4096) -> dict:
    """The reasons and the first bytes of the file (as text, undecodable bytes escaped)."""
    entry = _quarantine_entry(quarantine_dir, name)
    path = quarantine_dir / name
    head = b""
    if os.path.lexists(path) and stat.S_ISREG(os.lstat(path).st_mode):
        with path.open("rb") as fh:
            head = fh.read(head_bytes)
    return entry | {"head": head.decode("utf-8", "backslashreplace")}


def release(quarantine_dir: Path, inbox: Path, name: str) -> dict[str, Any]:
    """Move a quarantined file back into the inbox under its original name, for a retry."""
    entry = _quarantine_entry(quarantine_dir, name)
    original = _batch_name(str(entry.get("file", "")))
    source = _regular_file(quarantine_dir / name)
    target = inbox / original
    if os.path.lexists(target):
        raise OperatorError(409, f"{original} is already in the inbox")
    inbox.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    sidecar = quarantine_dir / sidecar_name(name)
    if os.path.lexists(sidecar):
        os.replace(sidecar, inbox / sidecar_name(original))
    (quarantine_dir / (name + REASON_SUFFIX)).unlink()
    fsync_directory(inbox)
    return entry


def delete(quarantine_dir: Path, name: str) -> dict[str, Any]:
    entry = _quarantine_entry(quarantine_dir, name)
    for path in (quarantine_dir / name, quarantine_dir / sidecar_name(name)):
        if os.path.lexists(path):
            path.unlink()
    (quarantine_dir / (name + REASON_SUFFIX)).unlink()
    return entry
