"""Stopping Ferry's processes while they work (docs/OPERATIONS.md, "Stopping processes"):
SIGTERM and SIGKILL to real processes started by the `ferry` CLI, on real PostgreSQL and Redis.

* `ferry request serve` (one process, and `--workers 2`) flooded with submissions, each on a
  new connection, gets SIGTERM: it exits 0 once the requests in flight are answered. Every
  call ends with a whole reply (202, 429 or 503) or is not taken at all: refused, or reset
  before any byte of a reply (a connection still in the listening socket's queue, or one
  whose request was not read yet, when the server closes it). The requests stored are
  exactly those answered 202: none lost, none extra.
* `ferry request worker` gets SIGTERM in the middle of an export of many pending requests:
  Celery's warm shutdown lets the export finish (every request in exactly one batch) and
  the worker exits 0.
* The same worker killed with SIGKILL (its whole process group) in the middle of the export
  commits nothing of it. Tasks ack late, so once the broker's visibility timeout has passed
  a new worker gets the same task again: every request is exported exactly once, and the
  batch file the killed export had written is dropped.

Every wait is bounded and waits for a condition; no assertion is about time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import orjson
import psycopg
import pytest
import redis
from celery import Celery
from celery.result import AsyncResult
from sqlalchemy.engine import make_url

from request_network.schedule import QUEUE
from tests.conftest import REDIS_URL, RUN_SUFFIX, _drop_database, _fresh_database
from tests.e2e.e2e_support import (
    Logs,
    Service,
    base_environment,
    free_port,
    read_batch,
    tail,
    wait_until,
)
from tests.request_network.request_api_helpers import (
    JWT_SECRET,
    PASSWORD,
    VALID_QUERY,
    Seed,
    truncate_request_db,
)
from transfer.format.keys import generate_keypair
from transfer.protocol.exchange import pending_dir

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

API_REDIS_DB, WORKER_REDIS_DB = 7, 8  # private to this module
PEPPER = "pepper-for-tests-0123456789abcdef0123"
STARTUP_S = 60.0  # bounds a hang only, as every timeout here
STOP_S = 60.0
CLIENTS = 24  # submitting threads, each a new connection per call
WARM_UP = 30  # replies before the SIGTERM
PENDING = 20_000  # requests the export carries, in batches of BATCH
BATCH = 100
VISIBILITY_TIMEOUT_S = 2


# ── fixtures ────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A migrated request-network database of this module's own."""
    from shared.migrate import upgrade

    url = _fresh_database(f"ferry_test_shutdown_{RUN_SUFFIX}")
    upgrade("request", url)
    yield url
    _drop_database(make_url(url).database)


@dataclass(frozen=True)
class Db:
    url: str
    user_id: str

    def scalar(self, sql: str) -> object:
        return self.column(sql)[0]

    def column(self, sql: str, params: dict | None = None) -> list:
        with psycopg.connect(self.url.replace("+psycopg", "")) as conn:
            return [row[0] for row in conn.execute(sql, params)]


@pytest.fixture
def db(database: str) -> Db:
    """The database emptied, with a profile type (limits no flood reaches) and its user."""
    truncate_request_db(database)
    seed = Seed(database)
    seed.profile_type(rate_limits={"minute": 100_000, "hour": 100_000, "day": 100_000})
    return Db(database, seed.user("loaded"))


@pytest.fixture
def logs(tmp_path: Path) -> Logs:
    return Logs(tmp_path / "logs")


