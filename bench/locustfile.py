"""A Locust user mix for a real request-network deployment: submit, poll, read, list.

    FERRY_API_KEY=ferry_live_… uv run locust -f bench/locustfile.py \\
        --host https://ferry.example --users 50 --spawn-rate 5 --run-time 5m --headless

Each simulated user submits a query, polls its status until the request is answered (or
gives up after `FERRY_POLLS` polls), reads the response once it is there, and now and then
lists its own requests. Every user shares the API key in `FERRY_API_KEY` (scopes
`requests:write` and `requests:read`), so give that key's user limits that match the load
you mean to make: with the defaults a test run is mostly 429s. `FERRY_PROFILE_TYPE` and
`FERRY_QUERY` (JSON) choose what is asked. 503 with `Retry-After` is the API shedding load
(docs/DESIGN.md): Locust counts it as a failure, which is what an operator wants to see.
"""

from __future__ import annotations

import os

import orjson
from locust import HttpUser, between, task

API_KEY = os.environ.get("FERRY_API_KEY", "")
PROFILE_TYPE = os.environ.get("FERRY_PROFILE_TYPE", "articles")
QUERY = orjson.loads(
    os.environ.get("FERRY_QUERY", '{"query": {"match": {"field": "title", "value": "ferry"}}}')
)
POLLS = int(os.environ.get("FERRY_POLLS", "20"))
FINAL = {"COMPLETED", "FAILED", "EXPIRED"}


class FerryUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        if not API_KEY:
            raise RuntimeError("set FERRY_API_KEY to an API key of the request network")
        self.client.headers["X-API-Key"] = API_KEY
        self.waiting: list[tuple[str, int]] = []  # (request id, polls so far)

    @task(3)
    def submit(self) -> None:
        body = {"profile_type": PROFILE_TYPE, "query": QUERY}
        with self.client.post("/api/v1/requests", json=body, catch_response=True) as reply:
            if reply.status_code == 202:
                self.waiting.append((reply.json()["id"], 0))
            elif reply.status_code == 429:
                reply.failure("rate limited (429): raise this user's limits for a load test")

    @task(6)
    def poll(self) -> None:
        if not self.waiting:
            return
        request_id, polls = self.waiting.pop(0)
        reply = self.client.get(f"/api/v1/requests/{request_id}", name="/api/v1/requests/[id]")
        if reply.status_code != 200:
            return
        status = reply.json()["status"]
        if status == "COMPLETED":
            self.client.get(
                f"/api/v1/requests/{request_id}/response",
                name="/api/v1/requests/[id]/response",
            )
        elif status not in FINAL and polls + 1 < POLLS:
            self.waiting.append((request_id, polls + 1))

    @task(1)
    def list_own(self) -> None:
        self.client.get("/api/v1/requests?limit=20", name="/api/v1/requests?limit=20")
