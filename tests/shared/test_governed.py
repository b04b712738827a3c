"""The registry of governed settings: every key validates its type and bounds, names itself
when it refuses, and resolves to governed, environment or default (DESIGN.md §9)."""

from __future__ import annotations

import pytest

from request_network.settings import RequestSettings
from response_network.settings import ResponseSettings
from shared.governed import (
    REGISTRY,
    InvalidSettings,
    governed_values,
    lookup,
    resolve,
    validate_values,
)
from shared.ratelimit import MAX_LIMIT
from shared.records import SettingData

SECRETS = {"jwt_secret": "s" * 40, "api_key_pepper": "p" * 40}

EXPECTED_DEFAULTS = {
    "rate_limits.soft_ratio": 0.8,
    "rate_limits.grace_ratio": 1.1,
    "rate_limits.grace_seconds": 300,
    "rate_limits.by_role": {},
    "response_cache.ttl_seconds": 3600,
    "response_cache.max_bytes": 1024 * 1024,
    "requests.expiry_hours": 168,
    "retention.task_history_days": 14,
    "retention.health_history_days": 7,
    "notifications.unacked_batch_hours": 24,
    "notifications.quarantine_count": 1,
    "notifications.escalation_minutes": 30,
    "notifications.queue_depth": 1000,
}


def test_the_registry_holds_every_key_with_its_default():
    assert {k: e.default for k, e in REGISTRY.items()} == EXPECTED_DEFAULTS
    for key, entry in REGISTRY.items():
        assert entry.validate(entry.default) == entry.default, key
        assert entry.description
        SettingData(key=key, value=entry.default)  # every key can travel as a record


@pytest.mark.parametrize(
    ("key", "good", "bad"),
    [
        ("rate_limits.soft_ratio", [0.01, 0.5, 1, 1.0], [0, -0.1, 1.01, "0.5", True, None, []]),
        ("rate_limits.grace_ratio", [1, 1.5, 10], [0.99, 10.5, "1.2", False]),
        ("rate_limits.grace_seconds", [0, 300, 86400, 300.0], [-1, 86401, 1.5, "300", True]),
        ("response_cache.ttl_seconds", [1, 604800], [0, 604801, 2**63]),
        ("response_cache.max_bytes", [0, 64 * 1024 * 1024], [-1, 64 * 1024 * 1024 + 1]),
        ("requests.expiry_hours", [1, 8760], [0, 8761]),
        ("retention.task_history_days", [1, 3650], [0, 3651]),
        ("retention.health_history_days", [1, 3650], [0, 3651]),
        ("notifications.unacked_batch_hours", [0.5, 24, 8760], [0, -1, 8761]),
        ("notifications.quarantine_count", [1, 50], [0, -3, 2.5]),
        ("notifications.queue_depth", [1, 1_000_000], [0, "many"]),
        (
            "rate_limits.by_role",
            [
                {},
                {"articles": {"user": {"minute": 5, "hour": 50, "day": 100}}},
                {"articles": {"admin": {"minute": MAX_LIMIT}}, "payroll": {}},
            ],
            [
                [],
                {"Articles!": {"user": {"minute": 5}}},  # not a profile type name
                {"articles": {"boss": {"minute": 5}}},  # not a role
                {"articles": {"user": {"minute": MAX_LIMIT + 1}}},  # past the limiter's bound
                {"articles": {"user": {"minute": -1}}},
                {"articles": {"user": {"minute": 1.5}}},
                {"articles": {"user": {"week": 5}}},  # not a window
                {"articles": {"user": 5}},
            ],
        ),
    ],
)
def test_each_key_takes_its_type_and_bounds_only(key, good, bad):
    entry = lookup(key)
    for value in good:
        entry.validate(value)
    for value in bad:
        with pytest.raises(InvalidSettings) as refused:
            entry.validate(value)
        assert refused.value.keys == [key], value


def test_numbers_never_take_nan_or_infinity():
    for value in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(InvalidSettings):
            lookup("rate_limits.soft_ratio").validate(value)


def test_values_are_kept_in_their_json_form():
    assert lookup("rate_limits.soft_ratio").validate(1) == 1.0
    assert lookup("rate_limits.grace_seconds").validate(120.0) == 120
    by_role = {"articles": {"user": {"minute": 5}}}
    assert lookup("rate_limits.by_role").validate(by_role) == by_role  # no nulls added


def test_validate_values_names_every_key_refused_and_keeps_null():
    with pytest.raises(InvalidSettings) as refused:
        validate_values(
            {
                "rate_limits.soft_ratio": 0.5,
                "no.such.key": 1,
                "response_cache.ttl_seconds": 0,
                "bad\ud800key": 1,
            }
        )
    keys = refused.value.keys
    assert keys[:2] == ["no.such.key", "response_cache.ttl_seconds"]
    assert keys[2].startswith("bad") and keys[2].encode()  # echoed encodable
    assert "rate_limits.soft_ratio" not in keys
    assert validate_values({"rate_limits.soft_ratio": None}) == {"rate_limits.soft_ratio": None}


def test_resolve_prefers_governed_then_environment_then_default():
    settings = RequestSettings(**SECRETS, rate_limit_soft_ratio=0.7, request_expiry_hours=48)
    now = resolve({"rate_limits.grace_ratio": 2.0}, settings)
    assert (now["rate_limits.grace_ratio"], now.sources["rate_limits.grace_ratio"]) == (
        2.0,
        "governed",
    )
    assert (now["rate_limits.soft_ratio"], now.sources["rate_limits.soft_ratio"]) == (
        0.7,
        "environment",
    )
    assert now["requests.expiry_hours"] == 48
    assert now.sources["notifications.queue_depth"] == "default"
    assert now.sources["rate_limits.by_role"] == "default"
    # The response network has no cache or limiter settings: the defaults stand in.
    response = resolve({}, ResponseSettings(**SECRETS, task_history_days=30))
    assert response.sources["response_cache.ttl_seconds"] == "default"
    assert (
        response["retention.task_history_days"],
        response.sources["retention.task_history_days"],
    ) == (
        30,
        "environment",
    )


def test_stored_values_that_no_longer_validate_are_not_applied():
    stored = {
        "rate_limits.soft_ratio": 0.5,
        "rate_limits.grace_ratio": 50,  # past today's bound
        "retired.key": 1,
        "requests.expiry_hours": None,  # set back to the default
    }
    assert governed_values(stored) == {"rate_limits.soft_ratio": 0.5}
