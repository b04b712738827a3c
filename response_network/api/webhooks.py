"""A user's webhook endpoints and their delivery log (`shared.webhooks_api`,
`services.webhooks`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.orm import Session

from response_network.api.deps import Caller, caller
from response_network.services import webhooks
from shared.webhooks_api import build_router

UserDep = Annotated[Caller, Depends(caller("user"))]


@contextmanager
def _work(caller: Caller) -> Iterator[tuple[Session, Any]]:
    assert caller.user is not None
    with caller.unit() as unit:
        yield unit.session, caller.user


router = build_router(UserDep, _work, webhooks.SERVICE)
