"""A user's own account: their profile and their password (`services.account`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from request_network.api.deps import UserDep
from request_network.api.schemas import Token
from request_network.services import account
from shared.http import NO_STORE
from shared.records import DisplayName, Email, NotificationPreferences

router = APIRouter(tags=["account"])

Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Profile(BaseModel):
    id: str
    username: str
    role: str
    profile_type: str
    active: bool
    display_name: str | None
    email: str | None
    notification_preferences: NotificationPreferences
    version: int = Field(description="The authority's version of this account")
    changes_on_their_way: int = Field(
        description="Your changes made here that have not yet left for the response network"
    )
    sessions_valid_after: datetime | None = Field(
        description="Sessions and API keys from before this moment are refused"
    )


class ProfileChange(BaseModel):
    """The fields to change; null clears one, a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    email: Email | None = None
    notification_preferences: NotificationPreferences | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Password
    new_password: Password = Field(
        description=f"At least {account.MIN_PASSWORD_CHARS} characters, at most 72 bytes"
    )


@router.get("/api/v1/users/me", response_model=Profile)
def get_me(caller: UserDep) -> Profile:
    """Your account: profile, notification preferences, and what is still on its way."""
    with caller.reads() as unit:
        user = unit.session.get_one(type(unit.user), unit.user.id)
        return Profile(**account.profile(user, session=unit.session))


@router.patch("/api/v1/users/me", response_model=Profile, responses={422: {}})
def change_me(caller: UserDep, body: ProfileChange) -> Profile:
    """Change your display name, email or notification preferences. It applies here at once
    and travels to the response network, the authority, with the next export."""
    changes = body.model_dump(include=body.model_fields_set)
    with caller.unit() as unit:
        return Profile(**account.update(unit.user.id, changes, session=unit.session))


@router.post(
    "/api/v1/users/me/password",
    response_model=Token,
    responses={403: {"description": "The current password is wrong"}, 422: {}},
)
def change_password(caller: UserDep, body: PasswordChange, response: Response) -> dict:
    """Change your password. It applies here at once; every other session and every API key
    issued before now is refused from now on. The new password travels to the response
    network as a bcrypt hash only. The reply is a fresh token for this session."""
    with caller.unit() as unit:
        token = account.change_password(
            caller.settings,
            unit.user.id,
            current=body.current_password,
            new=body.new_password,
            session=unit.session,
        )
    response.headers.update(NO_STORE)
    return token
