"""Shared fixtures: real PostgreSQL and Redis, throwaway keys and settings for both networks.

Service URLs come from the environment with this machine's defaults. Tests that need a
service which is not reachable are not run outside CI, and the summary says so plainly;
under CI (CI=true) they run and fail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

PG_ADMIN_URL = os.environ.get(
    "FERRY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FERRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
NEEDS = {"postgres": PG_ADMIN_URL, "redis": REDIS_URL}


def _reachable(url: str) -> bool:
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=1):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = {name for name, url in NEEDS.items() if not _reachable(url)}
    if not missing or IN_CI:
        return
    keep, dropped = [], []
    for item in items:
        needs = {m.name for m in item.iter_markers()} & {"postgres", "redis"}
        (dropped if needs & missing else keep).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=dropped)
    config._ferry_not_run = (sorted(missing), len(dropped))  # type: ignore[attr-defined]


def _skipped_as_not_run(terminalreporter) -> dict[str, int]:
    """Skips whose reason starts "NOT RUN:" (a tool missing here, as the panel's browser
    tests without Chromium), counted by reason."""
    found: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith("NOT RUN:"):
            found[reason] = found.get(reason, 0) + 1
    return found


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    not_run = getattr(config, "_ferry_not_run", None)
    if not_run:
        services, count = not_run
        terminalreporter.write_line(
            f"NOT RUN: {count} tests need {', '.join(services)}, which is not reachable "
            f"here ({', '.join(NEEDS[s] for s in services)}). Only the embedded-default "
            "suite ran. Under CI=true these tests run and fail instead.",
            yellow=True,
            bold=True,
        )
    for reason, count in _skipped_as_not_run(terminalreporter).items():
        terminalreporter.write_line(
            f"NOT RUN: {count} tests. {reason.removeprefix('NOT RUN: ')}. "
            "Under CI=true these tests run and fail instead.",
            yellow=True,
            bold=True,
        )


# Databases are named per run, so two test runs on one machine never drop each other's.
RUN_SUFFIX = os.environ.get("PYTEST_XDIST_WORKER", "main") + f"_{os.getpid()}"


@pytest.fixture(autouse=True)
def _fresh_circuit_breakers() -> Iterator[None]:
    """Each test starts with this process's breakers closed: a test that makes Redis or the
    search cluster fail must not leave a breaker open for the next one."""
    from shared import breaker

    breaker.reset()
    yield
    breaker.reset()


def _drop_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh_database(name: str) -> str:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_urls() -> Iterator[dict[str, str]]:
    """Migrated PostgreSQL databases for both networks, made fresh for this test run."""
    from shared.migrate import upgrade

    urls = {}
    for net in ("request", "response"):
        urls[net] = _fresh_database(f"ferry_test_{net}_{RUN_SUFFIX}")
        upgrade(net, urls[net])
    yield urls
    for url in urls.values():
        _drop_database(make_url(url).database)


def _rollback_session(url: str) -> Iterator[Session]:
    """A session whose every commit lands in a savepoint; the test's work is rolled back."""
    engine = create_engine(url)
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            outer.rollback()
    engine.dispose()


@pytest.fixture
def rq_session(pg_urls) -> Iterator[Session]:
    yield from _rollback_session(pg_urls["request"])


@pytest.fixture
def rs_session(pg_urls) -> Iterator[Session]:
    yield from _rollback_session(pg_urls["response"])


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Fresh Ed25519 key pairs: keys[net] is the directory holding net's pair."""
    from transfer.format.keys import generate_keypair

    out = {}
    for net in ("request", "response"):
        generate_keypair(tmp_path / "keys" / net, net)
        out[net] = tmp_path / "keys" / net
    return out


def network_settings(net: str, base: Path, keys: dict[str, Path], **overrides):
    """Settings for one network rooted in a test directory (SQLite unless overridden)."""
    from request_network.settings import RequestSettings
    from response_network.settings import ResponseSettings

    peer = "response" if net == "request" else "request"
    cls = RequestSettings if net == "request" else ResponseSettings
    values = dict(
        mode="demo",
        database_url=f"sqlite:///{base}/{net}.db",
        redis_url="fakeredis://",
        broker_url="memory://",
        celery_eager=True,
        transfer_dir=base / net / "transfer",
        signing_key=keys[net] / f"{net}.ed25519.pem",
        peer_public_keys=[keys[peer]],
        bcrypt_rounds=4,
    )
    values.update(overrides)
    return cls(**values)
