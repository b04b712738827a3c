"""Whole-file digests and their ``sha256sum``-format sidecar files."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from transfer.names import sidecar_name

__all__ = ["file_digest", "sidecar_problems", "sidecar_text"]

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
