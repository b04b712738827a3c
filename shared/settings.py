"""Settings both networks share; each network subclasses `FerrySettings` with its env prefix."""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BeforeValidator, Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db import POOL_SIZE
from shared.logs import default_format, default_level
from shared.records import Email
from shared.webhook_rules import AllowedHost, SealingKey

#: Secrets that ship in the repository for the demo. Refused everywhere else.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "demo-only-secret"})

NetworkId = str
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
]
LogFormat = Annotated[
    Literal["auto", "json", "console"],
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
]


def check_beat_entries(seconds: dict[str, float], entries: Collection[str], prefix: str) -> None:
    """Refuse a cadence for an entry the network's beat schedule does not have."""
    unknown = sorted(set(seconds) - set(entries))
    if unknown:
        raise ValueError(
            f"{prefix}BEAT_SECONDS names no beat entry: {', '.join(unknown)} "
            f"(the entries: {', '.join(entries)})"
        )


class FerrySettings(BaseSettings):
    """What both networks need; `production` mode refuses placeholder secrets.

    Read from the environment and, when FERRY_<NET>_ENV_FILE names one, an env file (the
    environment wins). A running process re-reads both on SIGHUP (`shared.reload`): the keys
    in `LIVE` take effect at once, any other key only after a restart (docs/OPERATIONS.md).
    """

    # Errors never echo the values they refuse (a secret may be among them).
    model_config = SettingsConfigDict(
        extra="ignore", env_nested_delimiter="__", hide_input_in_errors=True
    )

    #: Keys a running process applies on SIGHUP: read afresh wherever they are used, none a
    #: secret, a URL, a path or a value fixed at start (a pool, a middleware, the routes).
    LIVE: ClassVar[frozenset[str]] = frozenset(
        {
            "log_level",
            "access_token_minutes",
            "bcrypt_rounds",
            "login_max_failures",
            "login_lockout_minutes",
            "login_attempts_per_minute_per_ip",
            "login_attempts_per_minute_per_account",
            "trusted_proxies",
            "batch_max_bytes",
            "batch_max_records",
            "batch_max_line_bytes",
            "batch_ttl_hours",
            "acked_batches",
            "unacked_flag_hours",
            "webhook_allowed_hosts",
            "webhook_timeout_s",
            "webhook_max_attempts",
            "webhook_backoff_base_s",
            "webhook_backoff_cap_s",
            "webhook_backoff_jitter",
            "webhook_disable_after_failures",
            "webhook_max_endpoints_per_user",
            "health_probe_timeout_s",
            "health_worker_timeout_s",
            "health_min_free_mb",
            "health_beat_grace_s",
            "task_history_days",
            "task_history_per_task",
            "health_history_days",
            "smtp_timeout_s",
            "email_max_attempts",
            "email_backoff_base_s",
            "email_backoff_cap_s",
            "email_digest_threshold",
            "email_batch",
            "panel_idle_minutes",
            "panel_absolute_hours",
        }
    )

    def __init__(self, **values: Any) -> None:
        """Reads FERRY_<NET>_ENV_FILE (when set) as an env file, unless `_env_file` is given."""
        if "_env_file" not in values:
            name = f"{type(self).model_config.get('env_prefix', '')}ENV_FILE"
            path = os.environ.get(name)
            if path:
                if not Path(path).is_file():
                    raise ValueError(f"{name} names no readable file: {path}")
                values["_env_file"] = path
        super().__init__(**values)

    mode: Literal["demo", "production"] = "production"
    network_id: NetworkId
    peer_network_id: NetworkId

    # DEBUG, INFO, WARNING, ERROR or CRITICAL; FERRY_LOG_LEVEL (both networks), else INFO.
    log_level: LogLevel = Field(default_factory=default_level)
    # json (one object per line), console (readable lines) or auto: console on a terminal,
    # json otherwise. FERRY_LOG_FORMAT (both networks), else auto. Read at start.
    log_format: LogFormat = Field(default_factory=default_format)

    database_url: str = "sqlite:///var/ferry.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None  # defaults to redis_url
    # Redis as broker: a task taken by a worker that died without finishing it (SIGKILL, a
    # lost host) goes back to the queue this long after it was taken. Keep it above the
    # longest task run (hard time limits up to 930 s), or a task still running is handed to a
    # second worker (safe, every task may run twice, but wasted work).
    broker_visibility_timeout_s: int = Field(default=3600, ge=1)
    celery_eager: bool = False  # run tasks in-process (demo)

    transfer_dir: Path = Path("var/transfer")
    signing_key: Path = Path("var/keys/network.ed25519.pem")
    peer_public_keys: list[Path] = Field(default_factory=lambda: [Path("var/keys/peer")])

    jwt_secret: SecretStr = SecretStr("change-me")
    jwt_issuer: str = "ferry"
    jwt_audience: str = "ferry-api"
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    # Login protection (DESIGN.md §4): attempts per client address and per account in a
    # one-minute window, and the lockout after repeated failures.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    login_attempts_per_minute_per_ip: int = Field(default=20, ge=1)
    login_attempts_per_minute_per_account: int = Field(default=10, ge=1)
    # Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR networks, e.g.
    # '["10.0.0.0/8"]'); none by default, so the client address is the TCP peer's.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # Largest request body either API reads (413 past it); batch uploads have their own limit.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    batch_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    batch_max_records: int = Field(default=10_000, ge=1)
    batch_max_line_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    batch_ttl_hours: int = Field(default=7 * 24, ge=1)

    export_interval_s: int = Field(default=30, ge=5)
    import_interval_s: int = Field(default=30, ge=5)

    # Sent batches wait in outbox/, then outbox/carried/ until the peer acknowledges them;
    # acknowledged ones move to outbox/acked/ ("keep") or are deleted ("delete").
    acked_batches: Literal["keep", "delete"] = "keep"
    # A sent batch still unacknowledged after this long is flagged (log line + audit row).
    unacked_flag_hours: float = Field(default=24, gt=0)

    # Tracing (shared.tracing): the OTLP/HTTP endpoint spans go to; unset (and no
    # OTEL_EXPORTER_OTLP_ENDPOINT in the environment): no tracing at all.
    otel_endpoint: str | None = Field(default=None, max_length=2048)

    # Circuit breakers (shared.breaker) around Redis and the search cluster: this many
    # failures in a row open one, calls then fail at once for the cool-down (seconds).
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=30.0, gt=0, le=3600)

    # Detailed health and the admin queue views (docs/OPERATIONS.md): each probe's
    # own timeout, how long Celery's remote control waits for workers, the free space below
    # which a transfer directory is degraded, and how late a beat entry may run.
    health_probe_timeout_s: float = Field(default=2.0, gt=0, le=30)
    health_worker_timeout_s: float = Field(default=1.0, gt=0, le=30)
    health_min_free_mb: int = Field(default=1024, ge=0)
    health_beat_grace_s: float = Field(default=300, gt=0)
    # Bounded histories, trimmed by system_monitoring: task runs (days, and runs per task)
    # and health samples (days).
    task_history_days: int = Field(default=14, ge=1)
    task_history_per_task: int = Field(default=1000, ge=10)
    health_history_days: int = Field(default=7, ge=1)
    # Read in-app notifications, and dispatched notification events, are kept this long.
    notification_history_days: int = Field(default=90, ge=1, le=3650)
    # Alerts (shared.alerts): who hears of an unacknowledged alert, level after level, every
    # `notifications.escalation_minutes` (governed; this is the fallback), and the on-call
    # addresses the "oncall" level emails. Per deployment: each network has its own team.
    notification_escalation_minutes: int = Field(default=30, ge=1, le=10_080)
    notification_escalation_levels: list[Literal["operators", "admins", "oncall"]] = Field(
        default_factory=lambda: ["operators", "admins", "oncall"], min_length=1, max_length=3
    )
    notification_oncall_emails: list[Email] = Field(default_factory=list, max_length=50)
    # A notification stream (SSE) ends after this long; the browser reconnects and resumes.
    notification_stream_seconds: float = Field(default=300, gt=0, le=3600)
    # Email (docs/NOTIFICATIONS.md, "Email"): the SMTP server the `send_emails` task sends
    # through. No smtp_host: email deliveries wait (pending), the `email` health component and
    # the task's log say email is not configured. smtp_security: "starttls" (port 587),
    # "tls" (implicit TLS, port 465) or "none" (plain; never with a password outside the
    # demo); smtp_ca_file: a CA bundle to trust instead of the system's. A failed send is
    # retried after min(cap, base * 2**attempts) seconds (jittered), and given up ("dead")
    # after email_max_attempts; more than email_digest_threshold emails due for one address
    # at once go as one digest. email_batch: deliveries one run takes at most.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = None
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=120)
    email_from: str = "ferry@localhost"
    email_max_attempts: int = Field(default=8, ge=1, le=100)
    email_backoff_base_s: float = Field(default=30.0, gt=0)
    email_backoff_cap_s: float = Field(default=3600.0, gt=0)
    email_digest_threshold: int = Field(default=5, ge=1)
    email_batch: int = Field(default=200, ge=1, le=5000)
    # Webhooks (docs/NOTIFICATIONS.md, "Webhooks"): the destinations an endpoint may name
    # (host names, "*.domain", addresses or CIDR networks, e.g. '["hooks.example.org",
    # "10.20.0.0/16"]'; none by default, so no endpoint can be made until an admin lists
    # some); the key that seals endpoint secrets at rest (default: derived from jwt_secret,
    # so changing that one makes stored secrets unreadable unless this is set); the POST's
    # timeout; retries after min(cap, base * 2**(attempts-1)) seconds less up to `jitter` of
    # it, given up ("dead") after webhook_max_attempts; an endpoint is disabled after
    # webhook_disable_after_failures failed attempts in a row; endpoints per user.
    webhook_allowed_hosts: list[AllowedHost] = Field(default_factory=list, max_length=1000)
    webhook_secret_key: SealingKey = None
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=120)
    webhook_ca_file: Path | None = None  # a CA bundle for https receivers (else the system's)
    webhook_max_attempts: int = Field(default=15, ge=1, le=100)
    webhook_backoff_base_s: float = Field(default=30.0, gt=0)
    webhook_backoff_cap_s: float = Field(default=6 * 3600.0, gt=0)
    webhook_backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    webhook_disable_after_failures: int = Field(default=20, ge=1, le=10_000)
    webhook_max_endpoints_per_user: int = Field(default=10, ge=1, le=1000)
    # Beat cadences: entry name (each network's `schedule.ENTRIES`) → seconds between runs,
    # e.g. FERRY_REQUEST_BEAT_SECONDS='{"export_requests": 10}'; unnamed entries keep theirs.
    beat_seconds: dict[str, Annotated[float, Field(gt=0, le=7 * 86400)]] = Field(
        default_factory=dict
    )

    # Requests of one API process inside the app at once (each does its database work one
    # short transaction at a time, so at most the pool's kept connections, shared.db.POOL_SIZE);
    # up to api_queue more wait at most api_queue_wait_s, past that a 503 with Retry-After.
    api_concurrency: int = Field(default=POOL_SIZE, ge=1, le=POOL_SIZE)
    api_queue: int = Field(default=200, ge=0)
    api_queue_wait_s: float = Field(default=10.0, gt=0)
    api_retry_after_s: int = Field(default=2, ge=1)
    # A stopping API process (SIGTERM) takes no new connection and waits this long at most
    # for those open (requests in flight, notification streams), then cancels what is left.
    shutdown_grace_s: float = Field(default=30.0, gt=0, le=3600)

    # The interactive API docs (/docs) and the schema (/openapi.json) describe every route to
    # anyone who asks, so they are served only when asked for (always in the demo).
    api_docs: bool = False

    # The admin panel (/admin, docs/PANEL.md): a session ends after this many minutes
    # without a request, and this many hours after its login whatever happens.
    panel_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    panel_absolute_hours: int = Field(default=12, ge=1, le=7 * 24)

    def fastapi_docs(self) -> dict[str, str | None]:
        """FastAPI's docs arguments: the schema served, or not. FastAPI's own docs pages stay
        off (they load from a CDN); shared.api_docs serves /docs from this origin with it."""
        openapi_url = "/openapi.json" if self.api_docs or self.mode == "demo" else None
        return {"docs_url": None, "redoc_url": None, "openapi_url": openapi_url}

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> FerrySettings:
        if self.mode != "demo" and self.jwt_secret.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "jwt_secret is a placeholder; set a real secret (or mode=demo for the demo)"
            )
        if self.mode != "demo" and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("jwt_secret must be at least 32 characters outside the demo")
        if self.network_id == self.peer_network_id:
            raise ValueError("network_id and peer_network_id must differ")
        self._check_email()
        return self

    def _check_email(self) -> None:
        if "@" not in parseaddr(self.email_from)[1]:
            raise ValueError("email_from must be an email address")
        if self.smtp_username and self.smtp_password is None:
            raise ValueError("smtp_username needs smtp_password")
        if self.smtp_password is not None and not self.smtp_username:
            raise ValueError("smtp_password needs smtp_username")
        if self.mode != "demo" and self.smtp_password is not None and self.smtp_security == "none":
            raise ValueError("smtp_security=none would send smtp_password in clear; use starttls")

    @property
    def email_configured(self) -> bool:
        """An SMTP server is configured: the `send_emails` task sends (else emails wait)."""
        return bool(self.smtp_host and self.smtp_host.strip())

    def admission(self) -> dict[str, Any]:
        """The `shared.http.Admission` arguments of this network's API."""
        return {
            "limit": self.api_concurrency,
            "queue": self.api_queue,
            "wait_s": self.api_queue_wait_s,
            "retry_after_s": self.api_retry_after_s,
            # A liveness probe, and the notification stream (long-lived and mostly idle,
            # bounded on its own: shared.notifications_api.MAX_STREAMS), skip the queue.
            "exempt": ("/health", "/api/v1/notifications/stream"),
        }

    @property
    def outbox(self) -> Path:
        return self.transfer_dir / "outbox"

    @property
    def inbox(self) -> Path:
        return self.transfer_dir / "inbox"

    @property
    def quarantine_dir(self) -> Path:
        return self.transfer_dir / "quarantine"

    @property
    def processed_dir(self) -> Path:
        return self.transfer_dir / "processed"

    @property
    def celery_broker(self) -> str:
        return self.broker_url or self.redis_url


S = TypeVar("S", bound=FerrySettings)


class SettingsLoader(Generic[S]):
    """A network's `get_settings()`: read once per process, then the same object, until a
    SIGHUP reload `replace`s it with the one now in force (`shared.reload`)."""

    def __init__(self, cls: type[S]) -> None:
        self.cls = cls
        self._current: S | None = None
        self._lock = threading.Lock()

    def __call__(self) -> S:
        current = self._current
        if current is None:
            with self._lock:
                if self._current is None:
                    self._current = self.cls()
                current = self._current
        return current

    def replace(self, settings: S) -> None:
        self._current = settings

    def cache_clear(self) -> None:
        """Read afresh at the next call (as `functools.cache`'s `cache_clear`)."""
        self._current = None
