"""Response network settings (env prefix FERRY_RESPONSE_)."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import FerrySettings


class ResponseSettings(FerrySettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_RESPONSE_", extra="ignore")

    network_id: str = "response"
    peer_network_id: str = "request"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    compat_headers: bool = True  # false for OpenSearch-compatible servers
    search_timeout_s: float = Field(default=30.0, gt=0)
    msearch_chunk: int = Field(default=50, ge=1, le=1000)
    execute_batch: int = Field(default=500, ge=1)


@cache
def get_settings() -> ResponseSettings:
    return ResponseSettings()
