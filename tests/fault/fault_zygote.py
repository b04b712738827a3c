"""A fork server for the fault harness: `ferry` imported once, every step a fresh forked process.

Starting `ferry` costs 1.5-3 s of imports on a 2-core machine, which would leave room for a
handful of kill runs in the time budget. This script imports the CLI and both networks' job
modules once and then, for each command read from stdin (one JSON line), forks a child that
runs exactly what the `ferry` console script runs (`ferry.cli.main()` with that argv and
that environment). The child is a real process with its own SQLite connections, files and
file descriptors; SIGKILL ends it with no cleanup at all, as it would end `ferry …`.

Nothing here opens a database or reads settings before the fork (settings are cached per
process, so each child reads its own environment).

Protocol, one JSON line each way per command:

    → {"argv": [...], "env": {...}, "stdout": path, "stderr": path, "trace": path,
       "kill_after": seconds | null, "kill_point": name | null, "timeout": seconds}
    ← {"pid": n, "returncode": rc, "signal": sig | null, "killed": bool,
       "timed_out": bool, "duration": seconds}

`trace`: the child appends B, C or R there as each of its DB transactions (or, in the
carry, each file copy) begins, commits or rolls back: where a kill landed.
`kill_after`: SIGKILL the child that many seconds after the fork unless it has exited (the
zygote is the child's parent and reaps it, so the signal can never reach a recycled pid).
`kill_point`: the child SIGKILLs itself at a named point of the product code (see POINTS):
deterministic faults for the scenario tests. `argv[0] == "job"` runs a recovery job that has
no CLI command (see JOBS).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable
from datetime import timedelta

# Preloaded once, before any fork (import cost only; nothing reads settings or connects).
import elasticsearch  # noqa: F401
import orjson
import sqlalchemy.dialects.sqlite  # noqa: F401

import ferry.cli
import request_network.jobs
import response_network.jobs
import transfer.format.writer
import transfer.operator.carry
import transfer.protocol.exchange
import transfer.protocol.intake
from response_network.services import executor


def _die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # pragma: no cover - never reached


def _kill_after_call(module, name: str) -> None:
    """Let `module.name` run, then SIGKILL this process before its caller sees the result."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        original(*args, **kwargs)
        _die()

    setattr(module, name, wrapper)


def _kill_on_call(module, name: str) -> None:
    setattr(module, name, _die)


def _kill_on_nth_call(module, name: str, n: int) -> None:
    """SIGKILL when `module.name` is called for the n-th time (the earlier calls run)."""
    original = getattr(module, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            _die()
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


#: Named fault points: each patches the product code in the child only.
POINTS: dict[str, Callable[[], None]] = {
    # export: the batch file and its sidecar are published, the DB transaction not committed
    "export.after_publish": lambda: _kill_after_call(transfer.protocol.exchange, "write_batch"),
    # export: the batch file is published but its sidecar is not written yet
    "export.before_sidecar": lambda: _kill_on_call(transfer.format.writer, "write_file_atomically"),
    # export: the second batch file of a split export is being written
    "export.second_file": lambda: _kill_on_nth_call(transfer.protocol.exchange, "write_batch", 2),
    # import: the records and the batch row are committed, the file not yet moved out of inbox
    "import.before_move": lambda: _kill_on_call(transfer.protocol.intake, "_move"),
    # execute: requests claimed (RUNNING, committed), the search not yet run
    "execute.after_claim": lambda: _kill_on_call(executor, "execute"),
    # carry: the copy is published at the destination, the original not yet archived
    "carry.before_archive": lambda: _kill_on_call(transfer.operator.carry, "move_pair"),
}


def _job_requeue_stale(seconds: str = "0") -> dict:
    """`response.requeue_stale` with a short age (the beat task takes whole minutes)."""
    from response_network.settings import get_settings

    return response_network.jobs.requeue(
        get_settings(), older_than=timedelta(seconds=float(seconds))
    )


def _job_requeue_unacked(seconds: str = "0") -> dict:
    """`request.requeue_unacked` with a short age (the beat task takes whole hours)."""
    from request_network.settings import get_settings

    return request_network.jobs.requeue_unacked(
        get_settings(), older_than=timedelta(seconds=float(seconds))
    )


#: Recovery jobs with no `ferry` command: `["job", name, *args]`.
JOBS: dict[str, Callable[..., dict]] = {
    "response.requeue_stale": _job_requeue_stale,
    "request.requeue_unacked": _job_requeue_unacked,
}


def _trace_transactions(path: str) -> None:
    """Append B (begin), C (commit) or R (rollback) to `path` as each DB transaction moves
    (for the carry: B and C around each file copied): one unbuffered write each, so the file
    shows where a SIGKILL caught the step."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    event.listen(Session, "after_begin", lambda *_: os.write(fd, b"B"))
    event.listen(Session, "after_commit", lambda *_: os.write(fd, b"C"))
    event.listen(Session, "after_rollback", lambda *_: os.write(fd, b"R"))
    carry_one = (
        transfer.operator.carry._carry_one
    )  # the carry has no DB: one file copied is its unit

    def traced_carry_one(*args, **kwargs):
        os.write(fd, b"B")
        try:
            return carry_one(*args, **kwargs)
        finally:
            os.write(fd, b"C")

    transfer.operator.carry._carry_one = traced_carry_one


def _child(cmd: dict) -> None:  # pragma: no cover - runs in the forked child
    code = 70
    try:
        out = os.open(cmd["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(cmd["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(cmd["env"])
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if cmd.get("trace"):
            _trace_transactions(cmd["trace"])
        if cmd.get("kill_point"):
            POINTS[cmd["kill_point"]]()
        argv = cmd["argv"]
        try:
            if argv[0] == "job":
                result = JOBS[argv[1]](*argv[2:])
                sys.stdout.write(orjson.dumps(result).decode() + "\n")
                code = 0
            else:
                sys.argv = ["ferry", *argv]
                ferry.cli.main()
                code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _run(cmd: dict) -> dict:
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        _child(cmd)
    pidfd = os.pidfd_open(pid)
    killed = timed_out = False
    try:
        limit = cmd.get("kill_after")
        timeout = float(cmd.get("timeout") or 120)
        wait = timeout if limit is None else min(float(limit), timeout)
        ready, _, _ = select.select([pidfd], [], [], max(wait, 0))
        if not ready:  # still running: the child is unreaped, so the pid is still its own
            timed_out = limit is None or float(limit) > timeout
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            killed = not timed_out
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
    duration = time.monotonic() - started
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    rc = -sig if sig is not None else os.WEXITSTATUS(status)
    return {
        "pid": pid,
        "returncode": rc,
        "signal": sig,
        "killed": killed,
        "timed_out": timed_out,
        "duration": round(duration, 4),
    }


def main() -> None:
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        reply = _run(orjson.loads(line))
        out.write(orjson.dumps(reply) + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
