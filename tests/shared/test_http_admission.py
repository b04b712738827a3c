"""`shared.http.Admission`: at most `limit` requests inside, `queue` more waiting in order,
the rest refused at once with 503 problem+json and Retry-After; a wait past `wait_s` is a
503 too. Driven as ASGI calls against an app that holds each request until told to go."""

from __future__ import annotations

import asyncio

import orjson

from shared.http import Admission


class HeldApp:
    """An ASGI app whose requests wait inside until `release()`; counts who got in."""

    def __init__(self) -> None:
        self.inside = 0
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        self.inside += 1
        self.entered.set()
        await self.go.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app, path: str = "/api/v1/requests") -> tuple[int, dict[str, str], bytes]:
    """One request through `app`: its status, headers and body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)


def test_past_the_queue_a_request_is_refused_at_once_and_the_rest_get_in_in_turn():
    async def scenario():
        inner = HeldApp()
        app = Admission(inner, limit=2, queue=1, wait_s=60, retry_after_s=3)
        admitted = [asyncio.create_task(call(app)) for _ in range(2)]
        await until(lambda: inner.inside == 2)
        waiting = asyncio.create_task(call(app))
        await until(lambda: app.waiting == 1)
        status, headers, body = await call(app)  # limit and queue are full: refused now
        assert status == 503
        assert headers["retry-after"] == "3"
        assert headers["content-type"] == "application/problem+json"
        assert orjson.loads(body)["status"] == 503
        assert inner.inside == 2 and not waiting.done()
        inner.go.set()
        assert [r[0] for r in await asyncio.gather(*admitted, waiting)] == [200, 200, 200]
        assert inner.inside == 3

    asyncio.run(scenario())


def test_a_wait_past_the_bound_is_a_503_and_the_health_probe_skips_the_queue():
    async def scenario():
        inner = HeldApp()
        app = Admission(inner, limit=1, queue=5, wait_s=0.05, retry_after_s=1)
        first = asyncio.create_task(call(app))
        await until(lambda: inner.inside == 1)
        status, headers, _ = await call(app)  # waits its 0.05 s for the one slot, in vain
        assert (status, headers["retry-after"]) == (503, "1")
        health = asyncio.create_task(call(app, "/health"))
        await until(lambda: inner.inside == 2)  # in at once, though the slot is taken
        inner.go.set()
        assert (await first)[0] == 200 and (await health)[0] == 200

    asyncio.run(scenario())
