"""Small file-system helpers: hidden temp files, fsync, no-overwrite publish."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

__all__ = ["create_temp", "fsync_directory", "publish", "temp_path", "write_file_atomically"]


def temp_path(final: Path) -> Path:
    """A hidden, unique temporary name beside ``final`` (same directory, same file system)."""
    return final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")


def create_temp(final: Path, mode: int = 0o644) -> tuple[Path, int]:
    """Create a fresh temp file for ``final``; returns its path and a writable descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    path = temp_path(final)
    return path, os.open(path, flags, mode)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (skipped where directories cannot be fsynced)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    fd = os.open(directory, flags)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def publish(temp: Path, final: Path) -> None:
    """Rename ``temp`` to ``final``; ``FileExistsError`` rather than replacing a file."""
    try:
        os.link(temp, final, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(f"refusing to overwrite existing file {final}") from None
    except OSError:  # no hard links here (e.g. FAT media): check, then rename
        if os.path.lexists(final):
            raise FileExistsError(f"refusing to overwrite existing file {final}") from None
        os.rename(temp, final)
        return
    os.unlink(temp)


def write_file_atomically(
    final: Path, data: bytes, mode: int = 0o644, *, replace: bool = False
) -> None:
    """Write ``data`` to a temp file, fsync, publish as ``final``; overwrite only if ``replace``."""
    temp, fd = create_temp(final, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, final)
        else:
            publish(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_directory(final.parent)
