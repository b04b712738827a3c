"""Users, on their authority: search, sort and page through them (`services.users.list_users`);
one user's details (`services.users.details`); create one (`services.users.create`), change
the role or the profile type, disable or enable (`services.users.update`), reset a password
(`services.users.reset_password`). Forms are checked by the API's own bodies (`CreateUser`,
`UpdateUser`, `ResetPassword`); each change is audited by its service with the admin's
username as the actor, as through the API, and reaches the request network with the next
identity export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from response_network.api.admin_users import CreateUser, ResetPassword, UpdateUser
from response_network.services import identity, users
from shared.panel import user_pages
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import Panel, Viewer
from shared.panel.forms import YES, Confirmed
from shared.panel.user_pages import ROLES, user_page
from shared.problems import Problem
from shared.validation import UserId

router = user_pages.build_router(users.list_users)
Text64 = Annotated[str, Form(max_length=64)]
Secret = Annotated[str, Form(max_length=1024)]


def field_errors(exc: ValidationError) -> dict[str, str]:
    """The first message per field of a refused form."""
    found: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error.get("loc") else "form"
        found.setdefault(name, error["msg"])
    return found


def checked(model: type[BaseModel], values: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    try:
        return model.model_validate(values), {}
    except ValidationError as exc:
        return None, field_errors(exc)


def _new_form(
    request: Request,
    panel: Panel,
    viewer: Viewer,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with panel.reads() as session:
        profile_types = identity.profile_type_names(session=session)
    return panel.render(
        request,
        viewer,
        "user_new.html",
        status_code=status_code,
        title="New user",
        roles=ROLES,
        profile_types=profile_types,
        values=values or {},
        errors=errors or {},
    )


@router.get("/users/new")
def new_user(request: Request, panel: PanelDep, viewer: AdminViewer) -> Response:
    return _new_form(request, panel, viewer)


@router.post("/users")
def create_user(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    username: Text64 = "",
    password: Secret = "",
    role: Text64 = "user",
    profile_type: Text64 = "",
) -> Response:
    values = {"username": username, "role": role, "profile_type": profile_type}
    body, errors = checked(CreateUser, {**values, "password": password})
    if body is None:
        return _new_form(request, panel, viewer, values, errors, 422)
    settings = panel.settings
    try:
        with panel.unit() as session:
            made = users.create(
                session=session,
                username=body.username,
                password=body.password,
                role=body.role,
                profile_type=body.profile_type,
                rounds=settings.bcrypt_rounds,
                actor=viewer.username,
            )
    except Problem as exc:  # the username taken (409), an unknown profile type (422)
        where = "username" if exc.status == 409 else "profile_type"
        if "password" in exc.detail:
            where = "password"
        return _new_form(request, panel, viewer, values, {where: exc.detail}, exc.status)
    return panel.redirect(viewer, user_page(made["id"]), f"User {made['username']} created")


def _details(
    request: Request,
    panel: Panel,
    viewer: Viewer,
    user_id: str,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with panel.reads() as session:
        found = users.details(user_id, session=session)
        profile_types = identity.profile_type_names(session=session)
    return panel.render(
        request,
        viewer,
        "user.html",
        status_code=status_code,
        title="User",
        u=found,
        roles=ROLES,
        profile_types=profile_types,
        errors=errors or {},
    )


@router.get("/users/{user_id}")
def user_details(
    request: Request, panel: PanelDep, viewer: AdminViewer, user_id: UserId
) -> Response:
    return _details(request, panel, viewer, user_id)


def _update(
    request: Request,
    panel: Panel,
    viewer: Viewer,
    user_id: str,
    changes: dict,
    done: str,
    confirmed: str | None = None,
    question: str = "",
) -> Response:
    return panel.act(
        request,
        viewer,
        confirmed,
        question=question,
        back=user_page(user_id),
        done=done,
        call=lambda session: users.update(user_id, changes, session=session, actor=viewer.username),
    )


@router.post("/users/{user_id}/edit")
def edit_user(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    user_id: UserId,
    role: Text64 = "",
    profile_type: Text64 = "",
) -> Response:
    given = {"role": role or None, "profile_type": profile_type or None}
    body, errors = checked(UpdateUser, given)
    if body is None:
        return _details(request, panel, viewer, user_id, errors, 422)
    changes = body.model_dump(exclude_none=True)
    return _update(request, panel, viewer, user_id, changes, "User updated")


@router.post("/users/{user_id}/disable")
def disable_user(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    user_id: UserId,
    confirmed: Confirmed = "",
) -> Response:
    return _update(
        request,
        panel,
        viewer,
        user_id,
        {"active": False},
        "User disabled",
        confirmed,
        question="Disable this user? They cannot log in on either network once the change is "
        "carried across.",
    )


@router.post("/users/{user_id}/enable")
def enable_user(
    request: Request, panel: PanelDep, viewer: AdminViewer, user_id: UserId
) -> Response:
    return _update(request, panel, viewer, user_id, {"active": True}, "User enabled")


@router.post("/users/{user_id}/password")
def reset_password(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    user_id: UserId,
    password: Secret = "",
    confirmed: Confirmed = "",
) -> Response:
    body, errors = checked(ResetPassword, {"password": password})
    if body is not None and confirmed != YES:
        errors = {"confirmed": "tick the box: a new password ends their sessions and keys"}
    if errors:
        return _details(request, panel, viewer, user_id, errors, 422)
    return panel.act(
        request,
        viewer,
        None,
        back=user_page(user_id),
        done="Password reset",
        call=lambda session: users.reset_password(
            user_id,
            body.password,
            session=session,
            rounds=panel.settings.bcrypt_rounds,
            actor=viewer.username,
        ),
    )