@pytest.fixture
def processes() -> Iterator[list[Service]]:
    """Every process a test starts; each stopped (and its group killed) at the end."""
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def _redis_url(db: int) -> str:
    """This module's Redis database `db` on the test Redis, emptied."""
    url = urlunparse(urlparse(REDIS_URL)._replace(path=f"/{db}"))
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def _env(db: Db, redis_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """A request network in production mode; `settings` as FERRY_REQUEST_<KEY> values."""
    p = "FERRY_REQUEST_"
    return (
        base_environment()
        | {
            "FERRY_LOG_FORMAT": "console",
            p + "MODE": "production",
            p + "DATABASE_URL": db.url,
            p + "REDIS_URL": redis_url,
            p + "JWT_SECRET": JWT_SECRET,
            p + "API_KEY_PEPPER": PEPPER,
            p + "TRANSFER_DIR": str(tmp_path / "transfer"),
            p + "BCRYPT_ROUNDS": "4",
        }
        | {p + key.upper(): value for key, value in settings.items()}
    )


def _start(
    processes: list[Service], name: str, args: list[str], env: dict[str, str], logs: Logs
) -> Service:
    service = Service(name, args, env, logs, logs.directory)
    processes.append(service)
    return service


def _exit_code(service: Service) -> int:
    try:
        return service.proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{service.name} did not stop\n{tail(service.log_path)}") from None


# ── the API ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Call:
    started_after: bool  # the call began after the SIGTERM was sent
    ended_after: bool
    # "reply" (whole), "refused" (no connection), "reset" (the connection reset or closed
    # before any byte of a reply), "broken" (anything else: a reply cut short, say)
    outcome: str
    status: int | None = None
    request_id: str | None = None
    error: str | None = None


@dataclass
class Flood:
    """CLIENTS threads submitting requests, each call on a new connection, until one of
    theirs is refused after the SIGTERM."""

    base: str
    headers: dict[str, str]
    signalled: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]
        for thread in self._threads:
            thread.start()

    def answered(self) -> int:
        return sum(1 for c in self.calls if c.outcome == "reply")

    def sigterm(self, service: Service) -> None:
        self.signalled.set()
        service.proc.send_signal(signal.SIGTERM)

    def finish(self) -> bool:
        """Wait for the threads, each ending once refused after the SIGTERM (at once when no
        SIGTERM was sent: the test failed before). True when every one has ended."""
        if not self.signalled.is_set():
            self.stop.set()
        deadline = time.monotonic() + STOP_S
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.stop.set()  # a thread still running by now only bounds a hang
        return not any(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        seen = threading.local()

        def headers_arrived(_: httpx.Response) -> None:
            seen.reply = True

        body = {"profile_type": "articles", "query": VALID_QUERY}
        with httpx.Client(
            base_url=self.base,
            timeout=STOP_S,
            limits=httpx.Limits(max_keepalive_connections=0),  # a new connection per call
            event_hooks={"response": [headers_arrived]},
        ) as client:
            while not self.stop.is_set():
                seen.reply = False
                after = self.signalled.is_set()
                try:
                    reply = client.post("/api/v1/requests", json=body, headers=self.headers)
                    rid = reply.json()["id"] if reply.status_code == 202 else None
                    call = Call(after, self.signalled.is_set(), "reply", reply.status_code, rid)
                except httpx.ConnectError as exc:
                    call = Call(after, self.signalled.is_set(), "refused", error=repr(exc))
                except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
                    kind = "broken" if seen.reply else "reset"
                    call = Call(after, self.signalled.is_set(), kind, error=repr(exc))
                except Exception as exc:  # noqa: BLE001 - anything else fails the test below
                    call = Call(after, self.signalled.is_set(), "broken", error=repr(exc))
                with self._lock:
                    self.calls.append(call)
                if call.outcome == "refused" and call.ended_after:
                    return


def _serving(api: Service, base: str) -> bool:
    api.ensure_alive()
    return httpx.get(base + "/health", timeout=5).status_code == 200


def _login(base: str) -> dict[str, str]:
    reply = httpx.post(
        base + "/api/v1/auth/login", data={"username": "loaded", "password": PASSWORD}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "workers-2"])
