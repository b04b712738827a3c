"""Admin: the response network's users (it is the authority): list, read, create, update
and reset a password. Changes reach the request network with the next identity export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from response_network.api.deps import Caller, caller
from response_network.services import users
from shared import user_list
from shared.validation import PageLimit, PageOffset, UserId, safe_str

router = APIRouter(tags=["admin-users"])
AdminDep = Annotated[Caller, Depends(caller("admin"))]
Role = Literal["user", "operator", "admin"]
Username = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]
ProfileName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=256, description="At most 72 bytes")]


class UserRow(BaseModel):
    id: str
    username: str
    role: str
    profile_type: str
    active: bool
    locked: bool
    has_custom_limits: bool
    updated_at: datetime
    last_login_at: datetime | None = Field(description="Last successful login (null: never)")


class UserPage(BaseModel):
    items: list[UserRow]
    total: int
    limit: int
    offset: int


class UserOut(BaseModel):
    id: str
    username: str
    role: str
    profile_type: str
    active: bool
    rate_limits: dict[str, Any] | None
    version: int
    exported_version: int
    replicated: bool = Field(description="Whether the request network has this version yet")
    created_at: datetime
    updated_at: datetime
    locked_until: datetime | None
    failed_logins: int
    last_login_at: datetime | None = Field(description="Last successful login (null: never)")


class CreateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password
    role: Role = "user"
    profile_type: ProfileName


class UpdateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    profile_type: ProfileName | None = None
    active: bool | None = None


class ResetPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password


@router.get("/api/v1/admin/users", response_model=UserPage)
def list_users(
    admin: AdminDep,
    name: Annotated[safe_str(64) | None, Query(description="Part of the username")] = None,
    role: Role | None = None,
    status: user_list.UserStatus | None = None,
    sort: user_list.UserSort = "username",
    limit: Annotated[PageLimit, Query()] = 50,
    offset: Annotated[PageOffset, Query()] = 0,
) -> UserPage:
    with admin.unit() as unit:
        rows, total = users.list_users(
            session=unit.session,
            name=name,
            role=role,
            status=status,
            sort=sort,
            limit=limit,
            offset=offset,
        )
    return UserPage(items=[UserRow(**r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/api/v1/admin/users/{user_id}", response_model=UserOut)
def get_user(user_id: UserId, admin: AdminDep) -> UserOut:
    with admin.unit() as unit:
        return UserOut(
            **users.describe(users.get_user(user_id, session=unit.session), session=unit.session)
        )


@router.post(
    "/api/v1/admin/users",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The username is taken"}},
)
def create_user(body: CreateUser, admin: AdminDep, response: Response) -> UserOut:
    with admin.unit() as unit:
        user = users.create(
            session=unit.session,
            username=body.username,
            password=body.password,
            role=body.role,
            profile_type=body.profile_type,
            rounds=admin.settings.bcrypt_rounds,
            actor=admin.user.username,
        )
    out = UserOut(**user)
    response.headers["Location"] = f"/api/v1/admin/users/{out.id}"
    return out


@router.patch("/api/v1/admin/users/{user_id}", response_model=UserOut)
def update_user(user_id: UserId, body: UpdateUser, admin: AdminDep) -> UserOut:
    """Change role, profile type or active; a disabled user cannot log in on either network
    once the change is replicated."""
    with admin.unit() as unit:
        user = users.update(
            user_id,
            body.model_dump(exclude_none=True),
            session=unit.session,
            actor=admin.user.username,
        )
    return UserOut(**user)


@router.post("/api/v1/admin/users/{user_id}/password", status_code=status.HTTP_204_NO_CONTENT)
def reset_password(user_id: UserId, body: ResetPassword, admin: AdminDep) -> Response:
    with admin.unit() as unit:
        users.reset_password(
            user_id,
            body.password,
            session=unit.session,
            rounds=admin.settings.bcrypt_rounds,
            actor=admin.user.username,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
