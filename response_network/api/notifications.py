"""An operator's or admin's in-app notifications (`shared.notifications_api`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from response_network.api.deps import Caller, caller
from response_network.services import notifications
from shared.notifications_api import build_router

UserDep = Annotated[Caller, Depends(caller("user"))]


@contextmanager
def _work(caller: Caller) -> Iterator[tuple[Session, str]]:
    assert caller.user is not None
    with caller.unit() as unit:
        yield unit.session, caller.user.id


router = build_router(UserDep, _work, notifications)
