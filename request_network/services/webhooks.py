"""The request network's webhooks: `shared.webhook_service` bound to its tables (a user's
endpoints and their delivery log, and the sender the `send_webhooks` task runs)."""

from __future__ import annotations

from request_network.services.notifications import TABLES
from shared.webhook_service import WebhookService

SERVICE = WebhookService(TABLES)
