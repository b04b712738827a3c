"""The request API under more concurrent requests than it has pooled connections and threads:
every request ends, accepted (202) or refused at once (503 with Retry-After); none stalls.

The real server (`ferry request serve`, one worker process, real PostgreSQL and Redis) takes
CONCURRENT submissions at once, more than its pool's connections plus its threadpool's
threads. Before each request did its database work in one thread hop, this deadlocked:
threads waited for connections held by requests that waited for threads, until the pool
timeout turned everything into 500s. Outcomes are asserted, not times; the client's timeout
(the pool's own, 30 s) only bounds a hang.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter

import httpx
import pytest
from request_api_helpers import JWT_SECRET, TEST_REDIS_URL, VALID_QUERY

from shared.db import POOL_CAPACITY, transaction
from tests.e2e.e2e_support import free_port
from tests.test_cli import FERRY, clean_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

THREADS = 40  # anyio's default threadpool
CONCURRENT = 128
QUEUE = 48  # waiting requests past the admitted ones; the rest are refused at once


def _key(url: str, settings_env: dict[str, str], user_id: str) -> str:
    from request_network.models import User
    from request_network.services.api_keys import create_key
    from request_network.settings import RequestSettings
    from shared.cache import get_redis

    settings = RequestSettings(
        mode="production",
        database_url=url,
        redis_url=TEST_REDIS_URL,
        jwt_secret=JWT_SECRET,
        api_key_pepper=settings_env["FERRY_REQUEST_API_KEY_PEPPER"],
    )
    with transaction(url) as session:
        _, secret = create_key(
            settings,
            get_redis(TEST_REDIS_URL),
            session=session,
            user=session.get(User, user_id),
            name="load",
            scopes=["requests:write", "requests:read"],
            expires_in_days=1,
        )
    return secret


@pytest.fixture
def server(api_db, seed, tmp_path):
    assert CONCURRENT > POOL_CAPACITY + THREADS
    seed.profile_type(rate_limits={"minute": 100_000, "hour": 100_000, "day": 100_000})
    user_id = seed.user("loaded")
    port = free_port()
    env = {
        "FERRY_REQUEST_MODE": "production",
        "FERRY_REQUEST_DATABASE_URL": api_db,
        "FERRY_REQUEST_REDIS_URL": TEST_REDIS_URL,
        "FERRY_REQUEST_JWT_SECRET": JWT_SECRET,
        "FERRY_REQUEST_API_KEY_PEPPER": "pepper-for-tests-0123456789abcdef0123",
        "FERRY_REQUEST_TRANSFER_DIR": str(tmp_path / "transfer"),
        "FERRY_REQUEST_API_QUEUE": str(QUEUE),
        "FERRY_LOG_LEVEL": "WARNING",
    }
    key = _key(api_db, env, user_id)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [FERRY, "request", "serve", "--port", str(port)],
        env=clean_env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # bounds a hang only
    while True:
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.1)
    yield base, key
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a stalled server does not stop on SIGTERM
        process.kill()
        process.wait()
    log.close()


async def _flood(base: str, key: str) -> list[httpx.Response | Exception]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    body = {"profile_type": "articles", "query": VALID_QUERY}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        calls = [
            client.post("/api/v1/requests", json=body, headers={"X-API-Key": key})
            for _ in range(CONCURRENT)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)


def test_more_requests_than_connections_and_threads_all_end_202_or_503(server, api_db):
    base, key = server
    replies = asyncio.run(_flood(base, key))
    failures = [r for r in replies if isinstance(r, Exception)]
    assert not failures, f"{len(failures)} requests never got an answer: {failures[:3]!r}"
    codes = Counter(r.status_code for r in replies)
    assert set(codes) <= {202, 503}, codes
    assert codes[202] > 0, codes
    for refused in (r for r in replies if r.status_code == 503):
        assert refused.headers["Retry-After"].isdigit()
        assert refused.headers["Content-Type"] == "application/problem+json"
    accepted = {r.json()["id"] for r in replies if r.status_code == 202}
    from request_network.models import Request

    with transaction(api_db) as session:
        stored = {r.id for r in session.query(Request.id)}
    assert accepted == stored  # every 202 was stored, nothing else was
    again = httpx.post(
        f"{base}/api/v1/requests",
        json={"profile_type": "articles", "query": VALID_QUERY},
        headers={"X-API-Key": key},
        timeout=30,
    )
    assert again.status_code == 202, again.text  # and the server is still serving
