"""The deployment the end-to-end tests drive: both networks, their processes and the operator.

`conftest.py` builds it (the `deployment` fixture); tests use its methods to play beat (send
the scheduled tasks), the operator (`ferry transfer carry`) and users (HTTP). The request
network's notification channels reach a mail server and a webhook receiver in the test
process (`Channels`), which a test may stop and start again to play one that is down.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import orjson
from celery import Celery
from celery.result import AsyncResult
from e2e_support import (
    CliResult,
    Logs,
    Service,
    base_environment,
    free_port,
    run_cli,
    wait_until,
)

from tests.smtp_support import Arrived, SmtpServer
from tests.webhook_support import Receiver

ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = ROOT / "ferry" / "demo_data"
NETWORKS = ("request", "response")
PEER = {"request": "response", "response": "request"}
QUEUE = {"request": "ferry.request", "response": "ferry.response"}
DATABASE = {"request": "ferry_e2e_request", "response": "ferry_e2e_response"}
REDIS_DB = {"request": 12, "response": 13}
USERS = ("alice", "bob", "carol")
ADMINS = ("root",)  # admins of both networks
TASK_TIMEOUT_S = 60.0
STARTUP_TIMEOUT_S = 45.0
EMAIL_FROM = "Ferry e2e <ferry@e2e.example>"
ONCALL_EMAIL = "oncall@e2e.example"


def redis_url_for(base_url: str, db: int) -> str:
    return urlunparse(urlparse(base_url)._replace(path=f"/{db}"))


@dataclass
class Network:
    name: str
    env: dict[str, str]
    transfer_dir: Path
    keys_dir: Path
    redis_url: str
    celery: Celery

    @property
    def queue(self) -> str:
        return QUEUE[self.name]

    @property
    def outbox(self) -> Path:
        return self.transfer_dir / "outbox"

    @property
    def inbox(self) -> Path:
        return self.transfer_dir / "inbox"

    @property
    def quarantine(self) -> Path:
        return self.transfer_dir / "quarantine"


@dataclass
class Mailbox:
    """The deployment's SMTP server: aiosmtpd in the test process, on a port chosen before the
    networks start (their settings name it). `stop()` closes the port (a mail server that is
    down), `start()` listens on the same port again; `received` keeps every message that
    arrived, across restarts."""

    port: int
    received: list[Arrived] = field(default_factory=list)
    server: SmtpServer | None = None

    def start(self) -> Mailbox:
        if self.server is None:
            server = SmtpServer(self.port)
            server.handler.received = self.received  # one inbox for every (re)start
            self.server = server.start()
        return self

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def to(self, address: str) -> list[Arrived]:
        return [m for m in self.received if m.rcpt_tos == [address]]


@dataclass
class Channels:
    """Where the request network's email and webhooks go: `mail` (SMTP, plain, no login) and
    `hooks` (an HTTP receiver answering 204; `stop()` and `start()` keep its port)."""

    mail: Mailbox
    hooks: Receiver

    @classmethod
    def started(cls) -> Channels:
        return cls(Mailbox(free_port()).start(), Receiver().start())

    def env(self, net: str) -> dict[str, str]:
        """The settings that point `net` at them (read when its processes start)."""
        p = f"FERRY_{net.upper()}_"
        return {
            p + "SMTP_HOST": "127.0.0.1",
            p + "SMTP_PORT": str(self.mail.port),
            p + "SMTP_SECURITY": "none",
            p + "SMTP_TIMEOUT_S": "5",
            p + "EMAIL_FROM": EMAIL_FROM,
            p + "NOTIFICATION_ONCALL_EMAILS": orjson.dumps([ONCALL_EMAIL]).decode(),
            p + "WEBHOOK_ALLOWED_HOSTS": orjson.dumps(["127.0.0.0/8"]).decode(),
            p + "WEBHOOK_TIMEOUT_S": "5",
        }

    def close(self) -> None:
        self.mail.stop()
        self.hooks.stop()


@dataclass
class Deployment:
    base: Path
    logs: Logs
    networks: dict[str, Network]
    api_url: str
    passwords: dict[str, str]
    response_api_url: str = ""
    channels: Channels | None = None
    services: list[Service] = field(default_factory=list)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def request(self) -> Network:
        return self.networks["request"]

    @property
    def response(self) -> Network:
        return self.networks["response"]

    # --- processes -------------------------------------------------------------------------

    def cli(
        self, *args: str | Path, env: dict[str, str] | None = None, check: bool = True
    ) -> CliResult:
        """`ferry …` as its own process; by default with no network settings at all."""
        return run_cli(
            [str(a) for a in args],
            env=env or base_environment(),
            logs=self.logs,
            cwd=self.base,
            check=check,
        )

    def check_services(self) -> None:
        for service in self.services:
            service.ensure_alive()

    # --- tasks (what beat would do) --------------------------------------------------------

    def send(self, net: str, task: str) -> AsyncResult:
        network = self.networks[net]
        return network.celery.send_task(task, queue=network.queue)

    def wait(self, result: AsyncResult, what: str, timeout: float = TASK_TIMEOUT_S) -> Any:
        """The task's return value; fails early if a worker died, with its log."""

        def finished() -> bool:
            self.check_services()
            return result.ready()

        wait_until(finished, timeout=timeout, what=f"task {what} ({result.id})", interval=0.05)
        return result.get(timeout=5)

    def run_task(self, net: str, task: str, timeout: float = TASK_TIMEOUT_S) -> Any:
        return self.wait(self.send(net, task), task, timeout)

    # --- the operator ----------------------------------------------------------------------

    def carry(self, source: Path, destination: Path, *, keep: bool = False) -> dict[str, Any]:
        """`ferry transfer carry`; the operator has no network settings at all."""
        keep_flag = ["--keep"] if keep else []
        report = self.cli(
            "transfer", "carry", "--from", source, "--to", destination, *keep_flag
        ).json()
        assert not report["refused"], report
        return report

    # --- the API ---------------------------------------------------------------------------

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=15)

    def response_http(self) -> httpx.Client:
        return httpx.Client(base_url=self.response_api_url, timeout=15)

    def login(self, http: httpx.Client, username: str) -> dict[str, str]:
        """A bearer header for `username`; one real login per user per module (tokens last
        15 minutes, and logins are rate limited per client address and per account)."""
        if username not in self.tokens:
            self.tokens[username] = self._login(http, username)
        return self.tokens[username]

    def _login(self, http: httpx.Client, username: str) -> dict[str, str]:
        reply = http.post(
            "/api/v1/auth/login",
            data={"username": username, "password": self.passwords[username]},
        )
        assert reply.status_code == 200, (reply.status_code, reply.text)
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def network_env(
    net: str, *, base: Path, keys_root: Path, database_url: str, redis_url: str
) -> dict[str, str]:
    p = f"FERRY_{net.upper()}_"
    return (
        base_environment()
        | {
            p + "MODE": "production",
            p + "JWT_SECRET": secrets.token_urlsafe(36),  # 48 characters
            p + "DATABASE_URL": database_url,
            p + "REDIS_URL": redis_url,
            p + "BROKER_URL": redis_url,
            p + "TRANSFER_DIR": str(base / net / "transfer"),
            p + "SIGNING_KEY": str(keys_root / net / f"{net}.ed25519.pem"),
            # the peer's directory holds its private key too, but only *.pub.pem is read from it
            p + "PEER_PUBLIC_KEYS": orjson.dumps([str(keys_root / PEER[net])]).decode(),
            p + "BCRYPT_ROUNDS": "4",
        }
        | ({p + "API_KEY_PEPPER": secrets.token_urlsafe(36)} if net == "request" else {})
    )


def celery_client(net: str, url: str) -> Celery:
    app = Celery(f"ferry-e2e-client-{net}", broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    return app


def wait_for_worker(dep: Deployment, network: Network) -> None:
    def answered() -> list:
        dep.check_services()
        return network.celery.control.ping(timeout=0.5)

    replies = wait_until(
        answered, timeout=STARTUP_TIMEOUT_S, what=f"the {network.name} worker to answer a ping"
    )
    assert len(replies) == 1, (
        f"{len(replies)} workers answer on {network.redis_url}: another Celery worker is "
        f"consuming this Redis database ({replies})"
    )


def wait_for_api(dep: Deployment) -> None:
    for url in (dep.api_url, dep.response_api_url):

        def healthy(url: str = url) -> bool:
            dep.check_services()
            reply = httpx.get(url + "/health", timeout=2)
            return reply.status_code == 200 and reply.json()["status"] == "ok"

        wait_until(healthy, timeout=STARTUP_TIMEOUT_S, what=f"{url}/health to say ok")
