"""Prometheus multiprocess mode across containers: the compose files' API and worker share one
`PROMETHEUS_MULTIPROC_DIR`, and each container numbers its processes from 1. Two processes
with the same id, each in a PID and host-name namespace of its own (`unshare`, as a container
is), both count, and one scrape of the shared directory has both counts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.metrics import exposition
from tests.ops_support import samples

ROOT = Path(__file__).resolve().parents[2]

#: Opens its metric file (reading the count there), says so, waits, then counts one batch.
WRITER = """
import os, sys
from shared.metrics import BATCHES
written = BATCHES.labels("written", "requests")
print(os.getpid(), flush=True)
sys.stdin.readline()
written.inc()
"""
UNSHARE = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--uts"]


def _namespaces_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def in_a_container_of_its_own(hostname: str) -> list[str]:
    """The writer as the first process (pid 1) of its own PID and host-name namespaces."""
    script = 'hostname "$0" && exec "$1" -c "$2"'
    return [*UNSHARE, "sh", "-c", script, hostname, sys.executable, WRITER]


def test_two_containers_processes_with_one_pid_keep_their_counts_apart(tmp_path, monkeypatch):
    if not _namespaces_available():  # CI runs on a machine that has them: there it must run
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs namespaces (unshare)")
    shared_dir = tmp_path / "prometheus"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared_dir)}
    writers = [
        subprocess.Popen(
            in_a_container_of_its_own(name),
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("api", "worker")
    ]
    try:
        pids = [w.stdout.readline().strip() for w in writers]  # both have opened their files
        assert pids == ["1", "1"]
        for w in writers:
            w.stdin.write("go\n")
            w.stdin.flush()
        assert [w.wait(timeout=60) for w in writers] == [0, 0]
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
    assert len(list(shared_dir.glob("counter_*.db"))) == 2  # one file per container

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared_dir))
    written = (("event", "written"), ("stream", "requests"))
    assert samples(exposition().decode(), "ferry_batches_total") == {written: 2.0}
