"""Queue depth, purge and worker pings on both kinds of broker Ferry supports: Redis (the
`LLEN` of the queue's lists) and RabbitMQ (a passive `queue_declare`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from shared import celery_control
from tests.conftest import IN_CI, _reachable
from tests.ops_support import flush

REDIS_BROKER = "redis://127.0.0.1:6379/9"  # private to this module
RABBIT_BROKER = os.environ.get("FERRY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(params=[REDIS_BROKER, RABBIT_BROKER], ids=["redis", "rabbitmq"])
def broker(request) -> Iterator[str]:
    url = request.param
    if url.startswith("amqp") and not _reachable(url) and not IN_CI:
        pytest.skip(f"RabbitMQ is not reachable at {url}")
    yield url


@pytest.fixture
def queue(broker) -> Iterator[str]:
    """A queue of its own, deleted afterwards."""
    name = f"ferry.test.{uuid.uuid4().hex[:12]}"
    yield name
    with Connection(broker, connect_timeout=2) as conn:
        conn.default_channel.queue_delete(name)
    if celery_control.is_redis(broker):
        flush(broker)  # and kombu's bindings


@pytest.mark.redis
def test_depth_moves_and_purge_empties_the_queue(broker, queue):
    assert celery_control.queue_depth(broker, queue, 2.0) == 0  # never declared: nothing waits
    celery_control.broker_reachable(broker, 2.0)
    for _ in range(3):
        celery_control.send_task(broker, "request.flag_unacked", queue, 2.0)
    assert celery_control.queue_depths(broker, [queue], 2.0) == {queue: 3}
    assert celery_control.purge_queue(broker, queue, 2.0) == 3
    assert celery_control.queue_depth(broker, queue, 2.0) == 0
    assert celery_control.ping_workers(broker, 0.3) == {}  # no worker is an answer


@pytest.mark.redis
def test_an_unreachable_broker_is_an_error_within_its_timeout():
    from tests.request_network.request_api_helpers import closed_port

    broker = f"redis://127.0.0.1:{closed_port()}/0"
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises, not a hang
        celery_control.broker_reachable(broker, 0.5)
    depths = celery_control.queue_depths(broker, ["ferry.request"], 0.5)
    assert "Connection" in depths["ferry.request"]
