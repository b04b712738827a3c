"""What every benchmark writes into docs/PERFORMANCE.md: its own section, and the machine."""

from __future__ import annotations

import platform
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if "model name" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_section(mark: str, section: str) -> None:
    """Replace the section between two `mark` lines of docs/PERFORMANCE.md (or append it),
    keep the others."""
    text = (
        OUT.read_text()
        if OUT.exists()
        else "# Performance\n\nMeasured figures; each section says how it was measured.\n\n"
    )
    if mark in text:
        head, _, rest = text.partition(mark)
        _, _, tail = rest.partition(mark)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n\n" + section
    OUT.write_text(text)
