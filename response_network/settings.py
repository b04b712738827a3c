"""Response network settings (env prefix FERRY_RESPONSE_)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from response_network.schedule import ENTRIES
from shared.settings import FerrySettings, SettingsLoader, check_beat_entries


class ResponseSettings(FerrySettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_RESPONSE_", extra="ignore")
    LIVE = FerrySettings.LIVE | {
        "search_timeout_s",
        "msearch_chunk",
        "execute_batch",
        "execution_history_days",
    }

    network_id: str = "response"
    peer_network_id: str = "request"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    compat_headers: bool = True  # false for OpenSearch-compatible servers
    search_timeout_s: float = Field(default=30.0, gt=0)
    # Searches per msearch call. 50 from bench/bench_search.py (PERFORMANCE.md, "Query
    # execution"): the executor's own CPU stops falling there, larger chunks were no faster,
    # and a call that fails fails every search in it.
    msearch_chunk: int = Field(default=50, ge=1, le=1000)
    execute_batch: int = Field(default=500, ge=1)
    # `cache_maintenance` drops executions older than this (each request's latest stays).
    execution_history_days: int = Field(default=30, ge=1, le=3650)

    @model_validator(mode="after")
    def _known_beat_entries(self) -> ResponseSettings:
        check_beat_entries(self.beat_seconds, ENTRIES, "FERRY_RESPONSE_")
        return self


#: The process's settings: read once, replaced by a SIGHUP reload (shared.reload).
get_settings = SettingsLoader(ResponseSettings)
