"""Rate-limit notifications: the thresholds users crossed, told after the fact.

The limiter's script lists each crossing as it charges a check (`shared.ratelimit.crossings`:
a soft threshold passed, a grace period opened, a block begun), so a submission does no
more work than before. The `notify` task turns the list into `rate_limit.soft`,
`rate_limit.grace` and `rate_limit.blocked` events for their users, one per crossing, in its
transaction, and drops the entries once that has committed (`forget`). Each event's id
derives from its crossing, so entries read again after a crash notify once.

Redis out of reach: nothing is read, the entries wait, the rest of `notify` goes on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from request_network.services import notifications
from request_network.services.rate_limits import CROSSINGS
from request_network.settings import RequestSettings
from shared.cache import get_redis
from shared.ratelimit import crossings
from shared.ratelimit.crossings import Crossing
from shared.ratelimit.limiter import UNAVAILABLE

log = logging.getLogger("ferry.ratelimit")

#: Event ids of crossings: uuid5 of the crossing's key in this namespace.
NAMESPACE = uuid.UUID("6f1c2b9e-4d7a-5e3f-9b8c-1a2d3e4f5a6b")
#: Entries read per run; the rest wait for the next run.
READ_AT_MOST = 10_000

_WORDS = {
    "soft": ("Soft rate limit reached", "is past its soft threshold"),
    "grace": ("Grace period opened", "is past its limit: a grace period has opened"),
    "blocked": ("Rate limit reached", "is at its limit: requests are refused for now"),
}


def _item(crossing: Crossing) -> dict:
    title, what = _WORDS[crossing.state]
    at = datetime.fromtimestamp(crossing.at_ms / 1000, UTC)
    return {
        "id": str(uuid.uuid5(NAMESPACE, crossing.key)),
        "user_id": crossing.user_id,
        "title": f"{title} ({crossing.window})",
        "body": (
            f"Your {crossing.window} window {what} "
            f"({crossing.count} of {crossing.limit} requests, at {at:%Y-%m-%d %H:%M:%S} UTC)."
        ),
        "data": {
            "window": crossing.window,
            "count": crossing.count,
            "limit": crossing.limit,
            "at": at.isoformat(),
        },
    }


def tell(settings: RequestSettings, *, session: Session) -> tuple[int, Callable[[], None]]:
    """Write the events of the crossings listed so far in `session`'s transaction: how many,
    and what to call once it has committed (it drops the entries read)."""
    client = get_redis(settings.redis_url)
    try:
        read, found = crossings.read(client, CROSSINGS, READ_AT_MOST)
    except UNAVAILABLE as exc:
        log.warning("rate-limit crossings not read (Redis unreachable): %s", exc)
        return 0, lambda: None
    written = 0
    for state in crossings.STATES:
        items = [_item(c) for c in found if c.state == state]
        written += notifications.emit_for_users(session, f"rate_limit.{state}", items)

    def forget() -> None:
        try:
            crossings.forget(client, CROSSINGS, read)
        except UNAVAILABLE as exc:  # read again next run: the event ids make it harmless
            log.warning("rate-limit crossings not dropped (Redis unreachable): %s", exc)

    return written, forget
