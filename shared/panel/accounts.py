"""Who may use a network's panel: the API's login (the network's `services.auth.login`, with
its throttling, lockout and audit) for the sign-in, and the user's row, read at each request,
for whether a session still stands (active, its role now, no password change since)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from sqlalchemy.orm import Session

from shared.cache import get_redis
from shared.db import reading, transaction
from shared.panel.core import Account, LoginOutcome
from shared.panel.sessions import PanelSession
from shared.security.clock import issued_after_cutoff
from shared.settings import FerrySettings

#: The user an access token names: (settings, Redis, token, session) → the user's row.
TokenUser = Callable[[FerrySettings, Redis, str, Session], Any]


@dataclass(frozen=True)
class UserAccounts:
    """`settings_of`: the settings in force (a SIGHUP may replace them); `user_model`: the
    network's `User`; `login_service`: its `services.auth.login`; `token_user`: the user the
    token that login issued names."""

    settings_of: Callable[[], FerrySettings]
    user_model: type
    login_service: Callable[..., Any]
    token_user: TokenUser

    @property
    def settings(self) -> FerrySettings:
        return self.settings_of()

    def login(self, username: str, password: str, client: str) -> LoginOutcome:
        cache = get_redis(self.settings.redis_url)
        with transaction(self.settings.database_url) as session:
            result = self.login_service(
                self.settings,
                cache,
                session=session,
                username=username,
                password=password,
                client=client,
            )
            if result.refusal is not None or result.token is None:
                return LoginOutcome(refusal=result.refusal)
            token = result.token["access_token"]
            user = self.token_user(self.settings, cache, token, session)
            return LoginOutcome(Account(user.id, user.username, user.role))

    def current_role(self, session: PanelSession) -> str | None:
        with reading(self.settings.database_url) as db:
            user = db.get(self.user_model, session.user_id)
            if user is None or not user.active:
                return None
            if not issued_after_cutoff(user.sessions_valid_after, _at(session.created)):
                return None  # the password changed since this session began
            return user.role


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
