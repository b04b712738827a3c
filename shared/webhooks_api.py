"""The webhook routes, the same on both networks (docs/NOTIFICATIONS.md, "Webhooks"): a user's
endpoints (create, list, read, change, delete, rotate the secret), each one's delivery log,
and sending a delivery again.

Each network builds the router with its own caller dependency and a `work(caller)` that
opens the caller's unit of work and gives (session, user); `service` is the network's
`shared.webhook_service.WebhookService` (`services.webhooks.SERVICE`). (No
`from __future__ import annotations`: the routes' annotations name the caller dependency
given to `build_router`, which FastAPI must see evaluated.)
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from shared.http import NO_STORE
from shared.notification_kinds import KINDS, KindName
from shared.validation import NO_CONTROL, UUID_PATTERN, PageLimit, PageOffset, safe_str
from shared.webhook_rules import MAX_URL, webhook_url

PREFIX = "/api/v1/webhooks"

WebhookId = Annotated[str, StringConstraints(min_length=36, max_length=36, pattern=UUID_PATTERN)]
DeliveryId = Annotated[int, Field(ge=1, le=2**63 - 1)]
WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_URL, pattern=NO_CONTROL),
    AfterValidator(webhook_url),
    Field(
        description="http:// or https:// URL whose host the admins allow "
        "(`webhook_allowed_hosts`); no credentials, no #fragment",
        examples=["https://hooks.example.org/ferry"],
    ),
]


def _unique(kinds: list[str]) -> list[str]:
    if len(set(kinds)) != len(kinds):
        raise ValueError("each kind at most once")
    return kinds


Events = Annotated[
    list[KindName],
    Field(
        min_length=1,
        max_length=len(KINDS),
        json_schema_extra={"uniqueItems": True},
        description="The kinds of event to send (docs/NOTIFICATIONS.md): your own events, "
        "and for operators and admins the operational kinds their role hears of",
    ),
    AfterValidator(_unique),
]
Description = safe_str(500, min_length=0)


class CreateWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    events: Events
    description: Description = ""


class ChangeWebhook(BaseModel):
    """Only the fields given change. `active: true` enables a disabled endpoint again (and
    clears its failure count)."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | None = None
    events: Events | None = None
    description: Description | None = None
    active: bool | None = None


class WebhookOut(BaseModel):
    id: str
    user_id: str
    url: str
    description: str
    events: list[str]
    active: bool
    disabled_reason: str | None = Field(description="Why it is disabled, if it is")
    consecutive_failures: int = Field(description="Failed attempts in a row")
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (whsec_…, Standard Webhooks): shown in this reply only"
    )


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    previous_valid_hours: int = Field(
        default=24,
        ge=0,
        le=168,
        description="How long the old secret signs too (a second signature), while the "
        "receiver changes its key; 0: the old secret stops at once",
    )


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="Sent as webhook-id: the same on every retry and replay")
    status: str = Field(description="pending: to be sent by the next run of send_webhooks")
    attempts: int
    next_attempt_at: datetime


class WebhookPage(BaseModel):
    items: list[WebhookOut]
    total: int
    limit: int
    offset: int


class AttemptOut(BaseModel):
    id: int
    delivery_id: int
    event_id: str = Field(description="Sent as webhook-id: the same on every retry")
    kind: str
    attempt: int = Field(description="1 for the first try of this delivery, 2 for its retry…")
    at: datetime
    status: str = Field(description="The delivery after this attempt: sent, failed (retried), dead")
    response_code: int | None = Field(description="The receiver's status code; null: no answer")
    latency_ms: int | None
    error: str | None


class AttemptPage(BaseModel):
    items: list[AttemptOut]
    total: int
    limit: int
    offset: int


def _out(row: Any) -> WebhookOut:
    return WebhookOut.model_validate(row, from_attributes=True)


