"""Admin: governed settings as this network applies them. The response network is their
authority (DESIGN.md §9): here they are read, never changed (409)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from request_network.api.deps import AdminDep
from request_network.services import governed
from shared.admin_schemas import SettingsChange

router = APIRouter(tags=["admin-settings"])
SETTINGS = "/api/v1/admin/settings"


class GovernedSettingView(BaseModel):
    key: str
    value: Any = Field(description="The value in force on this network")
    source: Literal["governed", "environment", "default"] = Field(
        description="governed: sent by the response network; environment: this deployment's "
        "own setting; default: the registry's"
    )
    governed_value: Any = Field(description="What the authority sent (null: not governed)")
    version: int | None = Field(description="The authority's version (null: nothing arrived)")
    received_at: datetime | None = Field(description="When that version arrived")
    batch_id: str | None = Field(description="The batch that brought it")
    default: Any
    type: Literal["number", "integer", "object"]
    minimum: int | float | None
    maximum: int | float | None
    exclusive_minimum: bool
    description: str


class GovernedSettingsView(BaseModel):
    items: list[GovernedSettingView]


@router.get(SETTINGS, response_model=GovernedSettingsView)
def list_settings(caller: AdminDep) -> GovernedSettingsView:
    """Every governed key: value in force and its source (governed / environment / default),
    the version the response network sent and when it arrived, default, bounds."""
    with caller.reads() as unit:
        items = governed.list_settings(caller.settings, session=unit.session)
    return GovernedSettingsView(items=[GovernedSettingView(**item) for item in items])


@router.put(
    SETTINGS,
    response_model=GovernedSettingsView,
    responses={409: {"description": "Governed by the response network: never changed here"}},
)
def change_settings(body: SettingsChange, caller: AdminDep) -> GovernedSettingsView:
    """Refused: governed settings change on the response network only (409 naming it)."""
    governed.refuse_change(list(body.changes()))
