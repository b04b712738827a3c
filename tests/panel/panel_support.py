"""Helpers of the panel tests: settings on the test PostgreSQL and Redis, a fresh database,
a client and its sign-in, the CSRF token of a page, the people of a test, and stored
`<script>` in rows and files with the check that pages show it as text."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from request_network.app import create_app
from request_network.settings import RequestSettings
from shared.db import transaction, utcnow
from transfer.protocol.archive import ACKED, CARRIED
from transfer.protocol.quarantine import quarantine

REDIS_URL = os.environ.get("FERRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct horse battery"
KEY_PATTERNS = (
    "panel:*",
    "auth:*",
    "rl:*",
    "resp:*",
    "ferry.request*",
    "ferry.response*",
    "celery-task-meta-*",
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def clear_redis(url: str = REDIS_URL) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = [k for p in KEY_PATTERNS for k in client.scan_iter(match=p, count=500)]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def common_values(database_url: str, transfer_dir: Path, jwt_secret: str) -> dict[str, Any]:
    """The settings both networks' panel tests run with: production mode, the test database
    and Redis, no worker, fast password hashing."""
    return dict(
        mode="production",
        database_url=database_url,
        redis_url=REDIS_URL,
        broker_url=REDIS_URL,
        celery_eager=False,
        jwt_secret=jwt_secret,
        bcrypt_rounds=4,
        transfer_dir=transfer_dir,
        health_worker_timeout_s=0.2,
        health_min_free_mb=0,
    )


def make_settings(database_url: str, transfer_dir: Path, **overrides: Any) -> RequestSettings:
    values = common_values(database_url, transfer_dir, "test-secret-for-the-panel-0123456789abcdef")
    values["api_key_pepper"] = "pepper-for-panel-tests-0123456789abcdef"
    return RequestSettings(**{**values, **overrides})


def fresh(url: str, empty: Callable[[str], None]) -> Iterator[str]:
    """A test's database at `url`, emptied (`empty`) with the test Redis before and after."""
    empty(url)
    clear_redis()
    yield url
    empty(url)
    clear_redis()


def https_client(app: FastAPI) -> Iterator[TestClient]:
    # https: the session cookie is Secure outside the demo, so a client sends it over https only
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


def staff(seed: Any, user: str) -> dict[str, str]:
    """A profile type, an admin (root), an operator (olga) and a user, by name: their ids."""
    seed.profile_type()
    return {
        "root": seed.user("root", role="admin"),
        "olga": seed.user("olga", role="operator"),
        user: seed.user(user),
    }


def panel_app(settings: RequestSettings) -> FastAPI:
    """The request API as served, with its panel at /admin."""
    return create_app(settings)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    page = client.get("/admin/login")
    assert page.status_code == 200, page.text
    reply = client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert reply.status_code == 303, reply.text
    landing = client.get("/admin/")
    assert landing.status_code == 200, landing.text
    return csrf_of(landing.text)


# Stored `<script>` -------------------------------------------------------------------------

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def quarantined(settings: Any, name: str, reason: str, content: bytes = b"damaged\n") -> str:
    """A file `name` refused at the inbox for `reason`: its name in quarantine."""
    source = settings.inbox / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(content)
    return quarantine(source, settings.quarantine_dir, [reason]).name


# The batch ledger ---------------------------------------------------------------------------


def batch_file(stream: str, source: str, seq: int, batch_id: str) -> str:
    return f"{stream}-{source}-{seq:08d}-{batch_id}.jsonl"


def out_batch(
    url: str,
    batch_model: type,
    settings: Any,
    directory: Path,
    stream: str,
    seq: int,
    *,
    records: int,
    size: int,
    acked_after: float | None,
) -> str:
    """An outgoing batch in the ledger (written `10 - seq` hours ago, acknowledged
    `acked_after` seconds later or not yet, `seq % 2` records refused), its file of `size`
    bytes in `directory`: the file's name."""
    batch_id = str(uuid.uuid4())
    name = batch_file(stream, settings.network_id, seq, batch_id)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(b"x" * size)
    written = utcnow() - timedelta(hours=10 - seq)
    with transaction(url) as session:
        session.add(
            batch_model(
                id=batch_id,
                direction="out",
                stream=stream,
                source=settings.network_id,
                destination=settings.peer_network_id,
                seq=seq,
                digest=f"{seq:064d}",
                filename=name,
                record_count=records,
                bytes=size,
                error_count=seq % 2,
                created_at=written,
                acked_at=written + timedelta(seconds=acked_after) if acked_after else None,
            )
        )
    return name


def ledger_batches(url: str, batch_model: type, settings: Any, sent: str, received: str) -> dict:
    """Five batches of the stream `sent`: two acknowledged (kept in outbox/acked, `acked1`
    after 90 s, `acked2` after 2 h), one carried and two in the outbox (`out4`, `out5`), the
    three awaiting their acknowledgement; and a file of the stream `received` in the inbox."""
    outbox = settings.outbox

    def out(key: str, where: Path, seq: int, records: int, size: int, acked: float | None):
        return key, out_batch(
            url, batch_model, settings, where, sent, seq,
            records=records, size=size, acked_after=acked,
        )  # fmt: skip

    names = dict(
        [
            out("acked1", outbox / ACKED, 1, 30, 300, 90),
            out("acked2", outbox / ACKED, 2, 4, 40, 7200),
            out("carried", outbox / CARRIED, 3, 12, 120, None),
            out("out4", outbox, 4, 2, 2048, None),
            out("out5", outbox, 5, 9, 20, None),
        ]
    )
    names["inbox"] = batch_file(received, settings.peer_network_id, 8, str(uuid.uuid4()))
    settings.inbox.mkdir(parents=True, exist_ok=True)
    (settings.inbox / names["inbox"]).write_bytes(b"y" * 1536)
    return names


def add_hostile_gap_rows(
    session: Any, models: Any, *, root: str, stream: str, source: str, destination: str
) -> None:
    """An alert, a notification for `root` and an arrived batch, `XSS` in each text field;
    `models`: the network's `models` module."""
    now = utcnow()
    session.add(
        models.Alert(
            event_id=str(uuid.uuid4()),
            kind="component.down",
            severity="critical",
            title=XSS,
            body=XSS,
            opened_at=now,
            escalated_at=now,
            history=[{"at": now.isoformat(), "what": "opened", "title": XSS}],
        )
    )
    session.add(
        models.Notification(
            event_id=str(uuid.uuid4()),
            user_id=root,
            at=now,
            kind="batch.quarantined",
            severity="warning",
            title=XSS,
            body=XSS,
        )
    )
    session.add(
        models.Batch(
            id=str(uuid.uuid4()),
            direction="in",
            stream=stream,
            source=source,
            destination=destination,
            seq=1,
            digest="0" * 64,
            filename=f"x{XSS}.jsonl",
            record_count=1,
            bytes=10,
            producer=XSS,
            key_id="k",
            created_at=now - timedelta(hours=1),
        )
    )


def assert_shown_as_text(
    client: TestClient, pages: list[str], shown: str = ESCAPED, *, not_shown: tuple = ()
) -> None:
    """Each page answers 200 with `XSS` escaped: never as markup, and as `shown` text on
    every page but those in `not_shown` (pages that show none of the hostile fields)."""
    for path in pages:
        reply = client.get(path)
        assert reply.status_code == 200, (path, reply.text[:300])
        assert XSS not in reply.text, path
        if path not in not_shown:
            assert shown in reply.text, path
