"""Whole-file digests, their ``sha256sum``-format sidecar files, and hashing on a thread."""

from __future__ import annotations

import hashlib
import os
import queue
import re
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transfer.format.names import sidecar_name

__all__ = ["HashingThread", "file_digest", "sidecar_problems", "sidecar_text"]

_CHUNK = 1024 * 1024
_MAX_SIDECAR_BYTES = 1024
_SIDECAR_RE = re.compile(rb"([0-9a-f]{64})  (.+)\n")


def file_digest(path: Path) -> str:
    """Streaming sha256 hex digest of a file (the batch "digest")."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_text(digest: str, name: str) -> bytes:
    """Sidecar content that ``sha256sum -c`` accepts in the batch's directory."""
    return f"{digest}  {name}\n".encode()


def sidecar_problems(batch_path: Path, digest: str) -> list[str]:
    """Problems with the batch's sidecar, if one exists (a missing sidecar is not a problem)."""
    path = batch_path.with_name(sidecar_name(batch_path.name))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return []
    if not stat.S_ISREG(info.st_mode):
        return ["sidecar: not a regular file"]
    if info.st_size > _MAX_SIDECAR_BYTES:
        return ["sidecar: too large"]
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        content = handle.read(_MAX_SIDECAR_BYTES + 1)
    match = _SIDECAR_RE.fullmatch(content)
    if match is None:
        return ["sidecar: not in sha256sum format"]
    problems = []
    if match[1].decode() != digest:
        problems.append("sidecar: sha256 does not match the file")
    if match[2] != os.fsencode(batch_path.name):
        problems.append("sidecar: names another file")
    return problems


class HashingThread:
    """Feeds blocks, in order, to one or more hashes on a worker thread.

    ``hashlib`` releases the GIL while it hashes a large buffer, so the caller's work on a
    block runs on one core while the blocks before it are hashed on the other. At most
    ``backlog`` blocks wait to be hashed (:meth:`update` blocks beyond that), so memory
    stays bounded. :meth:`close` waits until every block given has been hashed; only then
    may the hashes be read or updated by anyone else.
    """

    def __init__(self, hashes: Sequence[Any], backlog: int = 4) -> None:
        self._hashes = tuple(hashes)
        self._blocks: queue.Queue[bytes | None] = queue.Queue(backlog)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ferry-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            if self._error is None:
                try:
                    for digest in self._hashes:
                        digest.update(block)
                except BaseException as error:  # reported by close(); keep draining the queue
                    self._error = error
            del block  # do not keep the last block alive while waiting for the next

    def update(self, block: bytes) -> None:
        self._blocks.put(block)

    def close(self) -> None:
        """Wait for every block to be hashed; re-raise what went wrong on the thread, if any."""
        if self._thread.is_alive():
            self._blocks.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error
