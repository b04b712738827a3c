"""SIGHUP to real Ferry processes (shared/reload.py, docs/OPERATIONS.md "Reloading local
settings (SIGHUP)"): each is started by the `ferry` CLI with an env file, the test changes
the file and sends SIGHUP, and reads what happened in the process's log.

* `ferry request serve` (one process, demo mode, SQLite, fakeredis) answers every request
  made in a loop while it reloads, and its log level changes in place;
* `serve --workers 2`: uvicorn's supervisor replaces its workers, which take the new level;
* `ferry request worker` and `beat` (real Redis) refuse a bad value and keep running, and
  restart on a good one, with the same process id.

Every wait is bounded; none sleeps for a fixed time.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.e2e.e2e_support import Logs, Service, free_port, tail, wait_until

STARTUP_S = 60.0
SECRET = "a-changed-jwt-secret-that-must-never-be-logged-0123"


def _env(tmp_path: Path, env_file: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return env | {
        "PYTHONUNBUFFERED": "1",
        "FERRY_LOG_FORMAT": "console",  # the readable lines this test reads
        "FERRY_REQUEST_MODE": "demo",
        "FERRY_REQUEST_DATABASE_URL": f"sqlite:///{tmp_path}/request.db",
        "FERRY_REQUEST_REDIS_URL": redis_url,
        "FERRY_REQUEST_TRANSFER_DIR": str(tmp_path / "transfer"),
        "FERRY_REQUEST_ENV_FILE": str(env_file),
    }


def _write(path: Path, **values: str) -> None:
    path.write_text("".join(f"FERRY_REQUEST_{k.upper()}={v}\n" for k, v in values.items()))


class Running:
    """A `ferry request …` process and its log."""

    def __init__(self, tmp_path: Path, args: list[str], redis_url: str = "fakeredis://"):
        self.env_file = tmp_path / "request.env"
        _write(self.env_file, log_level="INFO")
        self.service = Service(
            args[0],
            ["request", *args],
            _env(tmp_path, self.env_file, redis_url),
            Logs(tmp_path / "logs"),
            tmp_path,
        )

    @property
    def log(self) -> str:
        return self.service.log_path.read_text(errors="replace")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = STARTUP_S) -> None:
        def seen() -> bool:
            self.service.ensure_alive()
            return self.log.count(text) >= count

        wait_until(seen, timeout=timeout, what=repr(text), details=self.details)

    def sighup(self) -> None:
        self.service.ensure_alive()
        os.kill(self.service.proc.pid, signal.SIGHUP)

    def details(self) -> str:
        return tail(self.service.log_path)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*args: str, redis_url: str = "fakeredis://") -> Running:
        started.append(Running(tmp_path, list(args), redis_url))
        return started[-1]

    yield start
    for process in started:
        process.service.stop()


class Requests(threading.Thread):
    """GET /health over and over, on a kept-alive connection and on new ones in turn."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop = base, threading.Event()
        self.codes: list[int] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    kept = client.get("/health")
                    fresh = httpx.get(f"{self.base}/health", timeout=30)
                    self.codes += [kept.status_code, fresh.status_code]
                except httpx.HTTPError as exc:
                    self.errors.append(exc)

    def more_than(self, count: int) -> bool:
        return len(self.codes) > count


def test_serve_reloads_on_sighup_without_failing_a_request(running) -> None:
    port = free_port()
    server = running("serve", "--port", str(port))
    server.wait_for("Application startup complete")
    load = Requests(f"http://127.0.0.1:{port}")
    load.start()
    try:
        wait_until(lambda: load.more_than(20), timeout=STARTUP_S, what="requests answered")

        # A live key at INFO: applied, named at INFO; nothing is logged at DEBUG.
        _write(server.env_file, log_level="INFO", page_size_max="50")
        server.sighup()
        server.wait_for("settings reloaded: page_size_max now in force")
        assert " DEBUG " not in server.log
        done = len(load.codes)
        wait_until(lambda: load.more_than(done + 20), timeout=STARTUP_S, what="more requests")

        # A bad value: refused with an ERROR naming the key, nothing applied.
        _write(server.env_file, log_level="LOUD", page_size_max="10")
        server.sighup()
        server.wait_for("ERROR ferry.reload: settings reload refused")
        assert "log_level" in server.log.split("settings reload refused", 1)[1]
        done = len(load.codes)
        wait_until(lambda: load.more_than(done + 20), timeout=STARTUP_S, what="more requests")

        # DEBUG, and a secret that only a restart may change: the level applies at once,
        # the secret is named in a WARNING and its value appears nowhere.
        _write(server.env_file, log_level="DEBUG", page_size_max="50", jwt_secret=SECRET)
        server.sighup()
        server.wait_for("DEBUG ferry.reload: settings reload: log_level = 'DEBUG'")
        server.wait_for("WARNING ferry.reload: settings reload: jwt_secret changed")
        done = len(load.codes)
        wait_until(lambda: load.more_than(done + 20), timeout=STARTUP_S, what="more requests")
    finally:
        load.stop.set()
        load.join(timeout=60)
    assert not load.is_alive()
    assert load.errors == [], load.errors[:3]
    assert load.codes and set(load.codes) == {200}
    assert server.service.alive()
    assert SECRET not in server.log
    assert "page_size_max = 10" not in server.log


def test_serve_workers_take_the_new_level_when_uvicorn_replaces_them(running) -> None:
    server = running("serve", "--port", str(free_port()), "--workers", "2")
    server.wait_for("Application startup complete", count=2)
    assert " DEBUG " not in server.log
    _write(server.env_file, log_level="DEBUG")
    server.sighup()  # to the supervisor: it replaces each worker, the new one first
    server.wait_for("Received SIGHUP, restarting processes")
    server.wait_for("reloads its local settings on SIGHUP", count=2)
    assert server.log.count("DEBUG ferry.reload: process") == 2


@pytest.mark.redis
@pytest.mark.parametrize(
    ("command", "ready"), [("worker", "ready."), ("beat", "beat: Starting...")]
)
def test_worker_and_beat_restart_on_sighup_only_with_valid_settings(
    running, command: str, ready: str
) -> None:
    process = running(command, redis_url=REDIS_URL)
    process.wait_for(ready)
    pid = process.service.proc.pid

    _write(process.env_file, log_level="LOUD")
    process.sighup()
    process.wait_for("SIGHUP: settings refused, no restart")
    assert "log_level" in process.log.split("SIGHUP: settings refused", 1)[1]

    _write(process.env_file, log_level="DEBUG", jwt_secret=SECRET)
    process.sighup()
    process.wait_for("SIGHUP: restarting to apply log_level, jwt_secret")
    process.wait_for(ready, count=2)  # the same command again, in the same process
    assert process.service.alive() and process.service.proc.pid == pid
    after = process.log.rsplit("SIGHUP: restarting", 1)[1]
    assert " DEBUG " in after or "DEBUG/" in after
    assert SECRET not in process.log
