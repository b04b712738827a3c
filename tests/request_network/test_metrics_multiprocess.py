"""Prometheus multiprocess mode: with `PROMETHEUS_MULTIPROC_DIR` set, the values several
processes write are added up in one scrape of `/metrics` (API workers and Celery pool
processes each write their own)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.ops_support import samples

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: A process that runs a house task `runs` times (in-process) and writes one batch.
WRITER = """
import sys
from shared.celery_app import house_task, make_celery
from shared.metrics import BATCHES

app = make_celery("writer", broker="memory://", eager=True, queue="q", beat={})

@house_task(app, "test.multiprocess", queue="q")
def step() -> dict:
    return {"done": 1}

for _ in range(int(sys.argv[1])):
    step.delay().get()
BATCHES.labels("written", "requests").inc()
"""


def test_one_scrape_sums_what_two_processes_wrote(client, seed, login, tmp_path, monkeypatch):
    shared_dir = tmp_path / "prometheus"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared_dir)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(runs)], env=env) for runs in (3, 4)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert len(list(shared_dir.glob("*.db"))) >= 2  # each process wrote its own file

    seed.profile_type()
    seed.user("mo", role="operator")
    operator = login("mo")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared_dir))
    reply = client.get("/metrics", headers=operator)
    assert reply.status_code == 200
    key = (("outcome", "success"), ("task", "test.multiprocess"))
    assert samples(reply.text, "ferry_task_runs_total") == {key: 7.0}
    assert samples(reply.text, "ferry_task_duration_seconds_count") == {key: 7.0}
    written = (("event", "written"), ("stream", "requests"))
    assert samples(reply.text, "ferry_batches_total") == {written: 2.0}
    # The gauges read at scrape time come with it.
    assert samples(reply.text, "ferry_requests")[(("status", "PENDING"),)] == 0.0
