"""Quarantine: where rejected batch files go, each with a ``.reason.json`` beside it."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from transfer.format.digest import file_digest
from transfer.format.fsutil import write_file_atomically
from transfer.format.names import sidecar_name
from transfer.format.spec import format_time

__all__ = ["REASON_SUFFIX", "list_quarantine", "quarantine"]

REASON_SUFFIX = ".reason.json"
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 200


def _printable(name: str) -> str:
    """The name as valid UTF-8 text (undecodable bytes shown as escapes)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_name(name: str) -> str:
    safe = _UNSAFE_CHARS.sub("_", name)[:_MAX_NAME]
    if not safe or safe.startswith("."):
        safe = "_" + safe
    return safe


def _digest_or_none(path: Path) -> str | None:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        return file_digest(path)
    except OSError:
        return None


def _reserve(directory: Path, base: str) -> tuple[Path, Path]:
    """Claim a free name in ``directory``: returns (batch path, reason path)."""
    for n in itertools.count():
        candidate = base if n == 0 else f"{base}.{n}"
        target = directory / candidate
        reason = directory / (candidate + REASON_SUFFIX)
        if os.path.lexists(target) or os.path.lexists(directory / sidecar_name(candidate)):
            continue
        try:
            fd = os.open(reason, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return target, reason
    raise AssertionError("unreachable")


def _move(source: Path, target: Path) -> None:
    """Move without ever replacing ``target`` (works across file systems)."""
    if os.path.lexists(target):
        raise FileExistsError(f"refusing to overwrite {target}")
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.move(source, target)


def quarantine(
    path: Path, quarantine_dir: Path, reasons: list[str], *, now: datetime | None = None
) -> Path:
    """Move ``path`` (and its sidecar) into ``quarantine_dir``; returns its new path.

    Never overwrites: if the name is taken a numeric suffix is added. Symlinks are moved
    as links, never followed.
    """
    path = Path(path)
    quarantine_dir = Path(quarantine_dir)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    digest = _digest_or_none(path)
    target, reason_path = _reserve(quarantine_dir, _safe_name(path.name))
    try:
        _move(path, target)
        source_sidecar = path.with_name(sidecar_name(path.name))
        if os.path.lexists(source_sidecar):
            _move(source_sidecar, quarantine_dir / sidecar_name(target.name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(reason_path)
        raise
    report = {
        "file": _printable(path.name),
        "quarantined_as": target.name,
        "reasons": [_printable(reason) for reason in reasons],
        "quarantined_at": format_time(now or datetime.now(UTC)),
        "sha256": digest,
    }
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    write_file_atomically(reason_path, data, replace=True)  # over our own empty placeholder
    return target


def list_quarantine(quarantine_dir: Path) -> list[dict[str, Any]]:
    """Parsed reason files, oldest first; each gains ``reason_file`` (its own name)."""
    directory = Path(quarantine_dir)
    if not directory.is_dir():
        return []
    entries = []
    for reason_file in sorted(directory.glob("*" + REASON_SUFFIX)):
        try:
            entry = orjson.loads(reason_file.read_bytes())
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            entry = {"file": reason_file.name[: -len(REASON_SUFFIX)], "reasons": ["unreadable"]}
        entry["reason_file"] = reason_file.name
        entries.append(entry)
    entries.sort(key=lambda entry: (str(entry.get("quarantined_at", "")), entry["reason_file"]))
    return entries
