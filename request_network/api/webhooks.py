"""A user's webhook endpoints and their delivery log (`shared.webhooks_api`,
`services.webhooks`). Login sessions only: an API key cannot add a destination for events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from request_network.api.deps import Caller, UserDep
from request_network.services import webhooks
from shared.webhooks_api import build_router


@contextmanager
def _work(caller: Caller) -> Iterator[tuple[Session, Any]]:
    with caller.unit() as unit:
        yield unit.session, unit.user


router = build_router(UserDep, _work, webhooks.SERVICE)
