"""Authentication routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from request_network.api.deps import SessionDep, SettingsDep
from request_network.api.schemas import Token
from request_network.services import auth
from shared.problems import Problem
from shared.security.passwords import MAX_PASSWORD_BYTES

router = APIRouter(tags=["auth"])


@router.post("/api/v1/auth/login", response_model=Token)
def login(
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
) -> dict:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise Problem(
            422,
            "Invalid request",
            f"password is longer than {MAX_PASSWORD_BYTES} bytes",
            errors=[{"loc": "body.password", "msg": "too long"}],
        )
    return auth.login(session, settings, username=username, password=password)
