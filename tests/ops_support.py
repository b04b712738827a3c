"""Helpers for the health, queue and task tests of both networks: a real Celery worker of a
network (`ferry <net> worker`, started once per module, restarted on demand), a TCP port that
accepts connections and never answers (a component that hangs), and Prometheus parsing."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families

from shared.celery_control import ping_workers
from tests.e2e.e2e_support import Logs, Service, base_environment, wait_until

STARTUP_TIMEOUT_S = 60.0


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushdb()


def worker_env(
    net: str, *, database_url: str, redis_url: str, broker_url: str, transfer_dir: Path
) -> dict[str, str]:
    p = f"FERRY_{net.upper()}_"
    env = base_environment() | {
        p + "MODE": "production",
        p + "JWT_SECRET": secrets.token_urlsafe(36),
        p + "DATABASE_URL": database_url,
        p + "REDIS_URL": redis_url,
        p + "BROKER_URL": broker_url,
        p + "TRANSFER_DIR": str(transfer_dir),
        p + "HEALTH_PROBE_TIMEOUT_S": "1",
    }
    if net == "request":
        env[p + "API_KEY_PEPPER"] = secrets.token_urlsafe(36)
    return env


class Worker:
    """`ferry <net> worker --concurrency 1` on a private broker, started when a test needs it
    running and stopped when one needs it gone (or at the end of the module)."""

    def __init__(self, net: str, env: dict[str, str], broker_url: str, base: Path) -> None:
        self.net, self.env, self.broker_url, self.base = net, env, broker_url, base
        self.logs = Logs(base / "logs")
        self.service: Service | None = None

    def start(self) -> None:
        """Start the process (if it is not running) without waiting for it."""
        if self.service is None or not self.service.alive():
            self.service = Service(
                f"{self.net}-worker",
                [self.net, "worker", "--concurrency", "1"],
                self.env,
                self.logs,
                self.base,
            )

    def ensure_running(self) -> str:
        """The worker's name, once it answers a ping."""
        self.start()

        def answered() -> list[str]:
            assert self.service is not None
            self.service.ensure_alive()
            return sorted(ping_workers(self.broker_url, 0.5))

        names = wait_until(
            answered,
            timeout=STARTUP_TIMEOUT_S,
            what=f"the {self.net} worker to answer a ping",
            details=self.logs.report,
        )
        assert len(names) == 1, f"another worker consumes {self.broker_url}: {names}"
        return names[0]

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


@contextmanager
def silent_port() -> Iterator[int]:
    """A local port whose listener accepts connections (the kernel completes them) and never
    reads or answers: whatever talks to it waits until its own timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted labels: value} of every sample called `name` in a Prometheus exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found
