"""A user's in-app notifications (`shared.notifications_api`, `services.notifications`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from request_network.api.deps import Caller, UserDep
from request_network.services import notifications
from shared.notifications_api import build_router


@contextmanager
def _work(caller: Caller) -> Iterator[tuple[Session, str]]:
    with caller.unit() as unit:
        yield unit.session, unit.user.id


router = build_router(UserDep, _work, notifications)
