"""The real `ferry` CLI logs through the house chain: with FERRY_LOG_FORMAT=json, or with
nothing set and stderr not a terminal, every stderr line is one JSON object; a network's
FERRY_<NET>_LOG_FORMAT=console gives readable lines. Its results stay alone on stdout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_cli import ferry

CONSOLE_LINE = re.compile(r"^\S+Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "FERRY_REQUEST_MODE": "demo",
        "FERRY_REQUEST_DATABASE_URL": f"sqlite:///{tmp_path}/request.db",
        "FERRY_REQUEST_TRANSFER_DIR": str(tmp_path / "transfer"),
        "FERRY_LOG_LEVEL": "INFO",
    } | extra


@pytest.mark.parametrize("chosen", [{"FERRY_LOG_FORMAT": "json"}, {}], ids=["json", "auto"])
def test_every_stderr_line_of_the_cli_is_a_json_object(tmp_path, chosen) -> None:
    run = ferry("request", "db", "upgrade", env=_env(tmp_path, **chosen))
    assert run.returncode == 0, run.stderr
    assert run.stdout == "request database at head\n"
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert lines and all(isinstance(line, dict) for line in lines)
    assert any(line["event"].startswith("Running upgrade") for line in lines)
    for line in lines:
        assert {"timestamp", "level", "logger", "event"} <= set(line)


def test_a_networks_console_format_gives_readable_lines(tmp_path) -> None:
    env = _env(tmp_path, FERRY_LOG_FORMAT="json", FERRY_REQUEST_LOG_FORMAT="console")
    run = ferry("request", "db", "upgrade", env=env)
    assert run.returncode == 0, run.stderr
    upgrades = [line for line in run.stderr.splitlines() if "Running upgrade" in line]
    assert upgrades and all(CONSOLE_LINE.match(line) for line in upgrades)
    assert "\x1b[" not in run.stderr  # no colours off a terminal
