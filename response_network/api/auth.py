"""Login: a bearer token for the response network's API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from response_network.api.deps import AnyoneDep
from response_network.api.schemas import Token
from response_network.services import auth

router = APIRouter(tags=["auth"])


@router.post("/api/v1/auth/login", response_model=Token)
def login(
    caller: AnyoneDep,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=72)],
) -> dict:
    with caller.unit() as unit:
        return auth.login(
            caller.settings, session=unit.session, username=username, password=password
        )
