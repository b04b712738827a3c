"""Admin: operational alerts and their acknowledgement (`shared.alerts_api`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from response_network.api.deps import Caller, caller
from response_network.services import notifications
from shared.alerts_api import build_router

AdminDep = Annotated[Caller, Depends(caller("admin"))]


@contextmanager
def _work(caller: Caller) -> Iterator[tuple[Session, str]]:
    assert caller.user is not None
    with caller.unit() as unit:
        yield unit.session, caller.user.id


router = build_router(AdminDep, _work, notifications)