def test_sigterm_during_submissions_answers_those_in_flight_and_loses_none(
    db: Db, processes: list[Service], logs: Logs, tmp_path: Path, workers: int
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Two requests at a time in the app: the others wait in its queue, in flight at SIGTERM.
    env = _env(db, _redis_url(API_REDIS_DB), tmp_path, api_concurrency="2")
    args = ["request", "serve", "--port", str(port), "--workers", str(workers)]
    api = _start(processes, "request-api", args, env, logs)
    wait_until(lambda: _serving(api, base), timeout=STARTUP_S, what="the API to serve")

    flood = Flood(base, _login(base))
    flood.start()
    try:
        wait_until(
            lambda: flood.answered() >= WARM_UP,
            timeout=STARTUP_S,
            what=f"{WARM_UP} replies",
            details=lambda: tail(api.log_path),
        )
        flood.sigterm(api)
        code = _exit_code(api)
    finally:
        ended = flood.finish()

    log = api.log_path.read_text(errors="replace")
    assert code == 0, tail(api.log_path)
    assert ended, "a submitting thread hangs"
    calls = flood.calls
    by_outcome = Counter(c.outcome for c in calls)
    assert by_outcome["broken"] == 0, [c for c in calls if c.outcome == "broken"][:5]
    replies = [c for c in calls if c.outcome == "reply"]
    assert {c.status for c in replies} <= {202, 429, 503}, Counter(c.status for c in replies)
    # Nothing failed before the SIGTERM; each thread ended refused once the server was gone.
    assert all(c.ended_after for c in calls if c.outcome in ("refused", "reset")), by_outcome
    assert by_outcome["refused"] == CLIENTS, by_outcome
    # Requests in flight when the SIGTERM came were answered during the shutdown.
    assert any(not c.started_after and c.ended_after and c.status == 202 for c in replies)
    # None lost, none extra: the requests stored are exactly those answered 202.
    accepted = [c.request_id for c in replies if c.status == 202]
    stored = db.column("SELECT id FROM requests WHERE user_id = %(u)s", {"u": db.user_id})
    assert len(set(accepted)) == len(accepted)
    assert set(stored) == set(accepted), (len(stored), len(accepted), by_outcome)
    # uvicorn's graceful shutdown, in each serving process.
    assert log.count("Shutting down") >= workers, tail(api.log_path)
    assert log.count("Application shutdown complete") == workers, tail(api.log_path)
    assert log.count("Finished server process") == workers, tail(api.log_path)


# ── the worker ──────────────────────────────────────────────────────────────────────────


@dataclass
class Export:
    """A request network's worker side: keys, settings, PENDING requests waiting in its
    outbox (`seed`), and a Celery client on the worker's broker."""

    db: Db
    tmp_path: Path
    logs: Logs
    processes: list[Service]
    redis_url: str = field(init=False)
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.redis_url = _redis_url(WORKER_REDIS_DB)
        self.keys = self.tmp_path / "keys"
        for net in ("request", "response"):
            generate_keypair(self.keys / net, net)
        self.client = Celery(
            "ferry-shutdown-test",
            broker=self.redis_url,
            backend=self.redis_url,
            set_as_current=False,
        )
        self.client.conf.update(
            task_serializer="json", result_serializer="json", accept_content=["json"]
        )

    @property
    def outbox(self) -> Path:
        return self.tmp_path / "transfer" / "outbox"

    def seed(self) -> None:
        """PENDING requests with their event and outbox entry, as a submission leaves them."""
        query = orjson.dumps(VALID_QUERY).decode()
        with psycopg.connect(self.db.url.replace("+psycopg", "")) as conn:
            conn.execute(
                "INSERT INTO requests (id, user_id, profile_type, query, status, created_at,"
                " updated_at) SELECT gen_random_uuid()::text, %(user)s, 'articles',"
                " %(query)s::json, 'PENDING', now(), now() FROM generate_series(1, %(n)s)",
                {"user": self.db.user_id, "query": query, "n": PENDING},
            )
            conn.execute(
                "INSERT INTO request_events (request_id, status, at, detail)"
                " SELECT id, 'PENDING', created_at, 'submitted' FROM requests"
            )
            conn.execute(
                "INSERT INTO request_outbox (request_id, user_id, profile_type, query,"
                " submitted_at) SELECT id, user_id, profile_type, query, created_at"
                " FROM requests ORDER BY created_at, id"
            )
            self.ids = [row[0] for row in conn.execute("SELECT id FROM requests")]

    def worker(self, name: str, **settings: str) -> Service:
        env = _env(
            self.db,
            self.redis_url,
            self.tmp_path,
            signing_key=str(self.keys / "request" / "request.ed25519.pem"),
            peer_public_keys=orjson.dumps([str(self.keys / "response")]).decode(),
            batch_max_records=str(BATCH),
            **settings,
        )
        args = ["request", "worker", "--concurrency", "1"]
        return _start(self.processes, name, args, env, self.logs)

    def send(self) -> AsyncResult:
        return self.client.send_task("request.export_requests", queue=QUEUE)

    def wait_for_a_written_batch(self, worker: Service) -> None:
        """The export is under way: a batch file is written, its transaction not committed."""

        def written() -> bool:
            worker.ensure_alive()
            return any(pending_dir(self.outbox).glob("requests-*.jsonl"))

        wait_until(
            written,
            timeout=STARTUP_S,
            what="the export's first batch file",
            interval=0.02,
            details=lambda: tail(worker.log_path),
        )

    def nothing_exported(self) -> None:
        assert self.db.scalar("SELECT count(*) FROM request_outbox") == PENDING
        assert self.db.scalar("SELECT count(*) FROM request_exports") == 0
        assert not any(self.outbox.glob("requests-*.jsonl"))

    def exported_once(self) -> None:
        """Every request is in exactly one published batch, and recorded as exported."""
        carried = Counter(
            request_id
            for path in sorted(self.outbox.glob("requests-*.jsonl"))
            for request_id in read_batch(path).ids("request")
        )
        assert set(carried) == set(self.ids), (len(carried), len(self.ids))
        assert max(carried.values()) == 1, carried.most_common(3)
        assert not any(pending_dir(self.outbox).glob("requests-*"))
        assert self.db.scalar("SELECT count(*) FROM request_outbox") == 0
        exports = self.db.column("SELECT request_id FROM request_exports")
        assert sorted(exports) == sorted(self.ids)


@pytest.fixture
def export(db: Db, tmp_path: Path, logs: Logs, processes: list[Service]) -> Iterator[Export]:
    made = Export(db, tmp_path, logs, processes)
    yield made
    made.client.close()
    _redis_url(WORKER_REDIS_DB)  # emptied again


def _finished(result: AsyncResult, worker: Service) -> bool:
    worker.ensure_alive()
    return result.ready()


def _broker_empty(export: Export) -> None:
    """No message of the task left to run again: none queued, none taken and unacknowledged."""
    with redis.Redis.from_url(export.redis_url) as broker:
        assert broker.llen(QUEUE) == 0
        assert broker.hlen("unacked") == 0


def test_sigterm_lets_a_running_task_finish_and_the_worker_exit_0(export: Export) -> None:
    worker = export.worker("request-worker")
    export.seed()  # while the worker starts
    result = export.send()
    export.wait_for_a_written_batch(worker)
    worker.proc.send_signal(signal.SIGTERM)

    assert _exit_code(worker) == 0, tail(worker.log_path)
    assert result.ready() and result.successful(), tail(worker.log_path)
    assert result.get(timeout=5)["requests"] == PENDING
    log = worker.log_path.read_text(errors="replace")
    # The SIGTERM came while the task ran: the warm shutdown began before it ended.
    assert "Warm shutdown" in log, tail(worker.log_path)
    assert log.index("Warm shutdown") < log.index(f"[{result.id}] succeeded"), tail(worker.log_path)
    export.exported_once()
    _broker_empty(export)  # acknowledged once done: it does not run again


def _taken_longer_ago_than(client: redis.Redis, seconds: float) -> int:
    """Messages taken from the queue and not acknowledged, for more than `seconds`."""
    return len(client.zrangebyscore("unacked_index", "-inf", time.time() - seconds))


def test_a_task_cut_off_by_sigkill_runs_again_on_a_new_worker_exactly_once(
    export: Export,
) -> None:
    timeout = {"broker_visibility_timeout_s": str(VISIBILITY_TIMEOUT_S)}
    killed = export.worker("request-worker-killed", **timeout)
    export.seed()
    result = export.send()
    export.wait_for_a_written_batch(killed)
    os.killpg(killed.proc.pid, signal.SIGKILL)  # the main process and its pool: no goodbye
    assert _exit_code(killed) == -signal.SIGKILL

    # Nothing of the export was committed; the batch file written stays pending.
    export.nothing_exported()
    assert any(pending_dir(export.outbox).glob("requests-*.jsonl"))
    assert not result.ready()

    # The broker hands the task out again once it has been unacknowledged for the
    # visibility timeout; a worker starting after that takes it.
    with redis.Redis.from_url(export.redis_url) as broker:
        wait_until(
            lambda: _taken_longer_ago_than(broker, VISIBILITY_TIMEOUT_S) == 1,
            timeout=STARTUP_S,
            what="the task unacknowledged for the visibility timeout",
        )
    again = export.worker("request-worker-new", **timeout)
    wait_until(
        lambda: _finished(result, again),
        timeout=STARTUP_S,
        what="the task run again",
        details=lambda: tail(again.log_path),
    )
    assert result.successful(), tail(again.log_path)
    assert result.get(timeout=5)["requests"] == PENDING
    log = again.log_path.read_text(errors="replace")
    assert f"[{result.id}] received" in log, tail(again.log_path)
    assert "written by an export that never committed" in log, tail(again.log_path)
    export.exported_once()

    again.proc.send_signal(signal.SIGTERM)
    assert _exit_code(again) == 0, tail(again.log_path)
    _broker_empty(export)
