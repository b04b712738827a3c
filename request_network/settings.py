"""Request network settings (env prefix FERRY_REQUEST_)."""

from __future__ import annotations

from functools import cache

from pydantic_settings import SettingsConfigDict

from shared.settings import FerrySettings


class RequestSettings(FerrySettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_REQUEST_", extra="ignore")

    network_id: str = "request"
    peer_network_id: str = "response"
    page_size_max: int = 100
    response_cache_seconds: int = 300
    max_body_bytes: int = 64 * 1024


@cache
def get_settings() -> RequestSettings:
    return RequestSettings()
