"""Steps as processes: the fork server client, the real console script, and their outcome.

`Zygote` talks to `fault_zygote.py` (one JSON line each way per step); `exec_ferry` runs the
real `ferry` console script. Both SIGKILL the step after a delay if asked, and both give a
`StepRun`: exit code, duration, whether the kill caught it running, and (forked steps) the
trace of its DB transactions, which says where the kill landed.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FERRY = shutil.which("ferry") or str(Path(sys.executable).parent / "ferry")
STEP_TIMEOUT_S = 120.0


def base_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["FERRY_LOG_LEVEL"] = "WARNING"
    return env


@dataclass
class StepRun:
    """One step's process: how it ended and what it printed."""

    name: str
    argv: list[str]
    returncode: int
    duration: float
    killed: bool  # SIGKILLed from outside while it was running
    kill_after: float | None = None
    kill_point: str | None = None
    timed_out: bool = False
    how: str = "fork"  # "fork" (zygote) or "exec" (the `ferry` console script)
    trace: str = ""  # B/C/R per DB transaction begun, committed, rolled back (fork only)
    stdout: str = ""
    stderr: str = ""

    @property
    def moment(self) -> str:
        """Where a kill caught the step: `before` its first transaction (or file copy),
        `inside` one, `between` (after one ended), or `finished` (it had exited first).
        The real console script leaves no trace: `exec`."""
        if not self.died:
            return "finished"
        if self.how == "exec":
            return "exec"
        if not self.trace:
            return "before"
        return "inside" if self.trace[-1] == "B" else "between"

    @property
    def died(self) -> bool:
        """Ended by SIGKILL (from outside or at its fault point)."""
        return self.returncode == -signal.SIGKILL

    def json(self) -> Any:
        return orjson.loads(self.stdout)

    def describe(self) -> str:
        return (
            f"{self.name} ({self.how}) rc={self.returncode} in {self.duration:.3f}s"
            + (f" kill_after={self.kill_after:.3f}s" if self.kill_after is not None else "")
            + (f" kill_point={self.kill_point}" if self.kill_point else "")
        )


class Zygote:
    """The `fault_zygote.py` fork server, one per World."""

    def __init__(self, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fault_zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env=base_environment(),
        )
        hello = self._read(timeout=120)
        assert hello.get("ready"), hello

    def _read(self, timeout: float) -> dict:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"the fault zygote did not answer within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the fault zygote exited ({self.proc.poll()})")
        return orjson.loads(line)

    def run(self, command: dict) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(command) + b"\n")
        self.proc.stdin.flush()
        return self._read(timeout=float(command.get("timeout") or STEP_TIMEOUT_S) + 30)

    def close(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def exec_ferry(
    name: str,
    argv: list[str],
    env: dict[str, str],
    out: Path,
    err: Path,
    kill_after: float | None,
    timeout: float,
) -> StepRun:
    """Run the real `ferry` console script (a fresh interpreter, imports and all); SIGKILL
    it after `kill_after` s unless it has exited (it is our child: no pid can be recycled)."""
    started = time.monotonic()
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = subprocess.Popen(
            [FERRY, *argv],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=fout,
            stderr=ferr,
        )
        killed = timed_out = False
        wait = timeout if kill_after is None else min(kill_after, timeout)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            timed_out = kill_after is None or kill_after > timeout
            proc.send_signal(signal.SIGKILL)  # a no-op if it has been reaped meanwhile
            killed = not timed_out and proc.wait() == -signal.SIGKILL
        proc.wait()
    duration = time.monotonic() - started
    return StepRun(
        name, argv, proc.returncode, duration, killed, kill_after, None, timed_out, "exec"
    )


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
