"""Request network settings (env prefix FERRY_REQUEST_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from request_network.schedule import ENTRIES
from shared.settings import (
    PLACEHOLDER_SECRETS,
    FerrySettings,
    SettingsLoader,
    check_beat_entries,
)


class RequestSettings(FerrySettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_REQUEST_", extra="ignore")
    LIVE = FerrySettings.LIVE | {
        "page_size_max",
        "response_cache_ttl_seconds",
        "response_cache_seconds",
        "response_cache_max_bytes",
        "response_cache_prewarm_seconds",
        "response_cache_prewarm_max",
        "request_expiry_hours",
        "rate_limit_soft_ratio",
        "rate_limit_grace_ratio",
        "rate_limit_grace_seconds",
        "rate_limit_fail_open",
        "api_key_rotation_grace_hours",
    }

    network_id: str = "request"
    peer_network_id: str = "response"
    page_size_max: int = 100

    # The response cache (Redis, request_network.services.response_cache): how long an entry
    # lives, the largest response kept (larger ones are served, not cached), and what the
    # hourly maintenance pre-warms (responses read within the window whose entry is gone).
    response_cache_ttl_seconds: int = Field(default=3600, ge=1)
    response_cache_seconds: int | None = Field(default=None, ge=1)  # deprecated name of the TTL
    response_cache_max_bytes: int = Field(default=1024 * 1024, ge=0)
    response_cache_prewarm_seconds: int = Field(default=3600, ge=0)
    response_cache_prewarm_max: int = Field(default=500, ge=0)

    # A request with no answer this long after it was (last) sent becomes EXPIRED (an
    # answer that still arrives is taken; an admin may retry it).
    request_expiry_hours: int = Field(default=7 * 24, ge=1, le=24 * 365)

    # Rate limits (DESIGN.md §4): ratios of the window's limit, grace length, Redis-down policy.
    rate_limit_soft_ratio: float = Field(default=0.8, gt=0, le=1)
    rate_limit_grace_ratio: float = Field(default=1.1, ge=1)
    rate_limit_grace_seconds: int = Field(default=300, ge=0)
    rate_limit_fail_open: bool = False  # closed: an air-gapped site's quota is the default

    # API keys: HMAC-SHA256(pepper, key) is stored, never the key.
    api_key_pepper: SecretStr = SecretStr("change-me")
    api_key_environment: Literal["live", "test"] = "live"
    # After a rotation the previous secret keeps working this many hours (0: stops at once).
    api_key_rotation_grace_hours: int = Field(default=24, ge=0, le=24 * 30)

    # Login protection: see FerrySettings (shared with the response network).

    @model_validator(mode="after")
    def _cache_ttl_from_its_old_name(self) -> RequestSettings:
        """FERRY_REQUEST_RESPONSE_CACHE_SECONDS still sets the TTL unless the new name does."""
        old = self.response_cache_seconds
        if old is not None and "response_cache_ttl_seconds" not in self.model_fields_set:
            self.response_cache_ttl_seconds = old
        return self

    @model_validator(mode="after")
    def _known_beat_entries(self) -> RequestSettings:
        check_beat_entries(self.beat_seconds, ENTRIES, "FERRY_REQUEST_")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_pepper(self) -> RequestSettings:
        pepper = self.api_key_pepper.get_secret_value()
        if self.mode != "demo" and (pepper in PLACEHOLDER_SECRETS or len(pepper) < 32):
            raise ValueError("api_key_pepper must be a real secret of at least 32 characters")
        return self


#: The process's settings: read once, replaced by a SIGHUP reload (shared.reload).
get_settings = SettingsLoader(RequestSettings)
