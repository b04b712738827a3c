"""Rate-limit notifications, real PostgreSQL and Redis: submissions through the API cross the
soft threshold, open a grace period and hit the limit; the `notify` task tells the user each
crossing once, in-app, from the limiter's list; entries read again after a crash notify
nothing twice; Redis out of reach leaves the rest of `notify` working."""

from __future__ import annotations

import pytest
from request_api_helpers import VALID_QUERY
from sqlalchemy import select

from request_network import jobs
from request_network.models import Notification, NotificationEvent, User
from request_network.services.rate_limits import CROSSINGS
from shared.db import transaction
from shared.ratelimit import keys_for
from tests.e2e.e2e_support import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BODY = {"profile_type": "articles", "query": VALID_QUERY}


@pytest.fixture
def alice(seed, api_db, redis_client, login):
    seed.profile_type()
    user_id = seed.user("alice")
    with transaction(api_db) as session:
        session.get(User, user_id).rate_limits = {"minute": 10}
    redis_client.delete(CROSSINGS, *keys_for(user_id))
    yield user_id, login("alice")
    redis_client.delete(CROSSINGS, *keys_for(user_id))


def told(api_db: str, user_id: str) -> list[tuple[str, str]]:
    with transaction(api_db) as session:
        rows = session.execute(
            select(NotificationEvent.kind, NotificationEvent.data)
            .join(Notification, Notification.event_id == NotificationEvent.id)
            .where(Notification.user_id == user_id)
            .order_by(NotificationEvent.at, NotificationEvent.kind)
        )
        return [(kind, data["window"]) for kind, data in rows]


def test_each_crossing_is_told_once_in_app(client, alice, api_db, settings, redis_client):
    user_id, headers = alice
    codes = [
        client.post("/api/v1/requests", json=BODY, headers=headers).status_code for _ in range(12)
    ]
    assert codes == [202] * 11 + [429]  # soft at 9, grace at 11 (ratio 1.1), refused at 12
    entries = redis_client.lrange(CROSSINGS, 0, -1)
    assert len(entries) == 3

    done = jobs.notify(settings)

    assert done["rate_limit"] == 3 and done["notifications"] >= 3, done
    assert told(api_db, user_id) == [
        ("rate_limit.soft", "minute"),
        ("rate_limit.grace", "minute"),
        ("rate_limit.blocked", "minute"),
    ]
    assert redis_client.llen(CROSSINGS) == 0
    with transaction(api_db) as session:
        event = session.scalars(
            select(NotificationEvent).where(NotificationEvent.kind == "rate_limit.blocked")
        ).one()
        assert event.user_id == user_id and event.severity == "warning"
        assert event.data["count"] == 12 and event.data["limit"] == 10
        assert "minute window is at its limit" in event.body

    # a crash after the commit and before the entries were dropped: they are read again
    redis_client.rpush(CROSSINGS, *entries)
    again = jobs.notify(settings)
    assert again["rate_limit"] == 0 and again["notifications"] == 0, again
    assert len(told(api_db, user_id)) == 3
    assert redis_client.llen(CROSSINGS) == 0


def test_redis_out_of_reach_leaves_the_rest_of_notify_working(alice, api_db, settings):
    user_id, _ = alice
    with transaction(api_db) as session:
        session.add(
            NotificationEvent(
                id="00000000-0000-4000-8000-00000000a11c",
                kind="api_key.rotated",
                severity="info",
                audience="user",
                user_id=user_id,
                title="An API key was rotated",
                data={"window": "-"},
            )
        )
    unreachable = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})

    done = jobs.notify(unreachable)

    assert done["rate_limit"] == 0 and done["events"] == 1 and done["notifications"] == 1, done
    assert told(api_db, user_id) == [("api_key.rotated", "-")]
