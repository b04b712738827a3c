"""Helpers for the end-to-end tests: real processes, deadlines, logs and batch files.

Every subprocess writes its output to a file under the test's log directory; a failing test
gets the tail of every log attached to its report (see `tests/e2e/conftest.py`). Nothing
here sleeps without a deadline.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

T = TypeVar("T")

#: The `ferry` console script of this environment.
FERRY = shutil.which("ferry") or str(Path(sys.executable).parent / "ferry")

CLI_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
LOG_TAIL_CHARS = 6000


class DeadlineExceeded(AssertionError):
    """A condition did not come true before its deadline."""


class Abort(AssertionError):
    """Raised from a `wait_until` check to stop waiting: the condition can never come true."""


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s.

    `check` may raise `Abort` to stop waiting at once (a process died, say).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
        except Abort:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last_error, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\nlast error: {last_error!r}" if last_error else ""
            more = f"\n{details()}" if details else ""
            raise DeadlineExceeded(
                f"timed out after {timeout:.0f} s waiting for {what}{extra}{more}"
            )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return text if len(text) <= chars else "…" + text[-chars:]


def base_environment() -> dict[str, str]:
    """This process's environment without any Ferry settings, so none leak into a network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["FERRY_LOG_LEVEL"] = "INFO"
    return env


@dataclass
class Logs:
    """Where subprocess output goes: one file (or pair of files) per command or service."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    _counter: itertools.count = field(default_factory=itertools.count)

    def new(self, name: str, suffix: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{next(self._counter):03d}-{name}.{suffix}"
        self.files.append(path)
        return path

    def report(self, chars: int = LOG_TAIL_CHARS) -> str:
        parts = []
        for path in self.files:
            if path.exists() and path.stat().st_size:
                parts.append(f"----- {path.name} -----\n{tail(path, chars)}")
        return "\n".join(parts) or "(no subprocess output)"


@dataclass
class CliResult:
    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return orjson.loads(self.stdout)


def _slug(args: Sequence[str]) -> str:
    words = [a for a in args if not a.startswith("-") and "/" not in a][:3]
    return "-".join(words).replace(" ", "_") or "ferry"


class CliRun:
    """A `ferry …` command started in the background; `wait()` collects it."""

    def __init__(self, args: Sequence[str], env: dict[str, str], logs: Logs, cwd: Path) -> None:
        self.args = [FERRY, *args]
        slug = _slug(args)
        self.out_path, self.err_path = logs.new(slug, "out"), logs.new(slug, "err")
        self._out, self._err = self.out_path.open("wb"), self.err_path.open("wb")
        self.proc = subprocess.Popen(
            self.args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    def wait(self, *, timeout: float = CLI_TIMEOUT_S, check: bool = True) -> CliResult:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            raise DeadlineExceeded(
                f"`{' '.join(self.args)}` did not finish within {timeout:.0f} s\n"
                f"stdout:\n{tail(self.out_path)}\nstderr:\n{tail(self.err_path)}"
            ) from None
        finally:
            self._out.close()
            self._err.close()
        result = CliResult(
            self.args,
            self.proc.returncode,
            self.out_path.read_text(errors="replace"),
            self.err_path.read_text(errors="replace"),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`{' '.join(self.args)}` exited {result.returncode}\n"
                f"stdout:\n{tail(self.out_path)}\nstderr:\n{tail(self.err_path)}"
            )
        return result


def run_cli(
    args: Sequence[str],
    *,
    env: dict[str, str],
    logs: Logs,
    cwd: Path,
    timeout: float = CLI_TIMEOUT_S,
    check: bool = True,
) -> CliResult:
    return CliRun(args, env, logs, cwd).wait(timeout=timeout, check=check)


def run_parallel(
    commands: Sequence[tuple[Sequence[str], dict[str, str]]],
    *,
    logs: Logs,
    cwd: Path,
    timeout: float = CLI_TIMEOUT_S,
) -> list[CliResult]:
    """Independent commands at the same time; all must succeed."""
    runs = [CliRun(args, env, logs, cwd) for args, env in commands]
    return [r.wait(timeout=timeout) for r in runs]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM this child when the test process dies, so no worker outlives a run."""
    libc = ctypes.CDLL(None)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


PREEXEC = _die_with_parent if sys.platform == "linux" else None


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test created for `proc` (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE_S)


class Service:
    """A long-running `ferry …` process (worker, API server) with its output in a log file."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], logs: Logs, cwd: Path):
        self.name = name
        self.args = [FERRY, *args]
        self.log_path = logs.new(name, "log")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=PREEXEC,  # only prctl(): safe between fork and exec
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ensure_alive(self) -> None:
        if not self.alive():
            raise Abort(f"{self.name} exited with {self.proc.returncode}\n{tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL the whole process group; always reaps."""
        if self.alive():
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_GRACE_S)
        _kill_group(self.proc)  # pool children or anything else left in the group
        self._log.close()


# --- batch files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchFile:
    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]]
    trailer: dict[str, Any]

    def ids(self, record_type: str) -> list[str]:
        return [r["id"] for r in self.records if r["type"] == record_type]


def read_batch(path: Path) -> BatchFile:
    """Parse a batch file plainly (no verification): header, record lines, trailer."""
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(lines) >= 2, f"{path.name}: a batch has at least a header and a trailer"
    header, *records, trailer = lines
    assert header.get("kind") == "header", f"{path.name}: line 1 is not a header"
    assert trailer.get("kind") == "trailer", f"{path.name}: last line is not a trailer"
    assert all(r.get("kind") == "record" for r in records), f"{path.name}: a non-record line"
    assert trailer["count"] == len(records), f"{path.name}: trailer count disagrees"
    return BatchFile(path, header, records, trailer)


def batch_files(*directories: Path, stream: str) -> list[BatchFile]:
    found = []
    for d in directories:
        if d.is_dir():
            found += [read_batch(p) for p in sorted(d.glob(f"{stream}-*.jsonl"))]
    return found
