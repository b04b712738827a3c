"""Settings both networks share; each network subclasses `FerrySettings` with its env prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db import POOL_SIZE

#: Secrets that ship in the repository for the demo. Refused everywhere else.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "demo-only-secret"})

NetworkId = str


class FerrySettings(BaseSettings):
    """What both networks need; `production` mode refuses placeholder secrets."""

    model_config = SettingsConfigDict(extra="ignore", env_nested_delimiter="__")

    mode: Literal["demo", "production"] = "production"
    network_id: NetworkId
    peer_network_id: NetworkId

    database_url: str = "sqlite:///var/ferry.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None  # defaults to redis_url
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

    # Requests of one API process inside the app at once (each does its database work one
    # short transaction at a time, so at most the pool's kept connections, shared.db.POOL_SIZE);
    # up to api_queue more wait at most api_queue_wait_s, past that a 503 with Retry-After.
    api_concurrency: int = Field(default=POOL_SIZE, ge=1, le=POOL_SIZE)
    api_queue: int = Field(default=200, ge=0)
    api_queue_wait_s: float = Field(default=10.0, gt=0)
    api_retry_after_s: int = Field(default=2, ge=1)

    # The interactive API docs (/docs) and the schema (/openapi.json) describe every route to
    # anyone who asks, so they are served only when asked for (always in the demo).
    api_docs: bool = False

    def fastapi_docs(self) -> dict[str, str | None]:
        """FastAPI's docs arguments: the docs served, or none of them."""
        if self.api_docs or self.mode == "demo":
            return {"docs_url": "/docs", "redoc_url": None, "openapi_url": "/openapi.json"}
        return {"docs_url": None, "redoc_url": None, "openapi_url": None}

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
        return self

    def admission(self) -> dict[str, float | int]:
        """The `shared.http.Admission` arguments of this network's API."""
        return {
            "limit": self.api_concurrency,
            "queue": self.api_queue,
            "wait_s": self.api_queue_wait_s,
            "retry_after_s": self.api_retry_after_s,
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
