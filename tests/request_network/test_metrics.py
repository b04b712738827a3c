"""Prometheus metrics are served to operators, and count rate-limit decisions."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

QUERY = {"query": {"match": {"field": "title", "value": "ferry"}}}


def _decisions(text: str) -> float:
    found = re.findall(r'^ferry_ratelimit_decisions_total\{state="ok"\} (\S+)$', text, re.M)
    return float(found[0]) if found else 0.0


def test_metrics_need_an_operator_and_count_decisions(client, seed, login):
    seed.profile_type()
    seed.user("mo", role="operator")
    seed.user("ursula")
    operator, user = login("mo"), login("ursula")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=user).status_code == 403

    before = _decisions(client.get("/metrics", headers=operator).text)
    reply = client.post(
        "/api/v1/requests", headers=user, json={"profile_type": "articles", "query": QUERY}
    )
    assert reply.status_code == 202, reply.text
    after = client.get("/metrics", headers=operator)
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    assert _decisions(after.text) == before + 1
