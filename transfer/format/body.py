"""The record lines of a batch: every line checked, the good records yielded.

Runs of lines take the fast path (:mod:`transfer.format.fastpath`: decoded and checked at once,
in C); a run it does not prove good goes line by line, each line again through the fast
path and, if still in doubt, through the strict parser (:mod:`transfer.format.lines`), which
names the problem. The reader (:mod:`transfer.format.reader`) owns one :class:`RecordScan`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from shared.records import validate_record
from transfer.format.fastschema import run_decoder
from transfer.format.lines import OVERLONG, LineSource, compact_record_line, parse_record_line
from transfer.format.names import STREAMS
from transfer.format.native import line_checker
from transfer.format.spec import Limits, Record

__all__ = ["MAX_LINE_REASONS", "RUN_LINES", "RecordScan", "RecordValidator"]

RecordValidator = Callable[[str, Record], list[str]]
MAX_LINE_REASONS = 100
RUN_LINES = 64  # lines decoded at once; small enough that their objects die young


class RecordScan:
    """The checks of one batch's record lines and what they found.

    ``reasons`` holds the first :data:`MAX_LINE_REASONS` problems (``line N: why``),
    ``overflow`` counts the rest, ``count`` the record lines read so far.
    """

    def __init__(self, stream: object, validator: RecordValidator | None, limits: Limits) -> None:
        self.reasons: list[str] = []
        self.overflow = 0
        self.count = 0
        self._limits = limits
        self._stream = str(stream)
        self._validate = validator if stream in STREAMS else None
        self._fast, self._fast_checked = run_decoder(
            self._stream, self._validate, limits.max_json_depth
        )
        # proves lines good without building them; it stands for validate_record only
        self._native = (
            line_checker(self._stream, limits.max_json_depth)
            if self._validate is validate_record
            else None
        )

    def problem(self, line_no: int, problem: str) -> None:
        if len(self.reasons) < MAX_LINE_REASONS:
            self.reasons.append(f"line {line_no}: {problem}")
        else:
            self.overflow += 1

    def records(self, source: LineSource, end: int, *, quiet: bool) -> Iterator[Record]:
        """Check every record line up to offset ``end``; yield the records that pass.

        Stops yielding at the first problem (or at once if ``quiet``: the caller must not
        commit anyway) but reads on to report every problem. Quiet, the lines the native
        checker proves good are only counted (:mod:`transfer.format.native`).
        """
        for lines in source.record_lines(end):
            if not (quiet and self._native is not None and self._count_proven(lines)):
                yield from self._lines(lines, quiet)
            del lines  # let this read's lines go before the next read

    def _lines(self, lines: Sequence[Any], quiet: bool) -> Iterator[Record]:
        max_records = self._limits.max_records
        fast = self._fast
        for start in range(0, len(lines), RUN_LINES):
            run = lines[start : start + RUN_LINES]
            first = self.count + 2  # the header is line 1
            records = fast(run) if self.count + len(run) <= max_records else None
            if records is None:
                yield from self._one_by_one(run, quiet)
                continue
            self.count += len(run)
            if not self._fast_checked:
                yield from self._validated(records, first, quiet)
            elif not quiet and not self.reasons:
                yield from records

    def _count_proven(self, lines: list[Any]) -> bool:
        """Check one read's lines, natively where it can prove them (nothing is yielded).

        A line it cannot prove goes, with the run of lines after it, through
        :meth:`_lines`, which accepts them or names the problems. False (nothing done) if
        the read holds a marker (:data:`~transfer.format.lines.OVERLONG`, ``UNTERMINATED``).
        """
        assert self._native is not None
        try:
            joined = b"\n".join(lines)
        except TypeError:
            return False
        done, offset = 0, 0  # lines checked, and where the next one starts in ``joined``
        while done < len(lines):
            room = max(self._limits.max_records - self.count, 0)  # beyond: _lines reports
            good, offset = self._native(joined, offset, min(room, len(lines) - done))
            self.count += good
            done += good
            if done < len(lines):
                run = lines[done : done + RUN_LINES]
                for _ in self._lines(run, quiet=True):
                    pass
                done += len(run)
                offset += sum(map(len, run)) + len(run)
        return True

    def _one_by_one(self, lines: Sequence[Any], quiet: bool) -> Iterator[Record]:
        limits = self._limits
        max_records = limits.max_records
        for line in lines:
            self.count += 1
            line_no = self.count + 1
            if self.count > max_records:
                if self.count == max_records + 1:
                    self.problem(line_no, f"more than {max_records} records")
                if line is OVERLONG:
                    self.problem(line_no, f"longer than {limits.max_line_bytes} bytes")
                continue
            if line.__class__ is not bytes:
                if line is OVERLONG:
                    self.problem(line_no, f"longer than {limits.max_line_bytes} bytes")
                continue  # UNTERMINATED: the missing trailer or newline is reported
            records = self._fast([line])
            if records is not None:
                if self._fast_checked:
                    if not quiet and not self.reasons:
                        yield from records
                else:
                    yield from self._validated(records, line_no, quiet)
                continue
            record = compact_record_line(line, limits.max_json_depth)
            if record is None:  # the strict parser names the problem
                record, problems = parse_record_line(line, limits.max_json_depth)
                if record is None:
                    for problem in problems:
                        self.problem(line_no, problem)
                    continue
            yield from self._validated((record,), line_no, quiet)

    def _validated(self, records: Any, first: int, quiet: bool) -> Iterator[Record]:
        """``records`` (from line ``first`` on) that pass the record validator, if any."""
        validate = self._validate
        for line_no, record in enumerate(records, first):
            if validate is not None:
                try:
                    problems = validate(self._stream, record)
                    if problems.__class__ is not list:
                        problems = list(problems)
                except Exception as error:  # a validator bug must still reject, not crash
                    problems = [f"record validator failed: {type(error).__name__}"]
                if problems:
                    for problem in problems:
                        self.problem(line_no, problem)
                    continue
            if not quiet and not self.reasons:
                yield record
