"""The kinds of notification event, what each tells and to whom (docs/NOTIFICATIONS.md).

Plain data, imported by the record schemas (a user's preferences name kinds) and by
`shared.notifications`, which writes and fans out the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Audience = Literal["user", "operators", "admins"]
Severity = Literal["info", "warning", "error", "critical"]
Channel = Literal["in_app", "email"]


@dataclass(frozen=True)
class Kind:
    audience: Audience
    severity: Severity
    channels: tuple[Channel, ...]  # by default; in-app is always among them
    what: str


KINDS: dict[str, Kind] = {
    # For users (request network)
    "request.completed": Kind("user", "info", ("in_app",), "a response is available"),
    "request.failed": Kind("user", "warning", ("in_app", "email"), "a request failed"),
    "request.expired": Kind("user", "warning", ("in_app", "email"), "a request expired"),
    "rate_limit.soft": Kind("user", "info", ("in_app",), "the soft threshold was crossed"),
    "rate_limit.grace": Kind("user", "warning", ("in_app",), "a grace period opened"),
    "rate_limit.blocked": Kind("user", "warning", ("in_app",), "the hard limit was reached"),
    "api_key.expiring": Kind("user", "warning", ("in_app", "email"), "an API key expires soon"),
    "api_key.rotated": Kind("user", "info", ("in_app",), "an API key was rotated"),
    "webhook.disabled": Kind(
        "user", "warning", ("in_app", "email"), "a webhook endpoint was disabled after failures"
    ),
    # For operators and admins (both networks)
    "batch.quarantined": Kind("operators", "error", ("in_app", "email"), "a batch was refused"),
    "batch.unacknowledged": Kind(
        "operators", "warning", ("in_app", "email"), "a batch is unacknowledged too long"
    ),
    "batch.gap": Kind("operators", "warning", ("in_app", "email"), "a sequence gap"),
    "component.down": Kind("admins", "critical", ("in_app", "email"), "a component is down"),
    "task.failing": Kind("admins", "error", ("in_app", "email"), "a task fails repeatedly"),
    "disk.low": Kind("operators", "warning", ("in_app", "email"), "disk space is low"),
}

KindName = Literal[
    "request.completed",
    "request.failed",
    "request.expired",
    "rate_limit.soft",
    "rate_limit.grace",
    "rate_limit.blocked",
    "api_key.expiring",
    "api_key.rotated",
    "webhook.disabled",
    "batch.quarantined",
    "batch.unacknowledged",
    "batch.gap",
    "component.down",
    "task.failing",
    "disk.low",
]

__all__ = ["KINDS", "Audience", "Channel", "Kind", "KindName", "Severity"]
