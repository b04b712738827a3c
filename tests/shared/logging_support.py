"""The house log handler writing to a buffer the test reads, put back as it was afterwards."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.logs import HANDLER, configure_logging


class Captured:
    """What the house handler wrote, as text and (in the JSON format) as parsed lines."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def clear(self) -> None:
        self.buffer.seek(0)
        self.buffer.truncate()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, each of which must be one JSON object."""
        parsed = [json.loads(line) for line in self.text.splitlines()]
        assert all(isinstance(line, dict) for line in parsed), self.text
        return parsed

    def from_logger(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("logger") == name]


@contextmanager
def captured_logs(log_format: str = "json", level: str = "DEBUG") -> Iterator[Captured]:
    root, ferry = logging.getLogger(), logging.getLogger("ferry")
    levels = root.level, ferry.level
    before = [h for h in root.handlers if h.get_name() == HANDLER]
    captured = Captured()
    configure_logging(level, log_format, stream=captured.buffer)
    try:
        yield captured
    finally:
        for handler in [h for h in root.handlers if h.get_name() == HANDLER]:
            root.removeHandler(handler)
        for handler in before:
            root.addHandler(handler)
        logging.captureWarnings(False)
        root.setLevel(levels[0])
        ferry.setLevel(levels[1])
