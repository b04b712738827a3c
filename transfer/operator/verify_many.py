"""`verify_file` over many files on every core: one worker process per core, a file each.

Verifying is CPU work in one process (see `transfer.format.reader`), so an operator checking a
day's batches uses one core per file at a time. Reports come back in the order the files
were given. Public keys cannot cross processes, so each worker loads them from their files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from shared.records import validate_record
from transfer.format import Limits, VerifyReport, verify_file
from transfer.format.keys import load_public_keys

__all__ = ["expand_paths", "verify_files"]

_worker: dict = {}  # in each worker process: its keys, destination and limits


def _start(key_paths: Sequence[Path], destination: str, limits: Limits) -> None:
    _worker.update(keys=load_public_keys(list(key_paths)), destination=destination, limits=limits)


def _verify(path: Path) -> VerifyReport:
    return verify_file(
        path,
        expected_destination=_worker["destination"],
        public_keys=_worker["keys"],
        limits=_worker["limits"],
        validate_record=validate_record,
    )


def expand_paths(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The files to check, and the directories given that do not exist yet.

    A directory stands for every batch file in it (`*.jsonl`, hidden temporaries left out,
    unsafe names kept so that they fail); a path that does not exist and does not end in
    `.jsonl` is a transfer directory not created yet, which holds nothing. A missing
    `.jsonl` file stays in the list and fails its check.
    """
    files: list[Path] = []
    not_created: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p
                for p in path.iterdir()
                if p.name.endswith(".jsonl") and not p.name.startswith(".")
            )
        elif not path.exists() and not path.name.endswith(".jsonl"):
            not_created.append(path)
        else:
            files.append(path)
    return files, not_created


def verify_files(
    paths: Sequence[Path],
    *,
    expected_destination: str,
    key_paths: Sequence[Path],
    limits: Limits,
    jobs: int,
) -> Iterator[tuple[Path, VerifyReport]]:
    """(path, report) for each of `paths`, in order; `jobs` processes at most."""
    jobs = max(1, min(jobs, len(paths)))
    if jobs == 1:
        _start(key_paths, expected_destination, limits)
        for path in paths:
            yield path, _verify(path)
        return
    with ProcessPoolExecutor(
        max_workers=jobs,
        initializer=_start,
        initargs=(list(key_paths), expected_destination, limits),
    ) as pool:
        yield from zip(paths, pool.map(_verify, paths), strict=True)
