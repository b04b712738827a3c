"""Admin: governed settings (this network is their authority, DESIGN.md §9): every key with
its value in force, and changing keys, all or nothing, each change versioned and audited.
Changes reach the request network with the next settings export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from response_network.api.deps import Caller, caller
from response_network.services import governed
from shared.admin_schemas import SettingsChange
from shared.governed import InvalidSettings
from shared.problems import Problem

router = APIRouter(tags=["admin-settings"])
AdminDep = Annotated[Caller, Depends(caller("admin"))]
SETTINGS = "/api/v1/admin/settings"


class GovernedSettingOut(BaseModel):
    key: str
    value: Any = Field(description="The value in force on this network")
    source: Literal["governed", "environment", "default"] = Field(
        description="governed: set here; environment: this deployment's own setting; "
        "default: the registry's"
    )
    governed_value: Any = Field(description="What was set here (null: not set, or reset)")
    default: Any
    type: Literal["number", "integer", "object"]
    minimum: int | float | None
    maximum: int | float | None
    exclusive_minimum: bool
    description: str
    version: int = Field(description="Raised by each change (0: never set)")
    exported_version: int = Field(description="The version the last settings export carried")
    replicated: bool = Field(description="Whether an export has carried this version")
    updated_at: datetime | None
    updated_by: str | None


class GovernedSettings(BaseModel):
    items: list[GovernedSettingOut]
    changed: list[str] = Field(default_factory=list, description="The keys this call changed")


@router.get(SETTINGS, response_model=GovernedSettings)
def list_settings(admin: AdminDep) -> GovernedSettings:
    """Every governed key: value in force and its source, default, type and bounds,
    description, version, who changed it last and when, whether it has been exported."""
    with admin.unit() as unit:
        items = governed.list_settings(admin.settings, session=unit.session)
    return GovernedSettings(items=[GovernedSettingOut(**item) for item in items])


@router.put(
    SETTINGS,
    response_model=GovernedSettings,
    responses={422: {"description": "A key unknown, or a value of the wrong type or bounds"}},
)
def change_settings(body: SettingsChange, admin: AdminDep) -> GovernedSettings:
    """Change governed keys, all or nothing (null: back to the default). Each key whose value
    changes gets version + 1 and an audit row; an unchanged value is not versioned again."""
    try:
        with admin.unit() as unit:
            items, changed = governed.set_values(
                body.changes(), admin.settings, session=unit.session, actor=admin.user.username
            )
    except InvalidSettings as exc:
        raise Problem(
            422,
            "Invalid settings",
            f"invalid settings: {', '.join(exc.keys)}",
            errors=[
                {"loc": f"body.values.{key}", "msg": why, "type": "governed_setting"}
                for key, why in exc.errors
            ],
        ) from None
    return GovernedSettings(items=[GovernedSettingOut(**item) for item in items], changed=changed)
