"""Admin: operational alerts and their acknowledgement (`shared.alerts_api`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from request_network.api.deps import AdminDep, Caller
from request_network.services import notifications
from shared.alerts_api import build_router


@contextmanager
def _work(caller: Caller) -> Iterator[tuple[Session, str]]:
    with caller.unit() as unit:
        yield unit.session, unit.user.id


router = build_router(AdminDep, _work, notifications)