def build_router(
    user_dep: Any,
    work: Callable[[Any], AbstractContextManager[tuple[Session, Any]]],
    service: Any,
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    found = {404: {"description": "No such webhook of yours"}}

    @router.post(
        PREFIX,
        status_code=status.HTTP_201_CREATED,
        response_model=WebhookCreated,
        responses={409: {"description": "Too many endpoints"}},
    )
    def create_webhook(body: CreateWebhook, caller: user_dep, response: Response) -> Any:
        """Add an endpoint: each event of the kinds it names is POSTed to it, signed per
        Standard Webhooks with its secret, which is in this reply only."""
        response.headers.update(NO_STORE)
        with work(caller) as (session, user):
            row, secret = service.create(
                caller.settings,
                user,
                session=session,
                url=body.url,
                events=body.events,
                description=body.description,
            )
            return WebhookCreated(**_out(row).model_dump(), secret=secret)

    @router.get(PREFIX, response_model=WebhookPage)
    def list_webhooks(
        caller: user_dep,
        everyone: Annotated[
            bool, Query(alias="all", description="Every user's (admins only)")
        ] = False,
        limit: Annotated[PageLimit, Query()] = 50,
        offset: Annotated[PageOffset, Query()] = 0,
    ) -> WebhookPage:
        """Your endpoints, oldest first (admins: `all=true` for everyone's)."""
        with work(caller) as (session, user):
            rows, total = service.list_endpoints(
                user, session=session, everyone=everyone, limit=limit, offset=offset
            )
            items = [_out(r) for r in rows]
        return WebhookPage(items=items, total=total, limit=limit, offset=offset)

    @router.get(f"{PREFIX}/{{webhook_id}}", response_model=WebhookOut, responses=found)
    def get_webhook(caller: user_dep, webhook_id: WebhookId) -> WebhookOut:
        """One of your endpoints (never its secret)."""
        with work(caller) as (session, user):
            return _out(service.get(user, webhook_id, session=session))

    @router.patch(f"{PREFIX}/{{webhook_id}}", response_model=WebhookOut, responses=found)
    def change_webhook(caller: user_dep, webhook_id: WebhookId, body: ChangeWebhook) -> WebhookOut:
        """Change an endpoint's url, events, description, or enable or disable it."""
        with work(caller) as (session, user):
            row = service.change(
                caller.settings,
                user,
                webhook_id,
                session=session,
                **body.model_dump(exclude_unset=True),
            )
            return _out(row)

    @router.delete(
        f"{PREFIX}/{{webhook_id}}", status_code=status.HTTP_204_NO_CONTENT, responses=found
    )
    def delete_webhook(caller: user_dep, webhook_id: WebhookId) -> Response:
        """Delete an endpoint and its delivery log; what it had still to send is dropped."""
        with work(caller) as (session, user):
            service.remove(user, webhook_id, session=session)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        f"{PREFIX}/{{webhook_id}}/rotate-secret", response_model=WebhookCreated, responses=found
    )
    def rotate_webhook_secret(
        caller: user_dep,
        webhook_id: WebhookId,
        response: Response,
        body: RotateSecret | None = None,
    ) -> Any:
        """A new signing secret, in this reply only. The old one keeps signing beside it for
        `previous_valid_hours` (default 24), so deliveries verify during the change."""
        response.headers.update(NO_STORE)
        hours = (body or RotateSecret()).previous_valid_hours
        with work(caller) as (session, user):
            row, secret = service.rotate_secret(
                caller.settings, user, webhook_id, session=session, hours=hours
            )
            return WebhookCreated(**_out(row).model_dump(), secret=secret)

    @router.post(
        f"{PREFIX}/{{webhook_id}}/deliveries/{{delivery_id}}/replay",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=DeliveryOut,
        responses={**found, 409: {"description": "Still to be sent, or the endpoint disabled"}},
    )
    def replay_webhook_delivery(
        caller: user_dep, webhook_id: WebhookId, delivery_id: DeliveryId
    ) -> DeliveryOut:
        """Send a delivery again (one sent, or given up): the same event and `webhook-id`,
        by the next run of the sender."""
        with work(caller) as (session, user):
            row = service.replay(user, webhook_id, delivery_id, session=session)
            return DeliveryOut.model_validate(row, from_attributes=True)

    @router.get(f"{PREFIX}/{{webhook_id}}/deliveries", response_model=AttemptPage, responses=found)
    def webhook_deliveries(
        caller: user_dep,
        webhook_id: WebhookId,
        limit: Annotated[PageLimit, Query()] = 50,
        offset: Annotated[PageOffset, Query()] = 0,
    ) -> AttemptPage:
        """The endpoint's delivery log, newest attempt first: each POST, its status code and
        latency, and what became of the delivery."""
        with work(caller) as (session, user):
            rows, total = service.attempts(
                user, webhook_id, session=session, limit=limit, offset=offset
            )
            items = [AttemptOut.model_validate(r, from_attributes=True) for r in rows]
        return AttemptPage(items=items, total=total, limit=limit, offset=offset)

    return router


__all__ = ["PREFIX", "build_router"]
